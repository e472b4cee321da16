"""Every example runs (fast mode) and what it prints is true.

Each example's ``main(out_dir=..., fast=True)`` returns the numbers it prints; these tests recompute the
expected values independently (formulas written here, hand-worked small cases) rather than trusting the
example, and check that the pictures are real PNG files.
"""
from __future__ import annotations

import importlib.util
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
        for u in range(H):
            for v in range(W):
                assert landing[f"{m}:{u}{v}"] == (c, u * r + i, v * r + j)
    assert landing["1:12"] == (0, 2, 5) and landing["7:00"] == (1, 1, 1)    # worked by hand
    # TensorFlow's order: block (i, j) of channel 0 reads channel (i*r + j)*C.
    assert res["first_block_torch"] == [[0, 1], [2, 3]]
    assert res["first_block_tf"] == [[0, 2], [4, 6]]
    assert res["tf_differs"] and res["tf_fixed"]
    assert res["loss_shuffled"] == pytest.approx(res["loss_unshuffled"], rel=1e-13)
    assert res["grad_max_abs_diff"] == 0.0
    assert res["permutation_size"] == 48
    assert_pngs(res["files"], tmp_path, 2)
    printed = capsys.readouterr().out
    assert "0:00 1:00 0:01 1:01 0:02 1:02" in printed        # first output row, by hand
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
    # The strided convolution's matrix (C_in*H*W, C*rH*rW) and its transpose's, for r=2, C_in=2, C=1, 3x4.
    assert res["transpose_shapes"] == ((2 * 3 * 4, 1 * 6 * 8), (1 * 6 * 8, 2 * 3 * 4))
    # ConvTranspose2d(K_d, stride r, padding P) -> LR kernel size k = 2 ceil(P / r) + 1, by hand.
    assert [(g["r"], g["Kd"], g["P"], g["k"]) for g in res["general"]] == [
        (2, 4, 1, 3), (2, 2, 0, 1), (3, 5, 1, 3), (4, 8, 2, 3), (3, 9, 3, 3)]
    assert all(g["err"] < 1e-12 for g in res["general"])
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
    assert res["max_forward_diff"] == 0.0 and res["max_dx_diff"] == 0.0 and res["transposed_conv_equal"]
    assert res["adjoint_lhs"] == pytest.approx(res["adjoint_rhs"], rel=1e-12)
    # Copies of each pixel of a 4 x 5 image under a 3 x 3 kernel, counted by hand.
    assert np.array_equal(res["copies"], [[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]])
    assert_pngs(res["files"], tmp_path, 1)


# ------------------------------------------------------------------------------------------ example 4
def test_04_gradient_check(tmp_path):
    ex = load("04_gradient_check")
    assert ex.rel_error(2.0, 2.0) == 0.0 and ex.rel_error(1.0, -1.0) == 1.0
    res = ex.main(out_dir=tmp_path, fast=True)
    # Every activation of the guide's section 5 is checked in fast mode too.
    assert set(res["reports"]) == {"paper, tanh", "paper, PReLU, tanh output", "small, relu", "small, gelu"}
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
def test_05_tiny_training_learns_and_reports_its_baselines(tmp_path):
    ex = load("05_tiny_training")
    res = ex.main(out_dir=tmp_path, fast=True)
    assert len(res["losses"]) == res["steps"] == 300
    assert np.all(np.isfinite(res["losses"]))
    assert res["loss_last"] < res["loss_first"] / 2
    # The constant-image baseline, recomputed from its closed form: MSE = var(hr) + (mean(hr) - c)^2.
    import _common
    hr, _, _ = _common.make_pair(_common.load_rgb8(ROOT / "data" / "Set5" / "butterfly.png"), 3)
    inner = hr[3:-3, 3:-3]
    mse = inner.var() + (inner.mean() - res["mean_luma"]) ** 2
    assert res["psnr_constant"] == pytest.approx(10 * np.log10(255.0 ** 2 / mse), abs=1e-9)
    # The untrained model (last bias = mean luma, weights N(0, 0.001^2)) is that constant image, nearly.
    assert abs(res["psnr_before"] - res["psnr_constant"]) < 0.05
    assert res["psnr_after"] > res["psnr_constant"] + 5
    assert 20 < res["psnr_bicubic"] < 30
    # The frame is r x receptive radius = 3 * 4 HR pixels; both effects fade with training.
    assert res["frame_width"] == 12
    mean_bias, zero_bias = res["trajectory"]["mean bias"], res["trajectory"]["zero bias"]
    assert sorted(zero_bias) == [10, 20, 40, 80] and max(mean_bias) == 300
    assert max(v["periodic"] for v in zero_bias.values()) > mean_bias[300]["periodic"]
    assert abs(mean_bias[300]["frame_minus_inside"]) < max(v["frame_minus_inside"] for v in mean_bias.values())
    assert_pngs(res["files"], tmp_path, 4)


def test_05_periodic_measure_is_the_energy_at_the_periodic_frequencies():
    import _common
    rng = np.random.default_rng(0)
    r, H, W = 3, 7, 5
    y = rng.normal(size=(r * H, r * W))
    F = np.fft.fft2(y)
    energy = sum(abs(F[m * H, n * W]) ** 2 for m in range(r) for n in range(r) if (m, n) != (0, 0))
    assert _common.periodic_rms(y, r) ** 2 * (r * H * r * W) ** 2 == pytest.approx(energy, rel=1e-10)
    # A pure 3-periodic tile has exactly its own RMS; a constant image has none.
    tile = rng.normal(size=(r, r))
    assert _common.periodic_rms(np.tile(tile, (H, W)), r) == pytest.approx(tile.std(), rel=1e-12)
    assert _common.periodic_rms(np.full((r * H, r * W), 7.0), r) == 0.0


# ------------------------------------------------------------------------------------------ example 6
def test_06_inside_the_shipped_model(tmp_path):
    ex = load("06_inside_the_model")
    if not ex.WEIGHTS.is_file():
        pytest.skip(f"shipped weights not found at {ex.WEIGHTS}")
    res = ex.main(out_dir=tmp_path, fast=True)
    assert res["shipped"]
    assert res["shapes"]["conv1"] == (1, 64, 48, 48) and res["shapes"]["conv3"] == (1, 9, 48, 48)
    assert res["shapes"]["shuffle"] == (1, 1, 144, 144)
    # Measured by backpropagation: 2 * (2 + 1 + 1) + 1 LR pixels, centred on the block's own pixel.
    assert res["receptive_field"] == (9, 9)
    assert res["receptive_rows"] == (res["block"][0] - 4, res["block"][0] + 4)
    err = res["phase_mse"]
    assert err.shape == (9, 9) and np.array_equal(np.argmin(err, axis=1), np.arange(9)) == res["phase_matched"]
    assert res["phase_matched"]
    if res["real_image"]:
        assert res["psnr_espcn"] > res["psnr_bicubic"]
    assert_pngs(res["files"], tmp_path, 7)


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
    assert_pngs(res["files"], out, 7)


# ------------------------------------------------------------------------------------------ example 7
def test_07_checkerboard_and_icnr(tmp_path):
    ex = load("07_checkerboard_and_icnr")
    res = ex.main(out_dir=tmp_path, fast=True)
    shipped = [n for n in ex.SHIPPED if (ROOT / "weights" / f"{n}.npz").is_file()]
    assert sorted(res["flat"]) == sorted(shipped)
    for name, row in res["flat"].items():
        assert sorted(row) == list(ex.LEVELS)
        for v in row.values():
            # A trained model's checkerboard on flat grey is below one 8-bit step in RMS, but not zero.
            assert 0 < v["rms"] < 1.0 and v["rms"] <= v["range"] and abs(v["mean_error"]) < 2, (name, v)
    # ICNR: every phase the same map, so no periodic part at all; the default init has a visible one.
    assert res["init"]["icnr"]["flat"] < 1e-3 and res["init"]["icnr"]["image"] < 1e-3
    assert res["init"]["default"]["flat"] > 0.1 and res["init"]["default"]["image"] > 0.1
    # At step 0 the ICNR model's error has exactly the HR image's own periodic part.
    assert res["train"]["icnr"][0] == pytest.approx(res["real"]["hr"], rel=1e-3)
    assert_pngs(res["files"], tmp_path, 2 if shipped else 1)


def test_07_icnr_makes_the_phases_identical():
    ex = load("07_checkerboard_and_icnr")
    model = ex.fresh(3, 0.5, icnr=True)
    K = model.params["conv3.weight"]
    assert all(np.array_equal(K[m], K[0]) for m in range(9))
    x = np.random.default_rng(1).uniform(0, 1, size=(1, 1, 10, 12)).astype(np.float32)
    y = model.infer(x)[0, 0]
    block = y[::3, ::3]
    assert np.allclose(y, np.repeat(np.repeat(block, 3, 0), 3, 1), atol=1e-6)     # nearest-neighbour upsampling
    assert not np.allclose(ex.fresh(3, 0.5, icnr=False).infer(x)[0, 0][::3, ::3],
                           ex.fresh(3, 0.5, icnr=False).infer(x)[0, 0][1::3, 1::3], atol=1e-4)


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


# ------------------------------------------------------------------------------------------ example 8
def test_08_reparameterised_training(tmp_path):
    res = load("08_reparameterised_training").main(out_dir=tmp_path, fast=True)
    assert res["fold"]["8->8"]["identity"] and not res["fold"]["8->4"]["identity"]
    assert all(v["max_abs_diff"] < 1e-12 for v in res["fold"].values())
    assert res["sgd"]["max_abs_diff_doubled_centre"] < 1e-12 < 1e-6 < res["sgd"]["max_abs_diff_plain_step"]
    for pair, (train, run) in res["macs"].items():        # C_in * C_out * (k*k + 1) against C_in * C_out * k*k
        c_in, c_out = (int(v) for v in pair.split("->"))
        assert (train, run) == (c_in * c_out * 10, c_in * c_out * 9)
    t = res["train"]
    assert t["steps"] == 60 and set(t["psnr"]) == {"plain", "branches, folded"}
    assert all(15 < v < 40 for v in t["psnr"].values())   # trained a little: far above a blank image
    assert_pngs(res["files"], tmp_path, 2)


# ------------------------------------------------------------------------------------------ example 9
def test_09_video(tmp_path):
    res = load("09_video").main(out_dir=tmp_path, fast=True)
    h, w, c = res["shape_in"]
    r = res["scale"]
    assert res["shape_out"] == (r * h, r * w, c) and res["frames"] >= 10
    assert res["exact"] == res["frames"]
    assert 1 <= res["max_alive"] <= res["prefetch"] + 2 < res["frames"]      # streamed, not all held
    if importlib.util.find_spec("av") is None:
        assert res["file"] is None
    else:
        assert res["file"]["frames_decoded"] == res["file"]["frames_written"] == 6
        assert min(res["file"]["psnr_db"]) > 40
    assert_pngs(res["files"], tmp_path, 1)
