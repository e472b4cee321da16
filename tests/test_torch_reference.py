"""npespcn against PyTorch 2.13, through fixtures committed in ``tests/fixtures/torch_*.npz``.

The fixtures were written by ``tests/fixtures/make_torch_fixtures.py`` from an ESPCN built out of PyTorch
modules; the inputs, targets and weights are regenerated here by ``tests/_det.py`` (SHA-256 digests in
the fixtures prove they are the same bits), so PyTorch is not needed to run these tests.

Cases (each axis of the issue takes each value at least once):

====================  ======  ========  =====  =========  ======  ===============
fixture               model   channels  scale  N×H×W      act     optimizers
====================  ======  ========  =====  =========  ======  ===============
paper_c1_x3           paper   1         3      2×7×11     tanh    Adam, SGD
paper_c3_x2_prelu     paper   3         2      3×5×6      PReLU   SGD
seven_c1_x4           seven   1         4      2×6×7      relu    Adam
seven_c3_x3_gelu      seven   3         3      2×5×5      gelu    (none)
====================  ======  ========  =====  =========  ======  ===============

Tolerances, all relative to the largest magnitude in the PyTorch array (``max|ref|``):

* forward output and loss: ``rtol 1e-5``. Both sides compute in float32; a 5x5x64 + 3x3x64x32 chain sums
  a few thousand products, each rounding at 2**-24 ≈ 6e-8 relative, and the two libraries sum in
  different orders. Measured worst: 1.1e-6, so the margin is ~10x.
* ``dx`` and every parameter gradient: ``rtol 2e-5``. Backward sums over the batch and the image as
  well, so it sees more rounding than forward. Measured worst: 1.1e-6 (under both backends).
* parameters after 3 optimizer steps: the error is measured against the *displacement*
  ``D = max|p_torch - p_0|`` that the steps produced (the parameter itself would hide any error in
  steps of size 1e-3), plus 4 float32 ulps of ``max|p|`` for the final rounding into ``p``:
  ``|p - p_torch| <= 1e-3 * (D + 4 * eps32 * max|p_torch|)``. Adam divides by ``sqrt(v) + eps``, so
  a float32 difference ``δg`` in a gradient becomes ``lr * δg / (|g| + eps)`` in the step: rare elements
  with small ``g`` (or ``g + weight_decay * p`` close to 0) amplify rounding. Measured worst 1.0e-4 of
  ``D`` (paper, eps 1e-8), 10x inside the bound, while an error in the rule (a missing lr multiplier,
  bias correction, or eps inside the square root) moves the parameters by percents of ``D``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import _det
import numpy as np
import pytest

from npespcn import ESPCN, SGD, Adam
from npespcn.functional import mse_loss, use_backend

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASE_FILES = sorted(FIXTURES.glob("torch_*.npz"))
RTOL_FORWARD = 1e-5
RTOL_GRAD = 2e-5
RTOL_STEP = 1e-3
EPS32 = float(np.finfo(np.float32).eps)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def load_case(path):
    """The fixture's arrays, its meta record, and the regenerated (x, target, params)."""
    with np.load(path, allow_pickle=False) as f:
        ref = {k: f[k] for k in f.files}
    meta = json.loads(str(ref.pop("meta")))
    n, c, h, w, r, s = (meta[k] for k in ("batch", "channels", "height", "width", "scale", "seed"))
    x = _det.uniform(s * 7 + 1, (n, c, h, w))
    target = _det.uniform(s * 7 + 2, (n, c, h * r, w * r))
    params = _det.espcn_params(c, meta["layers"], r, s, prelu=meta["activation"] == "prelu")
    assert _digest(x, target) == meta["sha256_inputs"], "tests/_det.py no longer reproduces the inputs"
    assert _digest(*(params[k] for k in sorted(params))) == meta["sha256_params"], \
        "tests/_det.py no longer reproduces the weights"
    return ref, meta, x, target, params


def build(meta, params):
    return ESPCN(meta["scale"], meta["channels"], meta["layers"], meta["activation"]).load_params(params)


def assert_close(actual, expected, rtol, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, PyTorch {expected.shape}"
    err = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    scale = float(np.max(np.abs(expected)))
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:g} x max|ref| {scale:.3g}"


def test_fixtures_exist_and_are_small():
    names = {p.name for p in CASE_FILES}
    assert {"torch_paper_c1_x3.npz", "torch_paper_c3_x2_prelu.npz", "torch_seven_c1_x4.npz",
            "torch_seven_c3_x3_gelu.npz"} <= names
    sizes = [p.stat().st_size for p in CASE_FILES]
    assert max(sizes) < 1_000_000 and sum(sizes) < 3_000_000


def test_fixtures_cover_every_axis():
    metas = [load_case(p)[1] for p in CASE_FILES]
    assert {len(m["layers"]) for m in metas} >= {2, 5}                # paper and seven-layer
    assert {m["channels"] for m in metas} >= {1, 3}
    assert {m["scale"] for m in metas} >= {2, 3, 4}
    assert all(m["batch"] > 1 for m in metas)
    assert any(m["height"] % 2 and m["width"] % 2 and m["height"] != m["width"] for m in metas)
    assert {"adam", "sgd"} <= {k for m in metas for k in m}
    assert all(m["lr_mult"] == 0.1 for m in metas if "lr_mult" in m)


@pytest.mark.parametrize("backend", ["numba", "reference"])
@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_forward_loss_and_gradients_match_pytorch(path, backend):
    ref, meta, x, target, params = load_case(path)
    with use_backend(backend):
        model = build(meta, params)
        y = model.forward(x)
        loss, dy = mse_loss(y, target)
        dx = model.backward(dy)
    assert_close(y, ref["y"], RTOL_FORWARD, "forward output")
    assert abs(loss - float(ref["loss"])) <= RTOL_FORWARD * float(ref["loss"])
    assert_close(dx, ref["dx"], RTOL_GRAD, "dx")
    grads = model.grads
    assert set(grads) == {k[len("grad/"):] for k in ref if k.startswith("grad/")}
    for k, g in grads.items():
        assert_close(g, ref[f"grad/{k}"], RTOL_GRAD, f"gradient of {k}")


def _optimizer_cases():
    return [pytest.param(p, kind, id=f"{p.stem}-{kind}")
            for p in CASE_FILES for kind in ("adam", "sgd")
            if f"{kind}/losses" in np.load(p, allow_pickle=False).files]


@pytest.mark.parametrize("path,kind", _optimizer_cases())
def test_training_steps_match_pytorch(path, kind):
    """``steps`` full steps (forward, MSE, backward, update) with lr x0.1 on the last convolution."""
    ref, meta, x, target, params = load_case(path)
    model = build(meta, params)
    cfg = dict(meta[kind])
    lr = cfg.pop("lr")
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    opt = (Adam if kind == "adam" else SGD)(model.params, lr, lr_mult=model.lr_multipliers(meta["lr_mult"]),
                                            **cfg)
    losses = []
    for _ in range(meta["steps"]):
        loss, dy = mse_loss(model.forward(x), target)
        model.backward(dy)
        opt.step(model.grads)
        losses.append(loss)
    np.testing.assert_allclose(losses, ref[f"{kind}/losses"], rtol=RTOL_FORWARD)
    for k, p in model.params.items():
        expected = ref[f"{kind}/{k}"]
        moved = float(np.max(np.abs(expected - params[k])))
        assert moved > 0, f"{k} did not move in PyTorch: the fixture tests nothing"
        err = float(np.max(np.abs(p - expected)))
        bound = RTOL_STEP * (moved + 4 * EPS32 * float(np.max(np.abs(expected))))
        assert err <= bound, f"{kind} {k}: error {err:.3g} > {bound:.3g} (displacement {moved:.3g})"


def test_last_layer_multiplier_is_visible_in_the_fixture():
    """With lr x0.1 the last layer's SGD displacement must be far smaller than without it would be."""
    ref, meta, x, target, params = load_case(FIXTURES / "torch_paper_c1_x3.npz")
    model = build(meta, params)
    cfg = dict(meta["sgd"])
    opt = SGD(model.params, cfg.pop("lr"), **cfg)          # no multiplier
    for _ in range(meta["steps"]):
        model.backward(mse_loss(model.forward(x), target)[1])
        opt.step(model.grads)
    last = f"{model.last_layer}.weight"
    err = np.max(np.abs(model.params[last] - ref[f"sgd/{last}"]))
    assert err > 10 * RTOL_STEP * np.max(np.abs(ref[f"sgd/{last}"] - params[last]))


def test_det_generator_is_splitmix64():
    """First outputs of SplitMix64 from state 0, as published with the algorithm (Vigna's splitmix64.c)."""
    assert _det.splitmix64(0, 3).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    u = _det.uniform(5, (4, 1000))
    assert u.dtype == np.float32 and u.shape == (4, 1000) and 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02 and not np.array_equal(u, _det.uniform(6, (4, 1000)))
