"""Which implementation of every kernel runs: the readable NumPy ``"reference"`` or the ``"numba"`` fast path.

Every kernel module in :mod:`npespcn.functional` keeps both forms behind one signature. The default is
``"numba"``; set the environment variable ``NPESPCN_BACKEND=reference`` or call :func:`set_backend` to
run the reference code instead (slow, but easy to step through in a debugger).
"""
from __future__ import annotations

import contextlib
import os

BACKENDS = ("reference", "numba")


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


_current = _check(os.environ.get("NPESPCN_BACKEND", "numba"))


def get_backend() -> str:
    """Return the name of the backend used when a kernel is called with ``backend=None``."""
    return _current


def set_backend(name: str) -> None:
    """Make ``name`` (``"reference"`` or ``"numba"``) the default backend."""
    global _current
    _current = _check(name)


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: run the enclosed code with backend ``name``, then restore the previous one."""
    global _current
    previous, _current = _current, _check(name)
    try:
        yield
    finally:
        _current = previous


def resolve(backend: str | None) -> str:
    """Return ``backend`` checked, or the current default when it is None."""
    return _current if backend is None else _check(backend)
