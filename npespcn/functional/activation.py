"""Element-wise activations, forward and backward: relu, tanh, gelu (exact, erf form), identity, PReLU.

All act on arrays of any shape; PReLU expects (N, C, H, W) with one slope per channel (or one shared).

=========  ==========================================  ===============================================
name       forward ``y = f(x)``                        backward ``dx = dy * f'(x)``
=========  ==========================================  ===============================================
identity   ``x``                                       ``dy``
relu       ``max(x, 0)``                               ``dy * [x > 0]``  (0 at x = 0, as PyTorch)
tanh       ``tanh(x)``                                 ``dy * (1 - y**2)``  (uses the output)
gelu       ``x * Phi(x)``                              ``dy * (Phi(x) + x * phi(x))``
prelu      ``x if x > 0 else a[c] * x``                ``dx = dy * (1 if x > 0 else a[c])``,
                                                       ``da[c] = sum over n,u,v of dy * x * [x <= 0]``
=========  ==========================================  ===============================================

``Phi(x) = (1 + erf(x / √2)) / 2`` and ``phi(x) = exp(-x²/2) / √(2π)`` are the standard normal distribution
function and density; ``[cond]`` is 1 where ``cond`` holds, else 0.

Each activation has a NumPy reference and a numba fast path with one signature; ``activation_forward``
returns ``(out, cache)`` and ``activation_backward(dout, cache)`` returns ``dx``.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ..fast import (
    ACT_CODES,
    GELU,
    RELU,
    TANH,
    TANH_LIBM,
    activation_code,
    gelu,
    gelu_grad,
    tanh32,
)
from .backend import resolve

ACTIVATIONS = tuple(ACT_CODES)          # ("identity", "relu", "tanh", "gelu")
"""Names accepted by :func:`activation_forward`. PReLU has learned slopes, see :func:`prelu_forward`."""

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def check_activation(name, allow_prelu: bool = False, what: str = "activation") -> str:
    """Return ``name`` normalised (None -> "identity"), or raise ValueError naming the accepted names.

    PReLU has learned slopes, so only places that own parameters (a model's hidden layers) pass
    ``allow_prelu=True``; everywhere else it is refused with a message saying so. ``what`` names the
    argument in the messages.
    """
    if name is None:
        return "identity"
    accepted = ACTIVATIONS + ("prelu",) if allow_prelu else ACTIVATIONS
    if isinstance(name, str) and name.lower() == "prelu" and not allow_prelu:
        raise ValueError(f"{what} must be parameter-free (one of {', '.join(ACTIVATIONS)}): prelu has learned "
                         f"slopes (use the PReLU layer / prelu_forward)")
    if not isinstance(name, str) or name.lower() not in accepted:
        raise ValueError(f"unknown {what} {name!r}; expected one of {', '.join(accepted)} or None")
    return name.lower()


# --------------------------------------------------------------------------------------------------
# Reference: NumPy array expressions, one line per formula in the table above.
# --------------------------------------------------------------------------------------------------
def _forward_reference(x, name):
    from scipy.special import erf  # here, not at the top: scipy.special is slow to import, and only gelu needs it
    if name == "identity":
        return x.copy()
    if name == "relu":
        return np.maximum(x, 0)
    if name == "tanh":
        return np.tanh(x)
    # gelu
    return (x * 0.5 * (1.0 + erf(x * _SQRT_HALF))).astype(x.dtype, copy=False)


def _backward_reference(dout, x, y, name):
    from scipy.special import erf
    if name == "identity":
        return dout.copy()
    if name == "relu":
        return dout * (x > 0)
    if name == "tanh":
        return dout * (1 - y * y)
    cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))
    pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return (dout * (cdf + x * pdf)).astype(dout.dtype, copy=False)


def prelu_forward_reference(x, a):
    """PReLU forward. ``x`` (N, C, H, W); ``a`` (C,) or (1,) slopes. Returns ``(out, cache)``."""
    a4 = a.reshape(1, -1, 1, 1)
    return np.where(x > 0, x, a4 * x).astype(x.dtype, copy=False), (x, a)


def prelu_backward_reference(dout, cache):
    """PReLU backward. Returns ``(dx, da)`` with ``da`` of the shape of ``a``."""
    x, a = cache
    a4 = a.reshape(1, -1, 1, 1)
    pos = x > 0
    dx = np.where(pos, dout, a4 * dout).astype(dout.dtype, copy=False)
    da = np.where(pos, 0, dout * x).sum(axis=(0, 2, 3))
    if a.size == 1:
        da = da.sum(keepdims=True)
    return dx, da.reshape(a.shape).astype(a.dtype, copy=False)


# --------------------------------------------------------------------------------------------------
# Fast path: one numba loop over the flattened array per activation, each simple enough for LLVM to
# vectorise (``error_model="numpy"``: no division checks; tanh without libm, see npespcn.fast.vecmath).
# Serial: a vectorised element-wise loop is memory-bound, and a parallel region ends in a barrier
# that waits for the slowest core when the cores are shared with other processes.
# --------------------------------------------------------------------------------------------------
_FAST = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_FAST)
def _forward_numba_flat(x, code, y):
    n = x.size
    if code == RELU:
        for t in range(n):
            v = x[t]
            y[t] = v if v > 0 else 0
    elif code == TANH:
        for t in range(n):
            y[t] = tanh32(x[t])
    elif code == GELU:
        for t in range(n):
            y[t] = gelu(x[t])
    elif code == TANH_LIBM:
        for t in range(n):
            y[t] = math.tanh(x[t])
    else:
        for t in range(n):
            y[t] = x[t]


@numba.njit(**_FAST)
def _backward_numba_flat(d, x, y, code, dx):
    n = d.size
    if code == RELU:
        for t in range(n):
            dx[t] = d[t] if x[t] > 0 else 0
    elif code == TANH or code == TANH_LIBM:
        for t in range(n):
            dx[t] = d[t] * (1 - y[t] * y[t])
    elif code == GELU:
        for t in range(n):
            dx[t] = d[t] * gelu_grad(x[t])
    else:
        for t in range(n):
            dx[t] = d[t]


@numba.njit(**_FAST)
def _prelu_forward_numba(x, a, y):
    N, C, H, W = x.shape
    shared = a.size == 1
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        s = a[0] if shared else a[c]
        for h in range(H):
            for w in range(W):
                v = x[n, c, h, w]
                y[n, c, h, w] = v if v > 0 else s * v


@numba.njit(**_FAST)
def _prelu_backward_numba(d, x, a, dx, da_per_channel):
    N, C, H, W = x.shape
    shared = a.size == 1
    for c in range(C):
        s = a[0] if shared else a[c]
        acc = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    v = x[n, c, h, w]
                    g = d[n, c, h, w]
                    if v > 0:
                        dx[n, c, h, w] = g
                    else:
                        dx[n, c, h, w] = s * g
                        acc += g * v
        da_per_channel[c] = acc


def prelu_forward_numba(x, a):
    """Same contract as :func:`prelu_forward_reference`, fast."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _prelu_forward_numba(x, a.astype(x.dtype).ravel(), y)
    return y, (x, a)


def prelu_backward_numba(dout, cache):
    """Same contract as :func:`prelu_backward_reference`, fast."""
    x, a = cache
    dout = np.ascontiguousarray(dout)
    dx = np.empty_like(dout)
    dac = np.empty(x.shape[1], dtype=np.float64)
    _prelu_backward_numba(dout, x, a.astype(x.dtype).ravel(), dx, dac)
    da = dac.sum(keepdims=True) if a.size == 1 else dac
    return dx, da.reshape(a.shape).astype(a.dtype)


# --------------------------------------------------------------------------------------------------
# Dispatch.
# --------------------------------------------------------------------------------------------------
def activation_forward_reference(x, name):
    """Activation ``name`` in NumPy. Returns ``(out, cache)``, the cache ``(name, x, out)``."""
    return _with_cache(x, name, _forward_reference(x, name))


def activation_forward_numba(x, name):
    """Same contract as :func:`activation_forward_reference`, one compiled loop."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _forward_numba_flat(x.reshape(-1), activation_code(name, x.dtype), y.reshape(-1))
    return _with_cache(x, name, y)


def _with_cache(x, name, y):
    # tanh's derivative needs only the output; the others need the input.
    return y, (name, x, y)


def activation_backward_reference(dout, cache):
    """Backward of :func:`activation_forward_reference` in NumPy: returns ``dx``."""
    name, x, y = cache
    return _backward_reference(dout, x, y, name)


def activation_backward_numba(dout, cache):
    """Same contract as :func:`activation_backward_reference`, one compiled loop."""
    name, x, y = cache
    dout = np.ascontiguousarray(dout, dtype=x.dtype)
    dx = np.empty_like(dout)
    _backward_numba_flat(dout.reshape(-1), x.reshape(-1), y.reshape(-1), activation_code(name, x.dtype),
                         dx.reshape(-1))
    return dx


def activation_forward(x, name, backend: str | None = None):
    """Apply activation ``name`` (see :data:`ACTIVATIONS`). Returns ``(out, cache)``.

    Parameters
    ----------
    x : ndarray, any shape
    name : str or None ("identity")
    """
    name = check_activation(name)
    fn = activation_forward_reference if resolve(backend) == "reference" else activation_forward_numba
    return fn(x, name)


def activation_backward(dout, cache, backend: str | None = None):
    """Backward of :func:`activation_forward`: returns ``dx`` of the shape of ``dout``."""
    fn = activation_backward_reference if resolve(backend) == "reference" else activation_backward_numba
    return fn(dout, cache)


def prelu_forward(x, a, backend: str | None = None):
    """PReLU forward with the chosen backend. Returns ``(out, cache)``."""
    if x.ndim != 4 or a.size not in (1, x.shape[1]):
        raise ValueError(f"prelu expects x (N, C, H, W) and 1 or C slopes; got x {x.shape}, a {a.shape}")
    fn = prelu_forward_reference if resolve(backend) == "reference" else prelu_forward_numba
    return fn(x, a)


def prelu_backward(dout, cache, backend: str | None = None):
    """PReLU backward with the chosen backend. Returns ``(dx, da)``."""
    fn = prelu_backward_reference if resolve(backend) == "reference" else prelu_backward_numba
    return fn(dout, cache)
