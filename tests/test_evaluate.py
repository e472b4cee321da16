"""The evaluation protocol (library and ``python -m npespcn.evaluate``).

The bicubic numbers of the literature (30.40 / 27.63 dB on Set5 / Set14 at x3, 33.67 at x2, 28.43 at x4 on
Set5) are the independent check of the protocol: crop, Pillow bicubic degradation, BT.601 Y, border.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npespcn import ESPCN
from npespcn.cli.evaluate import main
from npespcn.evaluation.protocol import degrade, evaluate
from npespcn.nn import pretrained


def nearest_model(r):
    m = ESPCN(r, 1, ((3, 2),), activation="identity")
    for p in m.params.values():
        p[...] = 0
    m.params["conv1.weight"][0, 0, 1, 1] = 1
    m.params["conv2.weight"][:, 0, 1, 1] = 1
    return m


def y_psnr_by_hand(hr, sr, border):
    """PSNR on BT.601 studio-range luma, written out here rather than taken from npespcn."""
    def y(a):
        a = a.astype(np.float64)
        return 16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255
    d = (y(hr) - y(sr))[border:-border, border:-border]
    return 10 * np.log10(255.0 ** 2 / np.mean(d ** 2))


@pytest.mark.parametrize("scale,expected", [(2, 33.67), (3, 30.40), (4, 28.43)])
def test_set5_bicubic_reproduces_the_literature(set5_dir, scale, expected):
    res = evaluate(None, set5_dir, scale)
    assert res["n"] == 5 and res["psnr"] is None
    assert abs(res["bicubic_psnr"] - expected) < 0.005
    assert 0.75 < res["bicubic_ssim"] < 0.95


@pytest.mark.slow
def test_set14_bicubic_x3_reproduces_the_literature(set14_dir):
    res = evaluate(None, set14_dir, 3)
    assert res["n"] == 14
    assert abs(res["bicubic_psnr"] - 27.63) < 0.005


@pytest.mark.slow
@pytest.mark.parametrize("scale,expected", [(2, 30.32), (4, 26.09)])
def test_set14_bicubic_x2_x4(set14_dir, scale, expected):
    assert abs(evaluate(None, set14_dir, scale)["bicubic_psnr"] - expected) < 0.005


def test_model_scores_follow_the_protocol_on_arrays():
    rng = np.random.default_rng(0)
    hr = (rng.random((31, 29, 3)) * 255).astype(np.uint8)          # not a multiple of 3: cropped
    res = evaluate(nearest_model(3), [("pic", hr)], 3)
    crop = hr[:30, :27]
    lr = np.asarray(Image.fromarray(crop).resize((9, 10), Image.BICUBIC))
    # the nearest-neighbour network upscales Y exactly; Cb/Cr are bicubic: build the SR from scratch
    from npespcn.image.color import rgb_to_ycbcr, ycbcr_to_rgb
    ycc = rgb_to_ycbcr(lr.astype(np.float64))
    y = np.kron(ycc[..., 0], np.ones((3, 3)))
    up = [np.asarray(Image.fromarray(ycc[..., c].astype(np.float32), mode="F").resize((27, 30), Image.BICUBIC))
          for c in (1, 2)]
    sr = np.clip(np.rint(ycbcr_to_rgb(np.stack([y, up[0], up[1]], -1))), 0, 255).astype(np.uint8)
    assert res["per_image"][0]["name"] == "pic"
    assert abs(res["psnr"] - y_psnr_by_hand(crop, sr, 3)) < 0.02
    bic = np.asarray(Image.fromarray(lr).resize((27, 30), Image.BICUBIC))
    assert abs(res["bicubic_psnr"] - y_psnr_by_hand(crop, bic, 3)) < 1e-9


def test_grey_images_count_as_r_equals_g_equals_b_and_tiles_do_not_matter():
    rng = np.random.default_rng(1)
    grey = (rng.random((40, 44)) * 255).astype(np.uint8)
    net = ESPCN.paper(2, seed=2)
    a = evaluate(net, [grey], 2)
    b = evaluate(net, [np.dstack([grey] * 3)], 2, tile=7)
    assert a["psnr"] == b["psnr"] and a["ssim"] == b["ssim"] and a["bicubic_psnr"] == b["bicubic_psnr"]


def test_degrade_crops_to_a_multiple_of_the_scale():
    hr = np.zeros((31, 29, 3), np.uint8)
    crop, lr = degrade(hr, 4)
    assert crop.shape == (28, 28, 3) and lr.shape == (7, 7, 3) and lr.dtype == np.uint8


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        evaluate(None, tmp_path / "nope", 3)
    with pytest.raises(ValueError, match="no images"):
        evaluate(None, tmp_path, 3)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="bad.png"):
        evaluate(None, tmp_path, 3)


def test_cli_json_and_table(set5_dir, capsys, tmp_path):
    assert main(["--data", str(set5_dir), "--scale", "3", "--bicubic-only", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["data"] == "Set5" and abs(res[0]["bicubic_psnr"] - 30.40) < 0.005
    net = nearest_model(2)
    net.save(tmp_path / "m.npz")
    (tmp_path / "imgs").mkdir()
    for name in ("one.png", "two.png"):
        Image.fromarray((np.random.default_rng(len(name)).random((30, 34, 3)) * 255).astype(np.uint8)) \
            .save(tmp_path / "imgs" / name)
    assert main(["--data", str(tmp_path / "imgs"), "--model", str(tmp_path / "m.npz"), "--per-image"]) == 0
    out = capsys.readouterr().out
    want = evaluate(net, tmp_path / "imgs", 2)               # the scale comes from the model file
    assert "x2" in out and f"{want['psnr']:.2f} / {want['ssim']:.4f}" in out
    assert "one.png" in out and "two.png" in out


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    assert main(["--data", str(tmp_path / "none")]) == 2
    assert "not a directory" in capsys.readouterr().err
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    assert main(["--data", str(tmp_path), "--scale", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "espcn_x4.npz" in err
    assert main(["--data", str(tmp_path), "--scale", "0"]) == 2


SHIPPED_X3 = Path(__file__).resolve().parents[1] / "weights" / "espcn_x3.npz"


@pytest.mark.skipif(not SHIPPED_X3.is_file(), reason=f"shipped weights not trained yet: {SHIPPED_X3} is missing")
def test_shipped_x3_beats_bicubic_on_set5(set5_dir):
    res = evaluate("espcn", set5_dir, 3)
    assert res["psnr"] > res["bicubic_psnr"] + 0.3
    assert res["ssim"] > res["bicubic_ssim"]
