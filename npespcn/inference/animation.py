"""Super-resolve animated GIF, APNG and animated WebP files with Pillow: ``upscale_animation(src, dst)``.

Each frame is read as Pillow composes it (the whole picture shown at that moment, the earlier frames'
disposal and blending applied), upscaled by :func:`npespcn.upscale` (Y through the network, chroma and
alpha bicubic) and written as a whole frame, so the result shows the same pictures at the same times::

    frames           every one, in order (a frame equal to the one before is merged into it by the
                     GIF and APNG writers, their durations added: the same pictures at the same times)
    durations        each frame's own, in milliseconds (GIF stores hundredths of a second)
    loop count       as in the source (a GIF without one plays once, as before)
    transparency     alpha upscaled bicubic; GIF has only on/off transparency: alpha >= 128 is shown

The output format follows ``dst``'s suffix (``.gif``, ``.png`` for APNG, ``.webp``), so one animation
can also be converted to another. WebP is written lossy at ``quality`` (lossless with ``quality=100``).
The GIF palette is chosen per frame (median cut, 255 colours and one transparent index).

Pillow's writers need every frame at once, so the frames are held in memory: a file whose upscaled
frames would take more than :data:`ANIMATION_BUDGET` bytes is refused before any is decoded, like an
image above ``max_pixels``. The output is written atomically; ``dst`` is never replaced unless
``overwrite=True``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write
from ..image.io import DEFAULT_MAX_PIXELS, open_image
from ..nn.model import check_scale
from ..nn.pretrained import resolve_model
from .pipeline import upscale

ANIMATION_FORMATS = {".gif": "GIF", ".png": "PNG", ".apng": "PNG", ".webp": "WEBP"}
"""Suffixes an animation is written as, and the Pillow format of each."""
ANIMATION_SUFFIXES = tuple(ANIMATION_FORMATS)
ANIMATION_BUDGET = 2 << 30
"""Most bytes the upscaled frames of one animation may take (RGBA, 4 bytes a pixel)."""


def is_animated(path, max_pixels=DEFAULT_MAX_PIXELS) -> bool:
    """Whether ``path`` is a GIF, PNG or WebP file of more than one frame (False for anything else,
    including an unreadable file: the image reader then says what is wrong with it)."""
    try:
        with open_image(path, max_pixels) as im:
            return im.format in ("GIF", "PNG", "WEBP") and getattr(im, "n_frames", 1) > 1
    except ValueError:
        return False


def animation_format(path) -> str:
    """The Pillow format for an animation written to ``path``; ``ValueError`` naming the suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise ValueError(f"{path}: an animation is written as {', '.join(ANIMATION_SUFFIXES)}, not "
                         f"{suffix or '(no suffix)'!r}")
    return ANIMATION_FORMATS[suffix]


def read_animation(path, max_pixels=DEFAULT_MAX_PIXELS):
    """The frames of an animation, decoded one at a time.

    Yields:
        ``(frame, duration)``: each composed frame as a uint8 RGBA array ``(H, W, 4)`` and its duration in
        milliseconds (0 when the file gives none).

    Raises:
        ValueError: a missing, unreadable or truncated file, or frames larger than ``max_pixels``.
    """
    with open_image(path, max_pixels, "animation") as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()
            yield np.array(im.convert("RGBA")), round(float(im.info.get("duration") or 0))


def _describe(path, max_pixels):
    """``(format, frames, (width, height), loop or None)`` from the header and the frame index."""
    with open_image(path, max_pixels, "animation") as im:
        return im.format, getattr(im, "n_frames", 1), im.size, im.info.get("loop")


def _gif_frame(rgba: np.ndarray) -> Image.Image:
    """An RGBA frame as a palette image: 255 colours by median cut, index 255 for alpha < 128."""
    rgb = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
    quantized = rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    p, pal = np.array(quantized), quantized.getpalette()
    p[rgba[..., 3] < 128] = 255
    im = Image.fromarray(p, mode="P")
    pal = (pal or [])[:255 * 3]
    im.putpalette(pal + [0] * (768 - len(pal)))
    im.info["transparency"] = 255
    return im


def upscale_animation(src, dst, scale: int = 3, model=None, tile: int | None = None, ensemble: bool = False,
                      quality: int = 95, overwrite: bool = False, max_pixels=DEFAULT_MAX_PIXELS,
                      progress=None) -> dict:
    """Upscale every frame of an animated GIF, APNG or WebP file into ``dst`` (see the module docstring).

    Args:
        src: a GIF, PNG/APNG or WebP file (one frame works too).
        dst: the output; its suffix (``.gif``, ``.png``, ``.webp``) chooses the format.
        scale, model, tile, ensemble: as for :func:`npespcn.upscale`.
        quality: WebP quality 1..100 (100: lossless).
        overwrite: replace an existing ``dst``.
        max_pixels: largest frame (width x height) decoded; None or 0: no limit.
        progress: ``callable(done, total)`` after every frame.

    Returns:
        dict: ``frames``, ``width``, ``height``, ``durations`` (ms), ``loop`` (None: the source had none),
        ``alpha`` (whether any frame was not fully opaque), ``format``.

    Raises:
        ValueError: unreadable source, frames above ``max_pixels`` or the upscaled frames above
            :data:`ANIMATION_BUDGET`, an unsupported ``dst`` suffix.
        FileExistsError: ``dst`` exists and ``overwrite`` is False.

    Examples::

        >>> import npespcn
        >>> npespcn.upscale_animation("spinner.gif", "spinner_x3.gif")      # doctest: +SKIP
    """
    src, dst = Path(src), Path(dst)
    fmt = animation_format(dst)
    r = check_scale(scale)
    net = resolve_model(model, r)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
    if not src.is_file():
        raise ValueError(f"{src}: no such file")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst} is the input itself; never replaced")
    _, n, (w, h), loop = _describe(src, max_pixels)
    need = n * (r * w) * (r * h) * 4
    if need > ANIMATION_BUDGET:
        raise ValueError(f"{src}: {n} frames of {w}x{h} upscaled x{r} would take {need / 2**30:.1f} GiB, more than "
                         f"{ANIMATION_BUDGET / 2**30:.0f} GiB; split it or upscale it as a video")
    frames, durations, alpha = [], [], False
    for i, (rgba, duration) in enumerate(read_animation(src, max_pixels)):
        alpha = alpha or bool((rgba[..., 3] < 255).any())
        frames.append(upscale(rgba, r, net, tile=tile, ensemble=ensemble))
        durations.append(duration)
        if progress is not None:
            progress(i + 1, n)
    if not alpha:
        frames = [f[..., :3] for f in frames]
    options = {"save_all": True, "duration": durations}
    if loop is not None:
        options["loop"] = int(loop)
    elif fmt != "GIF":
        options["loop"] = 0                 # APNG and WebP players loop forever by default anyway
    if fmt == "GIF":
        images = [_gif_frame(f) if alpha else Image.fromarray(np.ascontiguousarray(f)).quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for f in frames]
        options.update(disposal=2 if alpha else 1, optimize=False)
        if alpha:
            options["transparency"] = 255
    else:
        images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
        if fmt == "PNG":
            options.update(disposal=0, blend=0)     # every frame is whole: it replaces the one before
        else:
            options.update(quality=quality, lossless=quality == 100, method=4)
    del frames
    with atomic_write(dst, "wb", overwrite=overwrite) as f:
        images[0].save(f, format=fmt, append_images=images[1:], **options)
    return {"frames": len(images), "width": r * w, "height": r * h, "durations": durations,
            "loop": None if loop is None else int(loop), "alpha": alpha, "format": fmt}
