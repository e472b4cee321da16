"""Run NumPy's OpenBLAS single-threaded for a block of code, so that npespcn can run its own threads.

The fast convolution (:mod:`npespcn.fast.chunked`) splits an image into row chunks and gives
them to ``numba.get_num_threads()`` worker threads, each doing im2col, one GEMM and the bias/activation
of its own chunks. OpenBLAS must then run every GEMM on the calling thread: its own thread pool spins
and synchronises inside every call, and when the cores are shared (with npespcn's own workers, or with
other processes) a small GEMM then waits on threads that are not running.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` once, at load time; to change it afterwards one calls its
``openblas_set_num_threads`` (spelled ``scipy_openblas_set_num_threads64_`` in the build that NumPy
wheels bundle). This module finds that function among the loaded libraries (as threadpoolctl does) and
offers :func:`single_threaded_blas`. When it cannot be found (another BLAS, another OS), :data:`AVAILABLE`
is False and callers keep BLAS's own threading.

It also finds that library's ``cblas_sgemm`` and ``cblas_dgemm`` (:data:`GEMMS`): for the one product
NumPy cannot express, ``C += A @ B`` where B is a window of a larger array with its own row stride,
read in place (:func:`sgemm_add`); and for numba-compiled code (:func:`gemm`), so that the training
drivers of :mod:`npespcn.fast.compiled` call BLAS without returning to Python.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import threading

import numba
import numpy as np

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _openblas_libraries():
    """The OpenBLAS libraries loaded in this process (NumPy's first of all), opened with ctypes."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so[.\d]*)", f.read())))
    except OSError:
        return
    for path in paths:
        try:
            yield ctypes.CDLL(path)
        except OSError:
            continue


def _find():
    for lib in _openblas_libraries():
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            getter = getattr(lib, name.replace("_set_", "_get_"), None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


THREAD_FUNCS = _find()
"""``(set_num_threads, get_num_threads)`` of the loaded OpenBLAS, or None when not found."""
AVAILABLE = THREAD_FUNCS is not None
"""Whether NumPy's OpenBLAS thread count can be set from here."""


def _find_gemms():
    """NumPy's OpenBLAS ``cblas_sgemm`` and ``cblas_dgemm`` as ctypes functions that numba-compiled
    code can call (pointers passed as integers), keyed by dtype; empty if not found."""
    for lib in _openblas_libraries():
        for prefix, integer in (("scipy_cblas_", ctypes.c_int64), ("cblas_", ctypes.c_int64),
                                ("scipy_cblas_", ctypes.c_int), ("cblas_", ctypes.c_int)):
            suffix = "64_" if integer is ctypes.c_int64 else ""
            found = {}
            for letter, dt, scalar in (("s", np.float32, ctypes.c_float), ("d", np.float64, ctypes.c_double)):
                fn = getattr(lib, f"{prefix}{letter}gemm{suffix}", None)
                if fn is not None:
                    i, v, c = integer, ctypes.c_size_t, ctypes.c_int
                    proto = ctypes.CFUNCTYPE(None, c, c, c, i, i, i, scalar, v, i, v, i, scalar, v, i)
                    found[np.dtype(dt)] = proto(ctypes.cast(fn, ctypes.c_void_p).value)
            if len(found) == 2:
                return found
    return {}


GEMMS = _find_gemms()
"""``{float32: cblas_sgemm, float64: cblas_dgemm}`` of NumPy's OpenBLAS, for :func:`sgemm_add` and
:func:`gemm` (empty when not found)."""

SGEMM_AVAILABLE = np.dtype(np.float32) in GEMMS
"""Whether :func:`sgemm_add` can run (NumPy's BLAS is an OpenBLAS whose ``cblas_sgemm`` was found)."""


_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def sgemm_add(a, b, offset: int, n: int, c) -> None:
    """``c[:, :n] += a @ b2`` in float32, where ``b2[kk, j] = b[kk, offset + j]`` (B read in place).

    Parameters
    ----------
    a : ndarray (M, K), float32, C-contiguous
    b : ndarray (K, L), float32, C-contiguous; its rows are B's rows (row stride L), from column
        ``offset`` on, ``n`` columns: ``0 <= offset`` and ``offset + n <= L``
    n : int, number of columns of B and C used
    c : ndarray (M, >= n), float32, C-contiguous

    Checked, since a wrong bound here would read or write outside the arrays.
    """
    M, K = a.shape
    if not (a.dtype == b.dtype == c.dtype == np.float32 and a.flags.c_contiguous and b.flags.c_contiguous
            and c.flags.c_contiguous and b.shape[0] == K and c.shape[0] == M and 0 <= offset
            and 0 <= n <= c.shape[1] and offset + n <= b.shape[1]):
        raise ValueError(f"sgemm_add: bad operands a {a.shape} {a.dtype}, b {b.shape} {b.dtype}, "
                         f"offset {offset}, n {n}, c {c.shape} {c.dtype}")
    GEMMS[np.dtype(np.float32)](_ROW_MAJOR, _NO_TRANS, _NO_TRANS, M, n, K, 1.0, a.ctypes.data, K,
                                b.ctypes.data + 4 * offset, b.shape[1], 1.0, c.ctypes.data, c.shape[1])


@numba.njit(nogil=True, cache=True)
def gemm(fn, trans_a, trans_b, a, b, beta, c):
    """``c = op(a) @ op(b) + beta * c`` from numba-compiled code, where ``op(a)`` is ``a.T`` if
    ``trans_a`` (else ``a``), likewise ``op(b)``; ``fn`` is a function of :data:`GEMMS`.

    All three arrays are 2-D, C-contiguous, of ``fn``'s dtype, of agreeing shapes: ``c`` (M, N),
    ``op(a)`` (M, K), ``op(b)`` (K, N). The caller guarantees that (the drivers of
    :mod:`~npespcn.fast.compiled` build them so); nothing is checked here."""
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    fn(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS, M, N, K, 1.0,
       a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], beta, c.ctypes.data, N)


@numba.njit(nogil=True, cache=True)
def gemm_rows(fn, M, N, K, a, lda, b, ldb, c, ldc):
    """``c[:M, :N] = a[:M, :K] @ b[:K, :N]`` from numba-compiled code, where ``a``, ``b``, ``c`` are 2-D
    C-contiguous arrays of ``fn``'s dtype whose rows are ``lda``, ``ldb``, ``ldc`` apart (arrays padded
    so that their rows do not map to the same cache sets). Nothing is checked (as :func:`gemm`)."""
    fn(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, M, N, K, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
       c.ctypes.data, ldc)


@numba.njit(nogil=True, cache=True)
def gemm_rows_nt_add(fn, M, N, K, a, lda, b, ldb, c, ldc):
    """``c[:M, :N] += a[:M, :K] @ b[:N, :K].T``, the rows of ``a``, ``b``, ``c`` ``lda``, ``ldb``, ``ldc``
    apart (as :func:`gemm_rows`): a weight gradient summed over blocks of columns. Nothing is checked."""
    fn(_ROW_MAJOR, _NO_TRANS, _TRANS, M, N, K, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 1.0,
       c.ctypes.data, ldc)


_lock = threading.Lock()
_depth = 0
_saved = 1


def _reset_in_child():
    """After ``fork``: the child has only the forking thread, so no block of another thread is open
    here: a fresh lock, and BLAS's thread count back to what it was outside every block."""
    global _lock, _depth
    _lock = threading.Lock()
    if _depth and AVAILABLE:
        THREAD_FUNCS[0](_saved)
    _depth = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


@contextlib.contextmanager
def single_threaded_blas():
    """Within the block, NumPy's OpenBLAS runs on the calling thread; restored afterwards.

    Nested and concurrent uses are counted: the first entry saves the thread count, the last exit
    restores it. Does nothing when :data:`AVAILABLE` is False.
    """
    global _depth, _saved
    if not AVAILABLE:
        yield
        return
    setter, getter = THREAD_FUNCS
    with _lock:
        if _depth == 0:
            _saved = getter()
            setter(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                setter(_saved)


def columns_exact(min_mnk: int, gemm=np.dot) -> bool:
    """Whether ``gemm`` (NumPy's float32 matrix product) gives a column of ``A @ B`` the same bits wherever
    that column sits in ``B`` and however wide ``B`` is, for products of at least ``min_mnk`` multiply-adds.

    Tiled inference is bitwise equal to untiled inference exactly when this holds: a tile puts a pixel's
    column at another position of a product of another width. Most OpenBLAS kernels compute every column
    by the same loop, but not all: OpenBLAS 0.3.2x-0.3.31's Haswell sgemm on some AMD EPYC machines
    rounds a column differently by its position (by about 1 ulp). Measured by a few products of the layer
    shapes ESPCN uses (milliseconds); the answer is the same for every call on one machine.
    """
    rng = np.random.default_rng(0)
    for f, k in ((64, 25), (32, 64), (32, 576), (9, 32), (27, 288)):
        a = rng.standard_normal((f, k)).astype(np.float32)
        n0 = -(-min_mnk // (f * k))
        b = rng.standard_normal((k, 4 * n0 + 64)).astype(np.float32)
        whole = gemm(a, b)
        for start, width in ((0, n0), (16, n0 + 5), (37, n0 + 300), (n0 + 3, 2 * n0 + 19)):
            part = gemm(a, np.ascontiguousarray(b[:, start:start + width]))
            if not np.array_equal(part, whole[:, start:start + width]):
                return False
    return True
