"""im2col and col2im: turn a convolution into one matrix product.

A k×k convolution with stride 1 and "same" zero padding ``p = (k - 1) // 2`` computes, for every output
pixel, a dot product between the filter and the k×k patch of every input channel around that pixel.
``im2col`` copies those patches into the columns of a matrix so that the whole convolution becomes a
single GEMM (see :mod:`npespcn.functional.conv`)::

    x     (N, C, H, W)
    cols  (N, C*k*k, H*W)      cols[n, (c*k + i)*k + j, u*W + v] = xpad[n, c, u + i, v + j]

where ``xpad`` is ``x`` with ``p`` zeros on every side, ``(i, j)`` a kernel tap and ``(u, v)`` an output
pixel. Row ``(c, i, j)`` of ``cols`` is the whole input channel ``c`` shifted by ``(i - p, j - p)``; so the
reference version below needs only k*k slice copies, no fancy indexing.

``col2im`` is the adjoint (the transpose) of ``im2col``, ``<im2col(x), g> = <x, col2im(g)>``: it scatters
every column entry back to the input pixel it was copied from and *adds* overlapping contributions. That is
exactly the backward pass: if ``cols = im2col(x)`` then ``dx = col2im(dcols)``. It is not the inverse:
``col2im(im2col(x))`` is ``x`` times the number of copies of each pixel.

Cost: ``cols`` holds ``k*k`` copies of the input, i.e. ``N*C*k*k*H*W`` numbers (25x the input for the
first 5x5 layer). It buys a matrix product that BLAS runs near the machine's peak.
"""
from __future__ import annotations

import numpy as np

from ..fast import col2im_rows, im2col_rows
from .backend import resolve


def check_kernel(k) -> int:
    """Return ``k`` as an int, or raise ValueError unless it is a positive odd integer."""
    if not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {k!r} (\"same\" padding needs an odd kernel)")
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
        ``cols[n, (c*k + i)*k + j, u*W + v] = xpad[n, c, u + i, v + j]``.
    """
    k = check_kernel(k)
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
        ``x[n, c, u, v] = sum over (i, j) of cols[n, (c*k+i)*k+j, (u-i+p)*W + (v-j+p)]`` for the in-range
        terms; the padding border is dropped.
    """
    k = check_kernel(k)
    N, C, H, W = shape
    p = (k - 1) // 2
    cols6 = cols.reshape(N, C, k, k, H, W)
    xpad = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + H, j:j + W] += cols6[:, :, i, j]
    return xpad[:, :, p:p + H, p:p + W].copy()


# --------------------------------------------------------------------------------------------------
# Fast path: the compiled band kernels of npespcn.fast (im2col_rows, col2im_rows), one image per band.
# --------------------------------------------------------------------------------------------------
def im2col_numba(x: np.ndarray, k: int) -> np.ndarray:
    """Same contract as :func:`im2col_reference`; numba-compiled, one band of rows per image."""
    k = check_kernel(k)
    N, C, H, W = x.shape
    x = np.ascontiguousarray(x)
    cols = np.empty((N, C * k * k, H * W), dtype=x.dtype)
    for n in range(N):                      # image n is the band of stacked rows n*H .. (n+1)*H
        im2col_rows(x, k, n * H, (n + 1) * H, cols[n])
    return cols


def col2im_numba(cols: np.ndarray, shape: tuple, k: int) -> np.ndarray:
    """Same contract as :func:`col2im_reference`; numba-compiled, one band of rows per image."""
    k = check_kernel(k)
    N, C, H, W = shape
    cols = np.ascontiguousarray(cols)
    x = np.zeros(tuple(shape), dtype=cols.dtype)
    for n in range(N):
        col2im_rows(cols[n], k, n * H, (n + 1) * H, x)
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
