"""Run NumPy's OpenBLAS single-threaded for a block of code, so that npespcn can run its own threads.

The fast convolution (:mod:`npespcn.functional.conv_chunked`) splits an image into row chunks and gives
them to ``numba.get_num_threads()`` worker threads, each doing im2col, one GEMM and the bias/activation
of its own chunks. OpenBLAS must then run every GEMM on the calling thread: its own thread pool spins
and synchronises inside every call, which costs little on an idle machine but makes small GEMMs up to
100x slower when the cores are shared with other processes.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` once, at load time; to change it afterwards one calls its
``openblas_set_num_threads`` (spelled ``scipy_openblas_set_num_threads64_`` in the build that NumPy
wheels bundle). This module finds that function among the loaded libraries (as threadpoolctl does) and
offers :func:`single_threaded_blas`. When it cannot be found (another BLAS, another OS), :data:`AVAILABLE`
is False and callers keep BLAS's own threading.
"""
from __future__ import annotations

import contextlib
import ctypes
import re
import threading

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _find():
    try:
        import numpy  # noqa: F401  (make sure NumPy's BLAS is loaded)
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so[.\d]*)", f.read())))
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            getter = getattr(lib, name.replace("_set_", "_get_"), None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


_FUNCS = _find()
AVAILABLE = _FUNCS is not None
"""Whether NumPy's OpenBLAS thread count can be set from here."""

_lock = threading.Lock()
_depth = 0
_saved = 1


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
    setter, getter = _FUNCS
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
