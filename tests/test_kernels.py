"""The kernels of :mod:`npespcn.functional`: each against an independent formula written here, and the
NumPy reference against the numba fast path (forward and backward).

Agreement tolerances: float64 ``rtol 1e-12`` (both paths compute the same sums, in a different order);
float32 ``rtol 1e-5`` relative to the array's max magnitude (a few hundred float32 roundings of 6e-8).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import correlate2d

from npespcn import functional as F
from npespcn.formats.tf_graphdef import tf_to_torch_channel_order
from npespcn.functional.activation import (
    _backward_reference,
    prelu_backward_numba,
    prelu_backward_reference,
    prelu_forward_numba,
    prelu_forward_reference,
)
from npespcn.functional.conv import (
    conv2d_act_forward,
    conv2d_backward_naive,
    conv2d_backward_numba,
    conv2d_backward_reference,
    conv2d_forward_naive,
    conv2d_forward_numba,
    conv2d_forward_reference,
)
from npespcn.functional.im2col import col2im_numba, col2im_reference, im2col_numba, im2col_reference
from npespcn.functional.loss import mse_loss_numba, mse_loss_reference
from npespcn.functional.shuffle import (
    pixel_shuffle_numba,
    pixel_shuffle_reference,
    pixel_unshuffle_numba,
    pixel_unshuffle_reference,
)

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def close(a, b, dtype):
    """Max-magnitude-relative agreement (see the module docstring)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.max(np.abs(b))), 1e-30)
    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    assert err <= RTOL[dtype] * scale, f"max error {err:.3g} vs {RTOL[dtype]:g} x {scale:.3g}"


def rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def strided(x):
    """A non-contiguous view with the same values as ``x`` (every other element of a bigger array)."""
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    view = big[..., ::2]
    assert not view.flags.c_contiguous
    return view


# ------------------------------------------------------------------------------------------- im2col
def im2col_loops(x, k):
    """cols[n, (c*k + i)*k + j, h*W + w] = x[n, c, h+i-p, w+j-p], or 0 outside the image."""
    N, C, H, W = x.shape
    p = (k - 1) // 2
    cols = np.zeros((N, C * k * k, H * W), x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(k):
                for j in range(k):
                    for h in range(H):
                        for w in range(W):
                            hs, ws = h + i - p, w + j - p
                            if 0 <= hs < H and 0 <= ws < W:
                                cols[n, (c * k + i) * k + j, h * W + w] = x[n, c, hs, ws]
    return cols


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_both_backends_equal_the_index_formula(k, dtype):
    x = rand((2, 3, 7, 11), dtype)
    expected = im2col_loops(x, k)
    for fn in (im2col_reference, im2col_numba):
        got = fn(x, k)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)          # pure copies: bit-exact
    np.testing.assert_array_equal(im2col_numba(strided(x), k), expected)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_col2im_is_the_adjoint_of_im2col(k, dtype):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: the defining property of the backward pass."""
    shape = (2, 3, 7, 11)
    x = rand(shape, np.float64, 1)
    c = rand((2, 3 * k * k, 77), np.float64, 2)
    lhs = np.sum(im2col_reference(x, k) * c)
    for fn in (col2im_reference, col2im_numba):
        assert math.isclose(lhs, np.sum(x * fn(c, shape, k)), rel_tol=1e-12)
    cd = c.astype(dtype)
    close(col2im_numba(cd, shape, k), col2im_reference(cd, shape, k), dtype)
    close(col2im_numba(strided(cd), shape, k), col2im_reference(cd, shape, k), dtype)


# ------------------------------------------------------------------------------------------- conv
def conv_scipy(x, w, b):
    """Independent convolution: scipy's 2-D cross-correlation, 'same' mode, per (image, out, in)."""
    N, C, H, W = x.shape
    out = np.zeros((N, w.shape[0], H, W))
    for n in range(N):
        for f in range(w.shape[0]):
            out[n, f] = b[f] + sum(correlate2d(x[n, c], w[f, c], mode="same") for c in range(C))
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_naive_conv_equals_scipy_correlation(k):
    x, w, b = rand((2, 3, 7, 11), np.float64, 1), rand((4, 3, k, k), np.float64, 2), rand(4, np.float64, 3)
    close(conv2d_forward_naive(x, w, b)[0], conv_scipy(x, w, b), np.float64)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_reference_and_numba_equal_the_naive_loops(k, dtype):
    x, w, b = rand((2, 3, 7, 11), dtype, 1), rand((4, 3, k, k), dtype, 2), rand(4, dtype, 3)
    dout = rand((2, 4, 7, 11), dtype, 4)
    y0, c0 = conv2d_forward_naive(x, w, b)
    dx0, dw0, db0 = conv2d_backward_naive(dout, c0)
    for fwd, bwd in ((conv2d_forward_reference, conv2d_backward_reference),
                     (conv2d_forward_numba, conv2d_backward_numba)):
        for xin, din in ((x, dout), (strided(x), strided(dout))):
            y, cache = fwd(xin, w, b)
            assert y.dtype == dtype and y.shape == (2, 4, 7, 11)
            close(y, y0, dtype)
            dx, dw, db = bwd(din, cache)
            assert (dx.dtype, dw.dtype, db.dtype) == (dtype,) * 3
            close(dx, dx0, dtype)
            close(dw, dw0, dtype)
            close(db, db0, dtype)


def test_conv_dispatch_follows_the_backend():
    x, w, b = rand((1, 2, 5, 5), np.float64), rand((3, 2, 3, 3), np.float64), rand(3, np.float64)
    y_ref = conv2d_forward_reference(x, w, b)[0]
    for name in F.BACKENDS:
        with F.use_backend(name):
            assert F.get_backend() == name
            close(F.conv2d_forward(x, w, b)[0], y_ref, np.float64)
    with pytest.raises(ValueError, match=r"backend must be one of .*got 'cuda'"):
        F.set_backend("cuda")


# ------------------------------------------------------------------------------------------- shuffle
def shuffle_loops(x, r):
    """out[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w], written out."""
    N, Cr2, H, W = x.shape
    C = Cr2 // (r * r)
    out = np.zeros((N, C, H * r, W * r), x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    for i in range(r):
                        for j in range(r):
                            out[n, c, h * r + i, w * r + j] = x[n, c * r * r + i * r + j, h, w]
    return out


@pytest.mark.parametrize("r", [1, 2, 3, 4])
@pytest.mark.parametrize("C", [1, 3])
def test_pixel_shuffle_is_pytorchs_channel_order(r, C):
    x = rand((2, C * r * r, 3, 5), np.float32)
    expected = shuffle_loops(x, r)
    for fn in (pixel_shuffle_reference, pixel_shuffle_numba):
        np.testing.assert_array_equal(fn(x, r), expected)
    np.testing.assert_array_equal(pixel_shuffle_numba(strided(x), r), expected)
    for backend in F.BACKENDS:
        np.testing.assert_array_equal(F.pixel_shuffle_forward(x, r, backend)[0], expected)


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_unshuffle_inverts_the_shuffle(r):
    x = rand((2, 3 * r * r, 3, 5), np.float64)
    y = shuffle_loops(x, r)
    for fn in (pixel_unshuffle_reference, pixel_unshuffle_numba):
        np.testing.assert_array_equal(fn(y, r), x)
        np.testing.assert_array_equal(fn(strided(y), r), x)
    z = rand(y.shape, np.float64, 5)
    for backend in F.BACKENDS:
        np.testing.assert_array_equal(F.pixel_shuffle(F.pixel_unshuffle(z, r, backend), r, backend), z)
        # The shuffle is a permutation: its backward is the inverse permutation, in both directions.
        np.testing.assert_array_equal(F.pixel_shuffle_backward(y, r, backend), x)
        np.testing.assert_array_equal(F.pixel_unshuffle_backward(x, r, backend), y)


@pytest.mark.parametrize("r", [2, 3])
def test_tf_to_torch_channel_order(r):
    """depth_to_space(x_tf) == pixel_shuffle(tf_to_torch_channel_order(x_tf)), with TF's formula
    out[n, c, h*r + i, w*r + j] = x_tf[n, (i*r + j)*C + c, h, w]."""
    C, N, H, W = 3, 2, 3, 4
    x_tf = rand((N, C * r * r, H, W), np.float32)
    d2s = np.zeros((N, C, H * r, W * r), np.float32)
    for c in range(C):
        for i in range(r):
            for j in range(r):
                d2s[:, c, i::r, j::r] = x_tf[:, (i * r + j) * C + c]
    # The function reorders axis 0: apply it to the channel axis.
    x_torch = tf_to_torch_channel_order(x_tf.transpose(1, 0, 2, 3), r).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(shuffle_loops(np.ascontiguousarray(x_torch), r), d2s)
    # On a weight (C*r*r, in, k, k) and a bias, as used to convert TF checkpoints.
    w = rand((C * r * r, 2, 3, 3), np.float32, 1)
    wt = tf_to_torch_channel_order(w, r)
    for c in range(C):
        for i in range(r):
            for j in range(r):
                np.testing.assert_array_equal(wt[c * r * r + i * r + j], w[(i * r + j) * C + c])
    b = np.arange(C * r * r, dtype=np.float32)
    assert tf_to_torch_channel_order(b, r).tolist() == [(i * r + j) * C + c for c in range(C)
                                                          for i in range(r) for j in range(r)]


# ------------------------------------------------------------------------------------------- activations
def _phi(v):
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


FORMULAS = {
    "identity": (lambda v: v, lambda v: 1.0),
    "relu": (lambda v: max(v, 0.0), lambda v: 1.0 if v > 0 else 0.0),
    "tanh": (math.tanh, lambda v: 1.0 - math.tanh(v) ** 2),
    "gelu": (lambda v: v * _phi(v), lambda v: _phi(v) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_activation_values_and_derivatives_against_math(name, dtype, backend):
    x = (rand((2, 3, 7, 11), dtype) * 3).astype(dtype)
    x.flat[:4] = [0.0, -0.0, 1e-3, -1e-3]
    dout = rand(x.shape, dtype, 1)
    f, df = FORMULAS[name]
    y, cache = F.activation_forward(x, name, backend)
    dx = F.activation_backward(dout, cache, backend)
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == x.shape
    xd = x.astype(np.float64).ravel()
    close(y, np.array([f(v) for v in xd]).reshape(x.shape), dtype)
    close(dx, (dout.astype(np.float64).ravel() * np.array([df(v) for v in xd])).reshape(x.shape), dtype)
    if name == "relu":
        assert dx.flat[0] == 0 and dx.flat[1] == 0          # derivative 0 at x = 0, as PyTorch


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_accepts_non_contiguous_input(name):
    x = rand((2, 3, 5, 4), np.float32) * 2
    for backend in F.BACKENDS:
        y, cache = F.activation_forward(strided(x), name, backend)
        close(y, F.activation_forward(x, name, backend)[0], np.float32)
        dx = F.activation_backward(strided(x), cache, backend)
        close(dx, _backward_reference(x, x, F.activation_forward(x, name, "reference")[0], name), np.float32)


def test_gelu_known_values():
    """GELU(1) = Phi(1) = 0.841344746..., GELU(-1) = -0.158655253... (exact erf form, not the tanh one)."""
    x = np.array([1.0, -1.0, 0.0])
    for backend in F.BACKENDS:
        y = F.activation_forward(x, "gelu", backend)[0]
        np.testing.assert_allclose(y, [0.8413447460685429, -0.15865525393145707, 0.0], rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_channel", [True, False])
def test_prelu_against_the_formula_and_between_backends(dtype, per_channel):
    x = rand((2, 3, 7, 11), dtype)
    a = np.array([0.1, 0.25, -0.3], dtype) if per_channel else np.array([0.2], dtype)
    dout = rand(x.shape, dtype, 1)
    slope = np.broadcast_to(a.reshape(1, -1, 1, 1), x.shape)
    y_exp = np.where(x > 0, x, slope * x)
    dx_exp = np.where(x > 0, dout, slope * dout)
    da_exp = np.where(x > 0, 0.0, dout.astype(np.float64) * x).sum(axis=(0, 2, 3))
    if not per_channel:
        da_exp = da_exp.sum(keepdims=True)
    for fwd, bwd in ((prelu_forward_reference, prelu_backward_reference),
                     (prelu_forward_numba, prelu_backward_numba)):
        y, cache = fwd(x, a)
        dx, da = bwd(dout, cache)
        assert y.dtype == dtype and dx.dtype == dtype and da.dtype == dtype and da.shape == a.shape
        close(y, y_exp, dtype)
        close(dx, dx_exp, dtype)
        close(da, da_exp, dtype)
    y, cache = F.prelu_forward(strided(x), a, "numba")
    close(y, y_exp, dtype)
    close(F.prelu_backward(strided(dout), cache, "numba")[1], da_exp, dtype)


# ------------------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_loss_and_gradient(dtype):
    pred, target = rand((2, 1, 7, 11), dtype), rand((2, 1, 7, 11), dtype, 1)
    d64 = pred.astype(np.float64) - target
    for fn in (mse_loss_reference, mse_loss_numba):
        loss, dpred = fn(pred, target)
        assert isinstance(loss, float) and dpred.dtype == dtype
        assert math.isclose(loss, np.sum(d64 ** 2) / pred.size, rel_tol=RTOL[dtype])
        close(dpred, 2 * d64 / pred.size, dtype)
    loss, _ = mse_loss_numba(strided(pred), target)
    assert math.isclose(loss, np.sum(d64 ** 2) / pred.size, rel_tol=RTOL[dtype])


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_conv_rejects_bad_shapes_naming_expected_and_got(backend):
    w, b = np.zeros((4, 3, 3, 3)), np.zeros(4)
    with pytest.raises(ValueError, match=r"input has 2 channels but the weights expect 3"):
        F.conv2d_forward(np.zeros((1, 2, 5, 5)), w, b, backend)
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\) array, got shape \(3, 5, 5\)"):
        F.conv2d_forward(np.zeros((3, 5, 5)), w, b, backend)
    with pytest.raises(ValueError, match=r"odd k, got \(4, 3, 2, 2\)"):
        F.conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 3, 2, 2)), b, backend)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got \(3,\)"):
        F.conv2d_forward(np.zeros((1, 3, 5, 5)), w, np.zeros(3), backend)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_other_kernels_reject_bad_input(backend):
    with pytest.raises(ValueError, match=r"kernel size must be a positive odd integer.*got 4"):
        F.im2col(np.zeros((1, 1, 5, 5)), 4, backend)
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; expected one of identity, relu, tanh"):
        F.activation_forward(np.zeros(3), "swish", backend)
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\) array, got shape \(8, 2, 2\)"):
        F.pixel_shuffle(np.zeros((8, 2, 2)), 2, backend)
    with pytest.raises(ValueError, match=r"channel count divisible by 4, got 6"):
        F.pixel_shuffle(np.zeros((1, 6, 2, 2)), 2, backend)
    with pytest.raises(ValueError, match=r"height and width divisible by 3, got 6x7"):
        F.pixel_unshuffle(np.zeros((1, 1, 6, 7)), 3, backend)
    with pytest.raises(ValueError, match=r"upscale factor r must be a positive integer, got 0"):
        F.pixel_shuffle(np.zeros((1, 4, 2, 2)), 0, backend)
    with pytest.raises(ValueError, match=r"1 or C slopes; got x \(1, 3, 2, 2\), a \(2,\)"):
        F.prelu_forward(np.zeros((1, 3, 2, 2)), np.zeros(2), backend)
    with pytest.raises(ValueError, match=r"prediction \(1, 2\) and target \(2, 1\) differ in shape"):
        F.mse_loss(np.zeros((1, 2)), np.zeros((2, 1)), backend)


def test_tf_to_torch_channel_order_rejects_a_channel_count_not_divisible_by_r2():
    with pytest.raises(ValueError, match="divisible by r\\*r = 9, got 10"):
        tf_to_torch_channel_order(np.zeros((10, 2)), 3)


@pytest.mark.parametrize("call", [
    lambda: F.activation_forward(np.zeros(3), "prelu"),
    lambda: conv2d_act_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), np.zeros(1), "prelu"),
])
def test_prelu_is_refused_where_no_slopes_exist(call):
    with pytest.raises(ValueError, match="must be parameter-free .* prelu has learned slopes"):
        call()
