"""The evaluation protocol of the super-resolution literature, as a library (used by ``npespcn evaluate``
and by the trainer's per-epoch validation).

For every high-resolution image ``HR`` (uint8 RGB; grey images as R = G = B) and scale ``r``::

    HR  <- HR[:H - H % r, :W - W % r]                       crop to a multiple of r
    LR   = Pillow bicubic downscale of HR by r              (uint8 RGB PIL image, Image.BICUBIC)
    SR   = npespcn.upscale(LR, r, model)                    uint8 RGB
    BIC  = Pillow bicubic upscale of LR by r                the baseline
    PSNR = psnr(Y(HR), Y(SR), border=r),  SSIM likewise   Y = BT.601 studio-range luma in float64

and the set's score is the mean over its images. With this protocol bicubic scores 30.40 / 27.63 dB on
Set5 / Set14 at x3 (33.67 / 30.32 at x2, 28.43 / 26.09 at x4).

The protocol works on 8 bits. Files are read with :func:`npespcn.image.io.read_image` (its pixel limit
against decompression bombs, every Pillow mode converted: palette, grey + alpha and CMYK to RGB, alpha
dropped); 16-bit images (and 16-bit arrays) become 8-bit by rounding ``v / 257`` (65535 -> 255, never
clipped: a 16-bit copy ``v * 257`` of an 8-bit image scores exactly as the 8-bit one), floats in [0, 1]
by rounding ``v * 255``. Training reads its images through :func:`load_rgb8` too.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..image.color import rgb_to_y
from ..image.io import DEFAULT_MAX_PIXELS, image_to_array, list_images, read_image
from ..inference.pipeline import upscale
from ..nn.model import check_scale
from ..nn.pretrained import resolve_model
from .metrics import psnr, ssim


def as_rgb8(image) -> np.ndarray:
    """An image (array or PIL image: grey, RGB or RGBA; uint8, uint16 or floats in [0, 1]; any PIL mode) as
    uint8 RGB (H, W, 3); grey as R = G = B, alpha dropped, 16 bits as ``round(v / 257)``, floats as
    ``round(v * 255)`` (see the module docstring)."""
    if isinstance(image, Image.Image):
        image = image_to_array(image)
    a = np.asarray(image)
    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)          # round(v / 257): 257 is odd
    elif a.dtype.kind == "f":
        if a.size and not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise ValueError("evaluation expects float images in [0, 1]")
        a = np.rint(a * 255.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise TypeError(f"evaluation expects uint8, uint16 or float images, got dtype {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"evaluation expects (H, W), (H, W, 3) or (H, W, 4) images, got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def load_rgb8(path, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3) (:func:`as_rgb8` of :func:`npespcn.image.io.read_image`);
    ``ValueError`` naming the file for anything that is not an image or declares more than ``max_pixels``."""
    arr, _ = read_image(path, max_pixels)
    return as_rgb8(arr)


def degrade(hr, scale: int):
    """``(hr_cropped, lr)``: HR cropped to a multiple of ``scale`` and its Pillow bicubic downscale (uint8 RGB)."""
    hr = as_rgb8(hr)
    H, W = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if H == 0 or W == 0:
        raise ValueError(f"an image of shape {hr.shape} is smaller than the scale {scale}")
    hr = np.ascontiguousarray(hr[:H, :W])
    lr = np.asarray(Image.fromarray(hr).resize((W // scale, H // scale), Image.BICUBIC))
    return hr, lr


def bicubic_upscale8(lr, scale: int) -> np.ndarray:
    """Pillow bicubic upscale of a uint8 RGB image by ``scale`` (the baseline)."""
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), Image.BICUBIC))


def score(hr, sr, scale: int) -> tuple[float, float]:
    """``(psnr, ssim)`` on Y (BT.601, float64) of two uint8 RGB images, ``scale`` pixels of border removed."""
    y_hr, y_sr = rgb_to_y(hr), rgb_to_y(sr)
    return psnr(y_hr, y_sr, border=scale), ssim(y_hr, y_sr, border=scale)


def _items(images):
    """(name, image-or-path) pairs from a folder, a list of paths, or a list of arrays / (name, array)."""
    if isinstance(images, (str, os.PathLike)):
        return [(p.name, p) for p in list_images(images, nonempty=True)]
    items = []
    for i, it in enumerate(images):
        if isinstance(it, tuple) and len(it) == 2:
            items.append((str(it[0]), it[1]))
        elif isinstance(it, (str, os.PathLike)):
            items.append((Path(it).name, Path(it)))
        else:
            items.append((f"image{i}", it))
    if not items:
        raise ValueError("evaluate needs at least one image")
    return items


def evaluate(model, images, scale: int, tile=None, bicubic: bool = True, ensemble: bool = False) -> dict:
    """Score ``model`` on ``images`` at ``scale`` with the protocol of the module docstring.

    Parameters
    ----------
    model : ESPCN, shipped name, path or None
        Anything :func:`npespcn.upscale` accepts as ``model``; None evaluates bicubic only.
    images : folder, or sequence of paths, arrays (H, W[, 3]) uint8, or (name, array) pairs
        High-resolution images.
    scale : int
    tile : int or None
        Passed to :func:`npespcn.upscale` (the scores do not depend on it).
    bicubic : bool
        Also score the bicubic baseline.
    ensemble : bool
        Score the self-ensemble (``npespcn.upscale(..., ensemble=True)``).

    Returns
    -------
    dict
        ``{"scale", "n", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "per_image": [{"name", "psnr",
        "ssim", "bicubic_psnr", "bicubic_ssim"}, ...]}``; means over the images; the ``psnr``/``ssim``
        entries are None when ``model`` is None, the ``bicubic_*`` ones when ``bicubic`` is False.
    """
    scale = check_scale(scale)
    net = None if model is None else resolve_model(model, scale)
    rows = []
    for name, item in _items(images):
        hr = load_rgb8(item) if isinstance(item, (str, os.PathLike)) else item
        hr, lr = degrade(hr, scale)
        row = {"name": name, "psnr": None, "ssim": None, "bicubic_psnr": None, "bicubic_ssim": None}
        if net is not None:
            row["psnr"], row["ssim"] = score(hr, upscale(lr, scale, net, tile=tile, ensemble=ensemble), scale)
        if bicubic:
            row["bicubic_psnr"], row["bicubic_ssim"] = score(hr, bicubic_upscale8(lr, scale), scale)
        rows.append(row)

    def mean(key):
        vals = [r[key] for r in rows]
        return None if vals[0] is None else float(np.mean(vals))

    return {"scale": scale, "n": len(rows), "psnr": mean("psnr"), "ssim": mean("ssim"),
            "bicubic_psnr": mean("bicubic_psnr"), "bicubic_ssim": mean("bicubic_ssim"), "per_image": rows}
