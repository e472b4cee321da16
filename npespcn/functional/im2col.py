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
        ``cols[n, (c*k + i)*k + j, h*W + w] = xpad[n, c, h + i, w + j]``.
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
        ``x[n, c, h, w] = sum over (i, j) of cols[n, (c*k+i)*k+j, (h-i+p)*W + (w-j+p)]`` for the in-range
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
# Fast path: numba loops over a band of rows, so that the chunked convolution
# (:mod:`npespcn.functional.conv_chunked`) can unfold a few rows at a time into a cache-sized buffer.
# The batch's rows are stacked, ``r = n*H + h``; a band is ``r0 <= r < r1`` and its columns are
# ``cols[(c*k+i)*k+j, (r-r0)*W + w]``. Within one image, the rows of column row ``(c, i, j)`` are the
# channel's plane shifted by ``(i-p)*W + (j-p)`` places: one contiguous copy per image and kernel offset,
# then a few zeros where the shift wrapped around a row end (a 17-pixel-wide training patch would
# otherwise pay a loop start per 17 values). The innermost loops run over 0-based slices, so reads and
# writes are contiguous and LLVM vectorises them; the padding is handled by clipping the row range
# instead of materialising a padded copy.
# --------------------------------------------------------------------------------------------------
_OPTS = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_OPTS)
def im2col_rows(x, k, r0, r1, cols):
    """``cols[(c*k+i)*k+j, (r-r0)*W + w] = xpad[n, c, h+i, w+j]`` for the stacked rows ``r0 <= r < r1``.

    ``x`` must be C-contiguous; ``cols`` may have more columns than the band (they are left alone)."""
    N, C, H, W = x.shape
    p = (k - 1) // 2
    kk = k * k
    xf = x.reshape(N * C * H * W)
    for q in range(C * kk):
        c = q // kk
        di = (q // k) % k - p                  # row shift of this kernel offset
        dj = q % k - p                         # column shift
        w0 = min(max(0, -dj), W)               # columns w < w0 read left of the image: zero
        w1 = max(min(W, W - dj), w0)           # columns w >= w1 read right of it: zero
        dst_q = cols[q]
        r = r0
        while r < r1:                          # one image's part of the band at a time
            n, h0 = r // H, r % H
            h1 = min(H, h0 + r1 - r)
            dst = dst_q[(r - r0) * W:(r - r0 + h1 - h0) * W]    # dst[(h - h0)*W + w]
            ha = min(max(h0, -di), h1)         # rows h < ha or h >= hb read above/below the image: zero
            hb = max(min(h1, H - di), ha)
            for t in range((ha - h0) * W):
                dst[t] = 0
            for t in range((hb - h0) * W, (h1 - h0) * W):
                dst[t] = 0
            if w0 < w1 and ha < hb:
                # Rows ha..hb-1 of the shifted plane are one contiguous run of the source: copy it in
                # one go, then zero the columns that wrapped around from a neighbouring row.
                a = (ha - h0) * W + w0
                e = (hb - 1 - h0) * W + w1
                s0 = ((n * C + c) * H + ha + di) * W + w0 + dj
                src = xf[s0:s0 + e - a]
                mid = dst[a:e]
                for t in range(e - a):
                    mid[t] = src[t]
                if dj != 0:
                    for h in range(ha - h0, hb - h0):
                        row = dst[h * W:(h + 1) * W]
                        for t in range(w0):
                            row[t] = 0
                        for t in range(w1, W):
                            row[t] = 0
            else:                              # no column of the shifted plane is inside the image
                for t in range((ha - h0) * W, (hb - h0) * W):
                    dst[t] = 0
            r += h1 - h0


@numba.njit(**_OPTS)
def col2im_rows(dcols, k, r0, r1, dx):
    """Adjoint of :func:`im2col_rows`: ``dx[n, c, h+i-p, w+j-p] += dcols[(c*k+i)*k+j, (r-r0)*W + w]``."""
    N, C, H, W = dx.shape
    p = (k - 1) // 2
    for c in range(C):
        for i in range(k):
            for j in range(k):
                w0 = min(max(0, p - j), W)
                w1 = max(min(W, W + p - j), w0)
                for r in range(r0, r1):
                    hs = r % H + i - p
                    if hs < 0 or hs >= H:
                        continue
                    base = (r - r0) * W
                    src = dcols[(c * k + i) * k + j, base + w0:base + w1]
                    dst = dx[r // H, c, hs, w0 + j - p:w1 + j - p]
                    for t in range(w1 - w0):
                        dst[t] += src[t]


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
