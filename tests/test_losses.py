"""L1 and Charbonnier losses: formulas, gradients (numerically), both backends, and PyTorch's L1 semantics."""
from __future__ import annotations

import numpy as np
import pytest

import npespcn.functional as F


def rand(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("backend", F.BACKENDS)
def test_l1_is_the_mean_absolute_error_and_its_sign(backend):
    p, t = rand((2, 3, 4, 5), 1), rand((2, 3, 4, 5), 2)
    loss, d = F.l1_loss(p, t, backend=backend)
    assert loss == pytest.approx(np.abs(p - t).mean(), rel=1e-12)
    np.testing.assert_array_equal(d, np.sign(p - t) / p.size)
    _, d0 = F.l1_loss(t, t, backend=backend)
    assert not d0.any()                                     # the subgradient at 0 is 0, as PyTorch's


@pytest.mark.parametrize("backend", F.BACKENDS)
@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_charbonnier_gradient_is_numerically_right(backend, eps):
    p, t = rand((3, 7), 3), rand((3, 7), 4)
    loss, d = F.charbonnier_loss(p, t, eps, backend=backend)
    assert loss == pytest.approx(np.sqrt((p - t) ** 2 + eps ** 2).mean(), rel=1e-12)
    h, num = 1e-6, np.zeros_like(p)
    for i in np.ndindex(p.shape):
        q = p.copy()
        q[i] += h
        up = F.charbonnier_loss(q, t, eps, backend=backend)[0]
        q[i] -= 2 * h
        num[i] = (up - F.charbonnier_loss(q, t, eps, backend=backend)[0]) / (2 * h)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-10)


def test_charbonnier_is_l1_far_from_zero_and_quadratic_near_it():
    big = np.array([10.0, -20.0])
    assert F.charbonnier_loss(big, np.zeros(2), 1e-3)[0] == pytest.approx(F.l1_loss(big, np.zeros(2))[0], rel=1e-8)
    small = np.array([1e-6])
    assert F.charbonnier_loss(small, np.zeros(1), 1.0)[0] == pytest.approx(1.0 + 0.5e-12, rel=1e-15)


@pytest.mark.parametrize("name", ["l1", "charbonnier"])
def test_float32_backends_agree(name):
    p, t = rand((4, 9, 17, 17), 5, np.float32), rand((4, 9, 17, 17), 6, np.float32)
    ref = F.LOSSES[name](p, t, backend="reference")
    fast = F.LOSSES[name](p, t, backend="numba")
    assert fast[1].dtype == np.float32 and fast[0] == pytest.approx(ref[0], rel=1e-6)
    np.testing.assert_allclose(fast[1], ref[1], rtol=1e-6, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="l1_loss: prediction"):
        F.l1_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="eps must be > 0"):
        F.charbonnier_loss(np.zeros(3), np.zeros(3), 0.0)
