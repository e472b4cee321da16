"""Optimizers (SGD, Adam) with PyTorch's update rules, a moving average of the weights, and learning-rate
schedules.

Parameters are a dict ``name -> array`` (``model.params``); ``opt.step(grads)`` takes the matching dict
(``model.grads``) and updates the arrays **in place**, in their own dtype. A per-parameter learning-rate
multiplier (``lr_mult={"conv3.weight": 0.1, ...}``) scales the current rate for that parameter; this is
how ESPCN's last layer is trained at a tenth of the rate (``ESPCN.lr_multipliers``), as in SRCNN (Dong et
al. 2014: 1e-5 for the last layer, 1e-4 for the others) and the ESPCN-pytorch reference implementation
(github.com/yjn870/ESPCN-pytorch, ``train.py``: ``lr * 0.1``); Shi et al. (2016) do not describe one. With
Adam the multiplier sets the step size itself: Adam's first step moves every parameter by about
``lr * multiplier``, whatever its gradient's size (``m / sqrt(v) = sign(g)`` at ``t = 1``).

SGD (``torch.optim.SGD``, dampening 0, no Nesterov), for each parameter ``p`` with gradient ``g``::

    g   = g + weight_decay * p
    buf = g                         on the first step,   buf = momentum * buf + g   after
    p   = p - lr * buf              (p - lr * g when momentum == 0)

Adam (``torch.optim.Adam``, L2 weight decay, no amsgrad), at step ``t = 1, 2, ...``::

    g = g + weight_decay * p
    m = m + (1 - beta1) * (g - m)                 (PyTorch's lerp form of beta1*m + (1-beta1)*g)
    v = beta2 * v + (1 - beta2) * g * g
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
"""
from __future__ import annotations

import math

import numba
import numpy as np


def _as_dict(params):
    if isinstance(params, dict):
        return dict(params)
    return {str(i): p for i, p in enumerate(params)}


class Optimizer:
    """Shared bookkeeping: parameters, base learning rate, multipliers, state save/restore."""

    def __init__(self, params, lr: float, lr_mult: dict | None = None):
        self.params = _as_dict(params)
        if not self.params:
            raise ValueError("optimizer got no parameters")
        for k, p in self.params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise ValueError(f"parameter {k!r} must be a floating-point NumPy array")
        if isinstance(lr, bool) or not (isinstance(lr, (int, float, np.floating, np.integer))
                                        and lr >= 0 and math.isfinite(lr)):
            raise ValueError(f"learning rate must be a finite number >= 0, got {lr!r}")
        self.lr = float(lr)
        self.initial_lr = float(lr)
        self.lr_mult = dict(lr_mult or {})
        unknown = set(self.lr_mult) - set(self.params)
        if unknown:
            raise ValueError(f"lr_mult names unknown parameters {sorted(unknown)}")
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {k: {} for k in self.params}

    def _grads(self, grads):
        grads = _as_dict(grads)
        if set(grads) != set(self.params):
            raise ValueError(f"gradients must have the parameters' names; missing "
                             f"{sorted(set(self.params) - set(grads))}, "
                             f"unexpected {sorted(set(grads) - set(self.params))}")
        return grads

    def step(self, grads) -> None:
        """Update every parameter in place from ``grads`` (same keys as the parameters)."""
        grads = {k: np.asarray(g) for k, g in self._grads(grads).items()}
        for name, p in self.params.items():             # check everything before changing anything
            if grads[name].shape != p.shape:
                raise ValueError(f"gradient {name!r} has shape {grads[name].shape}, parameter has {p.shape}")
        self.steps += 1
        for name, p in self.params.items():
            self._update(name, p, grads[name].astype(p.dtype, copy=False), self.lr * self.lr_mult.get(name, 1.0))

    def _update(self, name, p, g, lr):  # pragma: no cover - interface
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Everything needed to resume: ``{"lr", "initial_lr", "steps", "state": {name: {buf: array}}}``."""
        return {"lr": self.lr, "initial_lr": self.initial_lr, "steps": self.steps,
                "state": {k: {b: v.copy() for b, v in s.items()} for k, s in self.state.items()}}

    def load_state_dict(self, sd: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if set(sd["state"]) != set(self.params):
            raise ValueError("optimizer state names do not match the parameters")
        self.lr, self.initial_lr, self.steps = float(sd["lr"]), float(sd["initial_lr"]), int(sd["steps"])
        self.state = {k: {b: np.array(v, dtype=self.params[k].dtype) for b, v in s.items()}
                      for k, s in sd["state"].items()}


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay (PyTorch's rule)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 lr_mult: dict | None = None):
        super().__init__(params, lr, lr_mult)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def _update(self, name, p, g, lr):
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        if self.momentum:
            st = self.state[name]
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = g.copy()
            else:
                buf = st["momentum_buffer"]
                buf *= p.dtype.type(self.momentum)
                buf += g
            g = st["momentum_buffer"]
        p -= p.dtype.type(lr) * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias-corrected update and L2 weight decay."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, lr_mult: dict | None = None):
        super().__init__(params, lr, lr_mult)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam needs 0 <= betas < 1, eps >= 0, weight_decay >= 0; got {betas}, {eps}, "
                             f"{weight_decay}")
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), float(eps), float(weight_decay)

    def _update(self, name, p, g, lr):
        t = p.dtype.type
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + t(self.weight_decay) * p
        st = self.state[name]
        if "exp_avg" not in st:
            st["exp_avg"] = np.zeros_like(p)
            st["exp_avg_sq"] = np.zeros_like(p)
        m, v = st["exp_avg"], st["exp_avg_sq"]
        bias1 = 1 - b1 ** self.steps
        bias2_sqrt = math.sqrt(1 - b2 ** self.steps)
        if all(a.flags.c_contiguous for a in (p, g, m, v)):     # one compiled pass, same operations
            _adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), t(1 - b1), t(b2),
                         t(1 - b2), t(bias2_sqrt), t(self.eps), t(lr / bias1))
            return
        m += t(1 - b1) * (g - m)
        v *= t(b2)
        v += t(1 - b2) * g * g
        denom = np.sqrt(v) / t(bias2_sqrt) + t(self.eps)
        p -= t(lr / bias1) * m / denom


@numba.njit(cache=True, nogil=True)
def _adam_update(p, g, m, v, one_minus_b1, b2, one_minus_b2, bias2_sqrt, eps, step):
    """:meth:`Adam._update`'s NumPy lines, element by element in one pass, with the same operations in
    the same order and dtype (so the same bits), where the NumPy version makes ten passes over every
    array."""
    for i in range(p.size):
        mi = m[i] + one_minus_b1 * (g[i] - m[i])
        vi = v[i] * b2 + one_minus_b2 * g[i] * g[i]
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (np.sqrt(vi) / bias2_sqrt + eps)


class EMA:
    """An exponential moving average of the parameters (Polyak averaging, as BasicSR's ``ema_decay``),
    updated after every optimizer step, with the warm-up of TensorFlow's ``ExponentialMovingAverage``
    given ``num_updates``::

        d      = min(decay, (1 + t) / (10 + t))       t = updates so far (a short memory at the start)
        avg    = avg + (1 - d) * (p - avg)

    The average is what gets validated and saved; the optimizer keeps training the raw parameters.

    Args:
        params: ``name -> array`` (``model.params``), copied as the starting average.
        decay: in (0, 1); 0.999 averages over about the last 1000 steps.

    Examples:
        >>> import numpy as np
        >>> p = {"w": np.zeros(2, np.float32)}
        >>> ema = EMA(p, 0.5)
        >>> p["w"][...] = 1.0; ema.update(p); ema.average["w"]    # d = min(0.5, 1/10)
        array([0.9, 0.9], dtype=float32)
    """

    def __init__(self, params: dict, decay: float):
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise ValueError(f"EMA decay must be a number in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.average = {k: np.array(v, copy=True) for k, v in _as_dict(params).items()}
        self.updates = 0

    def update(self, params: dict) -> None:
        """Move the average towards ``params`` (same names and shapes as at construction)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, avg in self.average.items():
            avg += avg.dtype.type(1 - d) * (params[k] - avg)
        self.updates += 1

    def load_state(self, average: dict, updates: int) -> None:
        """Restore an average and its update count (from a checkpoint)."""
        if set(average) != set(self.average):
            raise ValueError(f"EMA names do not match the parameters: {sorted(set(average) ^ set(self.average))}")
        for k, v in average.items():
            if v.shape != self.average[k].shape:
                raise ValueError(f"EMA buffer {k} has shape {v.shape}, the parameter {self.average[k].shape}")
            self.average[k][...] = v
        self.updates = int(updates)


# ------------------------------------------------------------------------------------------------------
# Schedules: call ``sched.step()`` once per epoch; they set ``optimizer.lr`` from ``optimizer.initial_lr``.
# ------------------------------------------------------------------------------------------------------
class StepLR:
    """``lr = initial_lr * gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.optimizer, self.step_size, self.gamma, self.epoch = optimizer, int(step_size), float(gamma), 0

    def lr_at(self, epoch: int) -> float:
        return self.optimizer.initial_lr * self.gamma ** (epoch // self.step_size)

    def step(self) -> float:
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr


class CosineLR:
    """``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`` (closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingLR``), held at ``eta_min`` after ``T_max``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.optimizer, self.T_max, self.eta_min, self.epoch = optimizer, int(T_max), float(eta_min), 0

    def lr_at(self, epoch: int) -> float:
        e = min(epoch, self.T_max)
        return self.eta_min + (self.optimizer.initial_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2

    def step(self) -> float:
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr
