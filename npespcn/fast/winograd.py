"""Winograd F(m x m, 3x3) at inference: the transforms as numba loops fused around batched BLAS GEMMs.

The maths and the readable version are in :mod:`npespcn.functional.winograd`. Here the image's tile grid
(aligned to the image's coordinates: tile ``(ty, tx)`` holds output pixels ``(ty*m + i, tx*m + j)``)
is cut into **blocks** of ``R x T`` tiles, also aligned to the grid (block ``(by, bx)`` holds the tiles
``by*R <= ty < (by + 1)*R``, ``bx*T <= tx < (bx + 1)*T``); a worker thread runs a block start to end::

    slab   (R*m + 2, T*m + 2)    one channel's input pixels of the block (zeros outside the array)
    V      (alpha**2, C, R*T)    V[xi*alpha + nu, c, r*T + t] = (BT @ tile @ BT.T)[xi, nu]   (input transform)
    M      (alpha**2, F, R*T)    M[q] = U[q] (F, C) @ V[q] (C, R*T)                  (alpha**2 sgemm calls)
    out    act(AT @ M[:, f, tile] @ AT.T + b[f]), written where the tile lies inside the array

The input transform runs across rows first (``BT`` over the ``alpha`` rows of a tile row: contiguous,
vectorised over the whole slab width), then along each row (per tile), skipping ``BT``'s zeros.

**Size independence, bitwise, on every machine.** A pixel's value is a function of its tile's input
pixels and of the tile's column ``(ty mod R)*T + tx mod T`` in GEMMs that always have the same shape
``(F, C) @ (C, R*T)``: both are fixed by the pixel's position in the image, whatever the array's size,
the chunking or the thread count (one thread per block, BLAS single-threaded). BLAS may round a column
by its position in a product, but here the position and the product's shape never change. Only an
array that is a crop of a larger image needs to say where it lies in it (``origin``), so that its grid
is the image's.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .blas import gemm_rows
from .memory import prefetch
from .rows import activate

POINTS = {2: (0, 1, -1), 4: (0, 1, -1, 2, -2), 6: (0, 1, -1, 2, -2, 0.5, -0.5)}
"""Interpolation points of F(m, 3) (plus the point at infinity): the usual choices (wincnn)."""


def _poly(roots):
    """Coefficients, lowest power first, of ``prod (x - a)`` over ``roots``."""
    c = np.array([1.0])
    for a in roots:
        c = np.convolve(c, [-a, 1.0])
    return c


def winograd_matrices(m: int, r: int = 3, points=None):
    """``(AT, G, BT)`` of F(m, r) from ``alpha - 1`` interpolation points and infinity, in float64.

    Args:
        m: outputs per tile (1-D); r: filter taps.
        points: the ``m + r - 2`` finite points; default :data:`POINTS` (``r = 3``).

    Returns:
        ``AT`` (m, alpha), ``G`` (alpha, r), ``BT`` (alpha, alpha), with
        ``y = AT @ ((G @ g) * (BT @ d))`` the correlation of ``d`` (alpha,) with ``g`` (r,).

    Examples::

        >>> AT, G, BT = winograd_matrices(2)
        >>> d, g = np.arange(4.0), np.array([1.0, 2.0, 3.0])
        >>> AT @ ((G @ g) * (BT @ d))
        array([ 8., 14.])
    """
    pts = [float(a) for a in (POINTS[m] if points is None else points)]
    alpha = m + r - 1
    if len(pts) != alpha - 1:
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} finite points, got {len(pts)}")
    A = np.zeros((alpha, m))                    # A @ h: h (degree m-1) at the points, then its top coefficient
    G = np.zeros((alpha, r))                    # G @ g: g at the points (over the Lagrange denominator)
    B = np.zeros((alpha, alpha))                # B: values at the points (and infinity) -> coefficients
    for j, a in enumerate(pts):
        others = pts[:j] + pts[j + 1:]
        A[j] = [a ** i for i in range(m)]
        G[j] = [a ** k / math.prod(a - o for o in others) for k in range(r)]
        B[:alpha - 1, j] = _poly(others)
    A[-1, -1] = G[-1, -1] = 1.0
    B[:, -1] = _poly(pts)
    return A.T, G, B.T


def transform_weights(w, m: int):
    """``U[xi, nu, f, c] = (G @ w[f, c] @ G.T)[xi, nu]`` for 3x3 weights ``w`` (F, C, 3, 3), in ``w``'s dtype
    (computed in float64)."""
    _, G, _ = winograd_matrices(m)
    return np.einsum("ik,fckl,jl->ijfc", G, w.astype(np.float64), G).astype(w.dtype)


_OPTS = dict(cache=True, nogil=True, error_model="numpy")

BLOCK = {2: (8, 64), 4: (2, 80), 6: (6, 24)}
"""``m: (R, T)``: a block is ``R`` tile rows of ``T`` tiles. F(4x4)'s blocks are wide and flat (8 x 320
pixels): each channel's slab is then 10 rows of 322 contiguous values, which the hardware prefetcher
streams in; the 8 x 128 blocks of 32 x 32 tiles that came first spent most of their input transform
waiting for short rows (benchmarks/README.md)."""


def scratch_shapes(m: int, C: int, F: int) -> dict:
    """The shapes of :func:`winograd_block`'s scratch arrays for F(m x m, 3x3) and ``C`` -> ``F`` channels.

    ``V`` and ``M`` are padded (16 more values a row, one more row a position): unpadded, the
    ``alpha**2`` positions' rows would lie a multiple of 4 KiB apart, on the same cache sets, and the
    transforms, which touch all of them at once, would evict their own data."""
    R, T = BLOCK[m]
    alpha, L, RT = m + 2, m * (R + 1) * T, R * T
    if m == 4:                                     # winograd_block_f4's
        return {"zrow": (4 * T + 2,), "Cs": (6, 4 * T + 2), "V": (36, C + 1, RT + 16), "M": (36, F + 1, RT + 16),
                "Z": (4, 6, T), "rowbuf": (4 * T,)}
    return {"ph": (alpha, L), "Cs": (alpha, alpha, RT), "V": (alpha * alpha, C + 1, RT + 16),
            "M": (alpha * alpha, F + 1, RT + 16), "Z": (m, alpha, RT), "Y": (m, m, RT), "rowbuf": (T * m,)}


@numba.njit(inline="always", **_OPTS)
def _combine(dst, coefs, rows, n):
    """``dst[:n] = sum_k coefs[k] * rows[k, :n]``, term by term in ``k`` order from zero, skipping zero
    coefficients: the order in which every transform of the block sums (and the written-out F(4x4) too)."""
    for t in range(n):
        dst[t] = 0
    for k in range(coefs.size):
        coef = coefs[k]
        if coef != 0:
            src = rows[k]
            for t in range(n):
                dst[t] += coef * src[t]


@numba.njit(**_OPTS)
def winograd_block(x, n, y0, x0, m, R, T, BT, U, AT, b, act, fn, ph, Cs, V, M, Z, Y, rowbuf, out):
    """One block of tiles of image ``n``: the input transform of every channel, the ``alpha**2`` GEMMs,
    the output transform with bias and activation into ``out`` (N, F, H, W).

    ``(y0, x0)``: the array position of the block's first output pixel (may be negative, or past the
    array's end, for a block that sticks out of it). ``BT`` (alpha, alpha), ``AT`` (m, alpha) float32;
    ``U`` (alpha**2, F, C) the transformed weights; ``fn`` the ``cblas_sgemm``. Scratch (``L = m*(R+1)*T``):
    ``ph`` (alpha, L), ``Cs`` (alpha, alpha, R*T), ``V`` (alpha**2, >= C, >= R*T), ``M`` (alpha**2, >= F, >= R*T)
    (padded, see :func:`scratch_shapes`),
    ``Z`` (m, alpha, R*T), ``Y`` (m, m, R*T), ``rowbuf`` (T*m,).

    The loops run over long contiguous runs, so LLVM vectorises them: the block's input rows are first
    split by column phase and by row phase, ``ph[nu, ((i % m)*(R + 1) + i // m)*T + t] = row_i[t*m + nu]``;
    then row ``r*m + e`` of every tile row ``r`` is one run of ``R*T`` values starting at
    ``((e % m)*(R + 1) + e // m)*T``. Across rows, ``Cs[xi, nu] = sum_e BT[xi, e] * ph[nu]`` at those rows;
    then along rows, ``V[xi*alpha + j] = sum_nu BT[j, nu] * Cs[xi, nu]``."""
    N, C, H, W = x.shape
    F = out.shape[1]
    alpha = m + 2
    SH = R * m + 2
    L = m * (R + 1) * T
    RT = R * T
    inside = x0 - 1 >= 0 and x0 - 1 + (T - 1) * m + alpha - 1 < W
    for nu in range(alpha):                              # rows outside the array stay zero for every channel
        for t in range(L):
            ph[nu, t] = 0
    for c in range(C):
        for i in range(SH):
            h = y0 - 1 + i
            if h < 0 or h >= H:
                continue
            src = x[n, c, h]
            base = ((i % m) * (R + 1) + i // m) * T
            for nu in range(alpha):
                dst = ph[nu, base:base + T]
                w0 = x0 - 1 + nu
                if inside:
                    cols = src[w0:w0 + (T - 1) * m + 1:m]
                    for t in range(T):
                        dst[t] = cols[t]
                else:
                    for t in range(T):
                        w = w0 + t * m
                        dst[t] = src[w] if 0 <= w < W else 0
        # across rows: Cs[xi, nu, r*T + t] = sum_e BT[xi, e] * ph[nu] at row r*m + e
        for xi in range(alpha):
            for nu in range(alpha):
                dst = Cs[xi, nu]
                for t in range(RT):
                    dst[t] = 0
                for e in range(alpha):
                    coef = BT[xi, e]
                    if coef != 0:
                        o = ((e % m) * (R + 1) + e // m) * T
                        src = ph[nu, o:o + RT]          # a slice: indexing src[o + t] would not vectorise
                        for t in range(RT):
                            dst[t] += coef * src[t]
        for xi in range(alpha):                          # along rows: V[xi*alpha + j, c] = BT[j] . Cs[xi]
            for j in range(alpha):
                _combine(V[xi * alpha + j, c], BT[j], Cs[xi], RT)
    for q in range(alpha * alpha):                       # the element-wise stage: alpha**2 matrix products
        gemm_rows(fn, F, RT, C, U[q], C, V[q], V.shape[2], M[q], M.shape[2])
    lo, hi = max(0, x0), min(W, x0 + T * m)              # the block's columns inside the array
    for f in range(F):
        for u in range(m):                               # across rows: Z[u, j] = sum_xi AT[u, xi] M[xi*alpha + j, f]
            for j in range(alpha):                       # (M's rows for one j are alpha apart: not one array)
                acc = Z[u, j]
                for t in range(RT):
                    acc[t] = 0
                for xi in range(alpha):
                    coef = AT[u, xi]
                    if coef != 0:
                        src = M[xi * alpha + j, f]
                        for t in range(RT):
                            acc[t] += coef * src[t]
        for u in range(m):                               # along rows: Y[u, s] = AT[s] . Z[u] + b[f]
            for s in range(m):
                acc = Y[u, s]
                _combine(acc, AT[s], Z[u], RT)
                for t in range(RT):
                    acc[t] += b[f]
        # out: row u of tile row r, column s of every tile, then the activation
        if lo >= hi:
            continue
        for r in range(R):
            for u in range(m):
                h = y0 + r * m + u
                if h < 0 or h >= H:
                    continue
                for s in range(m):
                    src = Y[u, s, r * T:(r + 1) * T]
                    dst = rowbuf[s::m]
                    for t in range(T):
                        dst[t] = src[t]
                dst = out[n, f, h, lo:hi]
                src = rowbuf[lo - x0:hi - x0]
                for t in range(hi - lo):
                    dst[t] = src[t]
                activate(dst, act)


# F(4x4, 3x3) written out. The generic block above reads BT and AT as data, so LLVM cannot drop their zeros
# or keep the arithmetic in float32 constants, and its column-phase gather is one strided loop per phase.
# Here the matrices of POINTS[4] are spelled out, in the generic block's order of operations (so the two
# give the same bits, tests/test_winograd.py), with float32 constants (a Python int would widen the sums to
# float64):
#
#     BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
#           [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
#     AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
_2, _4, _5, _8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@numba.njit(inline="always", **_OPTS)
def _bt4(d0, d1, d2, d3, d4, d5):
    """``BT @ d`` of F(4, 3), in the generic block's order of operations."""
    return (_4 * d0 - _5 * d2 + d4, -_4 * d1 - _4 * d2 + d3 + d4, _4 * d1 - _4 * d2 - d3 + d4,
            -_2 * d1 - d2 + _2 * d3 + d4, _2 * d1 - d2 - _2 * d3 + d4, _4 * d1 - _5 * d3 + d5)


@numba.njit(inline="always", **_OPTS)
def _at4(m0, m1, m2, m3, m4, m5):
    """``AT @ m`` of F(4, 3), in the generic block's order of operations."""
    return (m0 + m1 + m2 + m3 + m4, m1 - m2 + _2 * m3 - _2 * m4, m1 + m2 + _4 * m3 + _4 * m4,
            m1 - m2 + _8 * m3 - _8 * m4 + m5)


@numba.njit(inline="always", **_OPTS)
def _at4_cols(M, f, o, n, Z):
    """``Z[u, j, :n] = (AT @ M[j::6][:, f, o:o + n])[u]``: the output transform across rows, for output
    channel ``f`` and the ``n`` tiles from column ``o`` of ``M`` (36, >= F, ...), into ``Z`` (4, 6, >= n)."""
    for j in range(6):
        m0 = M[j, f, o:o + n]; m1 = M[6 + j, f, o:o + n]; m2 = M[12 + j, f, o:o + n]  # noqa: E702
        m3 = M[18 + j, f, o:o + n]; m4 = M[24 + j, f, o:o + n]; m5 = M[30 + j, f, o:o + n]  # noqa: E702
        z0 = Z[0, j]; z1 = Z[1, j]; z2 = Z[2, j]; z3 = Z[3, j]  # noqa: E702
        for t in range(n):
            z0[t], z1[t], z2[t], z3[t] = _at4(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])


@numba.njit(inline="always", **_OPTS)
def _at4_row(Zu, n, bf, dst):
    """``dst[4t .. 4t + 3] = AT @ (Zu[0 .. 5, t]) + bf`` for ``t < n``: one output row of ``n`` tiles from the
    output transform's across-rows result ``Zu`` (6, >= n), with the bias."""
    q0 = Zu[0]; q1 = Zu[1]; q2 = Zu[2]; q3 = Zu[3]; q4 = Zu[4]; q5 = Zu[5]  # noqa: E702
    for t in range(n):
        y0_, y1_, y2_, y3_ = _at4(q0[t], q1[t], q2[t], q3[t], q4[t], q5[t])
        dst[4 * t] = y0_ + bf
        dst[4 * t + 1] = y1_ + bf
        dst[4 * t + 2] = y2_ + bf
        dst[4 * t + 3] = y3_ + bf


@numba.njit(**_OPTS)
def winograd_block_f4(x, n, y0, x0, m, R, T, BT, U, AT, b, act, fn, zrow, Cs, V, M, Z, rowbuf, out):
    """:func:`winograd_block` for ``m = 4`` (same arguments; ``m``, ``BT`` and ``AT`` are not read), with
    the transforms written out. Scratch (:func:`scratch_shapes`): ``zrow`` (4T + 2,) zeros (a row
    outside the array), ``Cs`` (6, 4T + 2) one tile row's slab transformed across rows, ``V``, ``M`` as
    there, ``Z`` (4, 6, T) one tile row's output transformed across rows, ``rowbuf`` (4T,).

    Per channel and tile row: its 6 slab rows, read where they lie in ``x`` (columns outside the array
    stay zero in ``Cs``), become ``Cs[xi]`` across rows, while the next channel's rows are prefetched;
    then each ``Cs[xi]``, tile by tile, becomes ``V[xi*6 + j, c, r*T + t]``. After the 36 GEMMs, per output
    channel and tile row: ``Z[u, j, t]`` across rows, then each output row's 4 values per tile, with the
    bias, into ``rowbuf`` and through the activation into ``out``."""
    N, C, H, W = x.shape
    F = out.shape[1]
    L = 4 * T + 2
    RT = R * T
    k0 = min(max(0, 1 - x0), L)                          # Cs[:, k0:k1]: the slab's columns inside the array
    k1 = min(max(k0, W - (x0 - 1)), L)
    a0, a1 = x0 - 1 + k0, x0 - 1 + k1
    for k in range(L):
        zrow[k] = 0
    for xi in range(6):                                  # the columns outside stay zero for every channel
        for k in range(k0):
            Cs[xi, k] = 0
        for k in range(k1, L):
            Cs[xi, k] = 0
    for c in range(C):
        for r in range(R):
            hb = y0 - 1 + 4 * r                          # the tile row's first slab row
            if c + 1 < C:                                # the next channel's rows, while this one is worked
                for e in range(6):
                    if 0 <= hb + e < H:
                        ahead = x[n, c + 1, hb + e]
                        for k in range(a0, a1, 16):
                            prefetch(ahead, k)
            d0 = zrow; d1 = zrow; d2 = zrow; d3 = zrow; d4 = zrow; d5 = zrow  # noqa: E702
            if 0 <= hb < H:
                d0 = x[n, c, hb, a0:a1]
            if 0 <= hb + 1 < H:
                d1 = x[n, c, hb + 1, a0:a1]
            if 0 <= hb + 2 < H:
                d2 = x[n, c, hb + 2, a0:a1]
            if 0 <= hb + 3 < H:
                d3 = x[n, c, hb + 3, a0:a1]
            if 0 <= hb + 4 < H:
                d4 = x[n, c, hb + 4, a0:a1]
            if 0 <= hb + 5 < H:
                d5 = x[n, c, hb + 5, a0:a1]
            c0 = Cs[0, k0:k1]; c1 = Cs[1, k0:k1]; c2 = Cs[2, k0:k1]  # noqa: E702
            c3 = Cs[3, k0:k1]; c4 = Cs[4, k0:k1]; c5 = Cs[5, k0:k1]  # noqa: E702
            for k in range(k1 - k0):                     # across rows
                c0[k], c1[k], c2[k], c3[k], c4[k], c5[k] = _bt4(d0[k], d1[k], d2[k], d3[k], d4[k], d5[k])
            o = r * T
            for xi in range(6):                          # along rows
                s = Cs[xi]
                v0 = V[6 * xi, c, o:o + T]; v1 = V[6 * xi + 1, c, o:o + T]; v2 = V[6 * xi + 2, c, o:o + T]  # noqa: E702
                v3 = V[6 * xi + 3, c, o:o + T]; v4 = V[6 * xi + 4, c, o:o + T]; v5 = V[6 * xi + 5, c, o:o + T]  # noqa: E702
                for t in range(T):
                    v0[t], v1[t], v2[t], v3[t], v4[t], v5[t] = _bt4(s[4 * t], s[4 * t + 1], s[4 * t + 2],
                                                                    s[4 * t + 3], s[4 * t + 4], s[4 * t + 5])
    for q in range(36):                                  # the element-wise stage: 36 matrix products
        gemm_rows(fn, F, RT, C, U[q], C, V[q], V.shape[2], M[q], M.shape[2])
    lo, hi = max(0, x0), min(W, x0 + 4 * T)              # the block's columns inside the array
    if lo >= hi:
        return
    for f in range(F):
        bf = b[f]
        for r in range(R):
            _at4_cols(M, f, r * T, T, Z)                 # across rows
            for u in range(4):                           # along rows, into output row 4r + u
                h = y0 + 4 * r + u
                if h < 0 or h >= H:
                    continue
                _at4_row(Z[u], T, bf, rowbuf)
                dst = out[n, f, h, lo:hi]
                src = rowbuf[lo - x0:hi - x0]
                for t in range(hi - lo):
                    dst[t] = src[t]
                activate(dst, act)


def block_kernel(m: int):
    """The block function for F(m x m, 3x3): :func:`winograd_block_f4` for ``m = 4``, else
    :func:`winograd_block` (both take the same arguments and :func:`scratch_shapes`'s scratch)."""
    return winograd_block_f4 if m == 4 else winograd_block


# --------------------------------------------------------------------------------------------------
# Training: F(4x4, 3x3) on a batch of patches. A block is R tile rows taken across the batch (tile row
# g = n*th + ty is row ty of image n, th = ceil(H / 4) of them per image), each of all T = ceil(W / 4)
# tiles of its row, so that the 36 GEMMs get many columns however small the patches. Patches are
# narrow (T = 5 tiles for 17 pixels), and loops over one tile row's tiles would be too short to run
# fast, so every transform runs over the whole block at once: tile row r's tiles are the columns
# r*S .. r*S + T - 1 of V, M and D (S slots a tile row), and its slab (input columns -1 .. 4T) the
# slab columns r*4S .. r*4S + 4T + 1, of which slot i reads 4i .. 4i + 5. When W is not a multiple of 4,
# S = T: the slab's last two columns are the next tile row's first two, and neither is needed (the
# first of each pair lies outside the image, so it is zero for both rows; the second, outside the image
# for row r, reaches only its tile's last output column, which lies outside too). When it is, S = T + 1:
# slot T of each tile row is a spare, finite and never read back into the image. The slab is stored by
# column phase, Cs[xi, p, i] = slab column 4i + p, so that the along-row loops read and write
# contiguous rows (slot i reads Cs[:, 0..3, i] and Cs[:, 0..1, i + 1]). ``ns[r]``, ``ys[r]``: tile row
# r's image and first output row.
# --------------------------------------------------------------------------------------------------
@numba.njit(inline="always", **_OPTS)
def _a4(d0, d1, d2, d3):
    """``AT.T @ d`` of F(4, 3): the transpose of the output transform (the gradient's way back)."""
    return d0, d0 + d1 + d2 + d3, d0 - d1 + d2 - d3, d0 + _2 * d1 + _4 * d2 + _8 * d3, \
        d0 - _2 * d1 + _4 * d2 - _8 * d3, d3


@numba.njit(inline="always", **_OPTS)
def _clamp6(h, H):
    """Rows ``h .. h + 5`` clamped into ``[0, H)``."""
    return (min(max(h, 0), H - 1), min(max(h + 1, 0), H - 1), min(max(h + 2, 0), H - 1),
            min(max(h + 3, 0), H - 1), min(max(h + 4, 0), H - 1), min(max(h + 5, 0), H - 1))


@numba.njit(inline="always", **_OPTS)
def _inside6(h, H):
    """1 for each of the rows ``h .. h + 5`` inside ``[0, H)``, 0 outside (float32)."""
    one, zero = np.float32(1), np.float32(0)
    return (one if 0 <= h < H else zero, one if 0 <= h + 1 < H else zero, one if 0 <= h + 2 < H else zero,
            one if 0 <= h + 3 < H else zero, one if 0 <= h + 4 < H else zero, one if 0 <= h + 5 < H else zero)


@numba.njit(**_OPTS)
def input_transform_f4(x, ns, ys, R, S, Cs, V):
    """``V[xi*6 + j, c, r*S + t] = (BT @ d @ BT.T)[xi, j]`` for the input tile ``d`` (6 x 6, zeros outside
    the array) of tile ``t`` of tile row ``r`` (image ``ns[r]``, output rows from ``ys[r]``), for every
    channel ``c`` of ``x`` (N, C, H, W), ``S`` slots a tile row (see above). Per channel: every tile row's
    six input rows across rows into ``Cs`` (the 6 rows of ``BT @ d``, by column phase), then along rows,
    all slots in one loop. The input rows are indexed in place, a row outside the array as a row inside
    times 0 (one array view per row made the loops over narrow patches 3x slower). Scratch: ``Cs``
    (6, 4, R*S + 2)."""
    N, C, H, W = x.shape
    nslots = R * S
    for xi in range(6):                                  # the slab columns outside the image stay zero
        for p in range(4):
            for i in range(nslots + 2):
                Cs[xi, p, i] = 0
    for c in range(C):
        for r in range(R):
            n, hb = ns[r], ys[r] - 1
            h0, h1, h2, h3, h4, h5 = _clamp6(hb, H)
            m0, m1, m2, m3, m4, m5 = _inside6(hb, H)
            o = r * S
            for p in range(4):                           # across rows, slab columns 4k + p of the tile row:
                for k in range(1 if p == 0 else 0, (W - p) // 4 + 1):    # image column 4k + p - 1
                    t = 4 * k + p - 1
                    Cs[0, p, o + k], Cs[1, p, o + k], Cs[2, p, o + k], Cs[3, p, o + k], Cs[4, p, o + k], \
                        Cs[5, p, o + k] = _bt4(x[n, c, h0, t] * m0, x[n, c, h1, t] * m1, x[n, c, h2, t] * m2,
                                               x[n, c, h3, t] * m3, x[n, c, h4, t] * m4, x[n, c, h5, t] * m5)
        for xi in range(6):                              # along rows: slot i reads slab columns 4i .. 4i + 5
            s0 = Cs[xi, 0, 0:nslots]; s1 = Cs[xi, 1, 0:nslots]; s2 = Cs[xi, 2, 0:nslots]  # noqa: E702
            s3 = Cs[xi, 3, 0:nslots]; s4 = Cs[xi, 0, 1:nslots + 1]; s5 = Cs[xi, 1, 1:nslots + 1]  # noqa: E702
            v0 = V[6 * xi, c]; v1 = V[6 * xi + 1, c]; v2 = V[6 * xi + 2, c]  # noqa: E702
            v3 = V[6 * xi + 3, c]; v4 = V[6 * xi + 4, c]; v5 = V[6 * xi + 5, c]  # noqa: E702
            for i in range(nslots):
                v0[i], v1[i], v2[i], v3[i], v4[i], v5[i] = _bt4(s0[i], s1[i], s2[i], s3[i], s4[i], s5[i])


@numba.njit(**_OPTS)
def output_transform_f4(M, ns, ys, R, S, b, act, Z, Y, out):
    """``out[n, f, ys[r] + u, 4t + s] = act((AT @ M[:, f, r*S + t] @ AT.T)[u, s] + b[f])`` for every tile of
    the block's ``R`` tile rows, where it lies inside ``out`` (N, F, H, W): across rows, then along rows,
    all slots in one loop each. Scratch: ``Z`` (4, 6, R*S), ``Y`` (4, 4*R*S)."""
    N, F, H, W = out.shape
    S4 = 4 * S
    nslots = R * S
    for f in range(F):
        bf = b[f]
        _at4_cols(M, f, 0, nslots, Z)                    # across rows
        for u in range(4):                               # along rows
            _at4_row(Z[u], nslots, bf, Y[u])
        for r in range(R):                               # into the image, output row ys[r] + u
            for u in range(4):
                h = ys[r] + u
                if h >= H:
                    continue
                dst = out[ns[r], f, h]
                src = Y[u, r * S4:r * S4 + W]
                for t in range(W):
                    dst[t] = src[t]
                activate(dst, act)


@numba.njit(**_OPTS)
def gradient_transform_f4(dz, ns, ys, R, S, Q, D):
    """The transpose of :func:`output_transform_f4` (without bias and activation): for every tile of the
    block, ``D[xi*6 + j, f, r*S + t] = (AT.T @ g @ AT)[xi, j]`` where ``g`` (4 x 4) is the tile's part of
    ``dz`` (N, F, H, W), zeros outside the array (the spare slots get zeros). Across rows into ``Q``,
    then along rows. Scratch: ``Q`` (6, >= 4*R*S)."""
    N, F, H, W = dz.shape
    S4 = 4 * S
    nslots = R * S
    for xi in range(6):
        for r in range(R):
            for k in range(W, S4):
                Q[xi, r * S4 + k] = 0
    for f in range(F):
        for r in range(R):
            n, h = ns[r], ys[r]
            h0, h1, h2, h3, _, _ = _clamp6(h, H)
            m0, m1, m2, m3, _, _ = _inside6(h, H)
            o = r * S4
            for k in range(W):                           # across rows
                Q[0, o + k], Q[1, o + k], Q[2, o + k], Q[3, o + k], Q[4, o + k], Q[5, o + k] = _a4(
                    dz[n, f, h0, k] * m0, dz[n, f, h1, k] * m1, dz[n, f, h2, k] * m2, dz[n, f, h3, k] * m3)
        for xi in range(6):                              # along rows
            s = Q[xi]
            e0 = D[6 * xi, f]; e1 = D[6 * xi + 1, f]; e2 = D[6 * xi + 2, f]  # noqa: E702
            e3 = D[6 * xi + 3, f]; e4 = D[6 * xi + 4, f]; e5 = D[6 * xi + 5, f]  # noqa: E702
            for i in range(nslots):
                e0[i], e1[i], e2[i], e3[i], e4[i], e5[i] = _a4(s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3])


@numba.njit(**_OPTS)
def train_weights_f4(wt, G, U):
    """``U[xi*6 + nu, p, q] = (G @ g @ G.T)[xi, nu]`` for the 3x3 kernels ``g[i, j] = wt[p, 3i + j, q]`` (as
    :func:`transform_weights`, summed in float64): ``wt`` (P, 9, Q) holds the kernels with their taps in
    the middle, so that every sum runs over a contiguous row of ``Q``. ``G`` (6, 3) float64, ``U`` (36, P, Q)."""
    P, _, Q = wt.shape
    a = np.empty((6, 3, Q))
    for p in range(P):
        for xi in range(6):                              # a = G @ g
            for j in range(3):
                dst, g0, g1, g2 = a[xi, j], wt[p, j], wt[p, 3 + j], wt[p, 6 + j]
                for q in range(Q):
                    dst[q] = G[xi, 0] * g0[q] + G[xi, 1] * g1[q] + G[xi, 2] * g2[q]
        for xi in range(6):                              # a @ G.T
            a0, a1, a2 = a[xi, 0], a[xi, 1], a[xi, 2]
            for nu in range(6):
                dst = U[xi * 6 + nu, p]
                for q in range(Q):
                    dst[q] = a0[q] * G[nu, 0] + a1[q] * G[nu, 1] + a2[q] * G[nu, 2]


@numba.njit(**_OPTS)
def train_weight_grad_f4(dU, G, dwt):
    """``dwt[f, 3i + j, c] = (G.T @ dU[:, f, c] @ G)[i, j]``: the weight gradient from the gradient of the
    transformed weights ``dU`` (36, F, C), summed in float64, with its taps in the middle (F, 9, C), so
    that every sum runs over a contiguous row of ``C``. ``G`` (6, 3) float64."""
    _, F, C = dU.shape
    b = np.empty((3, 6, C))
    for f in range(F):
        for i in range(3):                               # b = G.T @ dU
            for nu in range(6):
                dst = b[i, nu]
                for c in range(C):
                    dst[c] = 0
                for xi in range(6):
                    gi, src = G[xi, i], dU[xi * 6 + nu, f]
                    for c in range(C):
                        dst[c] += gi * src[c]
        for i in range(3):                               # b @ G
            for j in range(3):
                dst = dwt[f, 3 * i + j]
                for c in range(C):
                    dst[c] = 0
                for nu in range(6):
                    gj, src = G[nu, j], b[i, nu]
                    for c in range(C):
                        dst[c] += src[c] * gj


def train_slots(W: int) -> int:
    """Slots a tile row, ``S``, for images ``W`` wide (see above)."""
    T = -(-W // 4)
    return T if W % 4 else T + 1


def train_scratch_shapes(C: int, F: int, R: int, S: int) -> dict:
    """The per-worker scratch of the training F(4x4) drivers (:mod:`~npespcn.fast.compiled`) for blocks of
    ``R`` tile rows of ``S`` slots: ``V`` and ``M`` padded as in
    :func:`scratch_shapes`, ``max(C, F)`` rows a position (``M`` also holds the gradient's transform, and
    the input gradient is a convolution from ``F`` channels to ``C``)."""
    slots = R * S
    return {"Cs": (6, 4, slots + 2), "V": (36, max(C, F) + 1, slots + 16),
            "M": (36, max(C, F) + 1, slots + 16), "Z": (4, 6, slots), "Y": (4, 4 * slots)}
