"""PyTorch state dicts (.pth, torch.save zip format) read without torch, in the ESPCN-pytorch layout."""
from __future__ import annotations

import _formats_writers as W
import numpy as np
import pytest

from npespcn import load_model
from npespcn.formats.torch_pth import espcn_from_state_dict, read_state_dict


def test_state_dict_tensors_come_back_exactly(tmp_path):
    """Every tensor of a hand-written torch.save archive is read bit for bit, including one stored with a
    transposed (non-contiguous) stride and a storage offset of 3."""
    rng = np.random.default_rng(0)
    sd = W.espcn_pytorch_state(rng, channels=1, scale=3)
    W.write_pth(tmp_path / "m.pth", sd, transpose_first=True)
    got = read_state_dict(tmp_path / "m.pth")
    assert list(got) == list(sd)
    for k in sd:
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], sd[k])


@pytest.mark.parametrize("channels,scale", [(1, 3), (3, 2), (1, 4)])
def test_architecture_comes_from_the_shapes_and_activation_defaults_to_tanh(tmp_path, channels, scale):
    """C = in-channels of first_part.0, r = sqrt(out / C) of last_part.0; ESPCN-pytorch's tanh by default."""
    sd = W.espcn_pytorch_state(np.random.default_rng(1), channels, scale, layers=((5, 8), (3, 4), (3, 6)))
    W.write_pth(tmp_path / "m.pth", sd)
    model = load_model(tmp_path / "m.pth")
    assert model.arch == {"scale": scale, "channels": channels, "layers": [[5, 8], [3, 4], [3, 6]],
                          "activation": "tanh", "output_activation": None}
    np.testing.assert_array_equal(model.params["conv4.weight"], sd["last_part.0.weight"])
    np.testing.assert_array_equal(model.params["conv2.bias"], sd["first_part.2.bias"])


def test_keyword_overrides_set_activations_and_check_the_scale(tmp_path):
    W.write_pth(tmp_path / "m.pth", W.espcn_pytorch_state(np.random.default_rng(2), 1, 3))
    model = load_model(tmp_path / "m.pth", activation="relu", output_activation="tanh", scale=3)
    assert (model.activation, model.output_activation) == ("relu", "tanh")
    with pytest.raises(ValueError, match="scale=3.*scale=2"):
        load_model(tmp_path / "m.pth", scale=2)
    with pytest.raises(TypeError, match="unknown model override"):
        load_model(tmp_path / "m.pth", kernel=3)


def test_forward_matches_a_numpy_espcn_pytorch_forward(tmp_path):
    """ESPCN-pytorch's forward (conv, tanh, conv, tanh, conv, PixelShuffle) written in the test with
    scipy.signal.correlate in float64; tolerance 1e-5 absolute."""
    from scipy.signal import correlate
    rng = np.random.default_rng(3)
    sd = W.espcn_pytorch_state(rng, channels=1, scale=2, layers=((5, 6), (3, 4)))
    W.write_pth(tmp_path / "m.pth", sd)
    x = rng.uniform(0, 1, (1, 1, 8, 7)).astype(np.float32)
    h = x[0].astype(np.float64)
    for key, act in (("first_part.0", np.tanh), ("first_part.2", np.tanh), ("last_part.0", None)):
        w, b = sd[key + ".weight"].astype(np.float64), sd[key + ".bias"]
        h = np.stack([sum(correlate(h[c], w[o, c], mode="same") for c in range(h.shape[0])) + b[o]
                      for o in range(w.shape[0])])
        h = act(h) if act else h
    r = 2
    ref = np.zeros((1, 8 * r, 7 * r))
    for i in range(r):
        for j in range(r):
            ref[0, i::r, j::r] = h[i * r + j]                    # PyTorch PixelShuffle, C = 1
    np.testing.assert_allclose(load_model(tmp_path / "m.pth").infer(x)[0], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad,message", [
    ({"first_part.0.weight": np.zeros((4, 1, 5, 5)), "last_part.0.weight": np.zeros((4, 4, 3, 3)),
      "last_part.0.bias": np.zeros(4)}, "first_part.0: needs both weight and bias"),
    ({"first_part.0.weight": np.zeros((4, 1, 5, 5)), "first_part.0.bias": np.zeros(4)}, "exactly one conv"),
    ({"conv.weight": np.zeros((4, 1, 3, 3))}, "unexpected key 'conv.weight'"),
    ({"first_part.0.weight": np.zeros((4, 1, 5, 5)), "first_part.0.bias": np.zeros(4),
      "last_part.0.weight": np.zeros((5, 4, 3, 3)), "last_part.0.bias": np.zeros(5)}, "not 1 x r x r"),
])
def test_state_dicts_that_are_not_espcn_pytorch_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        espcn_from_state_dict({k: np.asarray(v, np.float32) for k, v in bad.items()})


def test_reference_state_dict_reproduces_the_recorded_pytorch_forward(reference):
    """../shared/reference/espcn_x3_pytorch_layout.pth with the default tanh reproduces the output PyTorch
    2.13 recorded in espcn_x3_pytorch_layout_io.npz. Tolerance 1e-5 absolute (measured 7.7e-7)."""
    model = load_model(reference / "espcn_x3_pytorch_layout.pth")
    assert model.arch == {"scale": 3, "channels": 1, "layers": [[5, 64], [3, 32]], "activation": "tanh",
                          "output_activation": None}
    io = np.load(reference / "espcn_x3_pytorch_layout_io.npz", allow_pickle=False)
    assert io["input"].shape == (1, 1, 40, 53)
    np.testing.assert_allclose(model.infer(io["input"]), io["output"], atol=1e-5, rtol=0)
    # and the wrong activation would not: the test can tell
    relu = load_model(reference / "espcn_x3_pytorch_layout.pth", activation="relu")
    assert np.abs(relu.infer(io["input"]) - io["output"]).max() > 1e-3
