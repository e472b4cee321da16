"""2-D convolution, stride 1, "same" zero padding, odd square kernels: forward and backward via im2col + GEMM.

Shapes and maths (``p = (k - 1) // 2``, ``xpad`` = ``x`` zero-padded by ``p``; ``(u, v)`` an output pixel,
``(i, j)`` a kernel tap, as in docs/how-it-works.md sections 1 and 4)::

    x    (N, C, H, W)          input
    w    (F, C, k, k)          weights, PyTorch's (out, in, kH, kW) layout (the guide's K)
    b    (F,)                  bias
    out  (N, F, H, W)          out[n, f, u, v] = b[f] + sum_{c,i,j} w[f, c, i, j] * xpad[n, c, u+i, v+j]

This is cross-correlation, as in every deep-learning framework. With ``cols = im2col(x)`` of shape
``(N, C*k*k, H*W)`` and ``w_mat = w.reshape(F, C*k*k)``::

    out[n]  = w_mat @ cols[n] + b[:, None]       (F, H*W), already in NCHW order: no transpose

``N * F * C*k*k * H*W`` multiply-adds, as many as the definition. Backward, given ``dout = dL/dout``
(N, F, H, W), reshaped to ``(N, F, H*W)``::

    db       = sum_{n, uv} dout[n, :, uv]
    dw_mat   = sum_n dout[n] @ cols[n].T         (F, C*k*k)  -> reshaped to (F, C, k, k)
    dcols[n] = w_mat.T @ dout[n]                 (C*k*k, H*W)
    dx       = col2im(dcols)                     (N, C, H, W)

``dx = col2im(w_mat.T @ dout)`` applies the transpose of the convolution: it is the stride-1 transposed
convolution of ``dout`` with the same kernel (PyTorch's ``conv_transpose2d(dout, w, padding=p)``).

Three implementations: :func:`conv2d_forward_naive` (the definition as four loops over ``(n, f, u, v)``
around a sum over ``(c, i, j)``, for checking), the readable NumPy reference (``*_reference``: im2col + one
matrix product) and the fast path (``*_numba``). The reference and the fast path share one signature and
one cache, ``(x, w)``, so a forward in one backend and a backward in the other work; the dispatchers
(``conv2d_forward`` ..., ``backend=None | "reference" | "numba"``) pick one.

The fast path is machinery (:mod:`npespcn.fast`): it cuts the batch into chunks of rows that fit in
cache, runs them on worker threads, and per layer shape picks im2col + GEMM (as here), kn2row (one GEMM
for every tap's product, then shifted adds) or shifted taps (one GEMM per kernel tap on a padded copy).
All compute the sum above; they differ from the reference only in the order of the additions, so in
the last bits.
"""
from __future__ import annotations

import numpy as np

from .. import fast
from .activation import activation_backward, activation_forward, check_activation
from .backend import resolve
from .im2col import col2im_reference, im2col_reference


def _check_conv_args(x, w, b):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"conv2d expects x as a 4-D (N, C, H, W) array, got "
                         f"{'shape ' + str(x.shape) if isinstance(x, np.ndarray) else type(x).__name__}")
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
        raise ValueError(f"conv2d expects weights of shape (F, C, k, k) with odd k, got {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but the weights expect {w.shape[1]}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},), got {b.shape}")


# --------------------------------------------------------------------------------------------------
# Naive loops: the definition, written out. O(N F C H W k^2) Python-level work: tiny inputs only.
# --------------------------------------------------------------------------------------------------
def conv2d_forward_naive(x, w, b):
    """The definition (module docstring) as four loops over ``(n, f, u, v)`` around a sum over the patch's
    ``(c, i, j)``. Returns ``(out, cache)``."""
    _check_conv_args(x, w, b)
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    p = (k - 1) // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((N, F, H, W), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for h in range(H):
                for ww in range(W):
                    out[n, f, h, ww] = b[f] + np.sum(w[f] * xpad[n, :, h:h + k, ww:ww + k])
    return out, (x, w)


def conv2d_backward_naive(dout, cache):
    """Backward of :func:`conv2d_forward_naive` by the same loops. Returns ``(dx, dw, db)``."""
    x, w = cache
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    p = (k - 1) // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for h in range(H):
                for ww in range(W):
                    g = dout[n, f, h, ww]
                    dw[f] += g * xpad[n, :, h:h + k, ww:ww + k]
                    dxpad[n, :, h:h + k, ww:ww + k] += g * w[f]
    return dxpad[:, :, p:p + H, p:p + W], dw, db


# --------------------------------------------------------------------------------------------------
# Reference: im2col + one matrix product per image (np.matmul broadcasts over the batch).
# --------------------------------------------------------------------------------------------------
def conv2d_forward_reference(x, w, b, out=None):
    """Convolution via :func:`~npespcn.functional.im2col.im2col_reference` and ``np.matmul``.

    Args:
        x: input, shape (N, C, H, W).
        w: weights, shape (F, C, k, k), k odd.
        b: bias, shape (F,).
        out: optional C-contiguous array of the result's shape and dtype to write the result into.

    Returns:
        ``(y, cache)``: ``y`` of shape (N, F, H, W) and the cache ``(x, w)`` for the backward pass.
    """
    _check_conv_args(x, w, b)
    x = np.asarray(x, dtype=np.result_type(x, w))
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    cols = im2col_reference(x, k)                       # (N, C*k*k, H*W)
    y = np.matmul(w.reshape(F, -1), cols)               # (N, F, H*W)
    y += b[:, None]
    return _into(out, y.reshape(N, F, H, W)), (x, w)


def conv2d_backward_reference(dout, cache, input_grad: bool = True, out=None):
    """Gradients of :func:`conv2d_forward_reference` (or of the fast forward: the caches are the same).

    Args:
        dout: dL/dy, shape (N, F, H, W).
        cache: ``(x, w)`` from the forward.
        input_grad: False skips ``dx`` (the network's first layer: nothing needs the gradient of its input).
        out: optional array to write ``dx`` into.

    Returns:
        ``(dx, dw, db)``: shapes (N, C, H, W) (None without ``input_grad``), (F, C, k, k) and (F,).
    """
    x, w = cache
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    cols = im2col_reference(x, k)                       # unfolded again: the cache keeps only x
    d = dout.reshape(N, F, H * W)
    db = d.sum(axis=(0, 2))
    dw = np.matmul(d, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dx = None
    if input_grad:
        dcols = np.matmul(w.reshape(F, -1).T, d)        # (N, C*k*k, H*W)
        dx = _into(out, col2im_reference(dcols, x.shape, k))
    return dx, dw.astype(w.dtype, copy=False), db.astype(w.dtype, copy=False)


def conv2d_act_train_forward_reference(x, w, b, activation: str, out=None):
    """``y = act(conv(x, w) + b)`` for training, ``activation`` one of :data:`FUSED_TRAIN_ACTIVATIONS`.

    Returns ``(y, cache)`` with the cache ``((x, w), activation, y)``: these activations' derivatives
    are functions of their output, so nothing else is kept."""
    z, conv_cache = conv2d_forward_reference(x, w, b)
    y = _into(out, activation_forward(z, activation, "reference")[0])
    return y, (conv_cache, activation, y)


def conv2d_act_backward_reference(dy, cache, input_grad: bool = True, out=None):
    """Backward of :func:`conv2d_act_train_forward_reference`: ``dz = dy * act'(z)`` from the output
    alone (``act'`` is 1, ``y > 0`` or ``1 - y**2``), then :func:`conv2d_backward_reference`."""
    conv_cache, name, y = cache
    dz = activation_backward(dy, (name, y, y), "reference")    # y > 0 exactly where z > 0
    return conv2d_backward_reference(dz, conv_cache, input_grad, out)


def conv2d_act_forward_reference(x, w, b, activation: str = "identity", out=None):
    """Inference: ``act(conv(x, w) + b)``, no cache. Returns ``y`` (N, F, H, W), written into ``out`` when
    given."""
    return _into(out, activation_forward(conv2d_forward_reference(x, w, b)[0], activation, "reference")[0])


def _into(out, result):
    """``result``, or its values written into ``out`` (checked: shape, dtype, C-contiguous)."""
    if out is None or result is None:
        return result
    np.copyto(fast.out_array(out, result.shape, result.dtype), result)
    return out


# --------------------------------------------------------------------------------------------------
# Fast path: the same functions, through the machinery of npespcn.fast (chunks of rows on worker
# threads, fused bias and activation). The cache keeps the input; the backward pass unfolds it, or the
# output gradient, again.
# --------------------------------------------------------------------------------------------------
def _fast_input(x, w):
    return np.ascontiguousarray(x, dtype=np.result_type(x, w))


def conv2d_forward_numba(x, w, b, out=None):
    """Same contract as :func:`conv2d_forward_reference`, fast.

    Training does not pad small GEMMs to keep them size independent (a batch of 16 17x17 patches then
    runs on every thread), and a narrowing layer on narrow images runs by kn2row, which sums in
    another order: values may differ from :func:`conv2d_act_forward_numba`'s in the last bits."""
    _check_conv_args(x, w, b)
    x = _fast_input(x, w)
    return fast.conv2d_chunked_forward(x, w, b, "identity", size_independent=False, out=out), (x, w)


def conv2d_backward_numba(dout, cache, input_grad: bool = True, out=None):
    """Same contract as :func:`conv2d_backward_reference`, fast."""
    x, w = cache
    return fast.conv2d_chunked_backward(dout, _fast_input(x, w), w, input_grad, out=out)


def conv2d_act_train_forward_numba(x, w, b, activation: str, out=None):
    """Same contract as :func:`conv2d_act_train_forward_reference`; the activation is applied as each
    chunk leaves its GEMM."""
    _check_conv_args(x, w, b)
    x = _fast_input(x, w)
    y = fast.conv2d_chunked_forward(x, w, b, activation, size_independent=False, out=out)
    return y, ((x, w), activation, y)


def conv2d_act_backward_numba(dy, cache, input_grad: bool = True, out=None):
    """Same contract as :func:`conv2d_act_backward_reference`; ``dz`` is computed while ``dy`` is
    gathered chunk by chunk: one pass less over memory."""
    (x, w), name, y = cache
    return fast.conv2d_chunked_backward(dy, _fast_input(x, w), w, input_grad, y, name, out)


def conv2d_act_forward_numba(x, w, b, activation: str = "identity", out=None):
    """Same contract as :func:`conv2d_act_forward_reference`, fused, with results that do not depend
    on the image's size (a pixel's value is the same in a tile as in the whole image)."""
    _check_conv_args(x, w, b)
    return fast.conv2d_chunked_forward(x, w, b, activation, out=out)


# --------------------------------------------------------------------------------------------------
# Dispatch.
# --------------------------------------------------------------------------------------------------
FUSED_TRAIN_ACTIVATIONS = ("identity", "relu", "tanh")
"""Activations whose derivative is a function of their output (``relu: y > 0``, ``tanh: 1 - y**2``),
so that a training forward fused with the convolution needs to keep only the output."""


def _pick(backend, reference, numba_fn):
    return reference if resolve(backend) == "reference" else numba_fn


def conv2d_forward(x, w, b, backend: str | None = None, out=None):
    """Convolution forward with the chosen backend. Returns ``(y, cache)``; see
    :func:`conv2d_forward_reference`."""
    return _pick(backend, conv2d_forward_reference, conv2d_forward_numba)(x, w, b, out=out)


def conv2d_backward(dout, cache, backend: str | None = None, input_grad: bool = True, out=None):
    """Convolution backward with the chosen backend. Returns ``(dx, dw, db)``; see
    :func:`conv2d_backward_reference`."""
    return _pick(backend, conv2d_backward_reference, conv2d_backward_numba)(dout, cache, input_grad, out)


def conv2d_act_train_forward(x, w, b, activation: str, backend: str | None = None, out=None):
    """Training: ``y = act(conv(x, w) + b)`` in one pass, and a cache for :func:`conv2d_act_backward`.

    Args:
        activation: one of :data:`FUSED_TRAIN_ACTIVATIONS`.

    Returns:
        ``(y, cache)``: the same numbers as :func:`conv2d_forward` followed by
        :func:`~npespcn.functional.activation.activation_forward`, and ``((x, w), activation, y)``.
    """
    name = check_activation(activation)
    if name not in FUSED_TRAIN_ACTIVATIONS:
        raise ValueError(f"a fused training convolution takes one of {FUSED_TRAIN_ACTIVATIONS}, got {name!r}")
    fn = _pick(backend, conv2d_act_train_forward_reference, conv2d_act_train_forward_numba)
    return fn(x, w, b, name, out=out)


def conv2d_act_backward(dy, cache, backend: str | None = None, input_grad: bool = True, out=None):
    """Backward of :func:`conv2d_act_train_forward`: returns ``(dx, dw, db)`` (``dx`` None without
    ``input_grad``)."""
    return _pick(backend, conv2d_act_backward_reference, conv2d_act_backward_numba)(dy, cache, input_grad,
                                                                                   out)


def conv2d_act_forward(x, w, b, activation: str | None = "identity", backend: str | None = None, out=None):
    """Inference only: ``act(conv(x, w) + b)``, fused in the fast path (no cache, one pass less).

    Args:
        x: (N, C, H, W); w: (F, C, k, k), k odd; b: (F,).
        activation: "identity", "relu", "tanh", "gelu" or None (identity).
        out: a C-contiguous array of the result's shape and dtype to write it into (default: a new one).

    Returns:
        ``y`` of shape (N, F, H, W): the same numbers as :func:`conv2d_forward` followed by
        :func:`~npespcn.functional.activation.activation_forward` with the same backend.
    """
    name = check_activation(activation)
    return _pick(backend, conv2d_act_forward_reference, conv2d_act_forward_numba)(x, w, b, name, out=out)
