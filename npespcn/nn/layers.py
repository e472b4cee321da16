"""Layers: thin objects that own parameters and remember what their backward pass needs.

Each layer wraps one kernel of :mod:`npespcn.functional`:

* ``forward(x, train=True)`` returns the output; with ``train=True`` it keeps the kernel's cache.
* ``backward(dout)`` returns ``dx`` and writes parameter gradients into ``self.grads`` (overwriting, not
  accumulating: one backward per forward).
* ``params`` / ``grads`` map short names (``"weight"``, ``"bias"``) to arrays; the model prefixes them
  (``"conv1.weight"``). Optimizers update ``params`` in place, so the arrays are never replaced.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.conv import (
    conv2d_act_backward,
    conv2d_act_forward,
    conv2d_act_train_forward,
)
from ..functional.im2col import check_kernel


class Layer:
    """Base class: no parameters, identity maps."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    def forward(self, x, train: bool = True):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - interface
        raise NotImplementedError

    def _take_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward(train=True) first")
        cache, self._cache = self._cache, None
        return cache

    def _set_grad(self, name, value):
        np.copyto(self.grads[name], value, casting="same_kind")


class Conv2d(Layer):
    """k×k "same" convolution, stride 1. ``weight`` (out, in, k, k), ``bias`` (out,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dtype=np.float32):
        super().__init__()
        kernel_size = check_kernel(kernel_size)
        if int(in_channels) < 1 or int(out_channels) < 1:
            raise ValueError(f"channel counts must be positive, got in={in_channels}, out={out_channels}")
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), int(kernel_size)
        shape = (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        self.params = {"weight": np.zeros(shape, dtype), "bias": np.zeros(self.out_channels, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._fused = False

    def forward(self, x, train=True, activation: str | None = None, out=None):
        """``conv(x) + bias``; with ``activation`` the activation is applied in the same pass (see
        :meth:`ESPCN.forward` and :meth:`ESPCN.infer`), and :meth:`backward` then takes the gradient of its
        output. ``train=False`` keeps nothing for a backward pass. ``out``: an array of the result's shape
        and dtype to write the result into, as :meth:`ESPCN.forward` and :meth:`ESPCN.infer` do with
        their intermediate arrays."""
        w, b = self.params["weight"], self.params["bias"]
        self._fused = activation is not None
        if not train:                               # no cache: nothing kept for a backward pass
            self._cache = None
            return conv2d_act_forward(x, w, b, activation, out=out)
        if activation is None:
            y, self._cache = F.conv2d_forward(x, w, b, out=out)
        else:
            y, self._cache = conv2d_act_train_forward(x, w, b, activation, out=out)
        return y

    def backward(self, dout, input_grad: bool = True, out=None):
        """Fill :attr:`grads` and return ``dL/dx`` (None with ``input_grad=False``: saves a convolution
        when nothing needs the gradient of this layer's input, as for a network's first layer), written
        into ``out`` when given."""
        backward = conv2d_act_backward if self._fused else F.conv2d_backward
        dx, dw, db = backward(dout, self._take_cache(), input_grad=input_grad, out=out)
        self._set_grad("weight", dw)
        self._set_grad("bias", db)
        return dx

    def __repr__(self):
        return f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"


class Activation(Layer):
    """A parameter-free activation: "identity", "relu", "tanh" or "gelu"."""

    def __init__(self, name: str):
        super().__init__()
        self.name = F.check_activation(name)

    def forward(self, x, train=True):
        out, cache = F.activation_forward(x, self.name)
        self._cache = cache if train else None
        return out

    def backward(self, dout):
        return F.activation_backward(dout, self._take_cache())

    def __repr__(self):
        return f"Activation({self.name!r})"


class PReLU(Layer):
    """Leaky ReLU with a learned slope per channel (``weight`` (C,)), initialised to 0.25 as PyTorch."""

    def __init__(self, channels: int, init: float = 0.25, dtype=np.float32):
        super().__init__()
        self.params = {"weight": np.full(int(channels), init, dtype)}
        self.grads = {"weight": np.zeros(int(channels), dtype)}

    def forward(self, x, train=True):
        out, cache = F.prelu_forward(x, self.params["weight"])
        self._cache = cache if train else None
        return out

    def backward(self, dout):
        dx, da = F.prelu_backward(dout, self._take_cache())
        self._set_grad("weight", da)
        return dx

    def __repr__(self):
        return f"PReLU({self.params['weight'].size})"


class PixelShuffle(Layer):
    """Periodic shuffle by ``r``: (N, C*r*r, H, W) -> (N, C, H*r, W*r)."""

    def __init__(self, r: int):
        super().__init__()
        self.r = int(r)

    def forward(self, x, train=True):
        out, cache = F.pixel_shuffle_forward(x, self.r)
        self._cache = cache if train else None
        return out

    def backward(self, dout):
        return F.pixel_shuffle_backward(dout, self._take_cache())

    def __repr__(self):
        return f"PixelShuffle({self.r})"
