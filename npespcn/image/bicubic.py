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
    H, W = full_shape
    oy, ox = origin
    if not (0 <= rows[0] < rows[1] <= r * H and 0 <= cols[0] < cols[1] <= r * W):
        raise ValueError(f"bicubic_region: rows {rows} x cols {cols} lie outside the {r * H}x{r * W} result")
    iy, wy = coefficients(H, r, *rows)
    ix, wx = coefficients(W, r, *cols)
    iy, ix = iy - oy, ix - ox
    # Taps with zero weight may point outside the crop: clamp them (their weight keeps them out).
    if (((iy < 0) | (iy >= crop.shape[0])) & (wy != 0)).any() or \
            (((ix < 0) | (ix >= crop.shape[1])) & (wx != 0)).any():
        raise ValueError("bicubic_region: the crop does not cover the taps of the requested region")
    iy = np.clip(iy, 0, crop.shape[0] - 1)
    ix = np.clip(ix, 0, crop.shape[1] - 1)
    # Horizontal pass on the input rows the region needs, then vertical.
    need = np.unique(iy)
    tmp = _resample_rows(np.asarray(crop, dtype=np.float32)[need], ix, wx)        # (len(need), out_w)
    pos = np.searchsorted(need, iy)
    return _resample_rows(tmp.T, pos, wy).T.copy()


def bicubic_upscale(plane, r: int):
    """The whole bicubic ``r``-times upscale of a 2-D float plane (H, W) -> float32 (r H, r W)."""
    plane = np.asarray(plane)
    H, W = plane.shape
    return bicubic_region(plane, r, (H, W), (0, 0), (0, r * H), (0, r * W))
