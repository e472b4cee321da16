"""Optimizers and schedules against update rules and closed forms written out in this file.

The hand-written rules are the textbook forms (e.g. Adam's ``m_hat / (sqrt(v_hat) + eps)``), not the
rearranged ones in :mod:`npespcn.nn.optim`, so agreement checks the algebra too. Float64 parameters:
``rtol 1e-12``. Agreement with PyTorch's optimizers itself is in ``test_torch_reference.py``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from npespcn import SGD, Adam, CosineLR, StepLR

RTOL = 1e-12


def make_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {"a": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal(5).astype(dtype)}


def grad_sequence(params, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()} for _ in range(steps)]


def test_plain_sgd_and_lr_mult():
    params = make_params()
    p0 = {k: v.copy() for k, v in params.items()}
    arrays = dict(params)
    (g,) = grad_sequence(params, 1)
    SGD(params, lr=0.1, lr_mult={"b": 0.1}).step(g)
    np.testing.assert_allclose(params["a"], p0["a"] - 0.1 * g["a"], rtol=RTOL)
    np.testing.assert_allclose(params["b"], p0["b"] - 0.01 * g["b"], rtol=RTOL)
    assert all(params[k] is arrays[k] for k in params)          # updated in place


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 0.0), (0.9, 0.01), (0.0, 0.05)])
def test_sgd_momentum_weight_decay(momentum, weight_decay):
    params = make_params()
    mine = {k: v.copy() for k, v in params.items()}
    opt = SGD(params, lr=0.05, momentum=momentum, weight_decay=weight_decay, lr_mult={"a": 0.1})
    buf = {}
    for t, g in enumerate(grad_sequence(params, 4)):
        opt.step(g)
        for k in mine:
            d = g[k] + weight_decay * mine[k]
            buf[k] = d if t == 0 else momentum * buf[k] + d     # PyTorch: dampening 0, first buf = d
            mine[k] = mine[k] - 0.05 * (0.1 if k == "a" else 1.0) * buf[k]
        for k in mine:
            np.testing.assert_allclose(params[k], mine[k], rtol=RTOL)


@pytest.mark.parametrize("betas,eps,weight_decay", [((0.9, 0.999), 1e-8, 0.0), ((0.8, 0.99), 1e-3, 0.02)])
def test_adam_against_the_textbook_rule(betas, eps, weight_decay):
    params = make_params()
    mine = {k: v.copy() for k, v in params.items()}
    lr, (b1, b2) = 0.01, betas
    opt = Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, lr_mult={"b": 0.1})
    m = {k: np.zeros_like(v) for k, v in mine.items()}
    v = {k: np.zeros_like(x) for k, x in mine.items()}
    for t, g in enumerate(grad_sequence(params, 3), start=1):
        opt.step(g)
        for k in mine:
            d = g[k] + weight_decay * mine[k]
            m[k] = b1 * m[k] + (1 - b1) * d
            v[k] = b2 * v[k] + (1 - b2) * d * d
            m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
            mine[k] = mine[k] - lr * (0.1 if k == "b" else 1.0) * m_hat / (np.sqrt(v_hat) + eps)
        for k in mine:
            np.testing.assert_allclose(params[k], mine[k], rtol=RTOL)
    assert opt.steps == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
def test_adam_compiled_pass_gives_the_numpy_lines_bits(dtype, weight_decay):
    """Contiguous parameters take one compiled pass (``_adam_update``); others the NumPy lines it
    copies. Same operations in the same order and dtype: bitwise the same parameters and state."""
    rng = np.random.default_rng(3)
    contiguous = {"w": rng.standard_normal((6, 5)).astype(dtype), "b": rng.standard_normal(7).astype(dtype)}
    strided = {"w": np.asfortranarray(contiguous["w"]),                # Fortran order
               "b": np.repeat(contiguous["b"], 2)[::2]}                  # a view with stride 2
    assert not strided["w"].flags.c_contiguous and not strided["b"].flags.c_contiguous
    start = {k: v.copy() for k, v in contiguous.items()}
    opts = [Adam(ps, lr=0.02, betas=(0.85, 0.99), eps=1e-6, weight_decay=weight_decay, lr_mult={"b": 0.5})
            for ps in (contiguous, strided)]
    for g in grad_sequence(contiguous, 6, seed=4):
        for opt in opts:
            opt.step(g)
    for k in contiguous:
        np.testing.assert_array_equal(contiguous[k], strided[k], err_msg=k)
        for buf in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(opts[0].state[k][buf], opts[1].state[k][buf], err_msg=f"{k} {buf}")
    assert not any(np.array_equal(contiguous[k], start[k]) for k in start)


def test_adam_first_step_moves_every_entry_by_about_lr():
    """With eps << |g| the first Adam step is lr * sign(g), whatever the gradient's scale."""
    params = make_params()
    p0 = {k: v.copy() for k, v in params.items()}
    g = {k: 1e-3 * np.sign(np.random.default_rng(2).standard_normal(v.shape)) for k, v in params.items()}
    Adam(params, lr=0.01).step(g)
    for k in params:
        np.testing.assert_allclose(p0[k] - params[k], 0.01 * np.sign(g[k]), rtol=1e-4)


def test_float32_parameters_stay_float32():
    params = make_params(np.float32)
    for opt in (SGD(params, lr=0.1, momentum=0.9), Adam(params, lr=0.1, weight_decay=0.1)):
        opt.step(grad_sequence(params, 1)[0])
        assert all(p.dtype == np.float32 for p in params.values())
        assert all(b.dtype == np.float32 for s in opt.state.values() for b in s.values())


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                                  lambda p: Adam(p, lr=0.01, weight_decay=1e-3, lr_mult={"a": 0.1})],
                         ids=["sgd", "adam"])
def test_state_dict_round_trip_resumes_identically(make):
    grads = grad_sequence(make_params(), 5)
    params = make_params()
    opt = make(params)
    for g in grads[:2]:
        opt.step(g)
    saved_params = {k: v.copy() for k, v in params.items()}
    sd = opt.state_dict()
    for g in grads[2:]:
        opt.step(g)
    assert not np.array_equal(params["a"], saved_params["a"])
    assert sd["steps"] == 2 and opt.steps == 5

    resumed_params = {k: v.copy() for k, v in saved_params.items()}
    resumed = make(resumed_params)
    resumed.load_state_dict(sd)                      # a copy taken at step 2, unchanged by steps 3-5
    for g in grads[2:]:
        resumed.step(g)
    for k in params:
        np.testing.assert_array_equal(resumed_params[k], params[k])
    assert resumed.steps == opt.steps == 5

    fresh_params = {k: v.copy() for k, v in saved_params.items()}
    fresh = make(fresh_params)                       # without the state: a different trajectory
    for g in grads[2:]:
        fresh.step(g)
    assert not np.allclose(fresh_params["a"], params["a"])


def test_state_dict_rejects_other_parameters():
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    other = SGD({"z": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match="optimizer state names do not match the parameters"):
        opt.load_state_dict(other.state_dict())


# ------------------------------------------------------------------------------------------- schedules
def test_step_lr_closed_form():
    params = make_params()
    opt = SGD(params, lr=0.2)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    got = [sched.step() for _ in range(10)]
    expected = [0.2 * 0.5 ** (e // 3) for e in range(1, 11)]
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert got[:3] == [0.2, 0.2, 0.1] and opt.lr == got[-1]
    # the optimizer really uses the scheduled rate
    p0 = params["a"].copy()
    g = {k: np.ones_like(v) for k, v in params.items()}
    opt.step(g)
    np.testing.assert_allclose(params["a"], p0 - got[-1], rtol=RTOL)


def test_cosine_lr_closed_form():
    opt = SGD(make_params(), lr=1.0)
    sched = CosineLR(opt, T_max=4, eta_min=0.1)
    got = [sched.step() for _ in range(6)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4)] + [0.1, 0.1]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert got[1] == pytest.approx(0.55) and got[3] == pytest.approx(0.1)
    assert sched.lr_at(0) == 1.0


# ------------------------------------------------------------------------------------------- bad input
def test_optimizer_errors():
    params = make_params()
    with pytest.raises(ValueError, match=r"learning rate must be a finite number >= 0, got -1"):
        SGD(params, lr=-1)
    with pytest.raises(ValueError, match=r"lr_mult names unknown parameters \['c'\]"):
        SGD(params, lr=0.1, lr_mult={"c": 0.1})
    with pytest.raises(ValueError, match=r"momentum and weight_decay must be >= 0, got -0.9, 0"):
        SGD(params, lr=0.1, momentum=-0.9)
    with pytest.raises(ValueError, match=r"0 <= betas < 1.*got \(0.9, 1.0\)"):
        Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"parameter 'i' must be a floating-point NumPy array"):
        SGD({"i": np.zeros(3, dtype=int)}, lr=0.1)
    with pytest.raises(ValueError, match="optimizer got no parameters"):
        Adam({})
    opt = SGD(params, lr=0.1)
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \[\]"):
        opt.step({"a": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"gradient 'b' has shape \(4,\), parameter has \(5,\)"):
        opt.step({"a": np.zeros((3, 4)), "b": np.zeros(4)})
    with pytest.raises(ValueError, match=r"step_size must be >= 1, got 0"):
        StepLR(opt, 0)
    with pytest.raises(ValueError, match=r"T_max must be >= 1, got 0"):
        CosineLR(opt, 0)


def test_numpy_scalar_learning_rate_is_accepted_and_bool_refused():
    p = {"w": np.ones(3, np.float32)}
    opt = SGD(p, np.float32(0.5))
    opt.step({"w": np.ones(3, np.float32)})
    np.testing.assert_array_equal(p["w"], np.full(3, 0.5, np.float32))
    with pytest.raises(ValueError, match="learning rate"):
        SGD(p, True)


def test_a_bad_gradient_changes_nothing():
    p = {"a": np.ones(2, np.float32), "b": np.ones(3, np.float32)}
    opt = Adam(p, 0.1)
    with pytest.raises(ValueError, match="gradient 'b' has shape"):
        opt.step({"a": np.ones(2, np.float32), "b": np.ones(4, np.float32)})
    np.testing.assert_array_equal(p["a"], np.ones(2, np.float32))
    assert opt.steps == 0 and opt.state["a"] == {}
