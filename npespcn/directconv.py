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
kernel tap) and a numba fast path (the same sums row by row, four filters at a time, parallel over output rows). They agree
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


@numba.njit(cache=True, nogil=True, inline="always")
def _row_one(x, w, b, n, f, h, row):
    """Output row ``out[n, f, h]`` of one filter (the recipe, terms skipped outside the image)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    k = w.shape[2]
    p = (k - 1) // 2
    for t in range(W):
        row[t] = 0
    for c in range(C):
        for i in range(k):
            hs = h + i - p
            if hs < 0 or hs >= H:
                continue                          # a row of zero padding: no terms
            src = x[n, c, hs]
            for j in range(k):
                wv = w[f, c, i, j]
                t0 = max(0, p - j)                # first t whose source column t + j - p is >= 0
                t1 = min(W, W + p - j)            # one past the last t whose source column is < W
                for t in range(t0, t1):
                    row[t] += wv * src[t + j - p]
    for t in range(W):
        row[t] += b[f]


@numba.njit(cache=True, nogil=True, inline="always")
def _rows_four(x, w, b, n, f, h, r0, r1, r2, r3):
    """Rows of filters f..f+3 at once: the same sums per pixel, each input value loaded once for four."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    k = w.shape[2]
    p = (k - 1) // 2
    for t in range(W):
        r0[t] = 0
        r1[t] = 0
        r2[t] = 0
        r3[t] = 0
    for c in range(C):
        for i in range(k):
            hs = h + i - p
            if hs < 0 or hs >= H:
                continue
            src = x[n, c, hs]
            for j in range(k):
                a0, a1, a2, a3 = w[f, c, i, j], w[f + 1, c, i, j], w[f + 2, c, i, j], w[f + 3, c, i, j]
                t0 = max(0, p - j)
                t1 = min(W, W + p - j)
                for t in range(t0, t1):
                    s = src[t + j - p]
                    r0[t] += a0 * s
                    r1[t] += a1 * s
                    r2[t] += a2 * s
                    r3[t] += a3 * s
    for t in range(W):
        r0[t] += b[f]
        r1[t] += b[f + 1]
        r2[t] += b[f + 2]
        r3[t] += b[f + 3]


@numba.njit(parallel=True, cache=True, nogil=True)
def _conv2d_direct_numba(x, w, b, out):
    N, H = x.shape[0], x.shape[2]
    F = w.shape[0]
    blocks = (F + 3) // 4
    for job in numba.prange(N * blocks * H):       # one job: one row of up to four filters
        n = job // (blocks * H)
        f = 4 * ((job // H) % blocks)
        h = job % H
        if f + 4 <= F:
            _rows_four(x, w, b, n, f, h, out[n, f, h], out[n, f + 1, h], out[n, f + 2, h], out[n, f + 3, h])
        else:
            for g in range(f, F):
                _row_one(x, w, b, n, g, h, out[n, g, h])


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
