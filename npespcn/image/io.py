"""Image files in and out (Pillow underneath): what :func:`npespcn.upscale` accepts, written atomically.

Reading converts every Pillow mode to one :func:`npespcn.upscale` accepts, keeping the precision::

    L, RGB, RGBA                  as they are (uint8)
    I;16, I;16B, I (0..65535)     uint16 grey
    1                             L
    P, PA                         RGB, or RGBA when the palette has transparency
    LA                            RGBA (grey replicated)
    CMYK, YCbCr, LAB, HSV         RGB
    F                             float32 grey (must then be in [0, 1])

**Untrusted files.** A PNG of a few MB can declare 60000 x 60000 pixels (a decompression bomb).
:func:`read_image` reads the declared size from the header (no pixel is decoded yet) and refuses more than
``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`, 300 Mpx: an 8K frame is 33 Mpx) with ``ValueError``.
Pillow's own process-wide limit (``Image.MAX_IMAGE_PIXELS``) is never changed: files are identified among
:data:`READ_FORMATS` through Pillow's plugin registry without ``Image.open``'s check, so a caller can raise
the limit for one call, from any thread, without lowering anyone else's guard (TIFF decoding still applies
Pillow's limit to its tiles). Only the formats of :data:`READ_FORMATS` are tried (no EPS, whose decoding
would run Ghostscript).

Writing picks the format from the file suffix (``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.tif``/``.tiff``)
and goes through :func:`npespcn.atomic.atomic_write`: a crash never leaves half a file.
"""
from __future__ import annotations

import contextlib
import os
import queue
import struct
import threading
import zlib
from pathlib import Path

import numba
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import TMP_PREFIX, atomic_write

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
SUFFIXES = tuple(FORMATS)
READ_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP", "PPM", "TGA")
"""The formats :func:`read_image` identifies, in the order tried (TGA, which has no signature, last)."""
DEFAULT_MAX_PIXELS = 300_000_000
"""Largest image :func:`read_image` decodes by default (width x height)."""


class NotAFolderError(FileNotFoundError, ValueError):
    """A folder of images was expected and the path is not one. Both a ``FileNotFoundError`` and a
    ``ValueError``."""


def list_images(folder, recursive: bool = False, nonempty: bool = False) -> list[Path]:
    """The image files of ``folder`` by suffix (:data:`SUFFIXES`, any case).

    Args:
        folder: the folder to list.
        recursive: also list its subfolders (hidden files and folders skipped); sorted by path.
            Otherwise only the folder's own files, sorted by name (the temporary files of
            :func:`npespcn.atomic.atomic_write` skipped).
        nonempty: raise ``ValueError`` when no image is found.

    Raises:
        NotAFolderError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotAFolderError(f"expected a folder of images, got {folder} (not a directory)")
    if recursive:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / n for n in filenames
                      if not n.startswith(".") and n.lower().endswith(SUFFIXES)]
        files = sorted(found)
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                       and not p.name.startswith(TMP_PREFIX))          # another run's file in the making
    if nonempty and not files:
        raise ValueError(f"no images ({', '.join(SUFFIXES)}) in {folder}")
    return files


def _check_folder(path: Path) -> None:
    """ValueError when the folder ``path`` would be written into does not exist."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: the folder {folder} does not exist")


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


def image_to_array(im) -> np.ndarray:
    """A (loaded) PIL image as the array :func:`read_image` returns: every mode of the module docstring
    converted, 16 bits kept as uint16 (never clipped to 8)."""
    converted = _convert(im)
    arr = np.array(converted)
    if converted.mode.startswith("I"):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError("32-bit integer pixels outside 0..65535 are not supported")
        arr = arr.astype(np.uint16)
    return arr


def check_max_pixels(max_pixels) -> int | None:
    """``max_pixels`` as an int >= 1, or None (no limit) for None or 0; ``ValueError`` otherwise."""
    if max_pixels is None or (not isinstance(max_pixels, bool) and isinstance(max_pixels, (int, np.integer))
                              and max_pixels == 0):
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 0:
        raise ValueError(f"max_pixels must be a positive integer (0 or None: no limit), got {max_pixels!r}")
    return int(max_pixels)


def _identify(fh, path) -> Image.Image:
    """What ``Image.open`` does, restricted to :data:`READ_FORMATS` and without its process-wide pixel limit
    (:func:`read_image` applies its own): the first plugin that accepts the file's first bytes opens it."""
    prefix = fh.read(16)
    Image.preinit()
    for fmt in READ_FORMATS:
        if fmt not in Image.OPEN:
            Image.init()
        if fmt not in Image.OPEN:                      # e.g. WebP without libwebp
            continue
        factory, accept = Image.OPEN[fmt]
        ok = accept(prefix) if accept else True
        if not ok or isinstance(ok, str):
            continue
        fh.seek(0)
        try:
            return factory(fh, str(path))
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise UnidentifiedImageError(f"cannot identify image file (tried {', '.join(READ_FORMATS)})")


def _open_checked(fh, path, max_pixels):
    """Open the image file ``fh`` (of ``path``; header only: no pixel decoded) and check its size against
    ``max_pixels``.

    Returns the PIL image, reading from ``fh``. Raises
    ``ValueError`` when it declares more than ``max_pixels`` (None or 0: no limit) pixels, naming the size
    and the limit; Pillow's errors for a file that is not an image propagate.
    """
    limit = check_max_pixels(max_pixels)
    im = _identify(fh, path)
    w, h = im.size
    if limit is not None and w * h > limit:
        im.close()
        raise ValueError(f"{path}: declares {w}x{h} = {w * h / 1e6:.1f} Mpx, more than the limit of "
                         f"{limit / 1e6:.1f} Mpx (a decompression bomb?); raise the limit (--max-pixels) to "
                         f"read it")
    return im


@contextlib.contextmanager
def open_image(path, max_pixels=DEFAULT_MAX_PIXELS, what: str = "image"):
    """``with open_image(path) as im:`` the PIL image of ``path``, opened as :func:`read_image` opens it,
    without decoding a pixel; closed afterwards.

    The file is identified among :data:`READ_FORMATS` and its declared size checked against ``max_pixels``,
    Pillow's process-wide limit untouched. Any failure inside the block (a missing, unreadable or truncated
    file, a decompression bomb) becomes one ``ValueError`` naming ``path`` and saying it is not a readable
    ``what``. For readers of one frame (:func:`read_image`) and of many (:mod:`npespcn.inference.animation`).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            im = _open_checked(fh, path, max_pixels)
            try:
                yield im
            finally:
                im.close()
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: not a readable {what} ({type(e).__name__}: {e})") from None


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Read ``path`` into an array for :func:`npespcn.upscale`.

    Parameters
    ----------
    path : the image file (identified by content among :data:`READ_FORMATS`)
    max_pixels : int or None
        Largest declared width x height decoded (default :data:`DEFAULT_MAX_PIXELS`; None or 0: no limit);
        checked on the header, before any pixel is decoded.

    Returns
    -------
    image : ndarray (H, W) or (H, W, 3|4), uint8 / uint16 / float32
    info : ImageInfo

    Raises
    ------
    ValueError
        Missing, unreadable, truncated or non-image file, or more than ``max_pixels`` pixels, naming it and
        the reason. ``MemoryError`` when decoding an image within the limit does not fit in memory.
    """
    with open_image(path, max_pixels) as im:
        im.load()                                      # decode now: truncated data fails here
        info = ImageInfo(format=im.format, mode=im.mode, icc_profile=im.info.get("icc_profile"))
        return image_to_array(im), info


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


PNG_COMPRESSION = 3
"""Default zlib level of the PNGs npespcn writes. Higher levels (Pillow's default is 6) take several
times as long on upscaled photographs for files only a few percent smaller, and on a large result
compression would then outlast the upscale itself; level 1 (OpenCV's default) is faster again but
gives noticeably larger files."""


def _check_png_level(level) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"PNG compression must be an integer 0..9 (zlib level), got {level!r}")
    return int(level)


def write_image(path, image, quality: int = 95, icc_profile=None,
                png_compression: int = PNG_COMPRESSION, overwrite: bool = True) -> None:
    """Write ``image`` (array or PIL image) to ``path`` atomically, in the format of its suffix.

    ``quality`` applies to JPEG (1..100), ``png_compression`` to PNG (zlib level 0..9). With
    ``overwrite=False`` an existing ``path`` (a dangling symlink included, or one another process
    creates meanwhile) is never replaced: ``FileExistsError``. Raises
    ``ValueError`` for an unsupported suffix, a missing folder, or an image the format cannot hold (alpha
    or 16 bits in JPEG, 16 bits in BMP).
    """
    path = Path(path)
    fmt = format_for(path)
    _check_folder(path)
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
    if fmt == "PNG":
        options["compress_level"] = _check_png_level(png_compression)
    if icc_profile and fmt in ("PNG", "JPEG", "TIFF"):
        options["icc_profile"] = icc_profile
    with atomic_write(path, overwrite=overwrite) as f:
        im.save(f, format=fmt, **options)


# ---------------------------------------------------------------------------------------------- streaming PNG
# A PNG is a signature and chunks (length, type, data, CRC-32). Writing one band of rows at a time lets the
# command line encode an 8K result while holding only a band of it (Pillow needs the whole image first).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _paeth(a, b, c):
    """The PNG Paeth predictor, elementwise on int16 arrays."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def png_filter_rows_reference(rows: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter scanlines for PNG, choosing per row the filter with the smallest sum of |residual|.

    Parameters
    ----------
    rows : uint8 (h, stride), the raw scanlines; ``prev`` : uint8 (stride,), the scanline above the first
    bpp : bytes per pixel (the "left" neighbour distance)

    Returns
    -------
    uint8 (h, 1 + stride): each row prefixed by its filter type (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth).
    """
    x = rows.astype(np.int16)
    b = np.vstack([prev[None].astype(np.int16), x[:-1]])                   # above
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]                                               # left
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]                                               # above-left
    cands = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - _paeth(a, b, c)]) & 0xFF   # (5, h, stride)
    cost = np.abs(cands.astype(np.uint8).view(np.int8).astype(np.int32)).sum(axis=2)   # (5, h)
    best = cost.argmin(axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = cands[best, np.arange(rows.shape[0])]
    return out


@numba.njit(cache=True, nogil=True)
def _filter_rows(rows, prev, bpp, out):
    """numba loop of :func:`png_filter_rows`: the five candidate rows one after the other (each loop
    branch-free, so LLVM vectorises it), then the cheapest is kept."""
    h, stride = rows.shape
    cand = np.empty((5, stride), np.uint8)
    for y in range(h):
        x = rows[y]
        b = prev if y == 0 else rows[y - 1]                     # above
        # a (left) and c (above-left) are 0 for the first pixel's bytes, x[i - bpp] and b[i - bpp] after
        for i in range(stride):
            cand[0, i] = x[i]
            cand[2, i] = np.uint8(np.int32(x[i]) - np.int32(b[i]))
        for i in range(min(bpp, stride)):
            cand[1, i] = x[i]
            cand[3, i] = np.uint8(np.int32(x[i]) - (np.int32(b[i]) >> 1))
            cand[4, i] = np.uint8(np.int32(x[i]) - np.int32(b[i]))   # Paeth of (0, b, 0) is b
        n = max(stride - bpp, 0)                        # 0-based slices: what LLVM vectorises
        xs, xl, bs, bl = x[bpp:], x[:n], b[bpp:], b[:n]
        c1, c3, c4 = cand[1, bpp:], cand[3, bpp:], cand[4, bpp:]
        for i in range(n):
            xi, ai, bi, ci = np.int32(xs[i]), np.int32(xl[i]), np.int32(bs[i]), np.int32(bl[i])
            c1[i] = np.uint8(xi - ai)
            c3[i] = np.uint8(xi - ((ai + bi) >> 1))
            p = ai + bi - ci
            pa, pb, pc = abs(p - ai), abs(p - bi), abs(p - ci)
            pred = ai if (pa <= pb and pa <= pc) else (bi if pb <= pc else ci)
            c4[i] = np.uint8(xi - pred)
        best, best_cost = 0, -1
        for f in range(5):
            s = 0
            row = cand[f]
            for i in range(stride):
                v = np.int32(row[i])
                s += min(v, 256 - v)                            # |v| as a signed byte
            if best_cost < 0 or s < best_cost:
                best, best_cost = f, s                          # the first of equal costs, as argmin
        out[y, 0] = best
        dst = out[y, 1:]
        src = cand[best]
        for i in range(stride):
            dst[i] = src[i]


def png_filter_rows(rows: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Same contract and bytes as :func:`png_filter_rows_reference`, as one numba pass over the rows
    (the NumPy version makes a dozen int16 temporaries per row band)."""
    # Writable C-contiguous copies where needed: one compiled signature (read-only arrays make another).
    rows = np.require(rows, np.uint8, ["C", "W"])
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    _filter_rows(rows, np.require(prev, np.uint8, ["C", "W"]), int(bpp), out)
    return out


def write_png_rows(path, shape, dtype, bands, icc_profile=None, chunk_rows: int = 32,
                   png_compression: int = PNG_COMPRESSION, overwrite: bool = True) -> None:
    """Write a PNG from bands of rows, atomically, without holding the whole image.

    The rows are filtered and compressed on a second thread while the next band is being made (zlib
    and the numba filter release the GIL), so encoding overlaps the network's work instead of following
    it. At most two bands wait for the encoder.

    Parameters
    ----------
    path : output file
    shape : (H, W) or (H, W, C) with C in 1, 3, 4; ``dtype`` uint8 or uint16
    bands : iterable of arrays (h_i, W[, C]) whose heights add up to H, top to bottom (copied as they
        come: the iterable may reuse its arrays)
    png_compression : zlib level 0..9
    overwrite : False: never replace an existing ``path`` (``FileExistsError``, as :func:`write_image`)
    """
    path = Path(path)
    level = _check_png_level(png_compression)
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: PNG holds uint8 or uint16 pixels, not {dtype}")
    H, W = shape[:2]
    C = shape[2] if len(shape) == 3 else 1
    colour = {1: 0, 3: 2, 4: 6}.get(C)
    if colour is None:
        raise ValueError(f"{path}: PNG holds 1, 3 or 4 channels, not {C}")
    _check_folder(path)
    bpp = C * dtype.itemsize
    stride = W * bpp
    with atomic_write(path, overwrite=overwrite) as f:
        f.write(_PNG_SIGNATURE)
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8 * dtype.itemsize, colour, 0, 0, 0)))
        if icc_profile:
            f.write(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
        z = zlib.compressobj(level)
        todo, failed = queue.Queue(maxsize=2), []

        def encode():                          # the second thread: filter, compress, write
            prev = np.zeros(stride, np.uint8)
            while (raw := todo.get()) is not None:
                if failed:
                    continue                   # drain: the producer must never block on a full queue
                try:
                    for i in range(0, raw.shape[0], chunk_rows):
                        part = raw[i:i + chunk_rows]
                        data = z.compress(png_filter_rows(part, prev, bpp).tobytes())
                        prev = part[-1]
                        if data:
                            f.write(_chunk(b"IDAT", data))
                except BaseException as e:     # noqa: BLE001 - raised again by the producer
                    failed.append(e)

        encoder = threading.Thread(target=encode, name="npespcn-png", daemon=True)
        encoder.start()
        done = 0
        try:
            for band in bands:
                band = np.asarray(band)
                if band.shape[1:] != tuple(shape[1:]) or band.dtype != dtype:
                    raise ValueError(f"{path}: band of shape {band.shape} / {band.dtype} does not match {shape}")
                if failed:
                    break
                raw = np.array(band, dtype=dtype.newbyteorder(">"), order="C", copy=True).view(np.uint8)
                todo.put(raw.reshape(band.shape[0], stride))
                done += band.shape[0]
        finally:
            todo.put(None)
            encoder.join()                     # nothing writes to f once atomic_write closes it
        if failed:
            raise failed[0]
        if done != H:
            raise ValueError(f"{path}: the bands hold {done} rows, expected {H}")
        f.write(_chunk(b"IDAT", z.flush()))
        f.write(_chunk(b"IEND", b""))
