"""Element functions written so that LLVM vectorises them: no libm calls, no branches that raise.

numba turns ``math.tanh`` into one scalar libm call per element, which LLVM cannot vectorise; ESPCN's
paper model evaluates 96 tanh per low-resolution pixel, so those calls would rival the convolutions'
work. :func:`tanh32` computes the float32 tanh from plain multiply-adds in float64::

    y   = min(|x|, 9.5) * 2 / 64                     (tanh(9.5) rounds to 1 in float32)
    a0  = expm1(y)                                   Taylor polynomial of degree 11, |error| < 1e-15
    a_{s+1} = a_s * (2 + a_s)                        expm1(2t) = expm1(t) * (2 + expm1(t)), six times
    tanh(|x|) = a6 / (a6 + 2)                        with a6 = expm1(2|x|)

The doubling step keeps the *relative* precision of small values (no ``1 - 2/(e + 1)`` cancellation),
so the float64 result is within about 1e-13 (relative) of the true tanh and its rounding to float32 is
the correctly rounded value in every case we tested (:mod:`tests.test_fast_kernels`): never further
than NumPy's own ``np.tanh`` on float32. The sign is restored by a select, so ``tanh32(-0.0) == 0.0``;
NaN gives NaN, ±inf gives ±1.

Callers must compile with ``error_model="numpy"`` (a division that cannot raise) for the loop to be
vectorised; ``fastmath={"contract"}`` lets LLVM fuse the multiply-adds, which changes nothing of the
above bound.
"""
from __future__ import annotations

import math

import numba
import numpy as np

_OPTS = dict(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"contract"})


@numba.njit(**_OPTS)
def tanh32(xf):
    """tanh of one float32 or float64 value, returned as float32 (see the module docstring)."""
    x = np.float64(xf)
    ax = abs(x)
    y = (9.5 if ax > 9.5 else ax) * (2.0 / 64.0)   # NaN stays NaN
    a = 1.0 / 39916800.0
    a = a * y + 1.0 / 3628800.0
    a = a * y + 1.0 / 362880.0
    a = a * y + 1.0 / 40320.0
    a = a * y + 1.0 / 5040.0
    a = a * y + 1.0 / 720.0
    a = a * y + 1.0 / 120.0
    a = a * y + 1.0 / 24.0
    a = a * y + 1.0 / 6.0
    a = a * y + 0.5
    a = a * y + 1.0
    a = a * y                                   # expm1(y)
    a = a * (2.0 + a)                           # expm1(2y)
    a = a * (2.0 + a)                           # expm1(4y)
    a = a * (2.0 + a)                           # expm1(8y)
    a = a * (2.0 + a)                           # expm1(16y)
    a = a * (2.0 + a)                           # expm1(32y)
    a = a * (2.0 + a)                           # expm1(64y) = expm1(2|x|)
    t = a / (a + 2.0)
    return np.float32(-t if x < 0 else t)



# ------------------------------------------------------------------------------------------------------
# The activation codes: the one home of the integers by which every fast kernel that applies an
# activation (the element-wise kernels of npespcn.functional.activation and the fused conv + bias +
# activation rows of npespcn.fast.rows) selects it. numba reads these module constants at compile time.
# ------------------------------------------------------------------------------------------------------
IDENTITY = 0
RELU = 1
TANH = 2
"""tanh by :func:`tanh32`, for float32 data."""
GELU = 3
TANH_LIBM = 4
"""tanh through libm, for float64 data (:func:`tanh32` rounds to float32)."""
ACT_CODES = {"identity": IDENTITY, "relu": RELU, "tanh": TANH, "gelu": GELU}
"""Activation name -> code; its keys are the activations the fast path knows."""


def activation_code(name: str, dtype) -> int:
    """The kernel code of activation ``name`` for data of ``dtype``."""
    code = ACT_CODES[name]
    return TANH_LIBM if code == TANH and np.dtype(dtype) != np.float32 else code


_EXACT = dict(cache=True, nogil=True, inline="always", error_model="numpy")   # no fastmath: exact formulas


@numba.njit(**_EXACT)
def gelu(v):
    """``v * Phi(v)``, ``Phi(v) = (1 + erf(v / sqrt 2)) / 2`` (exact GELU)."""
    return v * 0.5 * (1.0 + math.erf(v * 0.7071067811865476))


@numba.njit(**_EXACT)
def gelu_grad(v):
    """``Phi(v) + v * phi(v)``, ``phi(v) = exp(-v**2 / 2) / sqrt(2 pi)``."""
    return 0.5 * (1.0 + math.erf(v * 0.7071067811865476)) + v * math.exp(-0.5 * v * v) * 0.3989422804014327
