"""The fast convolution: im2col of a few rows at a time into a cache-sized buffer, one BLAS GEMM per chunk,
and the bias and the activation applied while the result is scattered back.

Same maths as :mod:`npespcn.functional.conv` (``p = (k - 1) // 2``, ``K = C*k*k``)::

    x     (N, C, H, W)    w2 = w.reshape(F, K)    b (F,)    out (N, F, H, W)

Stack the images' rows: row ``r = n*H + h`` of the batch. A chunk is a run of stacked rows ``[r0, r1)``
(about ``CHUNK_PIXELS`` pixels, whole rows, possibly across images); for every chunk::

    cols  (K, P)   cols[(c*k + i)*k + j, (r - r0)*W + w] = xpad[n, c, h + i, w + j]     (P = pixels)
    tmp   (F, P)   = w2 @ cols                                                        (sgemm)
    out[n, f, h, w] = act(tmp[f, (r - r0)*W + w] + b[f])

The whole-image im2col of :func:`~npespcn.functional.conv.conv2d_forward_reference` is 25x (5x5) or 9x
(3x3) the input: 530 MB for the 64-channel layer of a 640×360 frame. A chunk's is 5 MB, read back while
it is still in cache.

Inference of a layer with more than one input channel (float32, when NumPy's OpenBLAS ``cblas_sgemm``
can be called, :data:`SHIFTED_TAPS`): **shifted taps**, no im2col. The chunk's rows are copied once
into a zero-padded layout (:func:`~npespcn.fast.rows.pad_rows`: ``p`` zeros after every
row, ``p`` rows above and below every image part), in which pixel ``(h + i - p, w + j - p)`` is
pixel ``(h, w)``'s position plus the constant ``(i - p)*Wp + (j - p)`` (``Wp = W + p``). So every
tap is one GEMM that reads the padded input in place, at that offset, and adds into the chunk's
output (``beta = 1``, through :func:`~npespcn.fast.blas.sgemm_add`, since NumPy's ``dot`` can
neither accumulate nor read a window with its own row stride)::

    tmp (F, P'') = b;   for every tap (i, j):   tmp += w[:, :, i, j] (F, C) @ xpad[:, shifted by the tap]
    out[n, f, h, w] = act(tmp[f, position of (h, w)])                                    (unpad_rows)

The ``p`` padding columns per row cost ``p/W`` more GEMM columns, where im2col would copy ``C*k*k``
values per pixel. A pixel still gets the same bits whatever the image size: ``b`` plus its taps in a
fixed order, each a BLAS dot product over ``C`` from the same kernels (GEMMs padded to
:data:`MIN_GEMM_MNK`).

Training forward of a layer with fewer outputs than inputs (``F < C``: 64 -> 32, 32 -> 9) on images
at most :data:`KN2ROW_MAX_WIDTH` wide: **kn2row**. One GEMM gives every kernel tap's product for the
chunk's rows and the ``p`` rows around it, and the taps' products are then added, each shifted by its
offset, with the bias and activation (:func:`~npespcn.fast.rows.kn2row_rows`)::

    xrows (C, P')           the chunk's input rows and p rows either side (im2col with k = 1)
    Y     (F*k*k, P')       = taps (F*k*k, C) @ xrows          taps[(f*k + i)*k + j, c] = w[f, c, i, j]
    out[n, f, h, w] = act(b[f] + sum_{i,j} Y[(f*k + i)*k + j, pixel (h + i - p, w + j - p)])

It copies ``C`` values per pixel instead of ``C*k*k``, and its GEMM has ``F*k*k`` rows instead of
``F``: for the 32 -> 9 layer 81 x 32 @ 32 x P rather than 9 x 288 @ 288 x P, a shape OpenBLAS runs
faster (its B operand is small enough not to stream from beyond L2). The extra ``2p`` rows per chunk
are a small part of a training patch's chunk but a large part of the few-row chunks of a wide image,
where im2col is the faster method (hence :data:`KN2ROW_MAX_WIDTH`); and an inference pixel must get
the same bits whatever the image size, so inference never runs kn2row.

Training forward and backward of the wide 3x3 layers on patches wide enough (:data:`TRAIN_WINOGRAD`,
float32, in the compiled drivers): **Winograd F(4x4, 3x3)** across the batch (:mod:`~npespcn.fast.winograd`,
"Training"). A block is tile rows taken from several patches, so that its 36 GEMMs get about
:data:`TRAIN_WINOGRAD_COLUMNS` columns each; the weight gradient goes through the transposed transforms
(``dU[q] += D[q] @ V[q].T``, then ``dw = G.T @ dU @ G``), the input gradient is the forward of ``dz`` with
the kernel turned::

    V = input transform of x      M[q] = U[q] @ V[q]       out = act(output transform of M + b)
    D = AT.T @ dz tile @ AT       dU[q] += D[q] @ V[q].T   dx = the forward of dz, kernel turned

The backward pass (:func:`conv2d_chunked_backward`) unfolds, chunk by chunk, whichever of the input
``x`` and the output gradient ``dz`` has fewer channels. For the 64 -> 32 and 32 -> 9 layers that is
``dz``, and its columns (the kernel turned by 180 degrees) serve both gradients::

    dzcols (F*k*k, P)   dx = w_turned (C, F*k*k) @ dzcols     dwt (F*k*k, C) += dzcols @ xrows.T

For the first layer (C = 1) it is ``x``: ``dw2 (F, K) += dT @ cols.T``. The forward's columns are not
kept for the backward pass (many frameworks keep them): unfolding again, chunk by chunk in cache,
is cheaper than writing them to main memory and reading them back, and a batch of 64 32x32 patches
has 151 MB of them for the 64-channel layer.

Size independence (tiled inference must be bitwise equal to untiled): every pixel gets the same bias add
and activation, and from BLAS the same dot product of a row of ``w2`` with its column of ``cols``.
OpenBLAS splits a GEMM's work over rows and columns (never over the summed dimension), its K-blocking
depends only on K, and every column is computed by the same micro-kernel loop -- on most machines:
OpenBLAS's Haswell sgemm on some AMD EPYC CPUs rounds a column by its position in the product, and there
only float32 rounding separates a tile from the whole (:func:`size_independent_is_bitwise` measures it). It does switch to other
kernels for small products ("small matrix" and "direct" sgemm, below ``M*N*K = 28*512*512``);
inference never calls it on a product that small: chunks hold at least ``MIN_GEMM_MNK / (F*K)``
pixels (:data:`MIN_GEMM_MNK`), and an image smaller than that gets spare columns whose outputs are
dropped. Training (``size_independent=False``) and the backward pass need no such guarantee, only
determinism, which holds: every sum over chunks and pixels runs in a fixed order.

Threads: the chunks are dealt to ``numba.get_num_threads()`` worker threads (``NUMBA_NUM_THREADS``),
on demand in the inference forward pass, chunk ``c`` to worker ``c % workers`` otherwise (partial sums
must not depend on timing); each worker runs its chunks start to finish (serial numba loops that
release the GIL, a single-threaded GEMM, see :mod:`npespcn.fast.blas`). No barrier inside a
layer, no thread spinning while another is descheduled: that is what keeps it fast on a shared machine.
Two drivers do the dealing:

* **compiled** (training, :data:`PARALLEL_DRIVERS`): the whole chunk loop is one numba ``prange``
  region (:mod:`~npespcn.fast.compiled`) that calls BLAS itself. Starting a region costs far less
  than the thread pool's hand-offs, which would make the small layers of a training step (a batch of
  16 17x17 patches) slower on two threads than on one. Between regions numba's OpenMP threads
  busy-wait for a short while (``GOMP_SPINCOUNT``, which npespcn sets to 1000 spins rather than
  OpenMP's default of 300 000: :func:`~npespcn.fast.compiled.start_threads`) and then sleep, so
  they neither miss the next layer nor hold a core another process wants.
* **thread pool** (inference, and training where the compiled drivers cannot run, including a process
  forked after they ran: GNU OpenMP cannot run there): Python threads that return to Python between
  the steps of a chunk. A hand-off costs little next to the work of an inference chunk. A forked
  child starts a pool of its own.

If NumPy's BLAS cannot be made single-threaded, one worker runs every chunk and BLAS threads the GEMMs.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from . import compiled as _par
from .blas import AVAILABLE as BLAS_CONTROL
from .blas import GEMMS, SGEMM_AVAILABLE, columns_exact, sgemm_add, single_threaded_blas
from .rows import bias_act_rows as _bias_act_rows
from .rows import col2im_rows as _col2im_rows
from .rows import gather_rows as _gather_rows
from .rows import im2col_rows as _im2col_rows
from .rows import kn2row_rows as _kn2row_rows
from .rows import pad_rows as _pad_rows
from .rows import unpad_rows as _unpad_rows
from .vecmath import IDENTITY, activation_code
from .winograd import BLOCK as WINOGRAD_BLOCK
from .winograd import (block_kernel, scratch_shapes, train_scratch_shapes, train_slots, train_weight_grad_f4,
                       train_weights_f4, transform_weights, winograd_matrices)

CHUNK_PIXELS = 2048
"""Pixels per chunk (whole rows, at least one): a 64-channel 3x3 layer's columns then take 4.7 MB."""

MIN_GEMM_MNK = 1 << 23
"""Forward GEMMs are padded to at least this M*N*K, above OpenBLAS's small-matrix and direct-sgemm
thresholds (28*512*512), so every chunk size runs the same kernels."""


@functools.cache
def size_independent_is_bitwise() -> bool:
    """Whether ``size_independent=True`` convolutions give a pixel the same bits whatever the image's size,
    its position in a tile, and the thread count (so tiled inference is bitwise the untiled result):
    true when NumPy's BLAS computes every column of a product alike (:func:`~npespcn.fast.blas.columns_exact`,
    measured once); otherwise the two agree to float32 rounding (about 1e-7 of the output's range)."""
    with single_threaded_blas():
        return columns_exact(MIN_GEMM_MNK)


KN2ROW_MAX_WIDTH = 64
"""Training convolutions with fewer outputs than inputs (F < C) on images at most this wide run by
kn2row (:func:`conv2d_chunked_forward`); wider images by im2col. Inference never runs kn2row."""

SHIFTED_TAPS = SGEMM_AVAILABLE
"""Whether inference runs layers with more than one input channel by shifted taps (float32, when
NumPy's OpenBLAS ``cblas_sgemm`` was found); im2col otherwise."""

SHIFTED_CHUNK_PIXELS = 4096
"""Pixels per chunk for the shifted taps (no column buffer to keep in cache, so larger chunks)."""

PARALLEL_DRIVERS = bool(GEMMS) and BLAS_CONTROL
"""Whether training convolutions run the compiled drivers of :mod:`~npespcn.fast.compiled`
(when NumPy's OpenBLAS ``cblas_?gemm`` was found and numba's threading layer is OpenMP or TBB, see
:func:`parallel_gemm`); the Python drivers on a thread pool otherwise, and always at inference."""

WINOGRAD = SGEMM_AVAILABLE
"""Whether inference may run 3x3 layers by Winograd F(m x m, 3x3) (:func:`winograd_tile`), inside
:func:`image_origin` or given an ``origin`` (float32, NumPy's OpenBLAS ``cblas_sgemm`` found)."""


WINOGRAD_TILES: dict = {(64, 32): 4, (32, 9): 4, (64, 64): 4, (32, 32): 4, (32, 4): 4, (32, 16): 4}
"""``{(C, F): m}``: the 3x3 layer shapes that run by Winograd F(m x m, 3x3) inside :func:`image_origin`,
chosen by measurement (benchmarks/README.md): every ESPCN layer shape of the paper and seven-layer models
at x2/x3/x4, by F(4x4), which took 0.5-0.6x the time of shifted taps on a 640x360 frame."""


TRAIN_WINOGRAD: dict = {(64, 64): (0, 0), (32, 32): (0, 21), (64, 32): (21, 24)}
"""``{(C, F): (forward, backward)}``: the 3x3 layer shapes whose training forward and backward run by
Winograd F(4x4, 3x3) in float32 on images at least that many pixels wide (:func:`train_by_winograd`),
im2col or kn2row otherwise: chosen by measurement on a 2-core Intel Xeon (benchmarks/README.md). Narrow
patches waste more of their tiles (17 pixels take 5 tiles of 4), and the narrowing 64 -> 32 layer's
kn2row is quick there."""

TRAIN_WINOGRAD_COLUMNS = 192
"""Tiles per block (columns of each of its 36 GEMMs) the training Winograd aims at."""


def train_by_winograd(C: int, F: int, k: int, dt, W: int, backward: bool = False) -> bool:
    """Whether the training forward (or, with ``backward``, the backward pass) of a convolution of ``C`` ->
    ``F`` channels, ``k x k`` kernels, on images ``W`` wide runs by Winograd (:data:`TRAIN_WINOGRAD`, in the
    compiled drivers: :func:`parallel_gemm`)."""
    widths = TRAIN_WINOGRAD.get((C, F))
    return (WINOGRAD and widths is not None and k == 3 and np.dtype(dt) == np.float32
            and W >= widths[backward] and parallel_gemm(dt) is not None)


def winograd_tile(C: int, F: int) -> int:
    """The Winograd output tile side ``m`` for a 3x3 inference layer of ``C`` inputs and ``F`` outputs,
    0 for shifted taps (:data:`WINOGRAD_TILES`): by the layer's shape alone, so that a pixel's bits do
    not depend on the image's size."""
    return WINOGRAD_TILES.get((C, F), 0)


def inference_reach(C: int, F: int, k: int, dtype=np.float32) -> int:
    """How many input pixels on each side decide an inference output pixel's **bits**: ``(k - 1) / 2``,
    or ``m`` for a 3x3 layer that runs by Winograd F(m x m, 3x3) inside :func:`image_origin` (a pixel is
    computed from its whole tile's input, which reaches ``m`` pixels from the tile's far side). A crop
    keeps the whole image's bits this far from its cuts; a tiled inference adds up its layers'."""
    m = winograd_tile(C, F) if WINOGRAD and k == 3 and np.dtype(dtype) == np.float32 else 0
    return m if m else (k - 1) // 2


_ORIGIN = contextvars.ContextVar("npespcn_image_origin", default=None)


@contextlib.contextmanager
def image_origin(y: int = 0, x: int = 0):
    """Within the block, inference convolutions take their input to sit at ``(y, x)`` of an image and
    may run 3x3 layers by Winograd, on tiles aligned to that image's coordinates (:data:`WINOGRAD`).

    A Winograd pixel's value depends on where it lies in its tile; aligned to the image, it is the same
    for the whole image and for any crop of it that says where it lies: ``image_origin(0, 0)`` for a
    whole image, ``image_origin(y0, x0)`` for the crop ``image[y0:, x0:]``. Outside such a block (and
    for crops that do not say) inference runs shifted taps, whose pixels do not depend on the crop.

    Examples::

        >>> with image_origin(0, 0):
        ...     y = model.infer(x)              # doctest: +SKIP
    """
    token = _ORIGIN.set((int(y), int(x)))
    try:
        yield
    finally:
        _ORIGIN.reset(token)


# --------------------------------------------------------------------------------------------------
# Drivers: each worker owns its buffers and runs its chunks serially. Forward: a free worker takes the
# next chunk (a chunk's pixels do not depend on who computes them). Backward: chunk c goes to worker
# c % workers, so that every worker's partial sums, hence the result, are the same on every run.
# --------------------------------------------------------------------------------------------------
_pool = None
_pool_size = 0


def _forget_the_pool():
    """In a child made by ``fork``: the parent's pool threads do not exist here, and work handed to them
    would wait forever. The child's first layer starts a pool of its own."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_pool)


def _map_workers(fn, workers: int):
    """``[fn(0), ..., fn(workers - 1)]``, run on a shared thread pool (BLAS single-threaded meanwhile)."""
    global _pool, _pool_size
    if workers == 1:
        with single_threaded_blas():                    # NUMBA_NUM_THREADS=1 means one thread in all
            return [fn(0)]
    if _pool is None or _pool_size < workers - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(workers - 1, thread_name_prefix="npespcn-conv"), workers - 1
    with single_threaded_blas():
        others = [_pool.submit(fn, wid) for wid in range(1, workers)]
        try:
            first = fn(0)                               # the calling thread is worker 0
        finally:
            wait(others)                                # never leave a worker running on our buffers
        return [first] + [f.result() for f in others]


def run_concurrently(*calls):
    """``[call() for call in calls]``, run up to ``NUMBA_NUM_THREADS`` at a time on the worker threads (the
    calling thread is one of them), in any order; for calls that release the GIL (numba ``nogil`` kernels).

    Examples::

        >>> run_concurrently(lambda: 1, lambda: 2)
        [1, 2]
    """
    results = [None] * len(calls)
    deal = _dealer(len(calls))

    def work(wid):
        while (c := deal()) is not None:
            results[c] = calls[c]()

    _map_workers(work, min(numba.get_num_threads(), len(calls)) or 1)
    return results


_scratch = threading.local()


_REUSE_BELOW = 4 << 20
"""Scratch buffers smaller than this (bytes) are kept for the thread's next call; larger ones are not."""


def _buffer(name: str, n: int, dt, reuse_large: bool = False) -> np.ndarray:
    """A 1-D scratch array of ``n`` elements of ``dt`` (contents undefined).

    Below :data:`_REUSE_BELOW` (or always, with ``reuse_large``) it is owned by the calling thread and
    reused by its next call: fresh buffers per layer call would cost page faults every training step. A
    thread runs one chunk loop at a time, so its buffers are its own. Larger chunk buffers are allocated
    per call: NumPy asks the kernel for huge pages for those, so a fresh one costs few page faults and
    keeping it would gain nothing."""
    dt = np.dtype(dt)
    if n * dt.itemsize >= _REUSE_BELOW and not reuse_large:
        return np.empty(n, dtype=dt)
    buf = getattr(_scratch, name, None)
    if buf is None or buf.nbytes < n * dt.itemsize:
        buf = np.empty(max(n * dt.itemsize, 1), dtype=np.uint8)
        setattr(_scratch, name, buf)
    return buf[:n * dt.itemsize].view(dt)


def _dealer(n: int):
    """A thread-safe function returning 0, 1, ..., n - 1 and then None (chunks on demand)."""
    lock, state = threading.Lock(), [0]

    def deal():
        with lock:
            i = state[0]
            state[0] = i + 1
        return i if i < n else None
    return deal


def plan_chunks(N: int, H: int, W: int, min_pixels: int = 0, workers: int = 1, pixels: int | None = None):
    """Runs of whole stacked rows, about ``pixels`` (default :data:`CHUNK_PIXELS`) each, at least
    ``min_pixels``.

    The chunks are of equal size (give or take a row) and, when there are enough rows, their number is a
    multiple of ``workers``: three chunks on two threads would take as long as four."""
    R = N * H
    min_rows = max(1, -(-min_pixels // W))
    n = -(-R // max(min_rows, (CHUNK_PIXELS if pixels is None else pixels) // W))
    n = max(1, min(-(-n // workers) * workers, R // min_rows))
    rows = -(-R // n)
    return [(r0, min(R, r0 + rows)) for r0 in range(0, R, rows)]


def _max_workers() -> int:
    """numba's thread count (``NUMBA_NUM_THREADS``), if BLAS can be kept off its own threads.

    Without that control, one worker runs every chunk and BLAS threads the GEMMs its own way."""
    if not BLAS_CONTROL:
        return 1
    _par.start_threads()                            # before numba's threads start any other way
    return max(1, numba.get_num_threads())


def parallel_gemm(dt):
    """The ``cblas_?gemm`` for :mod:`~npespcn.fast.compiled`'s drivers in ``dt``, or None
    when the Python drivers are to run (see :func:`~npespcn.fast.compiled.usable`)."""
    return GEMMS.get(np.dtype(dt)) if PARALLEL_DRIVERS and _par.usable() else None


def _run_parallel(driver, *args):
    """``driver(*args)``, one of :mod:`~npespcn.fast.compiled`'s, with BLAS single-threaded
    (each of numba's threads calls it for its own chunks)."""
    with single_threaded_blas():
        driver(*args)


def _worker_buffer(name: str, workers: int, n: int, dt) -> np.ndarray:
    """A (workers, n) scratch array of the calling thread, kept for its next call (a parallel
    driver's buffers: one row per worker)."""
    return _buffer(name, workers * n, dt, reuse_large=True).reshape(workers, n)


def _bounds(chunks) -> np.ndarray:
    """The chunks' first rows, then the last chunk's end: ``bounds[c], bounds[c + 1]`` is chunk ``c``."""
    return np.array([r0 for r0, _ in chunks] + [chunks[-1][1]], dtype=np.int64)


def out_array(out, shape, dt):
    """``out`` if it is a C-contiguous array of ``shape`` and ``dt`` to write into, a new array if None."""
    if out is None:
        return np.empty(shape, dtype=dt)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != dt \
            or not out.flags.c_contiguous or not out.flags.writeable:
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be a writeable C-contiguous {dt} array of shape {tuple(shape)}, got {got}")
    return out


def conv2d_chunked_forward(x, w, b, activation: str = "identity", size_independent: bool = True, out=None,
                           origin=None):
    """``act(conv(x, w) + b)`` chunk by chunk (see the module docstring): im2col, or in training kn2row
    when ``F < C`` and the image is at most :data:`KN2ROW_MAX_WIDTH` wide; at inference by shifted taps
    when ``C > 1`` (float32, :data:`SHIFTED_TAPS`).

    Parameters
    ----------
    x : ndarray (N, C, H, W)
    w : ndarray (F, C, k, k), k odd
    b : ndarray (F,)
    activation : one of :data:`~npespcn.fast.vecmath.ACT_CODES`
    size_independent : bool
        Pad every GEMM to :data:`MIN_GEMM_MNK` and choose the method by the layer's shape alone (the
        default: shifted taps or im2col), so that a pixel's value does not depend on the image size;
        False (training) lets small images use small GEMMs, and so more threads, and narrow ones kn2row.
    out : ndarray (N, F, H, W) or None
        Write the result here (C-contiguous, the result's dtype; it must not overlap ``x``) instead of
        a new array: a training step that reuses its arrays saves the page faults of fresh ones.
    origin : (y, x) or None
        Where ``x`` lies in its image (default: as :func:`image_origin` says, or unknown): when known,
        a float32 3x3 inference layer may run by Winograd on tiles aligned to the image
        (:func:`winograd_tile`, :mod:`~npespcn.fast.winograd`).

    Returns
    -------
    out : ndarray (N, F, H, W), dtype ``result_type(x, w)``
    """
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    K = C * k * k
    dt = np.result_type(x, w)
    x = np.ascontiguousarray(x, dtype=dt)
    b = np.ascontiguousarray(b, dtype=dt)
    code = activation_code(activation, dt)
    out = out_array(out, (N, F, H, W), dt)
    if not size_independent and train_by_winograd(C, F, k, dt, W):
        _forward_winograd_train(x, np.ascontiguousarray(w, dtype=dt), b, code, out)
        return out
    if not size_independent and F < C and k > 1 and W <= KN2ROW_MAX_WIDTH:
        _forward_kn2row(x, np.ascontiguousarray(w, dtype=dt), b, code, out)
        return out
    origin = _ORIGIN.get() if origin is None else origin
    m = winograd_tile(C, F) if size_independent and WINOGRAD and k == 3 and dt == np.float32 else 0
    if m and origin is not None:
        _forward_winograd(x, np.ascontiguousarray(w, dtype=dt), b, code, out, m, origin)
        return out
    if size_independent and SHIFTED_TAPS and C > 1 and k > 1 and dt == np.float32:
        _forward_shifted(x, np.ascontiguousarray(w, dtype=dt), b, code, out)
        return out
    w2 = np.ascontiguousarray(w.reshape(F, K), dtype=dt)
    min_cols = -(-MIN_GEMM_MNK // (F * K)) if size_independent else 0
    chunks = plan_chunks(N, H, W, min_cols, _max_workers())  # padding needed only if the image is smaller
    workers = min(_max_workers(), len(chunks))
    cap = max(max(r1 - r0 for r0, r1 in chunks) * W, min_cols)
    fn = None if size_independent else parallel_gemm(dt)
    if fn is not None:
        _run_parallel(_par.forward_im2col, x, k, w2, b, code, _bounds(chunks), workers,
                      _worker_buffer("pcols", workers, K * cap, dt), _worker_buffer("ptmp", workers, F * cap, dt),
                      fn, out)
        return out
    deal = _dealer(len(chunks))

    def work(wid):
        colbuf = _buffer("cols", K * cap, dt)
        tmpbuf = _buffer("tmp", F * cap, dt)
        while (c := deal()) is not None:            # whoever is free takes the next chunk
            r0, r1 = chunks[c]
            ncols = max((r1 - r0) * W, min_cols)
            cols = colbuf[:K * ncols].reshape(K, ncols)
            cols[:, (r1 - r0) * W:] = 0                 # spare columns stay finite (their outputs are dropped)
            tmp = tmpbuf[:F * ncols].reshape(F, ncols)
            _im2col_rows(x, k, r0, r1, cols)
            np.dot(w2, cols, out=tmp)
            _bias_act_rows(tmp, b, code, r0, r1, out)

    _map_workers(work, workers)
    return out


def _train_winograd_plan(N, H, W, C, F, dt):
    """Blocks of tile rows for the training Winograd drivers: ``(R, S, workers, scratch)``."""
    th, S = -(-H // 4), train_slots(W)
    G = N * th
    workers = min(_max_workers(), G)
    blocks = max(1, round(G * S / TRAIN_WINOGRAD_COLUMNS))
    blocks = min(G, -(-blocks // workers) * workers)
    R = -(-G // blocks)
    scratch = [_worker_buffer("pw_" + name, workers, math.prod(shape), dt).reshape((workers,) + shape)
               for name, shape in train_scratch_shapes(C, F, R, S).items()]
    rows = [_worker_buffer(name, workers, R, np.int64) for name in ("pw_ns", "pw_ys")]
    return R, S, workers, rows + scratch


_G4 = np.ascontiguousarray(winograd_matrices(4)[1])


def _train_weights(w, turned=False):
    """``U`` (36, F, C) of F(4x4, 3x3) for 3x3 weights ``w`` (F, C, 3, 3); ``turned``: (36, C, F), those of
    the input gradient's convolution, ``w[f, c]`` turned by 180 degrees
    (:func:`~npespcn.fast.winograd.train_weights_f4`)."""
    F, C = w.shape[:2]
    taps = (w[:, :, ::-1, ::-1].reshape(F, C, 9).transpose(1, 2, 0) if turned
            else w.reshape(F, C, 9).transpose(0, 2, 1))
    U = np.empty((36,) + (taps.shape[0], taps.shape[2]), dtype=w.dtype)
    train_weights_f4(np.ascontiguousarray(taps), _G4, U)
    return U


def _forward_winograd_train(x, w, b, code, out):
    """The training forward of :func:`conv2d_chunked_forward` by F(4x4, 3x3) across the batch."""
    N, C, H, W = x.shape
    F = w.shape[0]
    R, S, workers, (ns, ys, Cs, V, M, Z, Y) = _train_winograd_plan(N, H, W, C, F, x.dtype)
    _run_parallel(_par.winograd_forward, x, _train_weights(w), b, code, R, S, workers, ns, ys, Cs, V, M, Z,
                  Y, parallel_gemm(x.dtype), out)


def _forward_shifted(x, w, b, code, out):
    """The inference forward of :func:`conv2d_chunked_forward` by shifted taps (see there)."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    p = (k - 1) // 2
    Wp = W + p
    taps = [np.ascontiguousarray(w[:, :, i, j]) for i in range(k) for j in range(k)]    # (F, C) each
    min_cols = -(-MIN_GEMM_MNK // (F * C))
    chunks = plan_chunks(N, H, W, min_cols, _max_workers(), SHIFTED_CHUNK_PIXELS)
    workers = min(_max_workers(), len(chunks))

    def span(r0, r1):
        """A chunk's GEMM columns: its rows at stride Wp and the 2p halo rows between consecutive image
        parts, at least min_cols (the padded input holds p*Wp + p more on either side)."""
        parts = (r1 - 1) // H - r0 // H + 1
        return max(((r1 - r0) + 2 * p * (parts - 1)) * Wp, min_cols)
    cap = max(span(r0, r1) for r0, r1 in chunks)
    first = p * Wp + p                              # xp's position of the first output pixel
    deal = _dealer(len(chunks))

    def work(wid):
        xpbuf = _buffer("padded", C * (cap + 2 * first), np.float32)
        tmpbuf = _buffer("tmp", F * cap, np.float32)
        while (c := deal()) is not None:
            r0, r1 = chunks[c]
            cols = span(r0, r1)
            xp = xpbuf[:C * (cols + 2 * first)].reshape(C, cols + 2 * first)   # the taps read all of it
            tmp = tmpbuf[:F * cols].reshape(F, cols)
            _pad_rows(x, p, r0, r1, xp)
            tmp[...] = b[:, None]
            for t, tap in enumerate(taps):          # tap (i, j) reads every pixel's (i - p, j - p) neighbour
                i, j = divmod(t, k)
                sgemm_add(tap, xp, first + (i - p) * Wp + (j - p), cols, tmp)
            _unpad_rows(tmp, p, code, r0, r1, out)

    _map_workers(work, workers)


def _forward_winograd(x, w, b, code, out, m, origin):
    """The inference forward of :func:`conv2d_chunked_forward` by Winograd F(m x m, 3x3): blocks of
    tiles aligned to the image's coordinates, dealt to the workers (see :mod:`~npespcn.fast.winograd`)."""
    N, C, H, W = x.shape
    F = w.shape[0]
    alpha = m + 2
    R, T = WINOGRAD_BLOCK[m]
    oy, ox = origin
    AT, _, BT = (a.astype(np.float32) for a in winograd_matrices(m))
    U = np.ascontiguousarray(transform_weights(w, m).reshape(alpha * alpha, F, C))
    by = range(oy // (R * m), (oy + H - 1) // (R * m) + 1)        # the block rows and columns the array meets
    bx = range(ox // (T * m), (ox + W - 1) // (T * m) + 1)
    blocks = [(n, i * R * m - oy, j * T * m - ox) for n in range(N) for i in by for j in bx]
    workers = min(_max_workers(), len(blocks))
    fn = GEMMS[np.dtype(np.float32)]
    deal = _dealer(len(blocks))
    block = block_kernel(m)

    def work(wid):
        bufs = [_buffer("w" + name, int(np.prod(shape)), np.float32, True).reshape(shape)
                for name, shape in scratch_shapes(m, C, F).items()]
        while (c := deal()) is not None:
            n, y0, x0 = blocks[c]
            block(x, n, y0, x0, m, R, T, BT, U, AT, b, code, fn, *bufs, out)

    _map_workers(work, workers)


def _forward_kn2row(x, w, b, code, out):
    """The training forward of :func:`conv2d_chunked_forward` by kn2row, for ``F < C`` (see there)."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    p = (k - 1) // 2
    R = N * H
    taps = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F * k * k, C)    # taps[(f*k + i)*k + j, c]
    chunks = plan_chunks(N, H, W, 0, _max_workers())
    workers = min(_max_workers(), len(chunks))
    cap = (max(r1 - r0 for r0, r1 in chunks) + 2 * p) * W
    fn = parallel_gemm(x.dtype)
    if fn is not None:
        _run_parallel(_par.forward_kn2row, x, k, taps, b, code, _bounds(chunks), workers,
                      _worker_buffer("pxrows", workers, C * cap, x.dtype),
                      _worker_buffer("ptaps", workers, F * k * k * cap, x.dtype), fn, out)
        return
    deal = _dealer(len(chunks))

    def work(wid):
        xbuf = _buffer("xrows", C * cap, x.dtype)
        ybuf = _buffer("taps", F * k * k * cap, x.dtype)
        while (c := deal()) is not None:
            r0, r1 = chunks[c]
            ra, rb = max(0, r0 - p), min(R, r1 + p)    # the input rows the chunk's outputs read
            xrows = xbuf[:C * (rb - ra) * W].reshape(C, (rb - ra) * W)
            Y = ybuf[:F * k * k * (rb - ra) * W].reshape(F * k * k, (rb - ra) * W)
            _im2col_rows(x, 1, ra, rb, xrows)
            np.dot(taps, xrows, out=Y)
            _kn2row_rows(Y, ra, k, b, code, r0, r1, out)

    _map_workers(work, workers)


def conv2d_chunked_backward(dout, x, w, input_grad: bool = True, y=None, activation: str = "identity", out=None):
    """Gradients of :func:`conv2d_chunked_forward`, with an identity, relu or tanh activation.

    With an activation, the gradient before it, ``dz = dout * act'``, comes from the output ``y``
    (``act'`` is ``y > 0`` or ``1 - y**2``). The gradients are sums over pixels of products of ``dz``
    and ``x``; which of the two is unfolded into columns is chosen by their channel counts.

    **Unfolding dz** (``F <= C``, or ``F < C`` when ``dx`` is not wanted; the 64 -> 32 and 32 -> 9
    layers). ``dzcols`` (F*k*k, P), the columns of ``dz`` with the kernel turned by 180 degrees, give
    both gradients::

        dzcols[(f*k + i)*k + j, q] = dz_pad[n, f, h + i, w + j]            (q = the pixel (n, h, w))
        dx[n, c, h, w]             = sum_{f,i,j} w[f, c, k-1-i, k-1-j] * dzcols[(f*k + i)*k + j, q]
        dw[f, c, k-1-i, k-1-j]     = sum_q dzcols[(f*k + i)*k + j, q] * x[n, c, h, w]

    per chunk: ``dx = w_turned (C, F*k*k) @ dzcols`` and ``dwt (F*k*k, C) += dzcols @ xrows.T``, where
    ``xrows`` (C, P) is the chunk's input (im2col with k = 1). A first pass over the chunks writes
    ``dz`` (when there is an activation) and sums ``db``, since a chunk's columns read ``dz`` in the
    rows around it. ``F*k*k`` values per pixel are unfolded, once, instead of ``C*k*k`` for ``dw``
    plus ``F*k*k`` again for ``dx``.

    **Unfolding x** (the first layer, C = 1)::

        dT    (F, P)   dT[f, q] = dz[n, f, h, w]      db += sum over the chunk of dT
        dw2  += dT @ cols.T                           (F, K), or as (cols @ dT.T).T when K > F
        dcols = w2.T @ dT, folded into dx by col2im   (only if dx is wanted)

    Every worker sums its chunks into its own arrays (chunk ``c`` to worker ``c % workers``), added in
    worker order afterwards, so the result is the same on every run with the same ``NUMBA_NUM_THREADS``;
    every ``dx`` element is summed in a fixed order.

    Parameters
    ----------
    dout : ndarray (N, F, H, W)
    x : ndarray (N, C, H, W), the forward's input
    w : ndarray (F, C, k, k)
    input_grad : bool
        False skips ``dx`` (returned as None): the first layer's input needs no gradient.
    y : ndarray (N, F, H, W), the forward's output; needed with ``activation`` "relu" or "tanh"
    activation : "identity", "relu" or "tanh"
    out : ndarray (N, C, H, W) or None
        Write ``dx`` here instead of a new array (as in :func:`conv2d_chunked_forward`).

    Returns
    -------
    dx (N, C, H, W) or None, dw (F, C, k, k), db (F,), all of ``x``'s dtype
    """
    F, C = w.shape[:2]
    dt = x.dtype
    d = np.ascontiguousarray(dout, dtype=dt)
    code = {"identity": 0, "relu": 1, "tanh": 2}[activation]
    y = d if code == IDENTITY else np.ascontiguousarray(y, dtype=dt)
    w = np.ascontiguousarray(w, dtype=dt)
    if train_by_winograd(C, F, w.shape[2], dt, x.shape[3], backward=True):
        dx, dw, db = backward_winograd(d, y, code, x, w, input_grad, out)
    elif (F <= C if input_grad else F < C):
        dx, dw, db = backward_unfolding_dz(d, y, code, x, w, input_grad, out)
    else:
        dx, dw, db = backward_unfolding_x(d, y, code, x, w, input_grad, out)
    return dx, dw, db.astype(dt)


def _sum_in_order(parts):
    """``parts[0] + parts[1] + ...``, in that order (into ``parts[0]``)."""
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


def backward_unfolding_dz(d, y, code, x, w, input_grad, out):
    """:func:`conv2d_chunked_backward` by the columns of ``dz`` (see there)."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    Kt = F * k * k
    dt = x.dtype
    chunks = plan_chunks(N, H, W, 0, _max_workers())
    workers = min(_max_workers(), len(chunks))
    cap = max(r1 - r0 for r0, r1 in chunks) * W
    no_dT, no_dz = np.empty((0, 0), dtype=dt), np.empty((0, 0, 0, 0), dtype=dt)
    # dz: the calling thread's scratch, reused; without an activation it is dout itself.
    dz = _buffer("dz", N * F * H * W, dt, reuse_large=True).reshape(N, F, H, W) if code else d
    w_turned = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]).reshape(C, Kt)
    zero_bias = np.zeros(C, dtype=dt)
    dx = out_array(out, (N, C, H, W), dt) if input_grad else None
    fn = parallel_gemm(dt)
    if fn is not None:
        dbs, dwts = np.zeros((workers, F)), np.zeros((workers, Kt, C), dtype=dt)
        _run_parallel(_par.backward_unfolding_dz, d, y, code, x, k, w_turned, _bounds(chunks), workers,
                      dz if code else no_dz, dz, dbs, dwts, _worker_buffer("pcols", workers, Kt * cap, dt),
                      _worker_buffer("pxrows", workers, C * cap, dt),
                      _worker_buffer("ptmp", workers, C * cap if input_grad else 0, dt),
                      no_dT, zero_bias, fn, dx if input_grad else no_dz)
        return dx, _turn_back(_sum_in_order(list(dwts)), F, k, C), _sum_in_order(list(dbs))

    def grad_z(wid):                                # pass 1: dz = dout * act', db
        db = np.zeros(F, dtype=np.float64)
        for c in range(wid, len(chunks), workers):
            r0, r1 = chunks[c]
            _gather_rows(d, y, code, r0, r1, no_dT, db, dz if code else no_dz)
        return db

    db = _sum_in_order(_map_workers(grad_z, workers))

    def work(wid):                                  # pass 2: dzcols -> dw (and dx)
        dwt = np.zeros((Kt, C), dtype=dt)           # dwt[(f*k + i)*k + j, c] = dw[f, c, k-1-i, k-1-j]
        colbuf = _buffer("cols", Kt * cap, dt)
        xbuf = _buffer("xrows", C * cap, dt)
        tmpbuf = _buffer("tmp", C * cap, dt) if input_grad else None
        for c in range(wid, len(chunks), workers):
            r0, r1 = chunks[c]
            ncols = (r1 - r0) * W
            cols = colbuf[:Kt * ncols].reshape(Kt, ncols)
            xrows = xbuf[:C * ncols].reshape(C, ncols)
            _im2col_rows(dz, k, r0, r1, cols)
            _im2col_rows(x, 1, r0, r1, xrows)
            dwt += np.dot(cols, xrows.T)
            if input_grad:
                tmp = tmpbuf[:C * ncols].reshape(C, ncols)
                np.dot(w_turned, cols, out=tmp)
                _bias_act_rows(tmp, zero_bias, 0, r0, r1, dx)
        return dwt

    return dx, _turn_back(_sum_in_order(_map_workers(work, workers)), F, k, C), db


def backward_winograd(d, y, code, x, w, input_grad, out):
    """:func:`conv2d_chunked_backward` of a 3x3 layer by Winograd F(4x4, 3x3): ``dz``, ``db``, the weight
    gradient through the transforms (``dU[q] = sum D[q] @ V[q].T``, ``dw = G.T @ dU @ G``), and ``dx``
    as the convolution of ``dz`` with the kernel turned (``w_turned[c, f] = w[f, c]`` rotated by 180
    degrees), by the training forward."""
    N, C, H, W = x.shape
    F = w.shape[0]
    dt = x.dtype
    fn = parallel_gemm(dt)
    chunks = plan_chunks(N, H, W, 0, _max_workers())
    R, S, workers, (ns, ys, Cs, V, M, Z, Y) = _train_winograd_plan(N, H, W, C, F, dt)
    dz = _buffer("dz", N * F * H * W, dt, reuse_large=True).reshape(N, F, H, W) if code else d
    dbs = np.zeros((workers, F))
    dUs = np.zeros((workers, 36, F, C), dtype=dt)
    _run_parallel(_par.winograd_weight_grad, d, y, code, x, _bounds(chunks),
                  dz if code else np.empty((0, 0, 0, 0), dtype=dt), dz, dbs,
                  np.empty((0, 0), dtype=dt), R, S, workers, ns, ys, Cs, V, M, dUs, fn)
    dwt = np.empty((F, 9, C), dtype=dt)
    train_weight_grad_f4(_sum_in_order(list(dUs)), _G4, dwt)
    dw = np.ascontiguousarray(dwt.transpose(0, 2, 1)).reshape(F, C, 3, 3)
    dx = None
    if input_grad:
        dx = out_array(out, (N, C, H, W), dt)
        _run_parallel(_par.winograd_forward, dz, _train_weights(w, turned=True), np.zeros(C, dtype=dt), IDENTITY, R,
                      S, workers, ns, ys, Cs, V, M, Z, Y, fn, dx)
    return dx, dw, _sum_in_order(list(dbs))


def _turn_back(dwt, F, k, C):
    """``dw`` (F, C, k, k) from ``dwt[(f*k + i)*k + j, c] = dw[f, c, k-1-i, k-1-j]``."""
    return np.ascontiguousarray(dwt.reshape(F, k, k, C)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2))


def backward_unfolding_x(d, y, code, x, w, input_grad, out):
    """:func:`conv2d_chunked_backward` by the columns of ``x`` (see there)."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    K = C * k * k
    dt = x.dtype
    chunks = plan_chunks(N, H, W, 0, _max_workers())
    workers = min(_max_workers(), len(chunks))
    cap = max(r1 - r0 for r0, r1 in chunks) * W
    no_dz = np.empty((0, 0, 0, 0), dtype=dt)
    w2t = w.reshape(F, K).T                         # (K, F), Fortran order: no copy in BLAS
    # dw2 (F, K) or its transpose, whichever puts the larger side first: the orientation OpenBLAS runs faster.
    tall = F >= K

    def work(wid):
        dw = np.zeros((F, K) if tall else (K, F), dtype=dt)
        db = np.zeros(F, dtype=np.float64)
        dx = np.zeros((N, C, H, W), dtype=dt) if input_grad else None
        colbuf = _buffer("cols", K * cap, dt)
        dTbuf = _buffer("tmp", F * cap, dt)
        dcolbuf = _buffer("dcols", K * cap, dt) if input_grad else None
        for c in range(wid, len(chunks), workers):
            r0, r1 = chunks[c]
            ncols = (r1 - r0) * W
            dT = dTbuf[:F * ncols].reshape(F, ncols)
            cols = colbuf[:K * ncols].reshape(K, ncols)
            _im2col_rows(x, k, r0, r1, cols)
            _gather_rows(d, y, code, r0, r1, dT, db, no_dz)
            dw += np.dot(dT, cols.T) if tall else np.dot(cols, dT.T)
            if input_grad:
                dcols = dcolbuf[:K * ncols].reshape(K, ncols)
                np.dot(w2t, dT, out=dcols)
                _col2im_rows(dcols, k, r0, r1, dx)
        return dw, db, dx

    fn = parallel_gemm(dt)
    if fn is not None:
        dws = np.zeros((workers, F, K) if tall else (workers, K, F), dtype=dt)
        dbs = np.zeros((workers, F))
        dxs = np.zeros((workers, N, C, H, W) if input_grad else (workers, 0, 0, 0, 0), dtype=dt)
        _run_parallel(_par.backward_unfolding_x, d, y, code, x, k, np.ascontiguousarray(w.reshape(F, K)), tall,
                      _bounds(chunks), workers, dws, dbs, dxs, _worker_buffer("pcols", workers, K * cap, dt),
                      _worker_buffer("ptmp", workers, F * cap, dt),
                      _worker_buffer("pdcols", workers, K * cap if input_grad else 0, dt), no_dz, fn)
        parts = [(dws[i], dbs[i], dxs[i] if input_grad else None) for i in range(workers)]
    else:
        parts = _map_workers(work, workers)
    dw = _sum_in_order([p[0] for p in parts])
    db = _sum_in_order([p[1] for p in parts])
    dx = _sum_in_order([p[2] for p in parts]) if input_grad else None
    if dx is not None and out is not None:
        np.copyto(out_array(out, (N, C, H, W), dt), dx)
        dx = out
    return dx, np.ascontiguousarray(dw if tall else dw.T).reshape(w.shape), db
