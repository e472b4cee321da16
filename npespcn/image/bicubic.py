"""Bicubic upscaling by an integer factor, computed region by region (for tiled inference).

The kernel and the edge handling are Pillow's ``Image.BICUBIC`` (Keys' cubic with ``a = -0.5``, support 2)::

    K(x) = (a + 2)|x|^3 - (a + 3)|x|^2 + 1          for |x| < 1
         = a(|x|^3 - 5|x|^2 + 8|x| - 4)               for 1 <= |x| < 2
         = 0                                          otherwise

Output column ``X`` of a row ``n`` pixels long, upscaled ``r`` times, is centred on input coordinate
``c = (X + 0.5) * (n / (r n))``; it takes the input pixels ``x`` in ``[int(c - 1.5), int(c + 2.5))``
clipped to the image, weighted by ``K(x + 0.5 - c)`` and normalised to sum 1 (so the edges are neither
darkened nor mirrored). Rows the same way. The image is resampled horizontally first, stored as float32,
then vertically, each sum accumulated in float64 in tap order, as Pillow does for ``"F"`` (float32) images.

Every output pixel's weights and summation order depend only on its global position, so
:func:`bicubic_region` computes any rectangle of the result from any crop of the input that covers its
taps, bit for bit equal to the same rectangle of the whole result.
"""
from __future__ import annotations

import functools

import numba
import numpy as np

A = -0.5
SUPPORT = 2.0
TAPS = 5            # Pillow's window: ceil(support) * 2 + 1
HALO = 2            # low-resolution pixels a region needs on each side


def cubic(x):
    """Keys' cubic convolution kernel with ``a = -0.5`` (see module docstring), elementwise, float64."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    near = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * A
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def coefficients(n: int, r: int, start: int, stop: int):
    """Taps of output positions ``start..stop-1`` of a length-``n`` axis upscaled ``r`` times.

    Returns
    -------
    index : int ndarray (stop - start, TAPS)
        Input positions (clipped into ``[0, n)``; the weight of a clipped tap is 0).
    weight : float64 ndarray (stop - start, TAPS)
        Normalised weights, rows sum to 1.
    """
    X = np.arange(start, stop, dtype=np.float64)
    scale = n / (n * r)
    center = (X + 0.5) * scale
    lo = np.maximum((center - SUPPORT + 0.5).astype(np.int64), 0)          # int() truncates, as in C
    hi = np.minimum((center + SUPPORT + 0.5).astype(np.int64), n)
    t = np.arange(TAPS)
    index = lo[:, None] + t[None, :]
    inside = index < hi[:, None]
    weight = np.where(inside, cubic(index - center[:, None] + 0.5), 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.minimum(index, n - 1), weight


@functools.lru_cache(maxsize=512)
def _coefficients_read_only(n: int, r: int, start: int, stop: int):
    """:func:`coefficients`, remembered (every frame of a video, every tile row, asks for the same), and
    read-only since they are shared."""
    index, weight = coefficients(n, r, start, stop)
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


def _resample_rows(plane, index, weight):
    """``out[:, X] = sum_t weight[X, t] * plane[:, index[X, t]]`` in float64, tap by tap; returns float32."""
    acc = np.zeros((plane.shape[0], index.shape[0]), dtype=np.float64)
    for t in range(index.shape[1]):
        acc += plane[:, index[:, t]] * weight[:, t]
    return acc.astype(np.float32)


def bicubic_region(crop, r: int, full_shape, origin, rows, cols):
    """Rectangle ``rows x cols`` (global high-resolution coordinates) of the bicubic ``r``-times upscale.

    Parameters
    ----------
    crop : ndarray (h, w), float
        The part ``full[oy:oy+h, ox:ox+w]`` of the low-resolution plane; it must contain every tap of the
        requested rectangle, i.e. ``HALO`` pixels around it where the image has them.
    r : int
        Upscale factor.
    full_shape : (H, W)
        Shape of the whole low-resolution plane (the weights are normalised at its edges).
    origin : (oy, ox)
        Where ``crop`` sits in the whole plane.
    rows, cols : (start, stop)
        The high-resolution rectangle to compute.

    Returns
    -------
    out : float32 ndarray (rows[1] - rows[0], cols[1] - cols[0])
    """
    iy, wy, ix, wx = region_taps(crop, r, full_shape, origin, rows, cols)
    # Horizontal pass on the input rows the region needs, then vertical.
    need = np.unique(iy)
    tmp = _resample_rows(np.asarray(crop, dtype=np.float32)[need], ix, wx)        # (len(need), out_w)
    pos = np.searchsorted(need, iy)
    return _resample_rows(tmp.T, pos, wy).T.copy()


def region_taps(crop, r: int, full_shape, origin, rows, cols):
    """The taps of :func:`bicubic_region` (same parameters), in ``crop``'s coordinates: ``(iy, wy, ix, wx)``,
    row and column indices (clamped into the crop; a clamped tap has weight 0) and their weights, as
    :func:`coefficients`. Raises ``ValueError`` if the rectangle lies outside the result or the crop misses
    a tap."""
    H, W = full_shape
    oy, ox = origin
    if not (0 <= rows[0] < rows[1] <= r * H and 0 <= cols[0] < cols[1] <= r * W):
        raise ValueError(f"bicubic_region: rows {rows} x cols {cols} lie outside the {r * H}x{r * W} result")
    iy, wy = _coefficients_read_only(H, r, *rows)
    ix, wx = _coefficients_read_only(W, r, *cols)
    iy, ix = iy - oy, ix - ox
    # Taps with zero weight may point outside the crop: clamp them (their weight keeps them out).
    if (((iy < 0) | (iy >= crop.shape[0])) & (wy != 0)).any() or \
            (((ix < 0) | (ix >= crop.shape[1])) & (wx != 0)).any():
        raise ValueError("bicubic_region: the crop does not cover the taps of the requested region")
    iy = np.clip(iy, 0, crop.shape[0] - 1)
    ix = np.clip(ix, 0, crop.shape[1] - 1)
    return iy, wy, ix, wx


@numba.njit(cache=True, nogil=True)
def _bicubic_kernel(crop, lo, iy, wy, ix, wx, out):
    """Both passes of :func:`bicubic_region` for crop rows ``lo..`` (the rows the taps ``iy`` use)."""
    n_rows = iy.max() - lo + 1
    out_h, out_w = out.shape
    taps = ix.shape[1]
    tmp = np.empty((n_rows, out_w), np.float32)
    for k in range(n_rows):                                   # horizontal: float32 input, float64 sums
        for X in range(out_w):
            acc = 0.0
            for t in range(taps):
                acc += np.float64(np.float32(crop[lo + k, ix[X, t]])) * wx[X, t]
            tmp[k, X] = np.float32(acc)
    acc_row = np.empty(out_w)
    for Y in range(out_h):                                    # vertical, tap by tap over the whole row
        acc_row[:] = 0.0
        for t in range(iy.shape[1]):
            src = tmp[iy[Y, t] - lo]
            w = wy[Y, t]
            for X in range(out_w):
                acc_row[X] += np.float64(src[X]) * w
        for X in range(out_w):
            out[Y, X] = np.float32(acc_row[X])


def bicubic_region_numba(crop, r: int, full_shape, origin, rows, cols):
    """:func:`bicubic_region` as one numba kernel: the same taps, the same float64 sums in tap order and
    the same float32 rounding between the passes, so the same bits, without the NumPy temporaries."""
    iy, wy, ix, wx = region_taps(crop, r, full_shape, origin, rows, cols)
    out = np.empty((rows[1] - rows[0], cols[1] - cols[0]), np.float32)
    _bicubic_kernel(np.asarray(crop), iy.min(), iy, wy, ix, wx, out)
    return out


def bicubic_upscale(plane, r: int):
    """The whole bicubic ``r``-times upscale of a 2-D float plane (H, W) -> float32 (r H, r W)."""
    plane = np.asarray(plane)
    H, W = plane.shape
    return bicubic_region(plane, r, (H, W), (0, 0), (0, r * H), (0, r * W))
