"""Super-resolve an image with ESPCN: ``npespcn.upscale(image, scale=3, model=None, tile=None)``.

Colour, as the super-resolution literature does it (BT.601 studio range, :mod:`npespcn.image.color`)::

    grey (H, W)         Y = grey                      -> network -> grey        (r H, r W)
    RGB  (H, W, 3)      Y, Cb, Cr = ycbcr(RGB)        -> Y through the network, Cb and Cr bicubic
                                                      -> RGB = rgb(Y', Cb', Cr')  (r H, r W, 3)
    RGBA (H, W, 4)      as RGB, alpha bicubic
    3-channel model     RGB goes through the network directly (alpha bicubic); a grey image is fed as
                        R = G = B and the mean of the three outputs is returned

Every dtype goes through one pipeline on the 0..255 scale in float64 (uint8 as is, uint16 / 257, floats
* 255); the network sees ``Y / 255`` in the model's dtype (float32); the result is converted back with
rounding and clipping (integers) or clipping to [0, 1] (floats). Bicubic is Pillow's kernel computed in
float64 (:mod:`npespcn.image.bicubic`), so uint16 and float images keep their precision. The colour planes,
the bicubic and the last uint8 step run as numba kernels (:data:`FAST_COLOUR`, :data:`FUSED_UINT8`), each
the same operations in the same order as its NumPy reference, so the same bits.

Tiling: the low-resolution image is cut into ``tile`` x ``tile`` tiles; each is processed with a halo
(:func:`~npespcn.inference.tiling.halo`: the receptive radius, more where 3x3 layers run by Winograd, at
least 2, the bicubic's reach) and only its core is kept. With the
default numba backend the convolutions (:meth:`ESPCN.infer`, :mod:`npespcn.fast.chunked`) give
a pixel the same bits whatever the array size, and everything else is elementwise or position-based, so a
tiled result is bitwise equal to the untiled one (``tile`` >= the image size). (The NumPy reference
backend, one GEMM per image, agrees only to float rounding.) ``tile=None`` keeps
the working memory of one tile near :data:`~npespcn.inference.tiling.TILE_BUDGET` bytes: the whole image, or
bands of its full width, or squares (:func:`~npespcn.inference.tiling.auto_tiles`).
"""
from __future__ import annotations

import numpy as np

from ..fast import image_origin, run_concurrently
from ..image.bicubic import bicubic_region, bicubic_region_numba
from ..image.color import (
    BT601_INV,
    image_to_ycc_planes,
    image_to_ycc_planes_numba,
    to_255,
    ycc_planes_to_rgb,
    ycc_to_rgb_uint8,
)
from ..image.dihedral import N_DIHEDRAL, dihedral, dihedral_inverse
from ..image.io import to_pil
from ..nn.model import ESPCN, check_scale
from ..nn.pretrained import resolve_model
from .tiling import auto_tiles, halo, max_kernel, tiles

DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
FUSED_UINT8 = True
"""uint8 RGB results: colour conversion and rounding in one numba pass (:func:`~npespcn.image.color.ycc_to_rgb_uint8`);
False runs the NumPy expressions (the same bits; tests compare the two)."""
FAST_COLOUR = True
"""RGB(A) images: Y/Cb/Cr planes and the bicubic chroma (and alpha) by numba kernels
(:func:`~npespcn.image.color.image_to_ycc_planes_numba`, :func:`~npespcn.image.bicubic.bicubic_region_numba`);
False runs their NumPy references (the same bits; tests compare the two)."""
_PIL_MODES = ("L", "RGB", "RGBA", "I;16", "F")


# ---------------------------------------------------------------------------------------------- checks
def check_image(image, clip: bool = False) -> np.ndarray:
    """Validate an image array (see :func:`upscale`) and return it; raise on anything else.

    Parameters
    ----------
    image : ndarray (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16, float32 or float64
    clip : bool
        Accept floats outside [0, 1] (they are clipped); NaN and infinity are refused regardless.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an image as a NumPy array or a PIL.Image, got {type(image).__name__}")
    if image.dtype not in DTYPES:
        raise TypeError(f"expected an image of dtype uint8, uint16, float32 or float64, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"expected a non-empty image, got shape {image.shape}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C) with C in 1, 3, 4, got a "
                         f"{image.ndim}-D array of shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected 1 (grey), 3 (RGB) or 4 (RGBA) channels last, got {image.shape[2]} "
                         f"(shape {image.shape})")
    if image.dtype.kind == "f":
        lo, hi = image.min(), image.max()            # NaN propagates through min/max
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("expected finite pixel values, got NaN or infinity")
        if (lo < 0 or hi > 1) and not clip:
            raise ValueError(f"expected float pixel values in [0, 1], got values in [{lo:g}, {hi:g}] "
                             f"(pass clip=True to clip them)")
    return image


def _from_pil(image):
    mode = image.mode
    if mode not in _PIL_MODES:
        raise TypeError(f"expected a PIL image in mode {', '.join(_PIL_MODES)}, got mode {mode!r} "
                        f"(convert it first, e.g. image.convert('RGB'))")
    arr = np.asarray(image)
    if mode == "I;16":
        arr = arr.astype(np.uint16)
    return arr, mode


# ---------------------------------------------------------------------------------------------- compute
def network(net: ESPCN, x: np.ndarray, ensemble: bool = False, origin=None) -> np.ndarray:
    """Run ``net`` on ``x`` (N, C, H, W) for inference: :meth:`ESPCN.infer`, whose fused chunked
    convolution gives every pixel the same bits whatever the tile size (see :mod:`npespcn.fast.chunked`).

    ``origin``: ``(y, x)``, where ``x`` lies in its image; given, 3x3 layers may run by Winograd on tiles
    aligned to that image (:func:`npespcn.fast.image_origin`), still the same bits whatever the tile.

    ``ensemble``: geometric self-ensemble: the mean of the outputs for the 8 flips and rotations of
    ``x`` (:mod:`npespcn.image.dihedral`), each turned back. Turning the input is turning the kernels, so these are 8
    different estimates of the same image; their mean is taken in float64 in the ops' order,
    for 8 forward passes. Each output pixel still depends only on its
    neighbourhood, so tiles stay bitwise equal to the whole image. (A turned tile lies elsewhere in the
    turned image, so the ensemble does not use ``origin``: it runs shifted taps.)"""
    if not ensemble:
        if origin is None:
            return net.infer(x)
        with image_origin(*origin):
            return net.infer(x)
    total = None
    for op in range(N_DIHEDRAL):
        y = dihedral_inverse(net.infer(np.ascontiguousarray(dihedral(x, op))), op)
        total = y.astype(np.float64) if total is None else total + y
    return (total / N_DIHEDRAL).astype(net.dtype)


def _from_255(v, dtype):
    if dtype.kind == "f":
        return np.clip(v / 255.0, 0.0, 1.0).astype(dtype)
    if dtype == np.uint16:
        return np.clip(np.rint(v * (65535.0 / 255.0)), 0, 65535).astype(np.uint16)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def _process_tile(arr, net, r, core, margin, out, top=0, ensemble=False):
    """Upscale the tile ``core = (y0, y1, x0, x1)`` of ``arr`` into ``out``, whose row 0 is high-resolution
    row ``top`` of the result (see module docstring)."""
    H, W = arr.shape[:2]
    y0, y1, x0, x1 = core
    ey0, ey1, ex0, ex1 = max(0, y0 - margin), min(H, y1 + margin), max(0, x0 - margin), min(W, x1 + margin)
    crop = arr[ey0:ey1, ex0:ex1]
    sl = (slice(r * (y0 - ey0), r * (y1 - ey0)), slice(r * (x0 - ex0), r * (x1 - ex0)))
    rows, cols = (r * y0, r * y1), (r * x0, r * x1)

    def bicubic32(plane):
        resample = bicubic_region_numba if FAST_COLOUR else bicubic_region
        return resample(plane, r, (H, W), (ey0, ex0), rows, cols)

    def bicubic(plane):
        return bicubic32(plane).astype(np.float64)

    def net_planes(planes):
        x = np.stack(planes)[None] / 255.0                              # (1, C, h, w)
        y = network(net, x, ensemble, (ey0, ex0))[0]                    # (C, r h, r w)
        return [y[c][sl].astype(np.float64) * 255.0 for c in range(y.shape[0])]

    grey = crop.ndim == 2 or crop.shape[2] == 1
    if grey:
        g = to_255(crop if crop.ndim == 2 else crop[..., 0])    # (h, w) float64, 0..255
        if net.channels == 1:
            res = net_planes([g])[0]
        else:
            res = sum(net_planes([g, g, g])) / 3.0
        res = _from_255(res, arr.dtype)
        out[rows[0] - top:rows[1] - top, cols[0]:cols[1]] = res if out.ndim == 2 else res[..., None]
        return
    dst = out[rows[0] - top:rows[1] - top, cols[0]:cols[1]]
    if net.channels == 3:
        v = to_255(crop[..., :3])                        # (h, w, 3) float64, 0..255
        rgb = net_planes([v[..., 0], v[..., 1], v[..., 2]])
    else:
        y, cb, cr = (image_to_ycc_planes_numba if FAST_COLOUR else image_to_ycc_planes)(crop)
        if _fused_uint8(arr, net):
            # the float32 chroma goes in as is: the kernel widens it to float64 exactly, as astype would
            luma = network(net, (y / 255.0)[None, None], ensemble, (ey0, ex0))[0, 0][sl]
            cb_hr, cr_hr = run_concurrently(lambda: bicubic32(cb), lambda: bicubic32(cr))   # GIL-free kernels
            half = dst.shape[0] // 2                  # the rows in two parts, for two threads: the same bits
            run_concurrently(*(lambda a=a, b=b: ycc_to_rgb_uint8(luma[a:b], cb_hr[a:b], cr_hr[a:b], BT601_INV,
                                                                 dst[a:b])
                               for a, b in ((0, half), (half, dst.shape[0]))))
            rgb = None
        else:
            rgb = ycc_planes_to_rgb(net_planes([y])[0], bicubic(cb), bicubic(cr))
    if rgb is not None:
        for c in range(3):
            dst[..., c] = _from_255(rgb[c], arr.dtype)
    if crop.shape[2] == 4:
        dst[..., 3] = _from_255(bicubic(to_255(crop[..., 3])), arr.dtype)


def _fused_uint8(arr, net) -> bool:
    """Whether ``arr`` takes the fused uint8 path (:data:`FUSED_UINT8`): a uint8 RGB or RGBA image through
    a luma network."""
    return FUSED_UINT8 and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] in (3, 4) and net.channels == 1


def upscale(image, scale: int = 3, model=None, tile: int | None = None, clip: bool = False, progress=None,
            ensemble: bool = False):
    """Super-resolve ``image`` ``scale`` times with ESPCN.

    Parameters
    ----------
    image : ndarray or PIL.Image
        (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA; uint8, uint16, float32 or float64
        (floats in [0, 1]). PIL images in mode L, RGB, RGBA, I;16 or F (values in [0, 1]).
    scale : int
        Upscale factor ``r``; must agree with the model's.
    model : None, str, path or ESPCN
        None: the shipped default (``"espcn"``) at ``scale``; a shipped name (``"espcn"``, ``"espcn7"``);
        a model file :func:`npespcn.load_model` reads; or a model object.
    tile : int or None
        Low-resolution tile side (halo added around it, see the module docstring); None chooses one that
        bounds memory. The result does not depend on it, bit for bit.
    clip : bool
        Clip float inputs to [0, 1] instead of refusing values outside.
    progress : callable(done, total) or None
        Called after every tile.
    ensemble : bool
        Geometric self-ensemble: the network's mean output over the 8 flips and rotations of the image
        (see :func:`network`); 8 times the work, usually a few hundredths of a dB more.

    Returns
    -------
    The same kind (array or PIL image), dtype and channel layout, ``(r H, r W[, C])``.

    Raises
    ------
    TypeError, ValueError
        Naming what was expected: wrong type, dtype, shape, channels, NaN/inf, out-of-range floats, an image
        smaller than the model's largest kernel, a bad scale or tile, a missing or unreadable model.
    """
    pil_mode = None
    if not isinstance(image, np.ndarray) and type(image).__module__.startswith("PIL."):
        image, pil_mode = _from_pil(image)
    shape, dtype, bands = upscale_bands(image, scale, model, tile, clip, progress, ensemble)
    out = np.empty(shape, dtype=dtype)
    for _ in bands(out):                              # each band is written in place into out
        pass
    if pil_mode:
        return to_pil(out)
    return out


def upscale_bands(image, scale: int = 3, model=None, tile: int | None = None, clip: bool = False,
                  progress=None, ensemble: bool = False):
    """:func:`upscale` one row of tiles at a time, for results too large to hold (e.g. a streamed PNG).

    Checks everything first (same errors as :func:`upscale`, for an array ``image``), then returns
    ``(shape, dtype, bands)``: the result's shape and dtype, and a function ``bands(out=None)`` whose
    iterator yields the result's consecutive row bands ``(h_i, r W[, C])`` top to bottom (views of
    ``out`` when given, else fresh arrays). The bands put together are bitwise :func:`upscale`'s result.
    """
    arr = check_image(image, clip=clip)
    r = check_scale(scale)
    net = resolve_model(model, r)
    if tile is not None:
        if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
            raise ValueError(f"tile must be a positive integer (low-resolution pixels) or None, got {tile!r}")
        tile = int(tile)
    H, W = arr.shape[:2]
    k = max_kernel(net)
    if H < k or W < k:
        raise ValueError(f"the image is {H}x{W} pixels, smaller than the model's {k}x{k} kernel; expected at "
                         f"least {k}x{k}")
    if tile is None:
        # RGBA's alpha goes through float64 planes: counted as the other paths are
        th, tw = auto_tiles(net, H, W, fused=_fused_uint8(arr, net) and arr.shape[2] == 3)
    else:
        th = tw = tile
    shape = (r * H, r * W) + arr.shape[2:]
    cores = list(tiles((H, W), (th, tw)))
    margin = halo(net)

    def bands(out=None):
        done = 0
        for y0 in range(0, H, th):
            y1 = min(H, y0 + th)
            band = (np.empty((r * (y1 - y0),) + shape[1:], arr.dtype) if out is None
                    else out[r * y0:r * y1])
            for core in cores:
                if core[0] == y0:
                    _process_tile(arr, net, r, core, margin, band, top=r * y0, ensemble=ensemble)
                    done += 1
                    if progress is not None:
                        progress(done, len(cores))
            yield band

    return shape, arr.dtype, bands
