"""The reference and the fast twin of every kernel share one signature and one cache: a forward in one
backend followed by a backward in the other gives the gradients of either backend alone."""
from __future__ import annotations

import importlib
import inspect
import itertools

import numpy as np
import pytest

import npespcn.functional as F
from npespcn import ESPCN
from npespcn.functional import activation, conv, loss, shuffle

im2col = importlib.import_module("npespcn.functional.im2col")    # the module; F.im2col is its function

PAIRS = list(itertools.product(F.BACKENDS, F.BACKENDS))


def rand(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _same_structure(a, b):
    """The two caches hold the same kinds of things, arrays of the same shapes and dtypes."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same_structure, a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("module,reference,fast", [
    (conv, "conv2d_forward_reference", "conv2d_forward_numba"),
    (conv, "conv2d_backward_reference", "conv2d_backward_numba"),
    (conv, "conv2d_act_train_forward_reference", "conv2d_act_train_forward_numba"),
    (conv, "conv2d_act_backward_reference", "conv2d_act_backward_numba"),
    (conv, "conv2d_act_forward_reference", "conv2d_act_forward_numba"),
    (activation, "activation_forward_reference", "activation_forward_numba"),
    (activation, "activation_backward_reference", "activation_backward_numba"),
    (activation, "prelu_forward_reference", "prelu_forward_numba"),
    (activation, "prelu_backward_reference", "prelu_backward_numba"),
    (shuffle, "pixel_shuffle_reference", "pixel_shuffle_numba"),
    (shuffle, "pixel_unshuffle_reference", "pixel_unshuffle_numba"),
    (im2col, "im2col_reference", "im2col_numba"),
    (im2col, "col2im_reference", "col2im_numba"),
    (loss, "mse_loss_reference", "mse_loss_numba"),
    (loss, "l1_loss_reference", "l1_loss_numba"),
    (loss, "charbonnier_loss_reference", "charbonnier_loss_numba"),
])
def test_twins_have_literally_the_same_signature(module, reference, fast):
    assert inspect.signature(getattr(module, reference)) == inspect.signature(getattr(module, fast))


@pytest.mark.parametrize("fwd,bwd", PAIRS)
@pytest.mark.parametrize("k,C,Fo", [(5, 1, 6), (3, 4, 3)])
def test_conv_forward_in_one_backend_backward_in_the_other(fwd, bwd, k, C, Fo):
    x, w, b = rand((2, C, 9, 11), 1), rand((Fo, C, k, k), 2), rand((Fo,), 3)
    dy = rand((2, Fo, 9, 11), 4)
    y, cache = F.conv2d_forward(x, w, b, backend=fwd)
    y_other, cache_other = F.conv2d_forward(x, w, b, backend=bwd)
    assert _same_structure(cache, cache_other)
    np.testing.assert_allclose(y, y_other, rtol=1e-12, atol=1e-12)
    got = F.conv2d_backward(dy, cache, backend=bwd)
    want = F.conv2d_backward(dy, cache_other, backend=bwd)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fwd,bwd", PAIRS)
@pytest.mark.parametrize("act", conv.FUSED_TRAIN_ACTIVATIONS)
def test_fused_conv_activation_across_backends(fwd, bwd, act):
    x, w, b = rand((3, 2, 8, 7), 5), rand((4, 2, 3, 3), 6), rand((4,), 7)
    dy = rand((3, 4, 8, 7), 8)
    y, cache = conv.conv2d_act_train_forward(x, w, b, act, backend=fwd)
    _, cache_other = conv.conv2d_act_train_forward(x, w, b, act, backend=bwd)
    assert _same_structure(cache, cache_other)
    got = conv.conv2d_act_backward(dy, cache, backend=bwd)
    want = conv.conv2d_act_backward(dy, cache_other, backend=bwd)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("fwd,bwd", PAIRS)
@pytest.mark.parametrize("name", F.ACTIVATIONS)
def test_activation_across_backends(fwd, bwd, name):
    x, dy = rand((2, 3, 5, 4), 9), rand((2, 3, 5, 4), 10)
    _, cache = F.activation_forward(x, name, backend=fwd)
    _, cache_other = F.activation_forward(x, name, backend=bwd)
    assert _same_structure(cache, cache_other)
    np.testing.assert_allclose(F.activation_backward(dy, cache, backend=bwd),
                               F.activation_backward(dy, cache_other, backend=bwd), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fwd,bwd", PAIRS)
def test_prelu_and_shuffle_across_backends(fwd, bwd):
    x, a = rand((2, 3, 4, 5), 11), np.array([0.1, 0.2, 0.3])
    dy = rand((2, 3, 4, 5), 12)
    _, cache = F.prelu_forward(x, a, backend=fwd)
    _, cache_other = F.prelu_forward(x, a, backend=bwd)
    for g, e in zip(F.prelu_backward(dy, cache, backend=bwd), F.prelu_backward(dy, cache_other, backend=bwd)):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    z = rand((2, 8, 3, 4), 13)
    y, cache = F.pixel_shuffle_forward(z, 2, backend=fwd)
    _, cache_other = F.pixel_shuffle_forward(z, 2, backend=bwd)
    assert cache == cache_other
    np.testing.assert_array_equal(F.pixel_shuffle_backward(y, cache, backend=bwd), z)


@pytest.mark.parametrize("fwd,bwd", [("reference", "numba"), ("numba", "reference")])
def test_model_forward_in_one_backend_backward_in_the_other(fwd, bwd):
    """The whole network: its gradients agree with a single-backend pass."""
    x = np.random.default_rng(14).random((2, 1, 10, 9))
    grads = {}
    for pair in ((fwd, bwd), (bwd, bwd)):
        m = ESPCN.paper(3, seed=2, dtype=np.float64)
        with F.use_backend(pair[0]):
            y = m.forward(x)
        with F.use_backend(pair[1]):
            m.backward(np.ones_like(y) / y.size)
        grads[pair] = {k: v.copy() for k, v in m.grads.items()}
    for k in grads[(bwd, bwd)]:
        np.testing.assert_allclose(grads[(fwd, bwd)][k], grads[(bwd, bwd)][k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_a_broken_cache_is_caught():
    """The check is not vacuous: a cache of another layout fails the structure comparison."""
    x, w, b = rand((1, 1, 5, 5)), rand((2, 1, 3, 3)), rand((2,))
    _, cache = F.conv2d_forward(x, w, b, backend="reference")
    assert not _same_structure(cache, (x.shape, w, None))
