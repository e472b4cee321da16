"""Re-parameterisable training: a RepConv2d is exactly its folded plain convolution, forward and saved."""
from __future__ import annotations

import numpy as np
import pytest

from npespcn import ESPCN, load_model
from npespcn.nn import Conv2d, RepConv2d


def randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for v in layer.params.values():
        v[...] = rng.standard_normal(v.shape) * 0.3


@pytest.mark.parametrize("cin,cout,k", [(4, 4, 3), (1, 6, 5), (6, 3, 3)])
def test_the_branches_fold_into_one_convolution(cin, cout, k):
    layer = RepConv2d(cin, cout, k, dtype=np.float64)
    randomise(layer, cin + cout)
    x = np.random.default_rng(0).standard_normal((2, cin, 9, 8))
    y = layer.forward(x, train=True)
    by_hand = Conv2d(cin, cout, k, np.float64)
    by_hand.params["weight"][...] = layer.params["weight"]
    by_hand.params["bias"][...] = layer.params["bias"]
    one = Conv2d(cin, cout, 1, np.float64)
    one.params["weight"][...], one.params["bias"][...] = layer.params["weight1"], layer.params["bias1"]
    want = by_hand.forward(x, False) + one.forward(x, False) + (x if cin == cout else 0)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.fold().forward(x, False), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, train=False), want, rtol=1e-12, atol=1e-12)
    assert layer.identity == (cin == cout)


def test_backward_is_the_gradient_of_the_sum():
    layer = RepConv2d(3, 3, 3, dtype=np.float64)
    randomise(layer, 1)
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((1, 3, 5, 6)), rng.standard_normal((1, 3, 5, 6))
    layer.forward(x)
    dx = layer.backward(g)
    h = 1e-6
    for name in ("weight", "weight1", "bias1"):
        p = layer.params[name]
        i = tuple(np.array(p.shape) // 2)
        p[i] += h
        up = float((layer.forward(x, False) * g).sum())
        p[i] -= 2 * h
        down = float((layer.forward(x, False) * g).sum())
        p[i] += h
        assert layer.grads[name][i] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9), name
    xi = (0, 1, 2, 3)
    x2 = x.copy()
    x2[xi] += h
    up = float((layer.forward(x2, False) * g).sum())
    x2[xi] -= 2 * h
    down = float((layer.forward(x2, False) * g).sum())
    assert dx[xi] == pytest.approx((up - down) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("arch", ["paper", "seven"])
def test_a_reparameterised_model_saves_as_the_plain_network(arch, tmp_path):
    m = (ESPCN.paper if arch == "paper" else ESPCN.seven)(3, seed=4, reparam=True, dtype=np.float64)
    for _, layer in m.named_layers:
        if isinstance(layer, RepConv2d):
            randomise(layer, 7)
    assert any(k.endswith("weight1") for k in m.params)
    x = np.random.default_rng(3).random((1, 1, 12, 10))
    y = m.forward(x)
    plain = m.folded()
    assert not any(isinstance(layer, RepConv2d) for layer in plain.layers)
    np.testing.assert_allclose(plain.infer(x), y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.infer(x), y, rtol=1e-10, atol=1e-12)
    m.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert set(loaded.params) == set(ESPCN(**m.arch).params)
    np.testing.assert_allclose(loaded.infer(x.astype(np.float32)), y, rtol=1e-4, atol=1e-5)


def test_a_fresh_reparameterised_model_starts_as_the_plain_one_plus_identities():
    m = ESPCN.seven(2, seed=5, reparam=True)
    plain = ESPCN.seven(2, seed=5)
    for (name, layer), (_, p) in zip(m.named_layers, plain.named_layers):
        if isinstance(layer, RepConv2d):
            np.testing.assert_array_equal(layer.params["weight"], p.params["weight"])
            assert not layer.params["weight1"].any() and not layer.params["bias1"].any()
