"""Example 7: checkerboard artifacts of the sub-pixel layer, measured, and ICNR initialisation.

The r² sub-pixel channels of the last layer are r² separate convolutions, each filling one phase ``(α, β)``
of every r x r block (example 1). When they disagree, the output carries a pattern that repeats every
``r`` pixels: the checkerboard of Odena, Dumoulin and Olah ("Deconvolution and checkerboard artifacts",
Distill 2016), which a stride-r deconvolution shows for the same reason (example 2). Its size is measured
here without any threshold: the mean of an image over its blocks at each phase,
``M[α, β] = mean_{u,v} y[r u + α, r v + β]``, is (Parseval) exactly the image's part at the r-periodic
frequencies, so the RMS of ``M`` about its mean (:func:`_common.periodic_rms`) is the size of that pattern, in
luma levels (0..255). Natural images have very little of it; on a flat input it is all artifact.

1. The shipped models on flat grey LR images: the right answer is the same flat grey; inside the frame
   the output is one r x r tile repeated, and the tile's spread is the checkerboard.
2. The shipped x3 model on Set5's butterfly: the r-periodic part of the error ``SR - HR``, against
   bicubic's.
3. At initialisation: the default init (N(0, 0.001²) last layer) against ICNR (Aitken et al. 2017,
   "Checkerboard artifact free sub-pixel convolution", arXiv:1707.02937): draw one kernel ``W0`` per
   output channel and copy it into all r² phases, ``K[o*r*r + α*r + β] = W0[o]``. Then every phase is the same
   LR map, the sub-pixel layer starts as nearest-neighbour upsampling after a convolution, and the
   r-periodic part is exactly zero for every input.
4. A few training steps from each start (the trainer's mean-luma bias in both).

Run: ``python examples/07_checkerboard_and_icnr.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn import ESPCN, Adam, load_model
from npespcn.functional import mse_loss

LEVELS = (16, 64, 128, 192, 235)
SHIPPED = ("espcn_x2", "espcn_x3", "espcn_x4", "espcn7_x2", "espcn7_x3", "espcn7_x4")


def flat_response(model, level: float, size: int = 32):
    """The model's output (luma levels) for a flat LR image at ``level``, inside the frame where the
    window reaches the zero padding, and its r x r phase-mean tile."""
    r, width = model.scale, model.scale * model.receptive_radius
    y = model.infer(np.full((1, model.channels, size, size), level / 255.0, model.dtype))[0, 0] * 255.0
    inner = np.asarray(y[width:-width, width:-width], np.float64)
    return inner, _common.phase_means(inner, r)


def icnr_(model, seed: int, std: float = 0.001) -> None:
    """ICNR (Aitken et al. 2017) in place: one kernel W0 (C, C_in, k, k) copied into all r*r phases of the
    last layer, ``K[o*r*r + α*r + β] = W0[o]``; the last bias made equal over the phases too."""
    r, C = model.scale, model.channels
    K = model.params[f"{model.last_layer}.weight"]
    w0 = np.random.default_rng(seed).normal(0.0, std, size=(C,) + K.shape[1:])
    K[...] = np.repeat(w0, r * r, axis=0)
    b = model.params[f"{model.last_layer}.bias"]
    b[...] = np.repeat(b.reshape(C, r * r).mean(axis=1), r * r)


def tile_table(t, m):
    """An r x r tile as coloured squares with its values written in (blue < 0 < red, +-m)."""
    colours = _draw.colorize(0.5 + 0.5 * t / (m or 1.0), "diverging")
    return _draw.table([[f"{v:+.2f}" for v in row] for row in t], colours.tolist(), cell=44, size=11)


def fresh(seed: int, bias: float, icnr: bool) -> ESPCN:
    model = ESPCN.paper(3, seed=seed)
    model.params[f"{model.last_layer}.bias"][...] = bias
    if icnr:
        icnr_(model, seed + 1000)
    return model


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    res = {"flat": {}}
    pictures = []

    # 1. Flat inputs through the shipped models.
    names = [n for n in SHIPPED if (_common.ROOT / "weights" / f"{n}.npz").is_file()]
    print("1. flat LR images through the shipped models: RMS of the r x r output tile about its mean "
          "(range max - min), luma levels")
    print("   model      " + "".join(f"   luma {v:3d}   " for v in LEVELS))
    for name in names:
        model = load_model(_common.ROOT / "weights" / f"{name}.npz")
        r = model.scale
        row = {}
        for level in LEVELS:
            inner, tile = flat_response(model, level)
            blocks = inner.reshape(inner.shape[0] // r, r, inner.shape[1] // r, r).transpose(0, 2, 1, 3)
            # inside the frame every block is the same tile, to float32 rounding: a pure r-periodic pattern
            assert float(np.max(np.abs(blocks - tile))) < 0.01, name
            row[level] = {"rms": _common.periodic_rms(inner, r), "range": float(tile.max() - tile.min()),
                          "mean_error": float(tile.mean() - level)}
            if name == "espcn_x3":
                pictures.append((tile - tile.mean(), f"x3, luma {level}"))
        res["flat"][name] = row
        print(f"   {name:10s} " + "".join(f"  {v['rms']:5.3f} ({v['range']:4.2f})" for v in row.values()))
    if names:
        worst = max(v["rms"] for row in res["flat"].values() for v in row.values())
        span = max(v["range"] for row in res["flat"].values() for v in row.values())
        print(f"   at most {worst:.2f} levels RMS and {span:.2f} levels from the brightest to the darkest phase "
              f"(one 8-bit step is 1 level), largest at the ends of the luma range; mid-grey under 0.12 RMS")

    # 2. A real image: the r-periodic part of the error.
    path = _common.find_image("Set5", "butterfly.png")
    rgb = _common.load_rgb8(path) if path is not None else _common.synthetic_chart(240)
    r = 3
    hr_y, lr_y, lr_rgb = _common.make_pair(rgb, r)
    bic = _common.bicubic_y(lr_rgb, r)
    x = (lr_y / 255.0)[None, None].astype(np.float32)
    width = 12
    inner = (slice(width, -width), slice(width, -width))
    real = {"bicubic": _common.periodic_rms((bic - hr_y)[inner], r), "hr": _common.periodic_rms(hr_y[inner], r)}
    if "espcn_x3" in names:
        sr = load_model(_common.ROOT / "weights" / "espcn_x3.npz").infer(x)[0, 0] * 255.0
        real["espcn_x3"] = _common.periodic_rms((sr - hr_y)[inner], r)
        print(f"\n2. {'Set5 butterfly' if path else 'a synthetic chart'}: r-periodic part of the error inside the "
              f"frame: bicubic {real['bicubic']:.3f}, espcn_x3 {real['espcn_x3']:.3f} levels "
              f"(of the HR image itself: {real['hr']:.3f})")
    res["real"] = real

    # 3. At initialisation: default vs ICNR, several seeds; the trainer's mean-luma bias.
    seeds = range(3) if fast else range(8)
    bias = 0.45
    init = {"default": [], "icnr": []}
    for seed in seeds:
        for kind in init:
            model = fresh(seed, bias, kind == "icnr")
            flat, _ = flat_response(model, 128)
            y0 = model.infer(x)[0, 0] * 255.0
            init[kind].append({"flat": _common.periodic_rms(flat, r), "image": _common.periodic_rms(y0[inner], r)})
    summary = {k: {m: float(np.mean([v[m] for v in vals])) for m in ("flat", "image")} for k, vals in init.items()}
    print(f"\n3. freshly initialised paper models ({len(seeds)} seeds, last bias {bias}): r-periodic part of the "
          f"output, luma levels, on a flat grey 128 / on the butterfly:")
    for kind, s in summary.items():
        print(f"   {kind:8s} {s['flat']:.4f} / {s['image']:.4f}")
    assert summary["icnr"]["flat"] < 1e-3 and summary["icnr"]["image"] < 1e-3
    assert summary["default"]["flat"] > 100 * summary["icnr"]["flat"] + 0.01
    res["init"] = summary

    # 4. Training from each start: the same batches, Adam 3e-3, last layer x0.1.
    steps = 60 if fast else 400
    images = [_common.load_rgb8(p) for p in sorted((_common.datasets_dir() / "T91").glob("*.png"))[:16]] \
        or [_common.synthetic_chart(192)]
    pairs = [_common.make_pair(im, r)[:2] for im in images]
    marks = sorted({steps // 4, steps // 2, steps})
    train = {}
    for kind in ("default", "icnr"):
        model = fresh(0, float(np.mean([h.mean() for h, _ in pairs])) / 255.0, kind == "icnr")
        opt = Adam(model.params, lr=3e-3, lr_mult=model.lr_multipliers(0.1))
        sampler = _common.PatchSampler(pairs, r, 17)
        rows = {0: _common.periodic_rms((model.infer(x)[0, 0] * 255.0 - hr_y)[inner], r)}
        for step in range(1, steps + 1):
            xb, yb = sampler.batch(16)
            _, dy = mse_loss(model.forward(xb), yb)
            model.backward(dy, input_grad=False)
            opt.step(model.grads)
            if step in marks:
                rows[step] = _common.periodic_rms((model.infer(x)[0, 0] * 255.0 - hr_y)[inner], r)
        train[kind] = rows
    print("\n4. training from each start (same batches): r-periodic part of the error on the butterfly, levels")
    print("   step     " + "".join(f"{s:>8d}" for s in train["default"]))
    for kind, rows in train.items():
        print(f"   {kind:8s} " + "".join(f"{v:8.3f}" for v in rows.values()))
    last = {k: rows[steps] for k, rows in train.items()}
    print(f"   ICNR removes the checkerboard at the start ({train['default'][0]:.3f} -> {train['icnr'][0]:.3f}, the "
          f"latter being the HR image's own periodic part, which an output without one leaves in the error). "
          f"The guarantee holds at the start only: training moves both to the order of that own part, "
          f"{last['default']:.3f} (default) and {last['icnr']:.3f} (ICNR) after {steps} steps")
    res["train"] = train

    files = []
    if pictures:
        m = max(float(np.max(np.abs(t))) for t, _ in pictures) or 1.0
        cells = [tile_table(t, m) for t, _ in pictures]
        files.append(_draw.save_png(_draw.grid(cells, [c for _, c in pictures], ncols=len(cells),
                                               title="espcn_x3, flat input: output 3x3 tile - its mean, levels"),
                                    out / "07_flat_tiles.png"))
    tiles = [flat_response(fresh(0, bias, kind == "icnr"), 128)[1] for kind in ("default", "icnr")]
    m = max(float(np.max(np.abs(t - t.mean()))) for t in tiles)
    files.append(_draw.save_png(_draw.grid([tile_table(t - t.mean(), m) for t in tiles],
                                           ["default init", "ICNR init"], ncols=2,
                                           title="fresh model, flat 128: tile - mean"),
                                out / "07_init_tiles.png"))
    for f in files:
        print(f"wrote {f}")
    res["files"] = [str(f) for f in files]
    return res


if __name__ == "__main__":
    _common.run(main)
