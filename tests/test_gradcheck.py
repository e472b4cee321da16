"""Numerical gradient checks: every backward pass against central differences, in float64.

For a kernel ``y = f(x, theta)`` the scalar ``L = sum(y * G)`` with a fixed random ``G`` has
``dL/dy = G``, so ``backward(G)`` must return ``dL/dx`` and ``dL/dtheta``. Each is compared with::

    dL/dz[t]  ≈  (L(z + h e_t) - L(z - h e_t)) / (2 h),      h = 1e-5

whose error is O(h²)·L''' (truncation, ~1e-10 here) plus ~1e-16·|L| / h (rounding, ~1e-11). The check is
``max|analytic - numeric| <= 1e-6 * max|numeric|`` per array: four orders above the finite-difference
error, and far below what a wrong index or a missing term gives (errors of order 1). Inputs of ReLU and
PReLU are kept at least 0.05 away from their kink at 0, where the derivative does not exist.

The numba kernels run on one thread here: a check makes thousands of calls on tiny arrays, where waking
the thread pool costs more than the work (on a busy 2-core machine, 7x the time). The parallel paths
themselves are exercised with the default thread count in ``test_kernels.py``.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

from npespcn import ESPCN
from npespcn import functional as F

H = 1e-5
RTOL = 1e-6
BACKENDS = ["reference", "numba"]


@pytest.fixture(autouse=True, scope="module")
def one_numba_thread():
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


def numeric_grad(loss, z, idx=None):
    """Central differences of ``loss()`` with respect to the array ``z``, perturbed in place.

    ``idx``: flat indices to check (default: all). Returns the numeric gradient at those indices.
    """
    flat = z.reshape(-1)
    assert np.shares_memory(flat, z)
    idx = range(flat.size) if idx is None else idx
    out = []
    for t in idx:
        old = flat[t]
        flat[t] = old + H
        plus = loss()
        flat[t] = old - H
        minus = loss()
        flat[t] = old
        out.append((plus - minus) / (2 * H))
    return np.array(out)


def check(analytic, numeric, what=""):
    analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
    scale = float(np.max(np.abs(numeric)))
    assert scale > 1e-8, f"{what}: the numeric gradient is ~0, the check would test nothing"
    err = float(np.max(np.abs(analytic - numeric)))
    assert err <= RTOL * scale, f"{what}: max error {err:.3g} > {RTOL:g} x {scale:.3g}"


def rand(shape, seed=0, away_from_zero=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    if away_from_zero:
        x = np.sign(x) * (0.05 + np.abs(x))
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv2d(backend, k):
    x, w, b = rand((2, 2, 5, 7), 1), rand((3, 2, k, k), 2), rand(3, 3)
    G = rand((2, 3, 5, 7), 4)
    dx, dw, db = F.conv2d_backward(G, F.conv2d_forward(x, w, b, backend)[1], backend)

    def loss():
        return float(np.sum(F.conv2d_forward(x, w, b, backend)[0] * G))

    check(dx, numeric_grad(loss, x), "dx")
    check(dw, numeric_grad(loss, w), "dw")
    check(db, numeric_grad(loss, b), "db")


@pytest.mark.parametrize("backend", BACKENDS)
def test_im2col_col2im(backend):
    """col2im is the backward of im2col, and im2col the backward of col2im (both are linear)."""
    k, shape = 3, (2, 2, 4, 5)
    x, G = rand(shape, 1), rand((2, 2 * k * k, 20), 2)
    check(F.col2im(G, shape, k, backend),
          numeric_grad(lambda: float(np.sum(F.im2col(x, k, backend) * G)), x), "im2col")
    cols, Gx = rand((2, 2 * k * k, 20), 3), rand(shape, 4)
    check(F.im2col(Gx, k, backend),
          numeric_grad(lambda: float(np.sum(F.col2im(cols, shape, k, backend) * Gx)), cols), "col2im")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["identity", "relu", "tanh", "gelu"])
def test_activations(backend, name):
    x, G = rand((2, 3, 4, 5), 1, away_from_zero=True), rand((2, 3, 4, 5), 2)
    dx = F.activation_backward(G, F.activation_forward(x, name, backend)[1], backend)
    check(dx, numeric_grad(lambda: float(np.sum(F.activation_forward(x, name, backend)[0] * G)), x), name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("slopes", [3, 1])
def test_prelu_input_and_slope_gradients(backend, slopes):
    x, G = rand((2, 3, 4, 5), 1, away_from_zero=True), rand((2, 3, 4, 5), 2)
    a = np.array([0.25, -0.1, 0.6][:slopes])
    dx, da = F.prelu_backward(G, F.prelu_forward(x, a, backend)[1], backend)

    def loss():
        return float(np.sum(F.prelu_forward(x, a, backend)[0] * G))

    check(dx, numeric_grad(loss, x), "dx")
    check(da, numeric_grad(loss, a), "da")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_and_unshuffle(backend, r):
    x, G = rand((2, 2 * r * r, 3, 4), 1), rand((2, 2, 3 * r, 4 * r), 2)
    dx = F.pixel_shuffle_backward(G, F.pixel_shuffle_forward(x, r, backend)[1], backend)
    check(dx, numeric_grad(lambda: float(np.sum(F.pixel_shuffle(x, r, backend) * G)), x), "shuffle")
    y, Gy = rand(G.shape, 3), rand(x.shape, 4)
    dy = F.pixel_unshuffle_backward(Gy, F.pixel_unshuffle_forward(y, r, backend)[1], backend)
    check(dy, numeric_grad(lambda: float(np.sum(F.pixel_unshuffle(y, r, backend) * Gy)), y), "unshuffle")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_loss(backend):
    pred, target = rand((2, 1, 5, 7), 1), rand((2, 1, 5, 7), 2)
    _, dpred = F.mse_loss(pred, target, backend)
    check(dpred, numeric_grad(lambda: F.mse_loss(pred, target, backend)[0], pred), "dpred")


# ------------------------------------------------------------------------------------------- whole model
def model_gradcheck(model, x, target, per_param=None, seed=0):
    """MSE loss of the whole model: ``dL/dx`` and every parameter against central differences.

    ``per_param``: check that many random entries of each parameter (default: all of them).
    """
    loss, dy = F.mse_loss(model.forward(x), target)
    dx = model.backward(dy)
    grads = {k: g.copy() for k, g in model.grads.items()}

    def f():
        return F.mse_loss(model.infer(x), target)[0]

    check(dx, numeric_grad(f, x), "dx")
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        idx = None
        if per_param is not None and p.size > per_param:
            idx = rng.choice(p.size, per_param, replace=False)
        num = numeric_grad(f, p, idx)
        check(grads[name].reshape(-1)[idx if idx is not None else slice(None)], num, name)


SMALL = [
    dict(scale=2, channels=1, activation="tanh", output_activation=None),
    dict(scale=3, channels=3, activation="prelu", output_activation="tanh"),
    dict(scale=2, channels=3, activation="gelu", output_activation="gelu"),
    dict(scale=4, channels=1, activation="relu", output_activation="relu"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", SMALL, ids=lambda a: f"x{a['scale']}-c{a['channels']}-{a['activation']}")
def test_small_model_every_parameter(backend, arch):
    """A narrow ESPCN (3x3x4, 3x3x3): every entry of every parameter, and of the input."""
    model = ESPCN(layers=((3, 4), (3, 3)), dtype=np.float64, seed=1, **arch)
    # Larger last-layer weights and non-zero biases than the init, so every path carries gradient.
    for i, (k, p) in enumerate(model.params.items()):
        p[...] = rand(p.shape, 100 + i) * (0.5 if "weight" in k else 0.1) + (0.3 if "prelu" in k else 0)
    r, c = arch["scale"], arch["channels"]
    x = rand((2, c, 3, 4), 7)
    target = rand((2, c, 3 * r, 4 * r), 8)
    if arch["output_activation"] == "relu":
        target = np.abs(target)
    with F.use_backend(backend):
        model_gradcheck(model, x, target)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["paper", "seven"])
def test_presets_sampled_parameters(backend, preset):
    """The paper and seven-layer presets, float64: dx and 12 random entries of every parameter."""
    model = getattr(ESPCN, preset)(3, 1, seed=2, dtype=np.float64)
    last = model.params[f"{model.last_layer}.weight"]
    last *= 100                                              # init std 0.001: lift it above rounding
    x, target = rand((2, 1, 3, 4), 1), rand((2, 1, 9, 12), 2)
    with F.use_backend(backend):
        model_gradcheck(model, x, target, per_param=12)
