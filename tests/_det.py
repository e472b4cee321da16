"""Deterministic test data from an integer hash, identical on every machine and NumPy version.

``np.random`` streams are not promised to stay the same across NumPy releases, so the inputs and
weights behind the committed PyTorch fixtures come from here instead: SplitMix64 (Steele, Lea & Flood,
2014) evaluated on ``np.arange`` in plain ``uint64`` arithmetic, which wraps modulo 2**64 exactly::

    z   = seed * 0xD1B54A32D192ED03 + (t + 1) * 0x9E3779B97F4A7C15        t = 0, 1, ..., n-1
    z   = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z   = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z   =  z ^ (z >> 31)
    u   = (z >> 11) * 2**-53                                            uniform in [0, 1), exact in float64

Every later step (affine map, rounding to float32) is a single correctly rounded IEEE operation, so the
bits of the arrays do not depend on the platform. The module needs only NumPy: both the fixture script
(which also has PyTorch) and the tests (which must not) import it.
"""
from __future__ import annotations

import math

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SEED_MIX = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, n: int) -> np.ndarray:
    """``n`` hashed 64-bit words for stream ``seed`` (formula in the module docstring), dtype uint64."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    with np.errstate(over="ignore"):
        z = np.uint64(seed) * _SEED_MIX + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform(seed: int, shape, low: float = 0.0, high: float = 1.0, dtype=np.float32) -> np.ndarray:
    """Array of ``shape`` with values ``low + (high - low) * u``, ``u`` uniform in [0, 1).

    Computed in float64, then rounded once to ``dtype``.
    """
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    n = int(np.prod(shape, dtype=np.int64))
    u = (splitmix64(seed, n) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (low + (high - low) * u).reshape(shape).astype(dtype)


def symmetric(seed: int, shape, std: float, dtype=np.float32) -> np.ndarray:
    """Zero-mean uniform values with standard deviation ``std`` (half-width ``sqrt(3) * std``)."""
    a = math.sqrt(3.0) * std
    return uniform(seed, shape, -a, a, dtype)


def espcn_params(channels: int, layers, scale: int, seed: int, prelu: bool = False,
                 dtype=np.float32) -> dict[str, np.ndarray]:
    """Weights for an ESPCN written independently of npespcn, keyed as npespcn names them.

    Hidden convolution ``i`` (kernel ``k``, ``f`` filters) gets weights of std ``sqrt(2 / (f*k*k))`` and
    biases in [-0.05, 0.05); the last 3x3 convolution to ``channels * scale**2`` outputs gets the same
    rule (not the tiny 0.001 of training, so that every layer's gradient is well above rounding noise).
    With ``prelu`` each hidden layer also gets per-channel slopes in [0.05, 0.45).

    Returns
    -------
    dict
        ``{"conv1.weight": (f1, channels, k1, k1), "conv1.bias": (f1,), ["prelu1.weight": (f1,)], ...,
        "convL.weight": (channels*scale**2, fL, 3, 3), "convL.bias": (channels*scale**2,)}``.
    """
    shapes = []
    c_in = channels
    for k, f in layers:
        shapes.append((f, c_in, k))
        c_in = f
    shapes.append((channels * scale * scale, c_in, 3))
    out, s = {}, seed * 1000
    for i, (f, c, k) in enumerate(shapes, start=1):
        out[f"conv{i}.weight"] = symmetric(s + 1, (f, c, k, k), math.sqrt(2.0 / (f * k * k)), dtype)
        out[f"conv{i}.bias"] = uniform(s + 2, (f,), -0.05, 0.05, dtype)
        if prelu and i < len(shapes):
            out[f"prelu{i}.weight"] = uniform(s + 3, (f,), 0.05, 0.45, dtype)
        s += 10
    return out
