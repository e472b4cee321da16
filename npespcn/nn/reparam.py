"""Re-parameterisable convolution (RepVGG, Ding et al. 2021; ECBSR, Zhang et al. 2021): more branches while
training, one plain convolution afterwards.

While training, a k×k layer is the sum of parallel branches on the same input::

    y = conv_k(x; W, b)  +  conv_1(x; W1, b1)  [ +  x   when in == out channels ]

Every branch is linear, so their sum is one k×k convolution (:meth:`RepConv2d.fold`)::

    W' = W + pad_k(W1) + I_k          b' = b + b1

where ``pad_k`` puts the 1×1 kernel at the centre of a k×k one and ``I_k`` is the identity as a k×k kernel
(1 at the centre of channel c → c). The network saved and run for inference is then the plain paper or
seven-layer ESPCN; only training sees the extra branches, whose different gradient paths are what helps
(the 1×1 and identity branches keep a path of small receptive field that trains fast).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .layers import Conv2d, Layer


class RepConv2d(Layer):
    """k×k "same" convolution trained as k×k + 1×1 (+ identity) branches; ``fold()`` gives the plain one.

    Parameters ``weight`` (out, in, k, k), ``bias`` (out,), ``weight1`` (out, in, 1, 1), ``bias1`` (out,);
    the identity branch is on when ``in_channels == out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dtype=np.float32):
        super().__init__()
        main = Conv2d(in_channels, out_channels, kernel_size, dtype)      # the k×k branch: shapes and checks
        self.in_channels, self.out_channels, self.kernel_size = main.in_channels, main.out_channels, main.kernel_size
        self.identity = self.in_channels == self.out_channels
        self.params = {"weight": main.params["weight"], "bias": main.params["bias"],
                       "weight1": np.zeros((self.out_channels, self.in_channels, 1, 1), dtype),
                       "bias1": np.zeros(self.out_channels, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def folded_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` of the single k×k convolution equal to the sum of the branches."""
        p = self.params
        c = (self.kernel_size - 1) // 2
        w = p["weight"].astype(np.float64)
        w[:, :, c, c] += p["weight1"][:, :, 0, 0]
        if self.identity:
            w[np.arange(self.out_channels), np.arange(self.in_channels), c, c] += 1.0
        dtype = p["weight"].dtype
        return w.astype(dtype), (p["bias"].astype(np.float64) + p["bias1"]).astype(dtype)

    def fold(self) -> Conv2d:
        """The plain :class:`Conv2d` with the folded weights."""
        conv = Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.params["weight"].dtype)
        conv.params["weight"][...], conv.params["bias"][...] = self.folded_weights()
        return conv

    def forward(self, x, train=True):
        """The sum of the branches (training), or the folded convolution (``train=False``)."""
        if not train:
            self._cache = None
            w, b = self.folded_weights()
            return F.conv2d_forward(x, w, b)[0]
        p = self.params
        y, cache_k = F.conv2d_forward(x, p["weight"], p["bias"])
        y1, cache_1 = F.conv2d_forward(x, p["weight1"], p["bias1"])
        y += y1
        if self.identity:
            y += x
        self._cache = (cache_k, cache_1)
        return y

    def backward(self, dout):
        cache_k, cache_1 = self._take_cache()
        dx, dw, db = F.conv2d_backward(dout, cache_k)
        dx1, dw1, db1 = F.conv2d_backward(dout, cache_1)
        dx += dx1
        if self.identity:
            dx += dout
        for name, g in (("weight", dw), ("bias", db), ("weight1", dw1), ("bias1", db1)):
            self._set_grad(name, g)
        return dx

    def __repr__(self):
        return (f"RepConv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"branches=k×k + 1×1{' + identity' if self.identity else ''})")
