"""Bad input gets a clear ValueError / TypeError naming what was expected, never a wrong picture."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from npespcn import ESPCN
from npespcn.image.io import read_image, write_image
from npespcn.inference.pipeline import upscale
from npespcn.nn import pretrained


@pytest.fixture(scope="module")
def net():
    return ESPCN.paper(3, seed=0)


GOOD = np.zeros((12, 12, 3), np.uint8)


@pytest.mark.parametrize("image,exc,match", [
    (np.zeros((0, 5), np.uint8), ValueError, "non-empty"),
    (np.zeros((6, 0, 3), np.uint8), ValueError, "non-empty"),
    (np.zeros(30, np.uint8), ValueError, r"\(H, W\).*1-D"),
    (np.zeros((2, 3, 8, 8, 3), np.uint8), ValueError, "5-D"),
    (np.zeros((1, 8, 8, 3), np.uint8), ValueError, "4-D"),
    (np.zeros((8, 8, 2), np.uint8), ValueError, "got 2"),
    (np.zeros((8, 8, 5), np.uint8), ValueError, "got 5"),
    (np.zeros((8, 8), bool), TypeError, "uint8, uint16, float32 or float64, got bool"),
    (np.zeros((8, 8), np.complex64), TypeError, "got complex64"),
    (np.zeros((8, 8), object), TypeError, "got object"),
    (np.zeros((8, 8), np.int32), TypeError, "got int32"),
    (np.full((8, 8), np.nan), ValueError, "NaN or infinity"),
    (np.full((8, 8, 3), np.inf, np.float32), ValueError, "NaN or infinity"),
    (np.full((8, 8), -np.inf), ValueError, "NaN or infinity"),
    (np.full((8, 8), 1.5), ValueError, r"in \[0, 1\]"),
    (np.full((8, 8), -0.01, np.float32), ValueError, r"in \[0, 1\].*clip=True"),
    (np.zeros((4, 30), np.uint8), ValueError, "smaller than the model's 5x5 kernel"),
    ([[0, 1], [2, 3]], TypeError, "NumPy array or a PIL.Image, got list"),
])
def test_bad_images(net, image, exc, match):
    with pytest.raises(exc, match=match):
        upscale(image, 3, net)


def test_nan_hidden_among_good_values(net):
    img = np.full((9, 9), 0.5)
    img[4, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        upscale(img, 3, net, clip=True)              # clip does not excuse NaN


def test_unsupported_pil_mode(net):
    with pytest.raises(TypeError, match="mode 'P'"):
        upscale(Image.new("P", (10, 10)), 3, net)


@pytest.mark.parametrize("scale,exc,match", [
    (0, ValueError, "positive integer"),
    (-2, ValueError, "positive integer"),
    (1.5, ValueError, "positive integer"),
    (True, TypeError, "positive integer"),
    ("3", TypeError, "positive integer"),
    (5, ValueError, "no shipped espcn model at scale 5"),
])
def test_bad_scales_with_the_shipped_default(scale, exc, match):
    with pytest.raises(exc, match=match):
        upscale(GOOD, scale)


def test_scale_contradicting_the_model(net, tmp_path):
    with pytest.raises(ValueError, match="upscales x3 but scale=2"):
        upscale(GOOD, 2, net)
    net.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="upscales x3 but scale=4"):
        upscale(GOOD, 4, tmp_path / "m.npz")


@pytest.mark.parametrize("tile", [0, -3, 2.5, True, "8"])
def test_bad_tile(net, tile):
    with pytest.raises(ValueError, match="tile must be a positive integer"):
        upscale(GOOD, 3, net, tile=tile)


def test_missing_model_file(tmp_path):
    with pytest.raises(ValueError, match="neither a shipped model name .* nor an existing model file"):
        upscale(GOOD, 3, tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="nor an existing model file"):
        upscale(GOOD, 3, "espcn9")


def test_truncated_model_file(net, tmp_path):
    good = tmp_path / "good.npz"
    net.save(good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        upscale(GOOD, 3, bad)


@pytest.mark.parametrize("content", [b"", b"hello, not a model", None])
def test_foreign_model_file(tmp_path, content):
    path = tmp_path / "foreign.npz"
    if content is None:
        np.savez(path, a=np.zeros(3))                  # a real .npz, but not npespcn's
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="foreign.npz"):
        upscale(GOOD, 3, path)


def test_model_of_the_wrong_type():
    with pytest.raises(TypeError, match="model must be None, a shipped name"):
        upscale(GOOD, 3, model=42)


def test_missing_shipped_model_names_the_expected_file(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    with pytest.raises(pretrained.MissingWeightsError, match=r"espcn7_x2\.npz") as info:
        upscale(GOOD, 2, "espcn7")
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    assert str(tmp_path) in str(info.value)


def test_default_model_is_looked_up_by_scale(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    m = ESPCN.paper(2, seed=5)
    m.save(tmp_path / "espcn_x2.npz")
    np.testing.assert_array_equal(upscale(GOOD, 2), upscale(GOOD, 2, m))
    with pytest.raises(ValueError, match=r"espcn_x3\.npz"):
        upscale(GOOD, 3)


def test_corrupt_and_non_image_input_files(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name in ("text.png", "cut.png", "missing.png"):
        with pytest.raises(ValueError, match=name):
            read_image(tmp_path / name)


def test_output_in_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_image(tmp_path / "no" / "such" / "out.png", GOOD)
    with pytest.raises(ValueError, match="unsupported output suffix"):
        write_image(tmp_path / "out.xyz", GOOD)
    with pytest.raises(ValueError, match="JPEG holds 8-bit grey or RGB only"):
        write_image(tmp_path / "out.jpg", np.zeros((8, 8, 4), np.uint8))
