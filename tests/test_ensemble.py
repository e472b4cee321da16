"""Geometric self-ensemble at test time: ``upscale(..., ensemble=True)`` averages the 8 flips/rotations."""
from __future__ import annotations

import numpy as np
import pytest

import npespcn
from npespcn import ESPCN
from npespcn import functional as F
from npespcn.image.dihedral import N_DIHEDRAL, dihedral, dihedral_inverse
from npespcn.inference.pipeline import network


def rand_image(shape, seed=0):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def net():
    m = ESPCN.paper(2, seed=3)
    for k, v in m.params.items():
        if v.ndim == 4:
            v *= 4.0                        # a model whose 8 views disagree visibly
    return m


def test_the_eight_views_are_distinct_and_complete():
    x = np.arange(12.0).reshape(3, 4)
    views = {dihedral(x, op).tobytes() + bytes(dihedral(x, op).shape) for op in range(N_DIHEDRAL)}
    assert len(views) == 8
    for op in range(N_DIHEDRAL):
        np.testing.assert_array_equal(dihedral_inverse(dihedral(x, op), op), x)


def test_network_ensemble_is_the_mean_of_the_turned_back_outputs(net):
    x = np.random.default_rng(1).random((1, 1, 9, 11)).astype(np.float32)
    outs = []
    for t in range(4):                       # written out: turns, and turns of the transpose
        for transpose in (False, True):
            xt = np.ascontiguousarray(np.rot90(x.swapaxes(2, 3) if transpose else x, t, axes=(2, 3)))
            y = np.rot90(net.infer(xt), -t, axes=(2, 3))
            outs.append((y.swapaxes(2, 3) if transpose else y).astype(np.float64))
    want = np.mean(outs, axis=0)
    np.testing.assert_allclose(network(net, x, ensemble=True), want, rtol=0, atol=1e-6)
    assert not np.allclose(network(net, x), want, atol=1e-3)      # the ensemble changes the result


def test_ensemble_is_invariant_to_turning_the_input(net):
    img = rand_image((14, 17), 2)
    base = npespcn.upscale(img, 2, net, ensemble=True)
    turned = npespcn.upscale(np.ascontiguousarray(np.rot90(img)), 2, net, ensemble=True)
    assert np.abs(np.rot90(base).astype(int) - turned.astype(int)).max() <= 1     # rounding of a mean


@pytest.mark.parametrize("shape", [(19, 23, 3), (19, 23)])
def test_ensemble_tiles_are_bitwise_the_whole_image(net, shape):
    img = rand_image(shape, 4)
    with F.use_backend("numba"):
        whole = npespcn.upscale(img, 2, net, tile=1000, ensemble=True)
        for tile in (6, 11):
            assert npespcn.upscale(img, 2, net, tile=tile, ensemble=True).tobytes() == whole.tobytes()


def test_the_command_lines_take_ensemble(tmp_path, net):
    from PIL import Image

    from npespcn.cli import evaluate as cli_evaluate
    from npespcn.cli import upscale as cli_upscale
    net.save(tmp_path / "m.npz")
    img = rand_image((16, 18, 3), 5)
    Image.fromarray(img).save(tmp_path / "a.png")
    assert cli_upscale.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--model",
                             str(tmp_path / "m.npz"), "--ensemble", "-q"]) == 0
    got = np.asarray(Image.open(tmp_path / "b.png"))
    np.testing.assert_array_equal(got, npespcn.upscale(img, 2, net, ensemble=True))
    assert not np.array_equal(got, npespcn.upscale(img, 2, net))
    plain = npespcn.evaluate(net, [img], 2)["psnr"]
    ens = npespcn.evaluate(net, [img], 2, ensemble=True)["psnr"]
    assert plain != ens
    assert cli_evaluate.main(["--data", str(tmp_path), "--scale", "2", "--model", str(tmp_path / "m.npz"),
                              "--ensemble", "--json"]) == 0
