"""Losses and their gradients: mean squared error, mean absolute error (L1) and Charbonnier.

For ``pred`` and ``target`` of the same shape with ``M`` elements and ``d = pred - target``::

    mse          loss = (1/M) sum d**2                      dpred = (2/M) d
    l1           loss = (1/M) sum |d|                       dpred = (1/M) sign(d)        (0 at d = 0)
    charbonnier  loss = (1/M) sum sqrt(d**2 + eps**2)       dpred = (1/M) d / sqrt(d**2 + eps**2)

the loss a Python float accumulated in float64, ``dpred`` of ``pred``'s shape and dtype; ``mse`` and
``l1`` as PyTorch's ``nn.MSELoss()`` and ``nn.L1Loss()`` (reduction "mean"). Charbonnier is a smooth
L1 (Charbonnier et al., 1994; the loss of LapSRN, Lai et al. 2017): quadratic for ``|d| << eps``, linear
beyond. L1-type losses weigh large errors less than MSE does, which the SR literature (e.g. EDSR, Lim et
al. 2017) found to train to a higher PSNR.
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import resolve


def _check(pred, target, name="mse_loss"):
    if pred.shape != target.shape:
        raise ValueError(f"{name}: prediction {pred.shape} and target {target.shape} differ in shape")
    if pred.size == 0:
        raise ValueError(f"{name}: empty arrays")


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


def l1_loss_reference(pred, target):
    """Mean absolute error, NumPy reference. Returns ``(loss, dpred)``."""
    _check(pred, target, "l1_loss")
    diff = pred - target
    loss = float(np.mean(np.abs(diff), dtype=np.float64))
    return loss, (np.sign(diff) / pred.size).astype(pred.dtype, copy=False)


def charbonnier_loss_reference(pred, target, eps: float = 1e-3):
    """Charbonnier loss, NumPy reference. Returns ``(loss, dpred)``."""
    _check(pred, target, "charbonnier_loss")
    if not eps > 0:
        raise ValueError(f"charbonnier_loss: eps must be > 0, got {eps}")
    diff = (pred - target).astype(np.float64)
    root = np.sqrt(diff * diff + eps * eps)
    return float(np.mean(root)), (diff / root / pred.size).astype(pred.dtype)


@numba.njit(cache=True, nogil=True)
def _robust_numba(pred, target, eps, inv_m, dpred):
    acc = 0.0
    for t in range(pred.size):          # serial: a fixed summation order, the same on every run
        d = np.float64(pred[t]) - np.float64(target[t])
        if eps == 0.0:                  # L1
            acc += abs(d)
            dpred[t] = inv_m * (1.0 if d > 0 else (-1.0 if d < 0 else 0.0))
        else:                           # Charbonnier
            root = np.sqrt(d * d + eps * eps)
            acc += root
            dpred[t] = inv_m * d / root
    return acc


def _robust(pred, target, eps, name):
    _check(pred, target, name)
    pred = np.ascontiguousarray(pred)
    target = np.ascontiguousarray(target, dtype=pred.dtype)
    dpred = np.empty_like(pred)
    acc = _robust_numba(pred.reshape(-1), target.reshape(-1), float(eps), 1.0 / pred.size, dpred.reshape(-1))
    return acc / pred.size, dpred


def l1_loss_numba(pred, target):
    """Mean absolute error, one compiled pass for loss and gradient. Returns ``(loss, dpred)``."""
    return _robust(pred, target, 0.0, "l1_loss")


def charbonnier_loss_numba(pred, target, eps: float = 1e-3):
    """Charbonnier loss, one compiled pass for loss and gradient. Returns ``(loss, dpred)``."""
    if not eps > 0:
        raise ValueError(f"charbonnier_loss: eps must be > 0, got {eps}")
    return _robust(pred, target, eps, "charbonnier_loss")


def l1_loss(pred, target, backend: str | None = None):
    """Mean absolute error with the chosen backend. Returns ``(loss, dpred)``."""
    return (l1_loss_reference if resolve(backend) == "reference" else l1_loss_numba)(pred, target)


def charbonnier_loss(pred, target, eps: float = 1e-3, backend: str | None = None):
    """Charbonnier loss with the chosen backend. Returns ``(loss, dpred)``."""
    fn = charbonnier_loss_reference if resolve(backend) == "reference" else charbonnier_loss_numba
    return fn(pred, target, eps)


LOSSES = {"mse": mse_loss, "l1": l1_loss, "charbonnier": charbonnier_loss}
"""The losses by name: each ``fn(pred, target) -> (loss, dpred)``."""
