"""The ESPCN model: parameter names and shapes, initialisation, files, forward/infer/backward contract,
receptive field, and the errors it raises. Forward values and gradients are checked against PyTorch in
``test_torch_reference.py`` and against finite differences in ``test_gradcheck.py``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from npespcn import ESPCN, load_model
from npespcn.functional import mse_loss, use_backend

BACKENDS = ["reference", "numba"]


def expected_shapes(channels, scale, layers):
    """Written from the architecture's definition: (out, in, k, k) weights, (out,) biases."""
    shapes, c_in = {}, channels
    for i, (k, f) in enumerate(layers, start=1):
        shapes[f"conv{i}.weight"], shapes[f"conv{i}.bias"] = (f, c_in, k, k), (f,)
        c_in = f
    last = len(layers) + 1
    shapes[f"conv{last}.weight"] = (channels * scale * scale, c_in, 3, 3)
    shapes[f"conv{last}.bias"] = (channels * scale * scale,)
    return shapes


PAPER = [(5, 64), (3, 32)]
SEVEN = [(5, 64), (3, 64), (3, 32), (3, 32), (3, 32)]


@pytest.mark.parametrize("preset,layers", [("paper", PAPER), ("seven", SEVEN)])
@pytest.mark.parametrize("channels,scale", [(1, 2), (1, 3), (3, 4)])
def test_param_and_grad_keys_shapes_dtypes(preset, layers, channels, scale):
    model = getattr(ESPCN, preset)(scale, channels)
    shapes = expected_shapes(channels, scale, layers)
    assert list(model.params) == list(shapes)          # conv1.weight, conv1.bias, ..., in order
    assert list(model.grads) == list(shapes)
    for k, shape in shapes.items():
        assert model.params[k].shape == shape and model.params[k].dtype == np.float32
        assert model.grads[k].shape == shape and model.grads[k].dtype == np.float32
    assert model.num_params() == sum(math.prod(s) for s in shapes.values())
    assert model.last_layer == f"conv{len(layers) + 1}"


def test_paper_preset_numbers():
    """Shi et al.: (f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3; tanh. Counted by hand for r = 3."""
    model = ESPCN.paper(3)
    assert model.arch == {"scale": 3, "channels": 1, "layers": [[5, 64], [3, 32]], "activation": "tanh",
                          "output_activation": None}
    assert model.num_params() == (25 * 64 + 64) + (9 * 64 * 32 + 32) + (9 * 32 * 9 + 9) == 22729
    assert ESPCN.seven(2).activation == "relu"


def test_prelu_adds_one_slope_per_hidden_channel():
    model = ESPCN.paper(2, activation="prelu")
    assert model.params["prelu1.weight"].shape == (64,) and model.params["prelu2.weight"].shape == (32,)
    assert np.all(model.params["prelu1.weight"] == 0.25)          # PyTorch's nn.PReLU default
    assert "prelu3.weight" not in model.params


# ------------------------------------------------------------------------------------------- init
def test_initialisation_statistics():
    """He-normal std sqrt(2/(out*k*k)) for hidden convs, std 0.001 for the last, zero biases.

    A sample std from n normal draws has relative standard error 1/sqrt(2n): the test allows 5 of them.
    """
    model = ESPCN.seven(3, seed=0)
    convs = [k for k in model.params if k.endswith(".weight")]
    for name in convs:
        w = model.params[name].astype(np.float64)
        out, _, k, _ = w.shape
        std = 0.001 if name == convs[-1] else math.sqrt(2.0 / (out * k * k))
        assert abs(w.std() / std - 1) < 5 / math.sqrt(2 * w.size), name
        assert abs(w.mean()) < 5 * std / math.sqrt(w.size), name
        assert np.all(model.params[name.replace("weight", "bias")] == 0)


def test_seed_makes_initialisation_reproducible():
    a, b, c = ESPCN.paper(3, seed=7), ESPCN.paper(3, seed=7), ESPCN.paper(3, seed=8)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        if k.endswith("weight"):
            assert not np.array_equal(a.params[k], c.params[k]), k
    before = {k: v.copy() for k, v in c.params.items()}
    c.init_weights(7)                                             # re-initialising = building anew
    for k in a.params:
        np.testing.assert_array_equal(c.params[k], a.params[k])
    assert not np.array_equal(before["conv1.weight"], c.params["conv1.weight"])


# ------------------------------------------------------------------------------------------- files
ARCHS = [
    dict(scale=3, channels=1, layers=PAPER, activation="tanh", output_activation=None),
    dict(scale=2, channels=3, layers=[(3, 8), (3, 4)], activation="prelu", output_activation="tanh"),
    dict(scale=4, channels=1, layers=[(5, 6), (3, 5), (1, 4)], activation="relu", output_activation="relu"),
    dict(scale=2, channels=3, layers=[(3, 5)], activation="gelu", output_activation="identity"),
]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a['activation']}-c{a['channels']}-x{a['scale']}")
def test_save_load_round_trip(tmp_path, arch):
    model = ESPCN(**arch, seed=3)
    for i, p in enumerate(model.params.values()):               # non-default values everywhere
        p[...] = np.random.default_rng(i).standard_normal(p.shape) * 0.3
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert loaded.arch == {**arch, "layers": [list(l) for l in arch["layers"]]}
    assert list(loaded.params) == list(model.params)
    for k, v in model.params.items():
        np.testing.assert_array_equal(loaded.params[k], v)
        assert loaded.params[k].dtype == np.float32
    x = np.random.default_rng(9).random((1, arch["channels"], 4, 5), dtype=np.float32)
    np.testing.assert_array_equal(loaded.infer(x), model.infer(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]       # no temporary file left


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match=r"not a model file npespcn can read; accepted formats: npespcn .npz"):
        load_model(junk)
    broken = ESPCN.paper(2)
    broken.params["conv2.bias"][5] = np.inf                    # save does not check, load must
    broken.save(tmp_path / "inf.npz")
    with pytest.raises(ValueError, match="conv2.bias: parameters contain NaN or infinity"):
        load_model(tmp_path / "inf.npz")
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ValueError, match="accepted formats"):
        load_model(plain)


# ------------------------------------------------------------------------------------------- compute
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["paper", "seven"])
def test_infer_equals_forward_and_shapes(backend, preset):
    model = getattr(ESPCN, preset)(3, 3, seed=1)
    x = np.random.default_rng(0).random((2, 3, 7, 11), dtype=np.float32)
    with use_backend(backend):
        y = model.forward(x)
        assert y.shape == (2, 3, 21, 33) and y.dtype == np.float32
        # The fast path's training forward may take another route (kn2row for F < C, Winograd F(4x4) for
        # the wide 3x3 layers): equal to rounding, within Winograd's bound (the PyTorch forward tolerance,
        # 1e-5 of the range, tests/test_winograd.py); bitwise with the same route, see
        # tests/test_fast_kernels.py.
        np.testing.assert_allclose(model.infer(x), y, rtol=0, atol=1e-5 * np.abs(y).max())
        np.testing.assert_array_equal(model(x), model.infer(x))
        # integer images are accepted and cast
        np.testing.assert_array_equal(model.infer((x * 255).astype(np.uint8)),
                                      model.infer((x * 255).astype(np.uint8).astype(np.float32)))


def test_backends_agree_on_the_whole_model():
    model = ESPCN.paper(2, 3, seed=1, activation="prelu", output_activation="tanh")
    x = np.random.default_rng(0).random((2, 3, 7, 11), dtype=np.float32)
    target = np.random.default_rng(1).random((2, 3, 14, 22), dtype=np.float32)
    results = {}
    for backend in BACKENDS:
        with use_backend(backend):
            y = model.forward(x)
            dx = model.backward(mse_loss(y, target)[1])
            results[backend] = (y, dx, {k: g.copy() for k, g in model.grads.items()})
    (y0, dx0, g0), (y1, dx1, g1) = results["reference"], results["numba"]
    for a, b in [(y0, y1), (dx0, dx1)] + [(g0[k], g1[k]) for k in g0]:
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


def test_backward_needs_a_forward_first():
    model = ESPCN.paper(2)
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        model.backward(np.zeros((1, 1, 8, 8), np.float32))
    x = np.zeros((1, 1, 4, 4), np.float32)
    model.infer(x)                                         # inference keeps no caches
    with pytest.raises(RuntimeError, match="without a forward"):
        model.backward(np.zeros((1, 1, 8, 8), np.float32))
    model.forward(x)
    with pytest.raises(ValueError, match=r"dy of the output's shape \(1, 1, 8, 8\), got \(1, 1, 4, 4\)"):
        model.backward(np.zeros((1, 1, 4, 4), np.float32))
    model.forward(x)
    model.backward(np.ones((1, 1, 8, 8), np.float32))
    with pytest.raises(RuntimeError, match="without a forward"):     # one backward per forward
        model.backward(np.ones((1, 1, 8, 8), np.float32))


def test_gradients_are_overwritten_not_accumulated():
    model = ESPCN.paper(2, seed=0)
    x = np.random.default_rng(0).random((1, 1, 5, 5), dtype=np.float32)
    dy = np.random.default_rng(1).random((1, 1, 10, 10), dtype=np.float32)
    model.forward(x)
    model.backward(dy)
    first = {k: g.copy() for k, g in model.grads.items()}
    model.forward(x)
    model.backward(dy)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, first[k])


@pytest.mark.parametrize("preset,radius", [("paper", 4), ("seven", 7)])
def test_receptive_radius_by_perturbation(preset, radius):
    """Changing one input pixel changes exactly the output blocks within ``receptive_radius`` of it."""
    model = getattr(ESPCN, preset)(2, seed=0, dtype=np.float64)
    model.params[f"{model.last_layer}.weight"][...] *= 1000
    assert model.receptive_radius == radius
    n = 2 * radius + 5
    x = np.random.default_rng(0).random((1, 1, n, n))
    x2 = x.copy()
    x2[0, 0, n // 2, n // 2] += 1.0
    diff = np.abs(model.infer(x2) - model.infer(x))[0, 0]
    changed = diff.reshape(n, 2, n, 2).max(axis=(1, 3)) > 0      # per low-resolution block
    rows, cols = np.nonzero(changed)
    c = n // 2
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (c - radius, c + radius, c - radius, c + radius)
    assert changed.sum() == (2 * radius + 1) ** 2


# ------------------------------------------------------------------------------------------- bad input
def test_bad_input_errors_name_expected_and_got():
    model = ESPCN.paper(3)
    with pytest.raises(ValueError, match=r"expects 1 channel\(s\) \(N, 1, H, W\), got 3"):
        model.infer(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expects a 4-D \(N, C, H, W\) array, got 3-D shape \(1, 4, 4\)"):
        model.forward(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expects a NumPy array \(N, C, H, W\), got list"):
        model.infer([[[[0.0]]]])
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity; expected finite values"):
        model.forward(x)
    x[0, 0, 1, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.infer(x)


def test_load_params_rejects_bad_parameters():
    model = ESPCN.paper(2)
    good = {k: v.copy() for k, v in model.params.items()}
    bad = dict(good, **{"conv2.bias": good["conv2.bias"].copy()})
    bad["conv2.bias"][3] = np.nan
    with pytest.raises(ValueError, match="conv2.bias: parameters contain NaN or infinity"):
        model.load_params(bad)
    with pytest.raises(ValueError, match=r"conv1.weight: expected shape \(64, 1, 5, 5\), got \(64, 1, 3, 3\)"):
        model.load_params(dict(good, **{"conv1.weight": np.zeros((64, 1, 3, 3))}))
    missing = {k: v for k, v in good.items() if k != "conv3.bias"}
    with pytest.raises(ValueError, match=r"missing \['conv3.bias'\], unexpected \[\]"):
        model.load_params(missing)
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['conv9.weight'\]"):
        model.load_params(dict(good, **{"conv9.weight": np.zeros(1)}))


def test_constructor_rejects_bad_architecture():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; expected one of .*prelu or None"):
        ESPCN(activation="swish")
    with pytest.raises(ValueError, match=r"positive odd integer, got 4"):
        ESPCN(layers=[(4, 64), (3, 32)])
    with pytest.raises(ValueError, match=r"output_activation must be parameter-free .* identity"):
        ESPCN(output_activation="prelu")
    with pytest.raises(ValueError, match=r"scale must be a positive integer such as 2, 3 or 4, got 0"):
        ESPCN(scale=0)
    with pytest.raises(ValueError, match=r"channels must be a positive integer, got 2.5"):
        ESPCN(channels=2.5)
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64, got float16"):
        ESPCN(dtype=np.float16)


def test_forward_without_the_shuffle_gives_the_same_gradients():
    """The paper's trick at model level: sub-pixel channels vs the inverse-shuffled target."""
    from npespcn.functional import pixel_shuffle, pixel_unshuffle
    rng = np.random.default_rng(3)
    m = ESPCN(3, 1, ((3, 6),), "tanh", output_activation="tanh", seed=2, dtype=np.float64)
    x, t = rng.random((2, 1, 5, 4)), rng.random((2, 1, 15, 12))
    y = m.forward(x)
    m.backward(2 * (y - t))
    g_full = {k: v.copy() for k, v in m.grads.items()}
    z = m.forward(x, shuffle=False)
    assert z.shape == (2, 9, 5, 4)
    np.testing.assert_array_equal(pixel_shuffle(z, 3), y)
    m.backward(2 * (z - pixel_unshuffle(t, 3)))
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, g_full[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation,output_activation", [("tanh", None), ("relu", "tanh"), ("identity", "relu"),
                                                          ("gelu", None), ("prelu", None)])
def test_fused_training_pass_equals_layer_by_layer(backend, activation, output_activation):
    """ESPCN.forward runs a conv and its activation as one pass (identity/relu/tanh); outputs, input
    gradient and parameter gradients are bitwise those of running every layer on its own."""
    model = ESPCN(3, 1, [(5, 8), (3, 4)], activation, seed=2, output_activation=output_activation)
    for arr in model.params.values():
        arr += np.random.default_rng(3).normal(0, 0.3, arr.shape).astype(arr.dtype)
    x = np.random.default_rng(4).random((3, 1, 9, 7), dtype=np.float32) - 0.3
    target = np.random.default_rng(5).random((3, 1, 27, 21), dtype=np.float32)
    with use_backend(backend):
        y = model.forward(x)
        dy = mse_loss(y, target)[1]
        dx = model.backward(dy)
        fused = {k: g.copy() for k, g in model.grads.items()}
        out = x
        for layer in model.layers:
            out = layer.forward(out, train=True)
        d = dy
        for layer in reversed(model.layers):
            d = layer.backward(d)
    np.testing.assert_array_equal(y, out)
    np.testing.assert_array_equal(dx, d)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(fused[k], g, err_msg=k)
    assert any(np.abs(g).max() > 0 for g in fused.values())


def test_fused_training_convolution_refuses_activations_it_cannot_differentiate_from_the_output():
    from npespcn.functional.conv import conv2d_act_train_forward
    x, w, b = np.ones((1, 2, 4, 4), np.float32), np.ones((3, 2, 3, 3), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="gelu"):
        conv2d_act_train_forward(x, w, b, "gelu")


# ------------------------------------------------------------------------- arrays reused between steps
def _step(model, x, t, shuffle=True, input_grad=False):
    y = model.forward(x, shuffle=shuffle)
    return y, model.backward(mse_loss(y, t)[1], input_grad=input_grad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_returned_arrays_survive_the_next_step(backend, shuffle):
    """Intermediate arrays are reused step after step; what forward and backward return is not."""
    m = ESPCN.paper(2, seed=4)
    rng = np.random.default_rng(8)
    xs = [rng.random((3, 1, 9, 8), dtype=np.float32) for _ in range(2)]
    t = rng.random((3, 1, 18, 16) if shuffle else (3, 4, 9, 8), dtype=np.float32)
    with use_backend(backend):
        y1, dx1 = _step(m, xs[0], t, shuffle, input_grad=True)
        kept = {k: v for k, v in m.buffers.items()}
        y1_copy, dx1_copy = y1.copy(), dx1.copy()
        y2, dx2 = _step(m, xs[1], t, shuffle, input_grad=True)
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(dx1, dx1_copy)
    assert not np.array_equal(y1, y2) and not np.array_equal(dx1, dx2)
    assert kept and all(m.buffers[k] is v for k, v in kept.items())      # the same arrays, rewritten
    assert not any(np.shares_memory(b, a) for b in m.buffers.values() for a in (y2, dx2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_reused_arrays_give_the_same_training_as_fresh_ones(backend):
    from npespcn.nn.optim import Adam
    rng = np.random.default_rng(9)
    batches = [(rng.random((4, 1, 7, 9), dtype=np.float32), rng.random((4, 1, 21, 27), dtype=np.float32))
               for _ in range(3)]
    batches.insert(2, (rng.random((2, 1, 5, 6), dtype=np.float32), rng.random((2, 1, 15, 18), dtype=np.float32)))
    finals = []
    for fresh in (False, True):
        m = ESPCN.seven(3, seed=6)
        opt = Adam(m.params, lr=1e-2)
        with use_backend(backend):
            for x, t in batches:                  # the smaller batch in between: no array fits, new ones
                if fresh:
                    m.buffers.clear()
                _step(m, x, t)
                opt.step(m.grads)
        finals.append({k: v.copy() for k, v in m.params.items()})
    for k in finals[0]:
        np.testing.assert_array_equal(finals[0][k], finals[1][k], err_msg=k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["paper", "seven"])
def test_infer_reuses_its_arrays_and_returns_fresh_ones(backend, preset):
    """infer keeps two arrays for its convolutions between calls: the next call (of another size too)
    gives the numbers of a model that never ran, and does not touch what an earlier call returned."""
    rng = np.random.default_rng(10)
    xs = [rng.random(s, dtype=np.float32) for s in ((2, 1, 11, 9), (1, 1, 14, 13), (2, 1, 11, 9))]
    m = getattr(ESPCN, preset)(3, seed=11)
    with use_backend(backend):
        ys = [m.infer(x) for x in xs]
        kept = m._infer_spare[0]
        first = ys[0].copy()
        again = m.infer(xs[0])
        fresh = [getattr(ESPCN, preset)(3, seed=11).infer(x) for x in xs]
    for y, want in zip(ys, fresh):
        np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(ys[0], first)                          # not overwritten by later calls
    assert len(kept) == 2 and all(a is b for a, b in zip(m._infer_spare[0], kept))   # the same arrays again
    assert not any(np.shares_memory(a, y) for a in kept for y in ys + [again])


def test_infer_keeps_no_arrays_above_its_limit(monkeypatch):
    m = ESPCN.paper(2, seed=1)
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    kept = [64 * 16 * 16 * 4, 32 * 16 * 16 * 4]        # the larger of conv1's and conv3's results; conv2's
    monkeypatch.setattr(ESPCN, "INFER_KEEP_BYTES", sum(kept) - 1)
    m.infer(x)
    assert m._infer_spare == []
    monkeypatch.setattr(ESPCN, "INFER_KEEP_BYTES", sum(kept))
    m.infer(x)
    assert [a.nbytes for a in m._infer_spare[0]] == [64 * 16 * 16 * 4, 32 * 16 * 16 * 4]


def test_infer_from_several_threads_at_once():
    """Concurrent calls on one model (a thread pool over frames) each get arrays of their own."""
    from concurrent.futures import ThreadPoolExecutor
    m = ESPCN.seven(2, seed=3)
    rng = np.random.default_rng(4)
    xs = [rng.random((1, 1, 24 + i, 20), dtype=np.float32) for i in range(12)]
    want = [ESPCN.seven(2, seed=3).infer(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(m.infer, xs))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_pickled_model_leaves_its_scratch_arrays_behind():
    """A model sent to Dask workers is pickled: the parameters travel, the arrays kept between calls do not."""
    import pickle
    m = ESPCN.paper(3, seed=2)
    x = np.random.default_rng(1).random((1, 1, 60, 80), dtype=np.float32)
    y = m.infer(x)
    assert m._infer_spare
    copy = pickle.loads(pickle.dumps(m))
    assert len(pickle.dumps(m)) < 2 * sum(v.nbytes for v in m.params.values()) + 100_000
    assert copy._infer_spare == [] and copy.buffers == {} and m._infer_spare   # the original keeps its own
    np.testing.assert_array_equal(copy.infer(x), y)
