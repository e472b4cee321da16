"""Direct "same" convolution for inference, with per-pixel arithmetic that does not depend on the image size.

Training uses im2col + GEMM (:mod:`npespcn.functional.conv`): fast, but a BLAS library may sum a pixel's
products in an order that depends on the matrix shape (kernel choice for edge blocks, K-blocking, small-
matrix paths). Tiled inference needs more: a pixel must get *bitwise* the same value whether it is computed
in a 64×64 tile or in the whole image. This module computes every output pixel by one fixed recipe::

    out[n, f, h, w] = ( sum over c = 0..C-1, i = 0..k-1, j = 0..k-1, in this order, of
                        w[f, c, i, j] * x[n, c, h + i - p, w + j - p] )  +  b[f]

starting from 0, one multiply and one add per term (rounded each time, no fused multiply-add), skipping
the terms that fall outside the image (the "same" zero padding, ``p = (k - 1) // 2``). The order depends
only on (c, i, j), never on where the pixel sits in the array, so tiles agree bit for bit with the whole.

Shapes::

    x    (N, C, H, W)       w    (F, C, k, k)       b    (F,)       out  (N, F, H, W)

Two implementations with one signature: a NumPy reference (one shifted multiply-add of the whole image per
kernel tap) and a numba fast path (the same sums row by row, parallel over output rows). They agree
exactly (up to the sign of zero).
"""
from __future__ import annotations

import numba
import numpy as np

from .functional._backend import resolve


def _check(x, w, b):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"conv2d_direct expects x as a 4-D (N, C, H, W) array, got "
                         f"{'shape ' + str(x.shape) if isinstance(x, np.ndarray) else type(x).__name__}")
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
        raise ValueError(f"conv2d_direct expects weights (F, C, k, k) with odd k, got {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d_direct: input has {x.shape[1]} channels but the weights expect {w.shape[1]}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"conv2d_direct: bias must have shape ({w.shape[0]},), got {b.shape}")


def conv2d_direct_reference(x, w, b):
    """The recipe of the module docstring as whole-image NumPy operations (readable, slower).

    Parameters
    ----------
    x : ndarray (N, C, H, W)
    w : ndarray (F, C, k, k), k odd
    b : ndarray (F,)

    Returns
    -------
    out : ndarray (N, F, H, W), dtype ``result_type(x, w)``
    """
    _check(x, w, b)
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    p = (k - 1) // 2
    dt = np.result_type(x, w)
    xpad = np.pad(x.astype(dt, copy=False), ((0, 0), (0, 0), (p, p), (p, p)))
    w = w.astype(dt, copy=False)
    out = np.zeros((N, F, H, W), dtype=dt)
    for f in range(F):
        for c in range(C):
            for i in range(k):
                for j in range(k):
                    # one rounded product, then one rounded sum: the fixed per-pixel order
                    out[:, f] += w[f, c, i, j] * xpad[:, c, i:i + H, j:j + W]
        out[:, f] += b[f].astype(dt)
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _conv2d_direct_numba(x, w, b, out):
    N, C, H, W = x.shape
    F, k = w.shape[0], w.shape[2]
    p = (k - 1) // 2
    for job in numba.prange(N * F * H):            # one job: output row out[n, f, h]
        n = job // (F * H)
        f = (job // H) % F
        h = job % H
        row = out[n, f, h]
        row[:] = 0
        for c in range(C):
            for i in range(k):
                hs = h + i - p
                if hs < 0 or hs >= H:
                    continue                      # a row of zero padding: no terms
                src = x[n, c, hs]
                for j in range(k):
                    wv = w[f, c, i, j]
                    t0 = max(0, p - j)            # first t whose source column t + j - p is >= 0
                    t1 = min(W, W + p - j)        # one past the last t whose source column is < W
                    # Slices starting at index 0 let LLVM drop numba's negative-index wraparound and
                    # vectorise the loop (2.5x); each lane still does one multiply and one add.
                    dst = row[t0:t1]
                    seg = src[t0 + j - p:t1 + j - p]
                    for t in range(dst.shape[0]):
                        dst[t] += wv * seg[t]
        bf = b[f]
        for t in range(W):
            row[t] += bf


def conv2d_direct_numba(x, w, b):
    """Same contract as :func:`conv2d_direct_reference`, compiled (parallel over output rows)."""
    _check(x, w, b)
    dt = np.result_type(x, w)
    x = np.ascontiguousarray(x, dtype=dt)
    out = np.empty((x.shape[0], w.shape[0], x.shape[2], x.shape[3]), dtype=dt)
    _conv2d_direct_numba(x, np.ascontiguousarray(w, dtype=dt), np.ascontiguousarray(b, dtype=dt), out)
    return out


def conv2d_direct(x, w, b, backend: str | None = None):
    """Direct convolution with the chosen backend (see :mod:`npespcn.functional._backend`)."""
    if resolve(backend) == "reference":
        return conv2d_direct_reference(x, w, b)
    return conv2d_direct_numba(x, w, b)
