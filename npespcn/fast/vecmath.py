"""Element functions written so that LLVM vectorises them: no libm calls, no branches that raise.

numba turns ``math.tanh`` into one scalar libm call per element, which LLVM cannot vectorise; ESPCN's
paper model evaluates 96 tanh per low-resolution pixel, so those calls would rival the convolutions'
work. :func:`tanh32` computes the float32 tanh as a rational function in float32 arithmetic::

    c = min(|x|, 7.905...)                        (where the approximation rounds to 1)
    tanh(c) ~ c * P(c**2) / Q(c**2)               P of degree 6, Q of degree 3, all of Q's coefficients > 0
    tanh(x) = sign(x) * that,   or x itself for |x| < 4e-4

with the coefficients of Eigen's ``generic_fast_tanh_float`` (also XLA's). Against the float64 tanh it is
within 7 float32 ulps (6.9 at most, measured over every float32 between 0 and 10; 3e-7 near 1, where it
is largest), never above 1 in magnitude, odd, NaN for NaN, ±1 for ±inf (:mod:`tests.test_fast_kernels`).
About 0.4 ns per value: 11 multiply-adds and one division on float32 vector lanes, twice as many lanes as
float64 has. A first version kept float64 (an expm1 Taylor polynomial, six doublings and a division) and
was correctly rounded, but took 1.1 ns per value, which was about 15 % of the paper model's forward pass
on a 640x360 frame (benchmarks/README.md).

Callers must compile with ``error_model="numpy"`` (a division that cannot raise) for the loop to be
vectorised; ``fastmath={"contract"}`` lets LLVM fuse the multiply-adds (what Eigen evaluates too).
"""
from __future__ import annotations

import math

import numba
import numpy as np

_OPTS = dict(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"contract"})


_P = tuple(np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                   5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                   -2.76076847742355e-16))
"""P's coefficients, lowest power of ``c**2`` first."""
_Q = tuple(np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                   1.19825839466702e-06))
"""Q's coefficients, lowest power of ``c**2`` first."""
_CLAMP = np.float32(7.90531110763549805)
_TINY = np.float32(4e-4)


@numba.njit(**_OPTS)
def tanh32(xf):
    """tanh of one float32 value, as float32, within 7 ulps (see the module docstring)."""
    x = np.float32(xf)
    ax = abs(x)
    c = _CLAMP if ax > _CLAMP else ax           # NaN stays NaN
    s = c * c
    p = s * _P[6] + _P[5]
    p = p * s + _P[4]
    p = p * s + _P[3]
    p = p * s + _P[2]
    p = p * s + _P[1]
    p = p * s + _P[0]
    q = s * _Q[3] + _Q[2]
    q = q * s + _Q[1]
    q = q * s + _Q[0]
    t = c * p / q
    t = ax if ax < _TINY else t
    return -t if x < 0 else t



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
