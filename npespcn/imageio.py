"""Image files in and out (Pillow underneath): what :func:`npespcn.upscale` accepts, written atomically.

Reading converts every Pillow mode to one :func:`npespcn.upscale` accepts, keeping the precision::

    L, RGB, RGBA                  as they are (uint8)
    I;16, I;16B, I (0..65535)     uint16 grey
    1                             L
    P, PA                         RGB, or RGBA when the palette has transparency
    LA                            RGBA (grey replicated)
    CMYK, YCbCr, LAB, HSV         RGB
    F                             float32 grey (must then be in [0, 1])

Writing picks the format from the file suffix (``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.tif``/``.tiff``)
and goes through :func:`npespcn.atomic.atomic_write`: a crash never leaves half a file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_write

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
SUFFIXES = tuple(FORMATS)


class ImageInfo(dict):
    """What :func:`read_image` learnt about a file: ``format`` (e.g. "PNG"), ``mode``, ``icc_profile``."""


def _convert(im):
    mode = im.mode
    if mode in ("L", "RGB", "RGBA", "F"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "LA":
        return im.convert("RGBA")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        return im                                     # handled as an array below
    raise ValueError(f"unsupported image mode {mode!r}")


def read_image(path):
    """Read ``path`` into an array for :func:`npespcn.upscale`.

    Returns
    -------
    image : ndarray (H, W) or (H, W, 3|4), uint8 / uint16 / float32
    info : ImageInfo

    Raises
    ------
    ValueError
        Missing, unreadable, truncated or non-image file, naming it and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()                                  # decode now: truncated data fails here
            info = ImageInfo(format=im.format, mode=im.mode, icc_profile=im.info.get("icc_profile"))
            im = _convert(im)
            arr = np.array(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    if im.mode.startswith("I"):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        arr = arr.astype(np.uint16)
    return arr, info


def format_for(path) -> str:
    """The Pillow format name for ``path``'s suffix; ``ValueError`` naming the supported suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported output suffix {suffix or '(none)'!r}; expected one of "
                         f"{', '.join(SUFFIXES)}")
    return FORMATS[suffix]


def to_pil(arr) -> Image.Image:
    """An array from :func:`npespcn.upscale` as a PIL image (L, RGB, RGBA, I;16 or F)."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype == np.uint16:
        if arr.ndim != 2:
            raise ValueError("16-bit colour images cannot be written (Pillow stores 16 bits for grey only)")
        return Image.fromarray(arr)
    if arr.dtype in (np.float32, np.float64):
        if arr.ndim != 2:
            raise ValueError("float colour images cannot be written; convert to uint8 first")
        return Image.fromarray(arr.astype(np.float32))                # mode F
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"cannot store an image of shape {arr.shape} and dtype {arr.dtype}")
    return Image.fromarray(np.ascontiguousarray(arr))              # L, RGB or RGBA from the shape


def write_image(path, image, quality: int = 95, icc_profile=None) -> None:
    """Write ``image`` (array or PIL image) to ``path`` atomically, in the format of its suffix.

    ``quality`` applies to JPEG (1..100). Raises ``ValueError`` for an unsupported suffix, a missing
    folder, or an image the format cannot hold (alpha or 16 bits in JPEG, 16 bits in BMP).
    """
    path = Path(path)
    fmt = format_for(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: the folder {folder} does not exist")
    im = image if isinstance(image, Image.Image) else to_pil(image)
    if fmt == "JPEG" and im.mode not in ("L", "RGB"):
        raise ValueError(f"{path}: JPEG holds 8-bit grey or RGB only, not {im.mode}; write PNG or TIFF instead")
    if fmt == "BMP" and im.mode not in ("L", "RGB", "RGBA"):
        raise ValueError(f"{path}: BMP holds 8-bit images only, not {im.mode}; write PNG or TIFF instead")
    if fmt == "PNG" and im.mode == "F":
        raise ValueError(f"{path}: PNG cannot hold float pixels; write TIFF instead")
    options = {}
    if fmt == "JPEG":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        options["quality"] = int(quality)
    if icc_profile and fmt in ("PNG", "JPEG", "TIFF"):
        options["icc_profile"] = icc_profile
    with atomic_write(path) as f:
        im.save(f, format=fmt, **options)
