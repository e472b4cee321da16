"""The training convolution's chunk loops, each run in one numba parallel region.

:mod:`npespcn.fast.chunked` plans a layer (its chunks of stacked rows, its buffers) and runs
the chunks on worker threads. Its Python drivers hand every chunk loop to a thread pool, and each step
of a chunk (im2col, GEMM, bias and activation) returns to Python between calls. The layers of a
training step on small patches (a batch of 16 17x17 patches) are little work each, and waking a pool
thread and taking the GIL back between those steps costs a sizeable part of it: through the thread
pool, the small layers would run slower on two threads than on one.

Here the same loops are compiled as a whole: ``for wid in prange(workers)`` gives worker ``wid`` the
chunks ``wid, wid + workers, ...`` (as in the Python backward drivers), and each chunk calls the same
row kernels (:mod:`~npespcn.fast.rows`) and BLAS itself, through NumPy's OpenBLAS ``cblas_?gemm``
(:func:`~npespcn.fast.blas.gemm`), without the GIL. Under numba's OpenMP threading layer (whose
threads spin briefly before they sleep) starting a region costs a small fraction of a thread-pool
hand-off, so even the small layers can use a second thread.

Every worker writes its own partial sums (``dbs[wid]``, ``dwts[wid]``...), which the caller adds in
worker order, so results are the same on every run with the same thread count. The arrays are the
caller's: ``bounds`` (chunks + 1,) holds the chunks' first stacked rows and then ``N*H``; buffers are
``(workers, size)``, each worker using its own row, reshaped per chunk.

These are training paths only: inference chunks are large (hand-offs cost little next to their work) and keep
the Python drivers, whose results do not depend on the image size.
"""
from __future__ import annotations

import os

import numba
from numba import prange

from .blas import gemm, gemm_rows, gemm_rows_nt_add
from .rows import bias_act_rows, col2im_rows, gather_rows, im2col_rows, kn2row_rows
from .winograd import gradient_transform_f4, input_transform_f4, output_transform_f4

_OPTS = dict(cache=True, nogil=True, error_model="numpy", parallel=True)


@numba.njit(**_OPTS)
def forward_im2col(x, k, w2, b, act, bounds, workers, colbuf, tmpbuf, fn, out):
    """``out = act(conv(x, w) + b)``: per chunk, ``cols = im2col``, ``tmp = w2 @ cols``, bias and
    activation on the way out. ``w2`` (F, C*k*k); ``colbuf`` (workers, >= C*k*k*P), ``tmpbuf``
    (workers, >= F*P) for the largest chunk's P pixels."""
    W = x.shape[3]
    F, K = w2.shape
    for wid in prange(workers):
        for c in range(wid, bounds.size - 1, workers):
            r0, r1 = bounds[c], bounds[c + 1]
            n = (r1 - r0) * W
            cols = colbuf[wid, :K * n].reshape(K, n)
            tmp = tmpbuf[wid, :F * n].reshape(F, n)
            im2col_rows(x, k, r0, r1, cols)
            gemm(fn, False, False, w2, cols, 0.0, tmp)
            bias_act_rows(tmp, b, act, r0, r1, out)


@numba.njit(**_OPTS)
def forward_kn2row(x, k, taps, b, act, bounds, workers, xbuf, ybuf, fn, out):
    """``out = act(conv(x, w) + b)`` by kn2row: per chunk, ``xrows`` = its rows and ``p`` either side,
    ``Y = taps @ xrows`` (every tap's product), then the shifted adds. ``taps`` (F*k*k, C);
    ``xbuf`` (workers, >= C*P'), ``ybuf`` (workers, >= F*k*k*P') for ``P'`` pixels with the halo."""
    N, C, H, W = x.shape
    p = (k - 1) // 2
    FKK = taps.shape[0]
    for wid in prange(workers):
        for c in range(wid, bounds.size - 1, workers):
            r0, r1 = bounds[c], bounds[c + 1]
            ra, rb = max(0, r0 - p), min(N * H, r1 + p)    # the input rows the chunk's outputs read
            n = (rb - ra) * W
            xrows = xbuf[wid, :C * n].reshape(C, n)
            Y = ybuf[wid, :FKK * n].reshape(FKK, n)
            im2col_rows(x, 1, ra, rb, xrows)
            gemm(fn, False, False, taps, xrows, 0.0, Y)
            kn2row_rows(Y, ra, k, b, act, r0, r1, out)


@numba.njit(**_OPTS)
def backward_unfolding_dz(d, y, act, x, k, w_turned, bounds, workers, dz_write, dz, dbs, dwts,
                          colbuf, xbuf, tmpbuf, no_dT, zero_bias, fn, dx):
    """The backward pass by the columns of ``dz`` (``F <= C``). First region: ``dz = d * act'`` into
    ``dz_write`` (``dz`` itself, or empty when there is no activation and ``dz`` is ``d``) and
    ``dbs[wid] +=`` its sums. Second: per chunk ``dzcols = im2col(dz)``, ``xrows = im2col(x, 1)``,
    ``dwts[wid] += dzcols @ xrows.T`` and, when ``dx`` is not empty, ``dx = w_turned @ dzcols``.
    ``dwts`` (workers, F*k*k, C) and ``dbs`` (workers, F) start at zero; ``w_turned`` (C, F*k*k)."""
    W = x.shape[3]
    C = x.shape[1]
    Kt = w_turned.shape[1]
    input_grad = dx.size > 0
    for wid in prange(workers):                     # pass 1: dz, db
        for c in range(wid, bounds.size - 1, workers):
            gather_rows(d, y, act, bounds[c], bounds[c + 1], no_dT, dbs[wid], dz_write)
    for wid in prange(workers):                     # pass 2: dzcols -> dw (and dx); reads dz around a chunk
        for c in range(wid, bounds.size - 1, workers):
            r0, r1 = bounds[c], bounds[c + 1]
            n = (r1 - r0) * W
            cols = colbuf[wid, :Kt * n].reshape(Kt, n)
            xrows = xbuf[wid, :C * n].reshape(C, n)
            im2col_rows(dz, k, r0, r1, cols)
            im2col_rows(x, 1, r0, r1, xrows)
            gemm(fn, False, True, cols, xrows, 1.0, dwts[wid])
            if input_grad:
                tmp = tmpbuf[wid, :C * n].reshape(C, n)
                gemm(fn, False, False, w_turned, cols, 0.0, tmp)
                bias_act_rows(tmp, zero_bias, 0, r0, r1, dx)


@numba.njit(**_OPTS)
def backward_unfolding_x(d, y, act, x, k, w2, tall, bounds, workers, dws, dbs, dxs,
                         colbuf, dTbuf, dcolbuf, no_dz, fn):
    """The backward pass by the columns of ``x`` (the first layer). Per chunk ``cols = im2col(x)``,
    ``dT = d * act'`` in the chunk's columns (``dbs[wid] +=`` its sums), ``dws[wid] += dT @ cols.T``
    (F, K), or ``cols @ dT.T`` (K, F) when not ``tall``; when ``dxs`` is not empty, ``dcols = w2.T @ dT``
    folded into ``dxs[wid]`` by col2im. ``dws``, ``dbs``, ``dxs`` (workers, ...) start at zero."""
    W = x.shape[3]
    F, K = w2.shape
    input_grad = dxs.size > 0
    for wid in prange(workers):
        for c in range(wid, bounds.size - 1, workers):
            r0, r1 = bounds[c], bounds[c + 1]
            n = (r1 - r0) * W
            dT = dTbuf[wid, :F * n].reshape(F, n)
            cols = colbuf[wid, :K * n].reshape(K, n)
            im2col_rows(x, k, r0, r1, cols)
            gather_rows(d, y, act, r0, r1, dT, dbs[wid], no_dz)
            if tall:
                gemm(fn, False, True, dT, cols, 1.0, dws[wid])
            else:
                gemm(fn, False, True, cols, dT, 1.0, dws[wid])
            if input_grad:
                dcols = dcolbuf[wid, :K * n].reshape(K, n)
                gemm(fn, True, False, w2, dT, 0.0, dcols)
                col2im_rows(dcols, k, r0, r1, dxs[wid])


@numba.njit(inline="always", nogil=True, error_model="numpy")
def _tile_rows(g0, nr, th, ns, ys):
    """Tile rows ``g0 .. g0 + nr - 1`` of the batch (``th`` per image): their images and first output rows."""
    for r in range(nr):
        ns[r] = (g0 + r) // th
        ys[r] = 4 * ((g0 + r) % th)


@numba.njit(**_OPTS)
def winograd_forward(x, U, b, act, R, S, workers, ns, ys, Cs, V, M, Z, Y, fn, out):
    """``out = act(conv(x, w) + b)`` for a 3x3 ``w`` by Winograd F(4x4, 3x3), blocks of ``R`` tile rows
    across the batch (:mod:`~npespcn.fast.winograd`, "Training"), block ``i`` to worker ``i % workers``:
    the input transform, 36 GEMMs ``M[q] = U[q] @ V[q]``, the output transform with bias and activation.
    ``S`` slots a tile row (:func:`~npespcn.fast.winograd.train_slots`); ``U`` (36, F, C) the transformed
    weights; scratch one row per worker (``ns``, ``ys`` (workers, R) int64, the rest
    :func:`~npespcn.fast.winograd.train_scratch_shapes`)."""
    N, C, H, W = x.shape
    F = out.shape[1]
    th = (H + 3) // 4
    G = N * th
    for wid in prange(workers):
        for blk in range(wid, (G + R - 1) // R, workers):
            nr = min(R, G - blk * R)
            _tile_rows(blk * R, nr, th, ns[wid], ys[wid])
            input_transform_f4(x, ns[wid], ys[wid], nr, S, Cs[wid], V[wid])
            for q in range(36):
                gemm_rows(fn, F, nr * S, C, U[q], C, V[wid, q], V.shape[3], M[wid, q], M.shape[3])
            output_transform_f4(M[wid], ns[wid], ys[wid], nr, S, b, act, Z[wid], Y[wid], out)


@numba.njit(**_OPTS)
def winograd_weight_grad(d, y, act, x, bounds, dz_write, dz, dbs, no_dT, R, S, workers, ns, ys, Cs, V, M, dUs, fn):
    """The weight gradient of :func:`winograd_forward`'s layer. First region: ``dz = d * act'`` into
    ``dz_write`` (``dz`` itself, or empty when there is no activation and ``dz`` is ``d``) and ``dbs[wid] +=``
    its sums, over the chunks of stacked rows ``bounds``. Second, per block of tile rows: ``V`` from ``x``,
    ``D`` (in ``M``) the gradient's transform of ``dz``, ``dUs[wid, q] += D[q] @ V[q].T`` (F, C) for the
    36 positions; the caller adds the workers' ``dUs`` and turns them back, ``dw = G.T @ dU @ G``."""
    N, C, H, W = x.shape
    F = dz.shape[1]
    th = (H + 3) // 4
    G = N * th
    for wid in prange(workers):                     # pass 1: dz, db
        for c in range(wid, bounds.size - 1, workers):
            gather_rows(d, y, act, bounds[c], bounds[c + 1], no_dT, dbs[wid], dz_write)
    for wid in prange(workers):                     # pass 2: dU
        for blk in range(wid, (G + R - 1) // R, workers):
            nr = min(R, G - blk * R)
            _tile_rows(blk * R, nr, th, ns[wid], ys[wid])
            input_transform_f4(x, ns[wid], ys[wid], nr, S, Cs[wid], V[wid])
            gradient_transform_f4(dz, ns[wid], ys[wid], nr, S, Cs[wid].reshape(6, -1), M[wid])
            for q in range(36):
                gemm_rows_nt_add(fn, F, C, nr * S, M[wid, q], M.shape[3], V[wid, q], V.shape[3], dUs[wid, q], C)


SPIN_COUNT = 1000
"""``GOMP_SPINCOUNT`` given to GNU OpenMP when npespcn starts numba's threads (unless ``GOMP_SPINCOUNT``
or ``OMP_WAIT_POLICY`` is set): how long a thread busy-waits for the next region before it sleeps."""

_started = False
_forked = False


def _note_fork():
    global _forked
    _forked = _forked or _started


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_note_fork)


_fast_layer = None


def usable() -> bool:
    """Whether these drivers can run here: numba's threading layer is OpenMP or TBB, and this process
    was not forked from one in which npespcn had started numba's threads.

    numba's "workqueue" layer, its fallback when neither OpenMP nor TBB can be loaded, starts a region
    more slowly than the thread pool hands a chunk loop over. GNU OpenMP cannot run in a forked child (it
    would print "fork() called from a process already using GNU OpenMP" and terminate), as in a
    ``multiprocessing`` pool started with the "fork" method after training in the parent. In both
    cases npespcn's layers run on the thread pool."""
    global _fast_layer
    if _forked:
        return False
    if _fast_layer is None:
        start_threads()                             # the layer is known once numba's threads started
        _fast_layer = numba.threading_layer() in ("omp", "tbb")
    return _fast_layer


def start_threads() -> None:
    """Start numba's threading layer (``numba.get_num_threads`` does), with :data:`SPIN_COUNT`.

    GNU OpenMP reads ``GOMP_SPINCOUNT`` once, when numba loads it, so npespcn calls this before it
    asks numba anything about threads, and sets the variable for that moment only. OpenMP's default
    (300 000 spins) lets an idle thread hold a core long after a region, which slows a training step
    down whenever another process wants that core; :data:`SPIN_COUNT` spins still catch the next
    layer's region in a training step, then the thread sleeps and gives the core back. No spinning
    at all (``OMP_WAIT_POLICY=passive``) would make every region wake its threads from sleep. If
    numba's threads were already running, this changes nothing."""
    global _started
    if _started:
        return
    ours = "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    if ours:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        numba.get_num_threads()
    finally:
        if ours:
            del os.environ["GOMP_SPINCOUNT"]
    _started = True
