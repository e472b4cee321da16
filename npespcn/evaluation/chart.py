"""A demo that needs no data: draw a test chart, shrink it, and compare bicubic with ESPCN.

:func:`run_demo` (``npespcn demo``, ``npespcn upscale --demo``) draws a 360×480 chart (a zone plate, a
Siemens star, text and colour bars), downsamples it with Pillow's bicubic (the evaluation protocol of
:mod:`npespcn.evaluation.protocol`), upscales it back with bicubic and with ESPCN, prints both PSNRs (on Y,
``scale`` pixels of border removed) and writes the three side by side (bicubic | ESPCN | original) as a PNG.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..image.color import rgb_to_y
from ..image.io import format_for, write_image
from ..inference import upscale
from ..nn import check_scale, resolve_model
from .metrics import psnr
from .protocol import bicubic_upscale8, degrade

CHART_SHAPE = (360, 480)          # divisible by 2, 3 and 4


def zone_plate(size: int, top: float = 0.16) -> np.ndarray:
    """A circular zone plate (size, size) in [0, 1]: ``0.5 + 0.5 cos(2 pi top rho^2 / (2 R))``.

    The local frequency ``top * rho / R`` cycles per pixel grows from 0 at the centre to ``top`` at
    ``rho = R = size / 2`` (0.5 would be Nyquist), in every direction.
    """
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size] - c
    R = size / 2.0
    return 0.5 + 0.5 * np.cos(np.pi * top * (x * x + y * y) / R)


def siemens_star(size: int, spokes: int = 36, supersample: int = 4) -> np.ndarray:
    """A Siemens star (size, size) in [0, 1], ``spokes`` black/white sectors, anti-aliased by supersampling."""
    n = size * supersample
    c = (n - 1) / 2.0
    y, x = np.mgrid[0:n, 0:n] - c
    star = (np.sin(spokes / 2.0 * np.arctan2(y, x)) > 0).astype(np.float64)
    star[x * x + y * y > (0.48 * n) ** 2] = 0.5
    return star.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                          # pragma: no cover - Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def test_chart(shape=CHART_SHAPE) -> np.ndarray:
    """The demo's test chart as uint8 RGB ``shape + (3,)`` (deterministic)."""
    H, W = shape
    side = min(H * 2 // 3, W // 2)
    chart = np.full((H, W, 3), 255, dtype=np.float64)
    chart[:side, :side] = 255 * zone_plate(side)[:, :, None]
    star = 255 * siemens_star(side)
    chart[:side, W - side:] = star[:, :, None] * np.array([1.0, 0.85, 0.6])     # a warm tint
    bars = np.array([[230, 40, 40], [40, 160, 60], [40, 70, 220], [240, 200, 40], [30, 30, 30]], float)
    bw = W // (2 * len(bars))
    for i, colour in enumerate(bars):
        chart[side:, W // 2 + i * bw:W // 2 + (i + 1) * bw] = colour
    im = Image.fromarray(np.rint(chart).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    y = side + 6
    for size in (22, 16, 12, 9):
        draw.text((8, y), "ESPCN 0123456789", fill=(0, 0, 0), font=_font(size))
        y += size + 6
    return np.asarray(im).copy()


def side_by_side(panels, labels) -> np.ndarray:
    """Panels (H, W, 3) uint8 next to each other with a label strip above each."""
    H, W = panels[0].shape[:2]
    strip = 28
    canvas = Image.new("RGB", (W * len(panels), H + strip), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (p, label) in enumerate(zip(panels, labels)):
        canvas.paste(Image.fromarray(p), (i * W, strip))
        draw.text((i * W + 8, 5), label, fill=(0, 0, 0), font=_font(16))
    return np.asarray(canvas).copy()


def run_demo(out="espcn_demo.png", scale: int = 3, model=None, tile=None) -> dict:
    """Run the demo (module docstring) and write the comparison to ``out``.

    Returns
    -------
    dict ``{"bicubic_psnr", "espcn_psnr", "out", "scale"}``.
    Raises the errors of :func:`npespcn.upscale` (e.g. a missing shipped model, naming the file).
    """
    scale = check_scale(scale)
    format_for(out)                                          # refuse a bad suffix before any work
    net = resolve_model(model, scale)
    hr, lr = degrade(test_chart(), scale)
    bic = bicubic_upscale8(lr, scale)
    sr = upscale(lr, scale, net, tile=tile)
    y_hr = rgb_to_y(hr)
    p_bic, p_sr = (psnr(y_hr, rgb_to_y(x), border=scale) for x in (bic, sr))
    picture = side_by_side([bic, sr, hr], [f"bicubic x{scale}: {p_bic:.2f} dB",
                                          f"ESPCN x{scale}: {p_sr:.2f} dB", "original"])
    write_image(out, picture)
    return {"bicubic_psnr": p_bic, "espcn_psnr": p_sr, "out": str(out), "scale": scale}


