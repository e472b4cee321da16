"""Pictures for the examples, drawn with Pillow only: colour maps, heatmaps, labelled grids, a line plot.

Everything returns a ``PIL.Image.Image`` in mode ``"RGB"``; :func:`save_png` writes one atomically.

Colour maps take values already scaled to ``t`` in [0, 1] and interpolate linearly between anchor
colours::

    rgb(t) = (1 - s) * anchor[q] + s * anchor[q + 1],    q = floor(t * (n - 1)),  s = t * (n - 1) - q
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from npespcn.atomic import atomic_write

# Anchor colours (R, G, B). "viridis" is a 9-point approximation of matplotlib's map (dark blue ->
# green -> yellow, perceptually ordered); "diverging" goes blue -> white -> red, for signed values
# such as filter weights, with white at zero.
COLORMAPS = {
    "gray": np.array([[0, 0, 0], [255, 255, 255]], dtype=np.float64),
    "viridis": np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                         [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64),
    "diverging": np.array([[59, 76, 192], [141, 176, 254], [255, 255, 255], [244, 154, 123],
                           [180, 4, 38]], dtype=np.float64),
}

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def font(size: int = 12):
    """Pillow's built-in font at ``size`` pixels (scalable when Pillow has FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed bitmap size
        return ImageFont.load_default()


def colorize(t: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Map ``t`` (any shape, values in [0, 1], clipped) to uint8 RGB, shape ``t.shape + (3,)``."""
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown colour map {cmap!r}; expected one of {sorted(COLORMAPS)}")
    anchors = COLORMAPS[cmap]
    n = len(anchors)
    u = np.clip(np.nan_to_num(np.asarray(t, dtype=np.float64)), 0.0, 1.0) * (n - 1)
    q = np.minimum(np.floor(u).astype(int), n - 2)
    s = (u - q)[..., None]
    return np.round((1 - s) * anchors[q] + s * anchors[q + 1]).astype(np.uint8)


# Ten qualitatively different hues (the "tab10" palette of matplotlib/Tableau), for categories.
QUALITATIVE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                        [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
                       dtype=np.float64)


def category_colours(n: int, lighten: float = 0.5):
    """``n`` light RGB colours for labelled cells: up to ten of clearly different hues (:data:`QUALITATIVE`,
    mixed with white so that black text stays readable), beyond ten spread along viridis."""
    base = QUALITATIVE[:n] if n <= len(QUALITATIVE) else colorize(np.linspace(0.0, 1.0, n), "viridis").astype(float)
    return [tuple(int(v) for v in (1 - lighten) * c + lighten * 255) for c in base]


def heatmap(a: np.ndarray, scale: int = 1, cmap: str = "viridis", vmin=None, vmax=None,
            symmetric: bool = False) -> Image.Image:
    """A 2-D array as a colour image, every entry a ``scale`` x ``scale`` block.

    Parameters
    ----------
    a : ndarray (H, W)
    scale : int, block size in pixels (nearest-neighbour magnification)
    cmap : "viridis", "diverging" or "gray"
    vmin, vmax : value range mapped to [0, 1]; default the array's own range
    symmetric : use ``[-m, m]`` with ``m = max |a|`` (for signed data, with ``cmap="diverging"``)

    Returns
    -------
    PIL.Image.Image, RGB, size ``(W * scale, H * scale)``
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"heatmap expects a 2-D array, got shape {a.shape}")
    if symmetric:
        m = float(np.max(np.abs(a))) or 1.0
        vmin, vmax = -m, m
    lo = float(np.min(a)) if vmin is None else float(vmin)
    hi = float(np.max(a)) if vmax is None else float(vmax)
    t = (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)
    rgb = colorize(t, cmap)
    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    return Image.fromarray(rgb)


def gray(img: np.ndarray, lo: float = 0.0, hi: float = 255.0, scale: int = 1) -> Image.Image:
    """A grey-level image (H, W) with values in ``[lo, hi]`` (clipped) as an RGB picture."""
    return heatmap(img, scale=scale, cmap="gray", vmin=lo, vmax=hi)


def grid(cells, labels=None, ncols: int = 8, pad: int = 4, title: str | None = None,
         label_size: int = 11) -> Image.Image:
    """Tile pictures row by row, each with an optional caption underneath, under an optional title.

    Parameters
    ----------
    cells : list of PIL images (any sizes; each slot is as large as the largest)
    labels : list of str or None, one caption per cell
    ncols : cells per row
    """
    cells = list(cells)
    if not cells:
        raise ValueError("grid needs at least one picture")
    fnt, tfnt = font(label_size), font(label_size + 3)
    cw = max(c.width for c in cells)
    ch = max(c.height for c in cells)
    lab_h = label_size + 4 if labels else 0
    title_h = label_size + 10 if title else 0
    ncols = max(1, min(ncols, len(cells)))
    nrows = -(-len(cells) // ncols)
    W = pad + ncols * (cw + pad)
    H = title_h + pad + nrows * (ch + lab_h + pad)
    canvas = Image.new("RGB", (W, H), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 3), title, fill=INK, font=tfnt)
    for idx, cell in enumerate(cells):
        r, c = divmod(idx, ncols)
        x = pad + c * (cw + pad)
        y = title_h + pad + r * (ch + lab_h + pad)
        canvas.paste(cell, (x, y))
        if labels:
            draw.text((x, y + ch + 1), str(labels[idx]), fill=INK, font=fnt)
    return canvas


def table(texts, colors, cell: int = 44, title: str | None = None, size: int = 12) -> Image.Image:
    """A grid of coloured squares with a short text in each (for labelled toy arrays).

    Parameters
    ----------
    texts : 2-D sequence (H, W) of str
    colors : 2-D sequence (H, W) of RGB tuples
    cell : side of one square in pixels
    """
    Hn, Wn = len(texts), len(texts[0])
    fnt, tfnt = font(size), font(size + 2)
    title_h = size + 10 if title else 0
    img = Image.new("RGB", (Wn * cell + 1, title_h + Hn * cell + 1), BACKGROUND)
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((2, 3), title, fill=INK, font=tfnt)
    for h in range(Hn):
        for w in range(Wn):
            x0, y0 = w * cell, title_h + h * cell
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=tuple(int(v) for v in colors[h][w]),
                           outline=INK)
            l, t, r, b = draw.textbbox((0, 0), texts[h][w], font=fnt)
            draw.text((x0 + (cell - (r - l)) / 2 - l, y0 + (cell - (b - t)) / 2 - t), texts[h][w],
                      fill=INK, font=fnt)
    return img


def hstack(images, pad: int = 8) -> Image.Image:
    """Place pictures side by side, top-aligned."""
    images = list(images)
    W = sum(i.width for i in images) + pad * (len(images) + 1)
    H = max(i.height for i in images) + 2 * pad
    canvas = Image.new("RGB", (W, H), BACKGROUND)
    x = pad
    for i in images:
        canvas.paste(i, (x, pad))
        x += i.width + pad
    return canvas


def line_plot(series: dict, size=(560, 360), title: str = "", xlabel: str = "", ylabel: str = "",
              logy: bool = False) -> Image.Image:
    """Plot ``{name: (xs, ys)}`` as coloured polylines on labelled axes (optionally log-scale y).

    Tick labels are at the ends of each axis (min and max) and, on a log axis, at every power of ten.
    """
    colors = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    W, H = size
    left, right, top, bottom = 64, 16, 40, 44
    fnt = font(11)
    img = Image.new("RGB", (W, H), BACKGROUND)
    draw = ImageDraw.Draw(img)
    xs_all = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys_all = np.concatenate([np.asarray(y, float) for _, y in series.values()])
    if logy:
        if np.any(ys_all <= 0):
            raise ValueError("a log-scale plot needs positive values")
        ys_all = np.log10(ys_all)
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    y0, y1 = float(ys_all.min()), float(ys_all.max())
    x1 = x1 if x1 > x0 else x0 + 1
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    span = y1 - y0
    y0, y1 = y0 - 0.05 * span, y1 + 0.05 * span

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * (W - left - right),
                H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom))

    draw.rectangle([left, top, W - right, H - bottom], outline=INK)
    # y ticks
    ticks = [y0 + 0.05 * span / 1.1, y1 - 0.05 * span / 1.1]
    if logy:
        ticks = [float(e) for e in range(int(np.ceil(y0)), int(np.floor(y1)) + 1)] or ticks
    for t in ticks:
        _, yy = px(x0, t)
        draw.line([left - 4, yy, left, yy], fill=INK)
        draw.text((4, yy - 6), f"{10 ** t:.3g}" if logy else f"{t:.3g}", fill=INK, font=fnt)
    integer_x = bool(np.all(xs_all == np.round(xs_all)))
    for t in np.linspace(x0, x1, 5):
        t = float(np.round(t)) if integer_x else t
        xx, _ = px(t, y0)
        draw.line([xx, H - bottom, xx, H - bottom + 4], fill=INK)
        draw.text((xx - 8, H - bottom + 6), f"{t:.4g}", fill=INK, font=fnt)
    draw.text((left, 4), title, fill=INK, font=font(13))
    draw.text(((W - left) // 2, H - 18), xlabel, fill=INK, font=fnt)
    draw.text((4, top - 15), ylabel, fill=INK, font=fnt)
    for idx, (name, (xs, ys)) in enumerate(series.items()):
        ys = np.log10(np.asarray(ys, float)) if logy else np.asarray(ys, float)
        pts = [px(float(x), float(y)) for x, y in zip(xs, ys)]
        col = colors[idx % len(colors)]
        if len(pts) > 1:
            draw.line(pts, fill=col, width=2)
        ly = top + 6 + 14 * idx
        draw.line([W - right - 150, ly + 6, W - right - 130, ly + 6], fill=col, width=2)
        draw.text((W - right - 125, ly), name, fill=INK, font=fnt)
    return img


def outline(img: Image.Image, box, colour=(255, 255, 255)) -> Image.Image:
    """Draw the outline of the rectangle ``box = (x0, y0, x1, y1)`` (pixels, inclusive) on ``img``; returns it."""
    ImageDraw.Draw(img).rectangle(list(box), outline=colour)
    return img


def network_diagram(model, H: int, W: int) -> Image.Image:
    """An ESPCN as boxes and arrows: every tensor with its shape ``(channels, height, width)``, every
    operation with its kernel and activation; box widths grow with the channel count (log scale) and
    heights with the image size, so the low- and high-resolution parts look it."""
    r, C = model.scale, model.channels
    stages = [("x", C, f"{H}x{W}", False)]
    ops = []
    convs = [(name, layer) for name, layer in model.named_layers if hasattr(layer, "kernel_size")]
    for idx, (name, layer) in enumerate(convs):
        last = idx == len(convs) - 1
        act = "" if last else f" + {model.activation}"
        ops.append(f"conv {layer.kernel_size}x{layer.kernel_size}{act}")
        stages.append(("z" if last else f"h{idx + 1}", layer.out_channels, f"{H}x{W}", False))
    ops.append(f"shuffle PS, r = {r}")
    stages.append(("y", C, f"{r * H}x{r * W}", True))
    fnt, small = font(13), font(11)
    base, gap, margin = 56, 118, 16
    widths = [int(10 + 10 * np.log2(c)) for _, c, _, _ in stages]
    heights = [int(base * (r if hr else 1) ** 0.7) for *_, hr in stages]
    Wd = margin * 2 + 70 + sum(widths) + gap * (len(stages) - 1)
    Hd = max(heights) + 90
    img = Image.new("RGB", (Wd, Hd), BACKGROUND)
    d = ImageDraw.Draw(img)
    mid = 40 + max(heights) // 2
    x = margin
    fills = category_colours(len(stages))
    for k, ((name, c, size, hr), w, h) in enumerate(zip(stages, widths, heights)):
        d.rectangle([x, mid - h // 2, x + w, mid + h // 2], fill=fills[k], outline=INK)
        d.text((x + 2, mid - h // 2 - 16), name, fill=INK, font=fnt)
        d.text((x, mid + h // 2 + 4), f"{c}x{size}", fill=INK, font=small)
        if k < len(ops):
            x0, x1 = x + w + 6, x + w + gap - 6
            d.line([x0, mid, x1, mid], fill=INK, width=2)
            d.polygon([(x1, mid), (x1 - 7, mid - 4), (x1 - 7, mid + 4)], fill=INK)
            d.text((x0, mid - 18), ops[k], fill=INK, font=small)
        x += w + gap
    d.text((margin, Hd - 18), f"ESPCN x{r}: every convolution runs on the {H}x{W} LR grid; only the shuffle "
                              f"makes it {r * H}x{r * W}", fill=INK, font=small)
    return img


def save_png(img: Image.Image, path) -> Path:
    """Write ``img`` as PNG to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as f:
        img.save(f, format="PNG")
    return path
