"""Every example runs (fast mode) and what it prints is true.

Each example's ``main(out_dir=..., fast=True)`` returns the numbers it prints; these tests recompute the
expected values independently (formulas written here, hand-worked small cases) rather than trusting the
example, and check that the pictures are real PNG files.
"""
from __future__ import annotations

import importlib.util
import string
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def load(name: str):
    """Import ``examples/<name>.py`` (file names start with a digit, so importlib by path)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))          # the examples import their helpers _common, _draw
    spec = importlib.util.spec_from_file_location(f"npespcn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_numba_thread():
    """The examples' arrays are tiny; on a shared 2-core machine one thread wastes least. Restored after."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def assert_pngs(files, out_dir: Path, n: int):
    assert len(files) == n
    for f in files:
        f = Path(f)
        assert f.parent == out_dir and f.suffix == ".png"
        with Image.open(f) as im:
            assert im.format == "PNG" and im.width > 20 and im.height > 20
            # not a blank canvas: a picture has more than one colour
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [0, 0]) > 1


# ------------------------------------------------------------------------------------------ example 1
def test_01_periodic_shuffle(tmp_path, capsys):
    res = load("01_periodic_shuffle").main(out_dir=tmp_path, fast=True)
    C, r, H, W = res["C"], res["r"], 2, 3
    assert res["shape_in"] == (1, C * r * r, H, W) and res["shape_out"] == (1, C, r * H, r * W)
    # Where every labelled entry must land, from PyTorch's formula written out here.
    landing = res["landing"]
    assert len(landing) == C * r * r * H * W == res["entries_checked"]
    for m in range(C * r * r):
        c, i, j = m // (r * r), (m % (r * r)) // r, m % r
        for h in range(H):
            for w in range(W):
                assert landing[f"{string.ascii_uppercase[m]}{h}{w}"] == (c, h * r + i, w * r + j)
    assert landing["B12"] == (0, 2, 5) and landing["H00"] == (1, 1, 1)      # worked by hand
    # TensorFlow's order: block (i, j) of channel 0 reads channel (i*r + j)*C.
    assert res["first_block_torch"] == [[0, 1], [2, 3]]
    assert res["first_block_tf"] == [[0, 2], [4, 6]]
    assert res["tf_differs"] and res["tf_fixed"]
    assert res["loss_shuffled"] == pytest.approx(res["loss_unshuffled"], rel=1e-13)
    assert res["grad_max_abs_diff"] == 0.0
    assert res["permutation_size"] == 48
    assert_pngs(res["files"], tmp_path, 2)
    printed = capsys.readouterr().out
    assert "A00 B00 A01 B01 A02 B02" in printed        # first output row, by hand
    assert "holds for all 48 entries" in printed


# ------------------------------------------------------------------------------------------ example 2
def test_02_subpixel_is_deconvolution(tmp_path):
    res = load("02_subpixel_is_deconvolution").main(out_dir=tmp_path, fast=True)
    assert len(res["cases"]) == 3
    for c in res["cases"]:
        r, k, Ci, Co, H, W = c["r"], c["k"], c["C_in"], c["C"], c["H"], c["W"]
        assert c["err_scatter"] <= 1e-12 * c["scale"] and c["err_zero_insertion"] <= 1e-12 * c["scale"]
        assert c["macs_lr"] == H * W * k * k * Ci * Co * r * r
        assert c["macs_scatter"] == H * W * (r * k) ** 2 * Ci * Co
        assert c["macs_zero_insertion"] == (r * H) * (r * W) * (r * k) ** 2 * Ci * Co
        # Products on real (not inserted) pixels: at most one per scatter product, and about 1/r² of all.
        assert c["nonzero_macs"] <= c["macs_scatter"]
        assert c["nonzero_macs"] <= c["macs_zero_insertion"] / (r * r)
    assert res["model_err"] < 1e-10
    n = res["model_lr_size"]
    assert res["model_macs_last"] == n * n * 9 * 32 * 9
    assert_pngs(res["files"], tmp_path, 1)


def test_02_rearranged_kernel_by_hand():
    ex = load("02_subpixel_is_deconvolution")
    # k = 1: the deconvolution kernel is the r x r block of phases, K channel i*r + j at (i, j).
    K = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1, 1)
    assert np.array_equal(ex.deconv_kernel(K, 2)[0, 0], [[1, 2], [3, 4]])
    # r = 1: no phases; the deconvolution kernel is the convolution kernel flipped.
    K = np.arange(9.0).reshape(1, 1, 3, 3)
    assert np.array_equal(ex.deconv_kernel(K, 1)[0, 0], K[0, 0, ::-1, ::-1])
    # One LR pixel of value 2 scatters 2*D, cropped by r*p = 2 on every side (r = 2, k = 3): HR 2x2.
    D = np.arange(36.0).reshape(1, 1, 6, 6)
    y, macs = ex.deconv_scatter(np.array([[[2.0]]]), D, 2)
    assert np.array_equal(y[0], 2 * D[0, 0, 2:4, 2:4]) and macs == 36
    # The periodic bias map, from the formula B[o, Y, X] = b[o*r*r + (Y % r)*r + X % r].
    b = np.arange(8.0)
    B = ex.periodic_bias(b, 2, 2, 3)
    assert B.shape == (2, 4, 6)
    assert B[1, 3, 4] == b[1 * 4 + 1 * 2 + 0] and B[0, 2, 5] == b[0 + 0 + 1]


# ------------------------------------------------------------------------------------------ example 3
def test_03_im2col(tmp_path):
    res = load("03_im2col").main(out_dir=tmp_path, fast=True)
    assert res["cols_shape"] == (1, 2 * 9, 4 * 5)
    assert res["blowup"] == 9
    assert res["macs_gemm"] == res["macs_loops"] == 3 * 18 * 20
    assert res["max_forward_diff"] == 0.0 and res["max_dx_diff"] == 0.0
    assert res["adjoint_lhs"] == pytest.approx(res["adjoint_rhs"], rel=1e-12)
    # Copies of each pixel of a 4 x 5 image under a 3 x 3 kernel, counted by hand.
    assert np.array_equal(res["copies"], [[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]])
    assert_pngs(res["files"], tmp_path, 1)


# ------------------------------------------------------------------------------------------ example 4
def test_04_gradient_check(tmp_path):
    ex = load("04_gradient_check")
    assert ex.rel_error(2.0, 2.0) == 0.0 and ex.rel_error(1.0, -1.0) == 1.0
    res = ex.main(out_dir=tmp_path, fast=True)
    assert len(res["reports"]) == 2
    for label, rep in res["reports"].items():
        assert {"conv1.weight", "conv3.bias", "input", "direction", "numba vs reference"} <= set(rep)
        assert max(rep.values()) < 1e-5, (label, rep)
    assert "prelu1.weight" in res["reports"]["paper, PReLU, tanh output"]
    assert res["wrong_sign_error"] > 1e-2
    errs = dict(zip(res["epsilons"], res["eps_errors"]))
    assert errs[1e-6] < errs[1e-1] and errs[1e-6] < errs[1e-12]
    assert 1e-9 <= res["best_eps"] <= 1e-2
    assert_pngs(res["files"], tmp_path, 1)


# ------------------------------------------------------------------------------------------ example 5
def test_05_tiny_training_learns(tmp_path):
    res = load("05_tiny_training").main(out_dir=tmp_path, fast=True)
    assert len(res["losses"]) == res["steps"]
    assert np.all(np.isfinite(res["losses"]))
    assert res["loss_last"] < res["loss_first"] / 3
    assert res["psnr_after"] > res["psnr_before"] + 10
    assert 15 < res["psnr_bicubic"] < 60
    assert_pngs(res["files"], tmp_path, 2)


# ------------------------------------------------------------------------------------------ example 6
def test_06_inside_the_shipped_model(tmp_path):
    ex = load("06_inside_the_model")
    if not ex.WEIGHTS.is_file():
        pytest.skip(f"shipped weights not found at {ex.WEIGHTS}")
    res = ex.main(out_dir=tmp_path, fast=True)
    assert res["shipped"]
    assert res["shapes"]["conv1"] == (1, 64, 48, 48) and res["shapes"]["conv3"] == (1, 9, 48, 48)
    assert res["shapes"]["shuffle"] == (1, 1, 144, 144)
    err = res["phase_mse"]
    assert err.shape == (9, 9) and np.array_equal(np.argmin(err, axis=1), np.arange(9)) == res["phase_matched"]
    assert res["phase_matched"]
    if res["real_image"]:
        assert res["psnr_espcn"] > res["psnr_bicubic"]
    assert_pngs(res["files"], tmp_path, 5)


def test_06_falls_back_without_weights_or_images(tmp_path, monkeypatch, capsys):
    ex = load("06_inside_the_model")
    monkeypatch.setattr(ex, "WEIGHTS", tmp_path / "absent.npz")
    monkeypatch.setenv("NPESPCN_DATASETS", str(tmp_path / "no-datasets"))
    out = tmp_path / "pics"
    res = ex.main(out_dir=out, fast=True)
    printed = capsys.readouterr().out
    assert not res["shipped"] and not res["real_image"]
    assert "not found; training the paper's model" in printed and "synthetic chart" in printed
    assert res["shapes"]["conv3"] == (1, 9, 48, 48)
    assert_pngs(res["files"], out, 5)


# ------------------------------------------------------------------------------------------ command line
def test_cli_runs_and_reports_errors_in_one_line(tmp_path):
    script = str(EXAMPLES / "01_periodic_shuffle.py")
    ok = subprocess.run([sys.executable, script, "--fast", "--out", str(tmp_path)], capture_output=True,
                        text=True, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["01_input_channels.png", "01_shuffled.png"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = subprocess.run([sys.executable, script, "--out", str(blocker)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "--out must be a folder" in bad.stderr
    assert "Traceback" not in bad.stderr
    typo = subprocess.run([sys.executable, script, "--fsat"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert typo.returncode == 2 and typo.stderr.strip().count("\n") == 0 and "--fsat" in typo.stderr
