"""Mean squared error and its gradient.

For ``pred`` and ``target`` of the same shape with ``M`` elements::

    loss  = (1/M) * sum (pred - target)**2          (a Python float, accumulated in float64)
    dpred = (2/M) * (pred - target)                 (same shape and dtype as pred)

as PyTorch's ``nn.MSELoss()`` (reduction "mean").
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import resolve


def _check(pred, target):
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: prediction {pred.shape} and target {target.shape} differ in shape")
    if pred.size == 0:
        raise ValueError("mse_loss: empty arrays")


def mse_loss_reference(pred, target):
    """MSE, NumPy reference. Returns ``(loss, dpred)``."""
    _check(pred, target)
    diff = pred - target
    loss = float(np.mean(np.square(diff, dtype=np.float64)))
    return loss, (2.0 / pred.size * diff).astype(pred.dtype, copy=False)


@numba.njit(cache=True, nogil=True)
def _mse_numba(pred, target, scale, dpred):
    acc = 0.0
    for t in range(pred.size):          # serial: a fixed summation order, the same on every run
        d = pred[t] - target[t]
        dpred[t] = scale * d
        acc += np.float64(d) * np.float64(d)
    return acc


def mse_loss_numba(pred, target):
    """MSE, one fused numba pass for loss and gradient. Returns ``(loss, dpred)``."""
    _check(pred, target)
    pred = np.ascontiguousarray(pred)
    target = np.ascontiguousarray(target, dtype=pred.dtype)
    dpred = np.empty_like(pred)
    acc = _mse_numba(pred.reshape(-1), target.reshape(-1), pred.dtype.type(2.0 / pred.size),
                     dpred.reshape(-1))
    return acc / pred.size, dpred


def mse_loss(pred, target, backend: str | None = None):
    """MSE with the chosen backend. Returns ``(loss, dpred)``."""
    return (mse_loss_reference if resolve(backend) == "reference" else mse_loss_numba)(pred, target)
