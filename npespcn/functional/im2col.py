"""im2col and col2im: turn a convolution into one matrix product.

A k×k convolution with stride 1 and "same" zero padding ``p = (k - 1) // 2`` computes, for every output
pixel, a dot product between the filter and the k×k patch of every input channel around that pixel.
``im2col`` copies those patches into the columns of a matrix so that the whole convolution becomes a
single GEMM (see :mod:`npespcn.functional.conv`)::

    x     (N, C, H, W)
    cols  (N, C*k*k, H*W)      cols[n, (c*k + i)*k + j, h*W + w] = xpad[n, c, h + i, w + j]

where ``xpad`` is ``x`` with ``p`` zeros on every side. Row ``(c, i, j)`` of ``cols`` is the whole input
channel ``c`` shifted by ``(i - p, j - p)``; so the reference version below needs only k*k slice copies,
no fancy indexing.

``col2im`` is the adjoint (the transpose) of ``im2col``: it scatters every column entry back to the input
pixel it was copied from and *adds* overlapping contributions. That is exactly the backward pass: if
``cols = im2col(x)`` then ``dx = col2im(dcols)``.

Cost: ``cols`` holds ``k*k`` copies of the input, i.e. ``N*C*k*k*H*W`` numbers (25x the input for the
first 5x5 layer). It buys a matrix product that BLAS runs near the machine's peak.
"""
from __future__ import annotations

import numba
import numpy as np

from ._backend import resolve


def _check_kernel(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer (same padding), got {k!r}")
    return int(k)


# --------------------------------------------------------------------------------------------------
# Reference: plain NumPy, one slice copy per kernel offset (i, j).
# --------------------------------------------------------------------------------------------------
def im2col_reference(x: np.ndarray, k: int) -> np.ndarray:
    """Unfold the k×k "same"-padded patches of ``x`` into columns.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    k : int, odd kernel size

    Returns
    -------
    cols : ndarray, shape (N, C*k*k, H*W)
        ``cols[n, (c*k + i)*k + j, h*W + w] = xpad[n, c, h + i, w + j]``.
    """
    k = _check_kernel(k)
    N, C, H, W = x.shape
    p = (k - 1) // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.empty((N, C, k, k, H, W), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            # Row (c, i, j) of the column matrix is channel c shifted by (i - p, j - p).
            cols[:, :, i, j] = xpad[:, :, i:i + H, j:j + W]
    return cols.reshape(N, C * k * k, H * W)


def col2im_reference(cols: np.ndarray, shape: tuple, k: int) -> np.ndarray:
    """Adjoint of :func:`im2col_reference`: fold columns back, summing overlaps.

    Parameters
    ----------
    cols : ndarray, shape (N, C*k*k, H*W)
    shape : tuple (N, C, H, W), the shape of the image the columns came from
    k : int, odd kernel size

    Returns
    -------
    x : ndarray, shape (N, C, H, W)
        ``x[n, c, h, w] = sum over (i, j) of cols[n, (c*k+i)*k+j, (h-i+p)*W + (w-j+p)]`` for the in-range
        terms; the padding border is dropped.
    """
    k = _check_kernel(k)
    N, C, H, W = shape
    p = (k - 1) // 2
    cols6 = cols.reshape(N, C, k, k, H, W)
    xpad = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + H, j:j + W] += cols6[:, :, i, j]
    return xpad[:, :, p:p + H, p:p + W].copy()


# --------------------------------------------------------------------------------------------------
# Fast path: numba, parallel over (image, channel); the innermost loop runs along a row so that both
# the reads and the writes are contiguous, and the padding is handled by clipping the row range
# instead of materialising a padded copy.
# --------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True, nogil=True)
def _im2col_numba(x, k, cols):
    N, C, H, W = x.shape
    p = (k - 1) // 2
    for nc in numba.prange(N * C):
        n = nc // C
        c = nc % C
        for i in range(k):
            for j in range(k):
                row = (c * k + i) * k + j
                w0 = max(0, p - j)             # first w whose source column w + j - p is >= 0
                w1 = min(W, W + p - j)         # one past the last w whose source column is < W
                for h in range(H):
                    hs = h + i - p
                    base = h * W
                    if hs < 0 or hs >= H:
                        for w in range(W):
                            cols[n, row, base + w] = 0
                        continue
                    for w in range(w0):
                        cols[n, row, base + w] = 0
                    for w in range(w0, w1):
                        cols[n, row, base + w] = x[n, c, hs, w + j - p]
                    for w in range(w1, W):
                        cols[n, row, base + w] = 0


@numba.njit(parallel=True, cache=True, nogil=True)
def _col2im_numba(cols, k, x):
    N, C, H, W = x.shape
    p = (k - 1) // 2
    for nc in numba.prange(N * C):
        n = nc // C
        c = nc % C
        for h in range(H):
            for w in range(W):
                x[n, c, h, w] = 0
        for i in range(k):
            for j in range(k):
                row = (c * k + i) * k + j
                w0 = max(0, p - j)
                w1 = min(W, W + p - j)
                for h in range(H):
                    hs = h + i - p
                    if hs < 0 or hs >= H:
                        continue
                    base = h * W
                    for w in range(w0, w1):
                        x[n, c, hs, w + j - p] += cols[n, row, base + w]


def im2col_numba(x: np.ndarray, k: int) -> np.ndarray:
    """Same contract as :func:`im2col_reference`; numba-compiled, parallel over (image, channel)."""
    k = _check_kernel(k)
    N, C, H, W = x.shape
    cols = np.empty((N, C * k * k, H * W), dtype=x.dtype)
    _im2col_numba(np.ascontiguousarray(x), k, cols)
    return cols


def col2im_numba(cols: np.ndarray, shape: tuple, k: int) -> np.ndarray:
    """Same contract as :func:`col2im_reference`; numba-compiled, parallel over (image, channel)."""
    k = _check_kernel(k)
    x = np.empty(tuple(shape), dtype=cols.dtype)
    _col2im_numba(np.ascontiguousarray(cols), k, x)
    return x


# --------------------------------------------------------------------------------------------------
# Dispatch.
# --------------------------------------------------------------------------------------------------
def im2col(x: np.ndarray, k: int, backend: str | None = None) -> np.ndarray:
    """im2col with the chosen backend; see :func:`im2col_reference` for the contract."""
    return (im2col_reference if resolve(backend) == "reference" else im2col_numba)(x, k)


def col2im(cols: np.ndarray, shape: tuple, k: int, backend: str | None = None) -> np.ndarray:
    """col2im with the chosen backend; see :func:`col2im_reference` for the contract."""
    return (col2im_reference if resolve(backend) == "reference" else col2im_numba)(cols, shape, k)
