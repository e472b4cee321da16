"""An evaluation report to look at: ``DIR/index.html`` and the PNG crops beside it.

:func:`write_report` scores several models on several image folders and scales with the protocol of
:mod:`npespcn.evaluation.protocol` (the same numbers as :func:`npespcn.evaluate`), and writes

* ``index.html``: for every scale, the comparison table (model, layers, parameters, multiply-adds per
  low-resolution pixel, PSNR / SSIM per set, milliseconds per image, bicubic as the first row); for every
  set and scale, the per-image PSNR table and, for each image, a zoomed crop of HR, bicubic and every
  model side by side;
* ``<set>-x<r>/<image>-<label>.png``: the crops, enlarged by repeating pixels (no smoothing);
* ``results.json``: the numbers of the page.

The crop of an image is the ``crop x crop`` window (HR pixels) where the models differ most
(:func:`most_different_box`): with two or more models, where their outputs disagree; with one, where it
differs from bicubic. The page is self-contained: inline CSS, no script, no font or file from the
network; it reflows to a phone's width (the wide tables scroll sideways inside their box).

Each ``<img>`` carries what it shows, for tests and for readers of the source: ``data-image`` (the image's
file name), ``data-model`` (``HR``, ``bicubic`` or the model's label), ``data-box`` (``top,left,side`` in
HR pixels of the image cropped to a multiple of the scale) and ``data-zoom``; its caption holds the image's
PSNR, as in the per-image table.

Examples::

    >>> from npespcn.evaluation.report import write_report
    >>> summary = write_report("report", ["espcn", "espcn7"], ["data/Set5"], [3])   # doctest: +SKIP
    >>> summary["results"][0]["model"], round(summary["results"][0]["psnr"], 2)     # doctest: +SKIP
"""
from __future__ import annotations

import datetime
import html
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..image.color import rgb_to_y
from ..image.io import list_images, write_image
from ..inference.pipeline import upscale
from ..nn.model import ESPCN, check_scale
from ..nn.pretrained import DEFAULT, NAMES, resolve_model
from ..version import __version__
from .protocol import bicubic_upscale8, degrade, load_rgb8, score

CROP = 48
"""Side of the crop, in HR pixels."""
CROP_DISPLAY = 192
"""About how many pixels wide a crop is drawn: it is enlarged ``max(1, CROP_DISPLAY // side)`` times."""


# ------------------------------------------------------------------------------------------- the crop
def most_different_box(images, side: int, border: int = 0) -> tuple[int, int, int]:
    """The ``side x side`` window where ``images`` differ most.

    The difference at a pixel is the standard deviation across the images of its luma (BT.601 Y); the
    window chosen has the largest sum of it (the first such window, in reading order). Windows stay
    ``border`` pixels inside the image (the pixels the metrics ignore) when the image is large enough.

    Args:
        images: two or more uint8 RGB arrays of the same shape (H, W, 3).
        side: the window's side; clipped to the image.
        border: pixels on each side the window avoids.

    Returns:
        ``(top, left, side)``.

    Examples::

        >>> a = np.zeros((20, 30, 3), np.uint8); b = a.copy(); b[12:16, 20:24] = 200
        >>> most_different_box([a, b], 4)
        (12, 20, 4)
    """
    ys = np.stack([rgb_to_y(im) for im in images])
    H, W = ys.shape[1:]
    if H - 2 * border < 1 or W - 2 * border < 1:
        border = 0
    side = max(1, min(int(side), H - 2 * border, W - 2 * border))
    spread = ys.std(axis=0)[border:H - border, border:W - border]
    # sum over every window in O(H*W): an integral image with a row and a column of zeros in front
    integral = np.zeros((spread.shape[0] + 1, spread.shape[1] + 1))
    integral[1:, 1:] = spread.cumsum(0).cumsum(1)
    sums = (integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side])
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top) + border, int(left) + border, side


def zoom(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` (H, W, C) enlarged ``factor`` times by repeating every pixel (no smoothing)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


# ------------------------------------------------------------------------------------------- models
def model_label(spec, net: ESPCN) -> str:
    """A short name for a model: a shipped name, a file's stem, or ``espcn-<layers>`` for an object."""
    if spec is None:
        return DEFAULT
    if isinstance(spec, str) and spec.lower() in NAMES:
        return spec.lower()
    if isinstance(spec, (str, os.PathLike)):
        return Path(spec).stem
    return "espcn-" + "-".join(f"{k}x{f}" for k, f in net.hidden)


def describe_layers(net: ESPCN) -> str:
    """The convolutions as ``k×k×filters``, the last one included: ``5×5×64, 3×3×32, 3×3×9``."""
    convs = [*net.hidden, (3, net.channels * net.scale ** 2)]
    return ", ".join(f"{k}×{k}×{f}" for k, f in convs)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def plan_models(models, scales) -> dict:
    """``{scale: [(label, net), ...]}``: every shipped name at every scale, a file or object at its own.

    A model file whose scale is not among ``scales`` is an error (one line naming it)."""
    plan = {s: [] for s in scales}
    for spec in models:
        fixed = not (spec is None or (isinstance(spec, str) and spec.lower() in NAMES))
        if fixed:
            net = resolve_model(spec, None)
            if net.scale not in plan:
                raise ValueError(f"model {spec if isinstance(spec, (str, os.PathLike)) else 'object'} upscales "
                                 f"x{net.scale}, which is not among the scales {', '.join(map(str, scales))}")
            plan[net.scale].append((model_label(spec, net), net))
        else:
            for s in scales:
                net = resolve_model(spec, s)
                plan[s].append((model_label(spec, net), net))
    for s, entries in plan.items():                           # two models of one name: number them
        seen: dict = {}
        for i, (label, net) in enumerate(entries):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:
                entries[i] = (f"{label}-{seen[label]}", net)
    return plan


# ------------------------------------------------------------------------------------------- scoring
def _set_name(folder) -> str:
    return Path(folder).name or str(folder)


def write_report(out_dir, models, data, scales=(3,), tile=None, ensemble: bool = False, crop: int = CROP,
                 overwrite: bool = False, progress=None) -> dict:
    """Score ``models`` on the folders ``data`` at ``scales`` and write the report into ``out_dir``.

    Args:
        out_dir: the report's folder, created if missing.
        models: shipped names, model files or ESPCN objects (a file or object only at its own scale).
        data: folders of high-resolution images.
        scales: the scales; each shipped name is scored at every one.
        tile, ensemble: passed to :func:`npespcn.upscale` (the scores do not depend on ``tile``).
        crop: side of the crops, in HR pixels.
        overwrite: replace an existing ``index.html`` (otherwise ``FileExistsError`` before any work).
        progress: called with one line of text per image scored (e.g. ``print``), or None.

    Returns:
        The summary written to ``results.json``: ``{"results": [...], "scales", "sets", "machine", "date",
        "version"}``; ``results`` holds one entry per set, scale and model (bicubic has
        ``"model": "bicubic"``) in the form of :func:`npespcn.evaluate`'s result, plus ``"model"``,
        ``"data"``, ``"layers"``, ``"params"``, ``"macs_per_pixel"`` and ``"ms_per_image"``.
    """
    out_dir = Path(out_dir)
    index = out_dir / "index.html"
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the report folder {out_dir} exists and is not a folder")
    if os.path.lexists(index) and not overwrite:
        raise FileExistsError(f"{index} exists (pass --overwrite to replace the report)")
    scales = [check_scale(s) for s in scales]
    folders = [(str(d), list_images(d, nonempty=True)) for d in data]
    models = list(models) or [None]
    plan = plan_models(models, scales)
    out_dir.mkdir(parents=True, exist_ok=True)
    warm = np.zeros((8, 8, 3), np.uint8)
    for entries in plan.values():                 # compile the kernels before anything is timed
        for _, net in entries:
            upscale(warm, net.scale, net, tile=tile, ensemble=ensemble)

    results, sections = [], []
    for s in scales:
        for si, (folder, files) in enumerate(folders):
            labels = ["bicubic", *[label for label, _ in plan[s]]]
            rows = {label: [] for label in labels}
            times = {label: [] for label in labels}
            sub = f"{si + 1:02d}-{_safe(_set_name(folder))}-x{s}"
            (out_dir / sub).mkdir(exist_ok=True)
            images = []
            for ii, path in enumerate(files):
                hr, lr = degrade(load_rgb8(path), s)
                t0 = time.perf_counter()
                outputs = {"bicubic": bicubic_upscale8(lr, s)}
                times["bicubic"].append(time.perf_counter() - t0)
                for label, net in plan[s]:
                    t0 = time.perf_counter()
                    outputs[label] = upscale(lr, s, net, tile=tile, ensemble=ensemble)
                    times[label].append(time.perf_counter() - t0)
                psnrs = {}
                for label in labels:
                    p, q = score(hr, outputs[label], s)
                    rows[label].append({"name": path.name, "psnr": p, "ssim": q})
                    psnrs[label] = p
                compared = [outputs[label] for label in labels[1:]]
                if len(compared) < 2:
                    compared = [outputs[label] for label in labels]
                top, left, side = most_different_box(compared, crop, border=s)
                factor = max(1, CROP_DISPLAY // side)
                crops = []
                for label, picture in [("HR", hr), *[(lb, outputs[lb]) for lb in labels]]:
                    rel = f"{sub}/{ii + 1:03d}-{_safe(path.stem)}-{_safe(label)}.png"
                    write_image(out_dir / rel, zoom(picture[top:top + side, left:left + side], factor),
                                overwrite=overwrite)
                    crops.append({"model": label, "src": rel, "psnr": psnrs.get(label)})
                images.append({"name": path.name, "box": [top, left, side], "zoom": factor, "crops": crops,
                               "shape": list(hr.shape[:2])})
                if progress is not None:
                    progress(f"{_set_name(folder)} x{s} [{ii + 1}/{len(files)}] {path.name}: " +
                             ", ".join(f"{label} {psnrs[label]:.2f} dB" for label in labels))
            nets = dict(plan[s])
            for label in labels:
                net = nets.get(label)
                per = [{"name": r["name"], "psnr": None, "ssim": None, "bicubic_psnr": b["psnr"],
                        "bicubic_ssim": b["ssim"]} for r, b in zip(rows[label], rows["bicubic"])]
                if net is not None:
                    for entry, r in zip(per, rows[label]):
                        entry["psnr"], entry["ssim"] = r["psnr"], r["ssim"]
                results.append({
                    "data": _set_name(folder), "folder": folder, "scale": s, "model": label, "n": len(files),
                    "psnr": None if net is None else float(np.mean([r["psnr"] for r in rows[label]])),
                    "ssim": None if net is None else float(np.mean([r["ssim"] for r in rows[label]])),
                    "bicubic_psnr": float(np.mean([r["psnr"] for r in rows["bicubic"]])),
                    "bicubic_ssim": float(np.mean([r["ssim"] for r in rows["bicubic"]])),
                    "layers": None if net is None else describe_layers(net),
                    "params": 0 if net is None else int(net.num_params()),
                    "macs_per_pixel": None if net is None else int(net.macs_per_pixel()),
                    "ms_per_image": 1000 * float(np.mean(times[label])),
                    "per_image": per})
            sections.append({"data": _set_name(folder), "scale": s, "labels": labels, "images": images,
                             "rows": rows})
    summary = {"version": __version__, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "machine": machine(), "scales": scales, "sets": [_set_name(f) for f, _ in folders],
               "tile": tile, "ensemble": ensemble, "results": results}
    with atomic_write(out_dir / "results.json", "w", overwrite=True) as f:
        json.dump(summary, f, indent=1)
    text = render(summary, sections)
    with atomic_write(index, "w", overwrite=overwrite) as f:     # last: it refers to everything above
        f.write(text)
    return summary


def machine() -> str:
    """One line about where the timings were measured: the processor, its logical CPUs, the threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    threads = os.environ.get("NUMBA_NUM_THREADS", "all")
    return (f"{cpu}, {os.cpu_count()} logical CPUs, "
            f"NUMBA_NUM_THREADS={threads}, Python {sys.version.split()[0]}, {platform.system()}")


# ------------------------------------------------------------------------------------------- the page
STYLE = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
 padding:12px;color:#111;background:#fff}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin:1.2em 0 .4em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.5em 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;white-space:nowrap}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f2f2}
tr.bicubic td{color:#555}td.best{font-weight:bold}
td.layers{white-space:normal;min-width:8em;max-width:14em;text-align:left;font-size:.85em}
.crops{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:8px}
figure{margin:0}figure img{display:block;width:100%;height:auto;image-rendering:pixelated;
 image-rendering:crisp-edges;border:1px solid #ccc}
figcaption{font-size:.85em;text-align:center}
.note{color:#555;font-size:.9em}
"""


def _fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def _table(head, body, cls="") -> str:
    out = [f'<div class="scroll"><table class="{cls}"><thead><tr>']
    out += [f"<th>{h}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row_cls, cells in body:
        out.append(f'<tr class="{row_cls}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def render(summary: dict, sections: list) -> str:
    """The HTML page of a report (see the module docstring); ``sections`` as built by :func:`write_report`."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>npespcn evaluation report</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>npespcn evaluation report</h1>",
             (f'<p class="note">PSNR (dB) and SSIM on BT.601 Y, <i>r</i> border pixels removed, low resolution '
             f"made by Pillow bicubic; bicubic is Pillow's bicubic upscale. Milliseconds per image: mean wall "
             f"time of one upscale of a low-resolution image, after a warm-up, on {e(summary['machine'])}. "
             f"npespcn {e(summary['version'])}, {e(summary['date'])}"
             f"{', tile ' + str(summary['tile']) if summary['tile'] else ''}"
             f"{', self-ensemble' if summary['ensemble'] else ''}.</p>")]
    results = summary["results"]
    for s in summary["scales"]:
        here = [r for r in results if r["scale"] == s]
        labels = list(dict.fromkeys(r["model"] for r in here))
        sets = list(dict.fromkeys(r["data"] for r in here))
        parts.append(f'<h2 id="x{s}">Models at ×{s}</h2>')
        head = ["model", "layers", "parameters", "mult-adds / LR pixel",
                *[f"{e(d)} PSNR / SSIM" for d in sets], "ms / image"]
        body = []
        for label in labels:
            mine = {r["data"]: r for r in here if r["model"] == label}
            first = next(iter(mine.values()))
            cells = [f"<td>{e(label)}</td>", f"<td class=\"layers\">{e(first['layers'] or '–')}</td>",
                     f"<td>{first['params']:,}</td>",
                     f"<td>{'–' if first['macs_per_pixel'] is None else format(first['macs_per_pixel'], ',')}</td>"]
            for d in sets:
                r = mine[d]
                p, q = (r["bicubic_psnr"], r["bicubic_ssim"]) if label == "bicubic" else (r["psnr"], r["ssim"])
                gain = "" if label == "bicubic" else f" ({p - r['bicubic_psnr']:+.2f})"
                cells.append(f'<td data-set="{e(d)}" data-psnr="{p:.2f}">{p:.2f} / {q:.4f}{gain}</td>')
            ms = np.mean([r["ms_per_image"] for r in mine.values()])
            cells.append(f"<td>{ms:.1f}</td>")
            body.append(("bicubic" if label == "bicubic" else "model", cells))
        parts.append(_table(head, body, "compare"))
        parts.append('<p class="note">In parentheses: dB above bicubic.</p>')
    for sec in sections:
        d, s, labels = sec["data"], sec["scale"], sec["labels"]
        parts.append(f'<h2 id="{e(_safe(d))}-x{s}">{e(d)} ×{s}: every image</h2>')
        body = []
        for i, img in enumerate(sec["images"]):
            vals = [sec["rows"][label][i]["psnr"] for label in labels]
            best = max(vals)
            cells = [f"<td>{e(img['name'])}</td>"]
            cells += [f'<td class="{"best" if v == best else ""}" data-model="{e(label)}" data-psnr="{v:.2f}">'
                      f"{v:.2f}</td>" for label, v in zip(labels, vals)]
            body.append(("", cells))
        parts.append(_table(["image", *[e(label) for label in labels]], body, "per-image"))
        parts.append('<p class="note">PSNR in dB; the best of each image in bold. Crops: the window where the '
                     "models differ most (with one model: where it differs from bicubic), enlarged without "
                     "smoothing.</p>")
        for img in sec["images"]:
            top, left, side = img["box"]
            parts.append(f"<h3>{e(img['name'])} <span class=\"note\">({side}×{side} at x {left}, y {top} of "
                         f"{img['shape'][1]}×{img['shape'][0]}, ×{img['zoom']})</span></h3><div class=\"crops\">")
            for c in img["crops"]:
                caption = e(c["model"]) + ("" if c["psnr"] is None else f" {c['psnr']:.2f} dB")
                parts.append(f'<figure><img src="{e(c["src"])}" alt="{e(c["model"])}: {e(img["name"])}" '
                             f'width="{side * img["zoom"]}" height="{side * img["zoom"]}" '
                             f'data-image="{e(img["name"])}" data-model="{e(c["model"])}" '
                             f'data-box="{top},{left},{side}" data-zoom="{img["zoom"]}">'
                             f"<figcaption>{caption}</figcaption></figure>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
