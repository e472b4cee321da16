"""Training curves as a PNG, drawn with Pillow only (no matplotlib).

:func:`plot_curves` draws one panel per series, stacked vertically, each with its own y axis::

    +---------------------------------------+
    | train loss                      0.0021|
    |  \\_                                   |
    |     \\____________                     |
    |                   ---------------     |
    +---------------------------------------+  epochs 1 .. n on the x axis
    | Set5 PSNR (dB)                  32.7  |
    |        ________------------           |
    ...

Pure function of its inputs: equal curves give byte-identical files.
"""
from __future__ import annotations

import math

from PIL import Image, ImageDraw

from ..atomic import atomic_write

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def _fmt(v: float) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.4g}"
    return f"{v:.2e}"


def render_curves(series: dict, width: int = 640, panel_height: int = 180, xlabel: str = "epoch") -> Image.Image:
    """Draw ``series`` (``{"title": [(x, y), ...], ...}``) as stacked line panels.

    Non-finite y values are skipped; ``xlabel`` is written under every panel. Returns an RGB ``PIL.Image``
    of ``width`` x ``panels * panel_height``.
    """
    if not series:
        raise ValueError("plot_curves needs at least one series")
    img = Image.new("RGB", (width, panel_height * len(series)), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 64, 12, 20, 22
    for k, (title, pts) in enumerate(series.items()):
        y0 = k * panel_height
        colour = _COLOURS[k % len(_COLOURS)]
        pts = [(float(x), float(y)) for x, y in pts if math.isfinite(float(y))]
        box = (left, y0 + top, width - right, y0 + panel_height - bottom)
        draw.rectangle(box, outline=(160, 160, 160))
        draw.text((left, y0 + 4), title, fill=(0, 0, 0))
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        xlo, xhi = min(xs), max(xs)
        ylo, yhi = min(ys), max(ys)
        if xhi == xlo:
            xlo, xhi = xlo - 1, xhi + 1
        if yhi == ylo:
            ylo, yhi = ylo - abs(ylo) * 0.01 - 1e-12, yhi + abs(yhi) * 0.01 + 1e-12
        pad = (yhi - ylo) * 0.05
        ylo, yhi = ylo - pad, yhi + pad

        def to_px(x, y):
            px = box[0] + (x - xlo) / (xhi - xlo) * (box[2] - box[0])
            py = box[3] - (y - ylo) / (yhi - ylo) * (box[3] - box[1])
            return px, py

        for frac in (0.0, 0.5, 1.0):            # y gridlines with labels
            yv = ylo + frac * (yhi - ylo)
            _, py = to_px(xlo, yv)
            draw.line((box[0], py, box[2], py), fill=(230, 230, 230))
            draw.text((4, py - 5), _fmt(yv), fill=(80, 80, 80))
        draw.text((box[0], box[3] + 4), _fmt(xlo), fill=(80, 80, 80))
        draw.text((box[2] - 40, box[3] + 4), _fmt(xhi), fill=(80, 80, 80))
        draw.text(((box[0] + box[2]) // 2 - 15, box[3] + 4), xlabel, fill=(80, 80, 80))
        xy = [to_px(x, y) for x, y in pts]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for px, py in xy[-1:]:
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)
        draw.text((box[2] - 90, y0 + 4), f"last {_fmt(ys[-1])}", fill=colour)
    return img


def plot_curves(series: dict, path, **kw) -> None:
    """Render ``series`` (see :func:`render_curves`) and write it to ``path`` as PNG, atomically."""
    img = render_curves(series, **kw)
    with atomic_write(path) as f:
        img.save(f, format="PNG")
