"""``npespcn evaluate --report DIR``: the page is parsed, every image it shows is recomputed from the
images and the models, every number from :func:`npespcn.evaluate`; a slow test renders it in Chromium."""
from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npespcn
from npespcn.cli.evaluate import main
from npespcn.evaluation.report import most_different_box

SCALE = 3


class Page(html.parser.HTMLParser):
    """The parts of the report a reader sees: images, table cells (with their data attributes), captions,
    and everything that could reach outside the page."""

    def __init__(self):
        super().__init__()
        self.images, self.cells, self.captions, self.external, self.tags = [], [], [], [], []
        self.table_class = None
        self.in_cell = self.in_caption = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(a)
        if tag == "table":
            self.table_class = a.get("class")
        if tag in ("td", "th"):
            self.in_cell = {"table": self.table_class, **a, "text": ""}
        if tag == "figcaption":
            self.in_caption = ""
        for key in ("src", "href", "srcset", "action", "data"):
            if key in a and (":" in a[key] or a[key].startswith("//")):
                self.external.append(f"{tag} {key}={a[key]}")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.in_cell is not None:
            self.cells.append(self.in_cell)
            self.in_cell = None
        if tag == "figcaption":
            self.captions.append(self.in_caption)
            self.in_caption = None

    def handle_data(self, data):
        if self.in_cell is not None:
            self.in_cell["text"] += data
        if self.in_caption is not None:
            self.in_caption += data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _picture(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack([0.5 + 0.4 * np.sin(9 * x + 4 * y), 0.5 * y + 0.3 * (x > 0.5), 0.8 - 0.5 * x * y], -1)
    return (np.clip(rgb + rng.normal(0, 0.03, rgb.shape), 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of an untrained paper model (a file) and the shipped espcn on two small images at x3."""
    root = tmp_path_factory.mktemp("report")
    (root / "imgs").mkdir()
    Image.fromarray(_picture(38, 44, 1)).save(root / "imgs" / "one.png")       # 38 is no multiple of 3
    Image.fromarray(_picture(36, 30, 2)).save(root / "imgs" / "two.png")
    npespcn.ESPCN.paper(SCALE, seed=1).save(root / "untrained.npz")
    out = root / "out"
    argv = ["--data", str(root / "imgs"), "--scale", str(SCALE), "--model", str(root / "untrained.npz"), "espcn",
            "--report", str(out), "--json"]
    assert main(argv) == 0
    return {"root": root, "out": out, "page": parse(out / "index.html"), "argv": argv,
            "models": {"untrained": npespcn.load_model(root / "untrained.npz"), "espcn": "espcn"}}


def _hr_lr(path):
    """HR cropped to a multiple of the scale and its Pillow bicubic downscale, written out here again."""
    hr = np.asarray(Image.open(path).convert("RGB"))
    hr = hr[:hr.shape[0] // SCALE * SCALE, :hr.shape[1] // SCALE * SCALE]
    lr = np.asarray(Image.fromarray(hr).resize((hr.shape[1] // SCALE, hr.shape[0] // SCALE), Image.BICUBIC))
    return hr, lr


def test_every_image_exists_and_shows_its_crop(report):
    page, out, root = report["page"], report["out"], report["root"]
    assert len(page.images) == 2 * 4                  # two images: HR, bicubic, two models
    for img in page.images:
        path = out / img["src"]
        assert path.is_file(), f"{img['src']} is referenced but missing"
        shown = np.asarray(Image.open(path))
        top, left, side = map(int, img["data-box"].split(","))
        zoom = int(img["data-zoom"])
        assert shown.shape == (side * zoom, side * zoom, 3) == (int(img["height"]), int(img["width"]), 3)
        hr, lr = _hr_lr(root / "imgs" / img["data-image"])
        if img["data-model"] == "HR":
            full = hr
        elif img["data-model"] == "bicubic":
            full = np.asarray(Image.fromarray(lr).resize((hr.shape[1], hr.shape[0]), Image.BICUBIC))
        else:
            full = npespcn.upscale(lr, SCALE, report["models"][img["data-model"]])
        want = full[top:top + side, left:left + side].repeat(zoom, axis=0).repeat(zoom, axis=1)
        assert np.array_equal(shown, want), f"{img['src']} does not show {img['data-model']} at {img['data-box']}"


def test_the_crop_is_where_the_models_differ_most(report):
    root = report["root"]
    for img in report["page"].images[::4]:
        top, left, side = map(int, img["data-box"].split(","))
        _, lr = _hr_lr(root / "imgs" / img["data-image"])
        ys = [npespcn.upscale(lr, SCALE, m).astype(float) @ [65.481 / 255, 128.553 / 255, 24.966 / 255]
              for m in report["models"].values()]
        spread = np.std(ys, axis=0)
        H, W = spread.shape
        assert side == min(48, H - 2 * SCALE, W - 2 * SCALE)
        sums = {(t, l_): spread[t:t + side, l_:l_ + side].sum()
                for t in range(SCALE, H - SCALE - side + 1) for l_ in range(SCALE, W - SCALE - side + 1)}
        assert sums[(top, left)] >= max(sums.values()) - 1e-9


def test_most_different_box_finds_the_one_place_they_differ():
    a = np.full((40, 50, 3), 90, np.uint8)
    b = a.copy()
    b[25:31, 33:39] = 200                                       # 6x6 where they differ
    assert most_different_box([a, b], 6) == (25, 33, 6)
    assert most_different_box([a, b, a], 6, border=3) == (25, 33, 6)
    top, left, side = most_different_box([a, b], 12, border=3)     # a larger window holds all of it
    assert side == 12 and top <= 25 and top + 12 >= 31 and left <= 33 and left + 12 >= 39
    assert most_different_box([a[:4, :4], b[:4, :4]], 48, border=3) == (0, 0, 4)   # tiny: no border, clipped


def test_tables_say_what_evaluate_says(report):
    page, root = report["page"], report["root"]
    cells = page.cells
    per_image = [c for c in cells if c["table"] == "per-image" and "data-psnr" in c]
    compare = [c for c in cells if c["table"] == "compare"]
    for label, model in report["models"].items():
        want = npespcn.evaluate(model, root / "imgs", SCALE)
        shown = [c for c in per_image if c["data-model"] == label]
        assert [c["text"] for c in shown] == [f"{r['psnr']:.2f}" for r in want["per_image"]]
        bic = [c["text"] for c in per_image if c["data-model"] == "bicubic"]
        assert bic == [f"{r['bicubic_psnr']:.2f}" for r in want["per_image"]]
        row = [c["text"] for c in compare]
        i = row.index(label)
        assert row[i + 4].startswith(f"{want['psnr']:.2f} / {want['ssim']:.4f} "
                                     f"({want['psnr'] - want['bicubic_psnr']:+.2f})")
        assert row[row.index("bicubic") + 4] == f"{want['bicubic_psnr']:.2f} / {want['bicubic_ssim']:.4f}"
        # the captions under the crops repeat the per-image table
        for img, caption in zip(page.images, page.captions):
            if img["data-model"] == label:
                r = next(r for r in want["per_image"] if r["name"] == img["data-image"])
                assert caption == f"{label} {r['psnr']:.2f} dB"
    row = [c["text"] for c in compare]
    i = row.index("untrained")                          # the paper model at x3, counted by hand
    assert row[i + 1] == "5×5×64, 3×3×32, 3×3×9"
    assert row[i + 2] == f"{5 * 5 * 64 + 64 + 3 * 3 * 64 * 32 + 32 + 3 * 3 * 32 * 9 + 9:,}"
    assert row[i + 3] == f"{5 * 5 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 9:,}"


def test_the_page_is_self_contained_and_fits_a_phone(report):
    page = report["page"]
    assert not page.external, page.external
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    text = (report["out"] / "index.html").read_text(encoding="utf-8")
    assert 'name="viewport" content="width=device-width' in text and "url(" not in text and "@import" not in text
    summary = json.loads((report["out"] / "results.json").read_text())
    assert {r["model"] for r in summary["results"]} == {"bicubic", "untrained", "espcn"}


def test_an_existing_report_is_not_replaced_without_overwrite(report, capsys):
    out = report["out"]
    before = (out / "index.html").read_bytes()
    capsys.readouterr()
    assert main(report["argv"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err
    assert (out / "index.html").read_bytes() == before


def test_report_errors_are_one_line(tmp_path, capsys, report):
    net = npespcn.ESPCN.paper(2)
    net.save(tmp_path / "x2.npz")
    argv = ["--data", str(report["root"] / "imgs"), "--scale", "3", "--model", str(tmp_path / "x2.npz"),
            "--report", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x2" in err and not (tmp_path / "r").exists()
    assert main(["--data", str(report["root"] / "imgs"), "--bicubic-only", "--report", str(tmp_path / "r")]) == 2
    assert "--bicubic-only" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- a browser
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.getAttribute("src"); });
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.compare")).map(function (t) {
    var r = t.getBoundingClientRect(), s = getComputedStyle(t);
    return {width: r.width, height: r.height, left: r.left, top: r.top, display: s.display,
            visibility: s.visibility};
  });
  var out = document.createElement("pre");
  out.id = "npespcn-check";
  out.textContent = JSON.stringify({images: imgs.length, broken: broken, tables: tables,
                                    viewport: window.innerWidth,
                                    pageWidth: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.slow
def test_the_report_renders_in_a_browser(report, tmp_path):
    """Chromium, headless, phone-sized: every image loads, the comparison table is on screen and nothing
    makes the page wider than the phone. The screenshot is kept (its path is printed)."""
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    out = report["out"]
    check = out / "check.html"                  # the page with a probe: the report itself has no script
    check.write_text((out / "index.html").read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"),
                     encoding="utf-8")
    shots = Path(os.environ.get("NPESPCN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / "report-412px.png"

    def run(*args):
        profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
        profile.mkdir()
        return subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--window-size=412,2400",
                               "--hide-scrollbars", *args], capture_output=True, text=True, timeout=120, check=False)

    proc = run("--virtual-time-budget=10000", "--dump-dom", check.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = Page()
    marker = '<pre id="npespcn-check">'
    assert marker in proc.stdout, "the probe did not run:\n" + proc.stdout[-2000:]
    found = json.loads(html.unescape(proc.stdout.split(marker, 1)[1].split("</pre>", 1)[0]))
    probe.feed(check.read_text(encoding="utf-8"))
    assert found["images"] == len(probe.images) == len(report["page"].images)
    assert found["broken"] == []
    assert found["tables"], "no comparison table in the rendered page"
    for t in found["tables"]:
        assert t["width"] > 0 and t["height"] > 0 and t["display"] != "none" and t["visibility"] == "visible"
        assert 0 <= t["left"] < found["viewport"]
    assert found["pageWidth"] <= found["viewport"], "the page is wider than a 412-pixel phone"
    proc = run(f"--screenshot={screenshot}", (out / "index.html").as_uri())
    assert proc.returncode == 0 and screenshot.is_file(), proc.stderr[-2000:]
    shot = np.asarray(Image.open(screenshot).convert("RGB"))
    assert shot.shape[1] == 412 and shot.std() > 10                 # something was drawn, not a blank page
    print(f"screenshot: {screenshot}")
