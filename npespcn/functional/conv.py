"""2-D convolution, stride 1, "same" zero padding, odd square kernels: forward and backward via im2col + GEMM.

Shapes and maths (``p = (k - 1) // 2``, ``xpad`` = ``x`` zero-padded by ``p``)::

    x    (N, C, H, W)          input
    w    (F, C, k, k)          weights, PyTorch's (out, in, kH, kW) layout
    b    (F,)                  bias
    out  (N, F, H, W)          out[n, f, h, w] = b[f] + sum_{c,i,j} w[f, c, i, j] * xpad[n, c, h+i, w+j]

This is cross-correlation, as in every deep-learning framework. With ``cols = im2col(x)`` of shape
``(N, C*k*k, H*W)`` and ``W2 = w.reshape(F, C*k*k)``::

    out[n]  = W2 @ cols[n] + b[:, None]          (F, H*W), already in NCHW order: no transpose

Backward, given ``dout = dL/dout`` (N, F, H, W), reshaped to ``(N, F, H*W)``::

    db      = sum_{n, hw} dout[n, :, hw]
    dW2     = sum_n dout[n] @ cols[n].T          (F, C*k*k)  -> reshaped to (F, C, k, k)
    dcols[n] = W2.T @ dout[n]                    (C*k*k, H*W)
    dx      = col2im(dcols)                      (N, C, H, W)

Three implementations share one signature: :func:`conv2d_forward_naive` (six nested loops, for checking),
the readable NumPy reference and the fast path (chunked numba im2col + BLAS GEMM,
:mod:`npespcn.functional.conv_chunked`).
"""
from __future__ import annotations

import numpy as np

from ._backend import resolve
from .activation import activation_backward, activation_forward, check_activation
from .conv_chunked import _out_array, conv2d_chunked_backward, conv2d_chunked_forward
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
    """Direct six-loop convolution (definition in the module docstring). Returns ``(out, cache)``."""
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
def conv2d_forward_reference(x, w, b):
    """Convolution via :func:`~npespcn.functional.im2col.im2col_reference` and ``np.matmul``.

    Parameters
    ----------
    x : ndarray (N, C, H, W)
    w : ndarray (F, C, k, k), k odd
    b : ndarray (F,)

    Returns
    -------
    out : ndarray (N, F, H, W)
    cache : tuple ``(x.shape, w, cols)`` for :func:`conv2d_backward_reference`
    """
    _check_conv_args(x, w, b)
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    cols = im2col_reference(x, k)                       # (N, C*k*k, H*W)
    out = np.matmul(w.reshape(F, -1), cols)             # (N, F, H*W)
    out += b[:, None]
    return out.reshape(N, F, H, W), (x.shape, w, cols)


def conv2d_backward_reference(dout, cache, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward_reference`.

    Parameters
    ----------
    dout : ndarray (N, F, H, W), dL/dout
    cache : from the forward
    input_grad : bool
        False skips ``dx`` (the network's first layer: nothing needs the gradient of its input).

    Returns
    -------
    dx : ndarray (N, C, H, W), or None without ``input_grad``
    dw : ndarray (F, C, k, k)
    db : ndarray (F,)
    """
    shape, w, cols = cache
    N, C, H, W = shape
    F, _, k, _ = w.shape
    d = dout.reshape(N, F, H * W)
    db = d.sum(axis=(0, 2))
    dw = np.matmul(d, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dx = None
    if input_grad:
        dcols = np.matmul(w.reshape(F, -1).T, d)        # (N, C*k*k, H*W)
        dx = col2im_reference(dcols, shape, k)
    return dx, dw.astype(w.dtype, copy=False), db.astype(w.dtype, copy=False)


# --------------------------------------------------------------------------------------------------
# Fast path: im2col of a few rows at a time, one GEMM per chunk, chunks spread over worker threads
# (see npespcn.functional.conv_chunked). The cache keeps the input; the backward pass unfolds it, or the
# output gradient, again.
# --------------------------------------------------------------------------------------------------
def conv2d_forward_numba(x, w, b, activation: str = "identity", out=None):
    """Same contract as :func:`conv2d_forward_reference`, fast; the cache is ``(x, w)`` (the backward pass
    unfolds ``x`` again, chunk by chunk). ``activation`` is applied in the same pass (for
    :func:`conv2d_act_train_forward`).

    Unlike inference, training does not pad small GEMMs to keep them size independent: a batch of
    16 17x17 patches then runs its first and last layers on every thread, not one. And a layer with
    fewer outputs than inputs on narrow images runs by kn2row (see
    :mod:`~npespcn.functional.conv_chunked`), which sums in another order. So the values may differ
    from :func:`conv2d_act_forward`'s in the last bits; with im2col and the same chunks they are
    bitwise equal.

    ``out`` (optional, here and in the functions below that take it): an array to write the result
    into, see :func:`~npespcn.functional.conv_chunked.conv2d_chunked_forward`."""
    _check_conv_args(x, w, b)
    x = np.ascontiguousarray(x, dtype=np.result_type(x, w))
    y = conv2d_chunked_forward(x, w, b, activation, size_independent=False, out=out)
    return y, (x, w)


def conv2d_backward_numba(dout, cache, input_grad: bool = True, out=None):
    """Same contract as :func:`conv2d_backward_reference`, fast; ``dx`` goes into ``out`` if given."""
    x, w = cache
    return conv2d_chunked_backward(dout, x, w, input_grad, out=out)


def _into(out, result):
    """``result``, or its values written into ``out`` (the reference path's way of honouring ``out``)."""
    if out is None or result is None:
        return result
    np.copyto(_out_array(out, result.shape, result.dtype), result)
    return out


# --------------------------------------------------------------------------------------------------
# Dispatch.
# --------------------------------------------------------------------------------------------------
def conv2d_forward(x, w, b, backend: str | None = None, out=None):
    """Convolution forward with the chosen backend. Returns ``(out, cache)``; the result is written
    into ``out`` when given (see :func:`conv2d_forward_numba`)."""
    if resolve(backend) == "reference":
        y, cache = conv2d_forward_reference(x, w, b)
        return _into(out, y), cache
    return conv2d_forward_numba(x, w, b, out=out)


def conv2d_backward(dout, cache, backend: str | None = None, input_grad: bool = True, out=None):
    """Convolution backward with the chosen backend. Returns ``(dx, dw, db)``, ``dx`` None without
    ``input_grad``, else written into ``out`` when given."""
    if resolve(backend) == "reference":
        dx, dw, db = conv2d_backward_reference(dout, cache, input_grad)
        return _into(out, dx), dw, db
    return conv2d_backward_numba(dout, cache, input_grad, out)


FUSED_TRAIN_ACTIVATIONS = ("identity", "relu", "tanh")
"""Activations whose derivative is a function of their output (``relu: y > 0``, ``tanh: 1 - y**2``),
so that a training forward fused with the convolution needs to keep only the output."""


def conv2d_act_train_forward(x, w, b, activation: str, backend: str | None = None, out=None):
    """Training: ``y = act(conv(x, w) + b)`` in one pass, and a cache for :func:`conv2d_act_backward`.

    ``activation`` is one of :data:`FUSED_TRAIN_ACTIVATIONS`. Same numbers as :func:`conv2d_forward`
    followed by :func:`~npespcn.functional.activation.activation_forward`.

    Returns
    -------
    y : ndarray (N, F, H, W)
    cache : ``(conv cache, activation, y)``
    """
    name = check_activation(activation)
    if name not in FUSED_TRAIN_ACTIVATIONS:
        raise ValueError(f"a fused training convolution takes one of {FUSED_TRAIN_ACTIVATIONS}, got {name!r}")
    if resolve(backend) == "reference":
        z, conv_cache = conv2d_forward_reference(x, w, b)
        y = _into(out, activation_forward(z, name, "reference")[0])
        return y, (conv_cache, name, y)
    y, conv_cache = conv2d_forward_numba(x, w, b, name, out)
    return y, (conv_cache, name, y)


def conv2d_act_backward(dy, cache, backend: str | None = None, input_grad: bool = True, out=None):
    """Backward of :func:`conv2d_act_train_forward`: returns ``(dx, dw, db)`` (``dx`` None without
    ``input_grad``).

    ``dz = dy * act'(z)`` from the output alone (``act'`` is 1, ``y > 0`` or ``1 - y**2``), then
    :func:`conv2d_backward`. The fast path computes ``dz`` while it gathers ``dy`` chunk by chunk
    (:func:`~npespcn.functional.conv_chunked.conv2d_chunked_backward`): one pass less over memory.
    """
    conv_cache, name, y = cache
    if resolve(backend) == "reference":
        # For these activations the output decides the derivative: y > 0 exactly where z > 0.
        dz = activation_backward(dy, (name, y, y), backend)
        return conv2d_backward(dz, conv_cache, backend, input_grad, out)
    x, w = conv_cache
    return conv2d_chunked_backward(dy, x, w, input_grad, y, name, out)


def conv2d_act_forward(x, w, b, activation: str | None = "identity", backend: str | None = None):
    """Inference only: ``act(conv(x, w) + b)``, fused in the fast path (no cache, one pass less).

    Gives the same numbers as :func:`conv2d_forward` followed by
    :func:`~npespcn.functional.activation.activation_forward` with the same backend.

    Parameters
    ----------
    x : ndarray (N, C, H, W)
    w : ndarray (F, C, k, k), k odd
    b : ndarray (F,)
    activation : "identity", "relu", "tanh", "gelu" or None (identity)

    Returns
    -------
    out : ndarray (N, F, H, W)
    """
    name = check_activation(activation)
    if resolve(backend) == "reference":
        return activation_forward(conv2d_forward_reference(x, w, b)[0], name, "reference")[0]
    _check_conv_args(x, w, b)
    return conv2d_chunked_forward(x, w, b, name)
