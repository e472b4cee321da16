"""docs/how-it-works.md: example 0 computes what the package computes, and every exercise's answer is right.

Example 0 (``examples/00_espcn_in_50_lines.py``) is checked function by function against
:mod:`npespcn.functional` and :mod:`npespcn.nn` in float64, to rounding. Each exercise's answer is worked
out here independently (from shapes, from the package, or numerically) and compared with the number the
guide prints, so that a wrong answer in the guide, or a change in the code that makes one wrong, fails.
"""
from __future__ import annotations

import ast
import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from npespcn import ESPCN, Adam, psnr
from npespcn import functional as F
from npespcn.formats.tf_graphdef import tf_to_torch_channel_order
from npespcn.functional import use_backend
from npespcn.functional.conv import conv2d_forward_naive
from npespcn.training.patches import patch_origins

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "how-it-works.md"
TEXT = GUIDE.read_text(encoding="utf-8")
EXAMPLES = ROOT / "examples"


def load(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"npespcn_guide_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def says(number) -> None:
    """The guide prints ``number`` (an int with thin-space or no grouping, or a string) somewhere."""
    if isinstance(number, (int, np.integer)):
        forms = {f"{number}", f"{number:,}".replace(",", " ")}
        assert any(re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", TEXT) for f in forms), number
    else:
        assert number in TEXT, number


def section(n: int) -> str:
    """The text of the guide's section ``n`` (up to the next ``## ``)."""
    m = re.search(rf"^## {n}\. .*?(?=^## )", TEXT, flags=re.S | re.M)
    assert m, f"no section {n}"
    return m.group(0)


# ------------------------------------------------------------------------------------------ example 0
@pytest.fixture(scope="module")
def ex0():
    return load("00_espcn_in_50_lines")


def test_example_0_imports_numpy_and_pillow_only_and_is_50_lines(ex0):
    src = (EXAMPLES / "00_espcn_in_50_lines.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "PIL", "sys"}, imported
    lines = src.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("# ----")]
    core = [line for line in lines[marks[0]:marks[2]] if line.strip() and not line.strip().startswith("#")]
    assert len(core) <= 50, len(core)        # the layers and the network: forward, backward, Adam


def test_example_0_layers_match_the_package(ex0):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 7))
    for k in (1, 3, 5):
        assert np.array_equal(ex0.im2col(x, k), F.im2col(x, k, backend="reference"))
        g = rng.normal(size=(2, 3 * k * k, 42))
        assert np.allclose(ex0.col2im(g, x.shape, k), F.col2im(g, x.shape, k, backend="reference"),
                           rtol=1e-14, atol=1e-14)
        K, b = rng.normal(size=(4, 3, k, k)), rng.normal(size=4)
        out, cache = F.conv2d_forward(x, K, b, backend="reference")
        assert np.allclose(ex0.conv(x, K, b), out, rtol=1e-13, atol=1e-13)
        d = rng.normal(size=out.shape)
        for mine, theirs in zip(ex0.conv_backward(d, x, K), F.conv2d_backward(d, cache, backend="reference")):
            assert np.allclose(mine, theirs, rtol=1e-12, atol=1e-12)
    z = rng.normal(size=(2, 18, 4, 5))
    assert np.array_equal(ex0.shuffle(z, 3), F.pixel_shuffle(z, 3))
    assert np.array_equal(ex0.unshuffle(ex0.shuffle(z, 3), 3), z)


def test_example_0_network_matches_espcn_forward_backward_and_adam(ex0):
    r = 3
    P = ex0.init(r, seed=4, bias=0.3)
    model = ESPCN.paper(r, dtype=np.float64, seed=4)
    for name, arr in model.params.items():        # the same initialisation, draw for draw
        if name != "conv3.bias":
            assert np.array_equal(arr, P[name]), name
    model.params["conv3.bias"][...] = 0.3
    for p in model.params.values():               # weights that make every gradient visible
        p += np.random.default_rng(5).normal(scale=0.05, size=p.shape)
    for name, arr in model.params.items():
        P[name] = arr.copy()
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, size=(2, 1, 7, 6))
    t = rng.uniform(0, 1, size=(2, 1, 21, 18))
    with use_backend("reference"):
        y_pkg = model.forward(x)
        _, dy = F.mse_loss(y_pkg, t)
        dx_pkg = model.backward(dy)
    y, cache = ex0.forward(P, x, r)
    assert np.allclose(y, y_pkg, rtol=1e-12, atol=1e-13)
    G, dx = ex0.backward(P, cache, 2 * (y - t) / y.size, r)
    assert np.allclose(dx, dx_pkg, rtol=1e-10, atol=1e-15)
    for name, g in model.grads.items():
        assert np.allclose(G[name], g, rtol=1e-10, atol=1e-15), name
    # Adam, three steps with the last layer at 0.1 x, against npespcn's (which is PyTorch's rule).
    mult = {"conv3.weight": 0.1, "conv3.bias": 0.1}
    opt, S = Adam(model.params, lr=1e-2, lr_mult=mult), {}
    for step in range(3):
        grads = {k: np.sin(v + step) for k, v in model.params.items()}     # any gradients will do
        mine = {k: grads[k].copy() for k in grads}
        opt.step(grads)
        ex0.adam(P, mine, S, 1e-2, mult)
        for name in P:
            assert np.allclose(P[name], model.params[name], rtol=1e-12, atol=1e-15), (step, name)


def test_example_0_trains_on_real_images(ex0, tmp_path):
    res = ex0.main(out_dir=tmp_path, fast=True)
    assert len(res["losses"]) == 10 and np.all(np.isfinite(res["losses"]))
    assert 10 < res["psnr_constant"] < 20 and res["psnr"] > res["psnr_constant"] - 1
    assert (tmp_path / "00_lr_sr_hr.png").is_file()


# ------------------------------------------------------------------------------------------ the guide's shape
def test_every_section_has_exercises_with_answers():
    for n in range(1, 11):
        body = section(n)
        assert "**Exercises.**" in body and "<details><summary>Answers</summary>" in body, n
        asked = re.findall(rf"^{n}\.(\d+)\. ", body.split("<details>")[0], flags=re.M)
        answered = re.findall(rf"^{n}\.(\d+)\. ", body.split("<details>")[1], flags=re.M)
        assert asked and asked == answered, (n, asked, answered)


def test_reading_order_is_the_examples_order_and_every_link_and_picture_exists():
    linked = re.findall(r"\(\.\./examples/(\d\d_\w+\.py)\)", TEXT.split("## 0.")[0])
    ordered = list(dict.fromkeys(linked))
    assert ordered == sorted(ordered) == sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", TEXT):
        assert (GUIDE.parent / target).exists(), target
    pictures = re.findall(r"!\[[^\]]*\]\((pictures/[^)]+)\)", TEXT)
    assert len(pictures) >= 10
    for pic in pictures:
        assert (GUIDE.parent / pic).is_file(), pic
    make = load_docs_script()
    assert sorted(f"pictures/{f}" for files in make.SHOWN.values() for f in files) == sorted(pictures)


def load_docs_script():
    spec = importlib.util.spec_from_file_location("npespcn_make_pictures", ROOT / "docs" / "make_pictures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slips_stay_fixed():
    files = [GUIDE, ROOT / "npespcn" / "functional" / "conv.py", EXAMPLES / "03_im2col.py", EXAMPLES / "README.md"]
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "six nested loops" not in text and "six-loop" not in text, f
    assert "paper trains the last layer" not in TEXT
    assert "multiple of `r`" not in TEXT.replace("odd** multiple of `r`", "")
    assert not re.search(r"\b(W2|a2|da2)\b", TEXT)        # the old names of K_mat and s2
    model_doc = (ROOT / "npespcn" / "nn" / "model.py").read_text(encoding="utf-8")
    assert "fan-out" in model_doc or "fan_out" in model_doc
    for line in (ROOT / "npespcn" / "functional" / "activation.py").read_text(encoding="utf-8").splitlines()[:20]:
        assert len(line) <= 120


# ------------------------------------------------------------------------------------------ section 1
def test_exercise_1_1_parameters_and_multiply_adds():
    for r in (2, 4):
        m = ESPCN.paper(r)
        count = sum(o * i * k * k + o for o, i, k in ((64, 1, 5), (32, 64, 3), (r * r, 32, 3)))
        macs = 25 * 64 + 9 * 64 * 32 + 9 * 32 * r * r
        assert m.num_params() == count and m.macs_per_pixel() == macs
        says(count)
        says(macs)
    assert ESPCN.paper(3).num_params() == 22729 and ESPCN.paper(3).macs_per_pixel() == 22624
    says(22729)
    says(22624)


def test_exercise_1_2_receptive_field_of_the_seven_layer_model():
    assert ESPCN.seven(3).receptive_radius == 7
    assert "`15 x 15` window" in section(1)


def test_exercise_1_3_a_frame():
    total = 640 * 360 * ESPCN.paper(3).macs_per_pixel()
    assert total == 5_212_569_600
    says(total)


# ------------------------------------------------------------------------------------------ section 2
def test_exercise_2_1_the_inverse_shuffle_formula():
    rng = np.random.default_rng(0)
    N, C, r, H, W = 2, 3, 2, 4, 5
    y = rng.normal(size=(N, C, r * H, r * W))
    z = y.reshape(N, C, H, r, W, r).transpose(0, 1, 3, 5, 2, 4).reshape(N, C * r * r, H, W)   # the guide's
    assert np.array_equal(z, F.pixel_unshuffle(y, r))
    assert np.array_equal(F.pixel_shuffle(z, r), y) and np.array_equal(F.pixel_unshuffle(F.pixel_shuffle(z, r), r), z)
    c, a, b, u, v = 2, 1, 0, 3, 4
    assert z[1, c * r * r + a * r + b, u, v] == y[1, c, r * u + a, r * v + b]


def test_exercise_2_2_the_gradient_of_the_shuffle_is_its_inverse():
    rng = np.random.default_rng(1)
    shape = (1, 8, 2, 3)
    P = np.stack([F.pixel_shuffle(e.reshape(shape), 2).ravel() for e in np.eye(48)], axis=1)
    assert np.array_equal(P.T @ P, np.eye(48))
    dy = rng.normal(size=(1, 2, 4, 6))
    assert np.array_equal((P.T @ dy.ravel()).reshape(shape), F.pixel_shuffle_backward(dy, 2))
    assert np.array_equal(F.pixel_shuffle_backward(dy, 2), F.pixel_unshuffle(dy, 2))


def test_exercise_2_3_where_an_entry_lands():
    z = np.zeros((1, 9, 2, 3))
    z[0, 5, 1, 2] = 1.0
    y = F.pixel_shuffle(z, 3)
    assert tuple(int(i) for i in np.argwhere(y)[0]) == (0, 0, 4, 8)
    says("y[0, 0, 4, 8]")


def test_exercise_2_4_tensorflow_channel_order():
    C, r = 3, 2
    tf = np.arange(C * r * r, dtype=float)[:, None, None, None]        # TF channel q holds the value q
    torch_order = tf_to_torch_channel_order(tf, r)
    assert torch_order[5, 0, 0, 0] == 4
    assert "`(α·r + β)·C + c = 1·3 + 1 = 4`" in section(2)


# ------------------------------------------------------------------------------------------ section 3
def test_exercise_3_1_multiply_adds_counted_from_shapes():
    ex2 = load("02_subpixel_is_deconvolution")
    rng = np.random.default_rng(0)
    r, C_in, k, H = 3, 32, 3, 100
    sub, scatter, zero = H * H * k * k * C_in * r * r, H * H * (r * k) ** 2 * C_in, (r * H) ** 2 * (r * k) ** 2 * C_in
    assert (sub, scatter, zero) == (25_920_000, 25_920_000, 233_280_000)
    for n in (sub, zero):
        says(n)
    # The same formulas, counted by the example's loops on a smaller image.
    x, K = rng.normal(size=(C_in, 6, 5)), rng.normal(size=(r * r, C_in, k, k))
    D = ex2.deconv_kernel(K, r)
    assert ex2.lr_conv_then_shuffle(x, K, np.zeros(9), r)[1] == 6 * 5 * k * k * C_in * r * r
    assert ex2.deconv_scatter(x, D, r)[1] == 6 * 5 * (r * k) ** 2 * C_in
    assert ex2.deconv_zero_insertion(x, D, r)[1] == 18 * 15 * (r * k) ** 2 * C_in
    # The whole network at HR size (after bicubic) against ESPCN, per LR pixel.
    hr_net = ESPCN(1, layers=((5, 64), (3, 32)))          # r = 1: the same layers, a last 3x3 to 1 channel
    assert hr_net.macs_per_pixel() == 20320
    assert hr_net.macs_per_pixel() * r * r == 182880 and ESPCN.paper(3).macs_per_pixel() == 22624
    says(20320)
    says(182880)
    says(hr_net.macs_per_pixel() * r * r * H * H)
    says(ESPCN.paper(3).macs_per_pixel() * H * H)
    assert f"{182880 / 22624:.1f} times" in section(3)


def test_exercise_3_2_a_pytorch_transposed_convolution_as_a_subpixel_one():
    ex2 = load("02_subpixel_is_deconvolution")
    rng = np.random.default_rng(2)
    D = rng.normal(size=(3, 1, 4, 4))
    Dpad, k = ex2.as_subpixel_kernel(D, 2, 1)
    assert k == 3 and Dpad.shape[-1] == 6
    assert np.array_equal(Dpad[..., 1:5, 1:5], D) and not Dpad[..., 0, :].any() and not Dpad[..., -1].any()
    x = rng.normal(size=(3, 5, 4))
    y, _ = ex2.lr_conv_then_shuffle(x, ex2.lr_kernel(Dpad, 2), np.zeros(4), 2)
    assert np.allclose(y, ex2.deconv_general(x, D, 2, 1), rtol=1e-12, atol=1e-12)


def test_exercise_3_3_r_equal_1_flips_the_kernel():
    ex2 = load("02_subpixel_is_deconvolution")
    K = np.random.default_rng(3).normal(size=(4, 2, 3, 3))
    D = ex2.deconv_kernel(K, 1)
    assert np.array_equal(D, K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def test_exercise_3_4_uneven_overlap():
    ex2 = load("02_subpixel_is_deconvolution")
    y = ex2.deconv_general(np.ones((1, 6, 6)), np.ones((1, 1, 3, 3)), 2, 0)[0]
    inside = y[2:-2, 2:-2]
    assert inside[::2, ::2].min() == inside[::2, ::2].max() == 4
    assert set(np.unique(inside[::2, 1::2])) == {2} and set(np.unique(inside[1::2, ::2])) == {2}
    assert set(np.unique(inside[1::2, 1::2])) == {1}
    says("`4, 2, 2, 1`")


# ------------------------------------------------------------------------------------------ section 4
def test_exercise_4_1_column_matrix_sizes():
    x = np.zeros((16, 64, 17, 17), np.float32)
    assert F.im2col(x[:, :1], 5).size == 115_600 and F.im2col(x, 3).size == 2_663_424
    says(115_600)
    says(2_663_424)
    assert f"{F.im2col(x, 3).nbytes / 1e6:.2f} MB" in section(4)


def test_exercise_4_2_copies_of_a_corner_and_an_edge_pixel():
    for k in (3, 5):
        p = (k - 1) // 2
        counts = F.col2im(F.im2col(np.ones((1, 1, 9, 9)), k), (1, 1, 9, 9), k)[0, 0]
        assert counts[0, 0] == (p + 1) ** 2 and counts[0, 4] == (p + 1) * k and counts[4, 4] == k * k


def test_exercise_4_3_adjoint_not_inverse():
    rng = np.random.default_rng(4)
    x, g = rng.normal(size=(2, 3, 6, 7)), rng.normal(size=(2, 27, 42))
    assert np.sum(F.im2col(x, 3) * g) == pytest.approx(np.sum(x * F.col2im(g, x.shape, 3)), rel=1e-12)
    assert not np.allclose(F.col2im(F.im2col(x, 3), x.shape, 3), x)


def test_exercise_4_4_folding_a_1x1_and_an_identity_branch_into_a_3x3_kernel():
    rng = np.random.default_rng(5)
    C = 4
    x = rng.normal(size=(2, C, 6, 5))
    K3, b3 = rng.normal(size=(C, C, 3, 3)), rng.normal(size=C)
    K1, b1 = rng.normal(size=(C, C, 1, 1)), rng.normal(size=C)
    branches = (F.conv2d_forward(x, K3, b3, backend="reference")[0]
                + F.conv2d_forward(x, K1, b1, backend="reference")[0] + x)
    K = K3.copy()
    K[:, :, 1, 1] += K1[:, :, 0, 0] + np.eye(C)
    folded, _ = F.conv2d_forward(x, K, b3 + b1, backend="reference")
    assert np.allclose(folded, branches, rtol=1e-12, atol=1e-12)
    assert np.allclose(conv2d_forward_naive(x, K, b3 + b1)[0], branches, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ section 5
def test_exercise_5_1_tanh_derivative_from_its_output():
    x = np.linspace(-3, 3, 13)
    y, cache = F.activation_forward(x, "tanh", backend="reference")
    numeric = (np.tanh(x + 1e-6) - np.tanh(x - 1e-6)) / 2e-6
    assert np.allclose(1 - y ** 2, numeric, rtol=1e-8)
    assert np.allclose(F.activation_backward(np.ones_like(x), cache, backend="reference"), 1 - y ** 2)


def test_exercise_5_2_gelu_derivative():
    value = norm.cdf(0.5) + 0.5 * norm.pdf(0.5)
    _, cache = F.activation_forward(np.array([0.5]), "gelu", backend="reference")
    assert F.activation_backward(np.array([1.0]), cache, backend="reference")[0] == pytest.approx(value, rel=1e-12)
    says(f"{value:.4f}")
    says(f"{norm.cdf(0.5):.4f}")
    says(f"{norm.pdf(0.5):.4f}")


def test_exercise_5_3_relu_masks_agree():
    x = np.random.default_rng(6).normal(size=1000)
    assert np.array_equal(x > 0, np.maximum(x, 0) > 0)


# ------------------------------------------------------------------------------------------ section 6
def test_exercise_6_1_last_bias_gradient():
    model = ESPCN.paper(3, dtype=np.float64, seed=7)
    rng = np.random.default_rng(7)
    x, dy = rng.uniform(size=(2, 1, 5, 4)), rng.normal(size=(2, 1, 15, 12))
    with use_backend("reference"):
        model.forward(x)
        model.backward(dy)
    assert np.allclose(model.grads["conv3.bias"], F.pixel_unshuffle(dy, 3).sum(axis=(0, 2, 3)), rtol=1e-12)


def test_exercise_6_2_adams_first_step_is_lr_times_the_sign():
    rng = np.random.default_rng(8)
    p = {"a": rng.normal(size=50), "b": rng.normal(size=50)}
    g = {"a": rng.normal(size=50) * 1e3, "b": rng.normal(size=50) * 1e-3}     # very different scales
    before = {k: v.copy() for k, v in p.items()}
    Adam(p, lr=0.01, lr_mult={"b": 0.1}).step(g)
    assert np.allclose(p["a"] - before["a"], -0.01 * np.sign(g["a"]), rtol=1e-6)
    assert np.allclose(p["b"] - before["b"], -0.001 * g["b"] / (np.abs(g["b"]) + 1e-8), rtol=1e-6)


# ------------------------------------------------------------------------------------------ section 7
def test_exercise_7_1_mse_of_30_db():
    mse = 255.0 ** 2 / 1e3
    assert psnr(np.zeros((8, 8)), np.full((8, 8), math.sqrt(mse))) == pytest.approx(30.0, abs=1e-12)
    says(f"{mse:.3f}")
    says(f"{math.sqrt(mse):.2f} levels")


def test_exercise_7_2_patches_of_one_image():
    rows, _ = patch_origins(85, 85, 17, 13)
    assert rows.size == 36
    assert "36 patches" in section(7)


def test_exercise_7_3_constant_image_psnr():
    rng = np.random.default_rng(9)
    b = rng.uniform(16, 235, size=(30, 40))
    for c in (b.mean(), 100.0):
        expected = 10 * np.log10(255.0 ** 2 / (b.var() + (b.mean() - c) ** 2))
        assert psnr(b, np.full_like(b, c)) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------ section 8
def test_exercise_8_an_untrained_model_is_its_bias_within_a_few_levels():
    import _common
    _, lr, _ = _common.make_pair(_common.load_rgb8(ROOT / "data" / "Set5" / "butterfly.png"), 3)
    model = ESPCN.paper(3, seed=0)
    model.params["conv3.bias"][...] = 0.5
    y = model.infer((lr / 255.0)[None, None].astype(np.float32))
    dev = (y - 0.5) * 255.0
    # the answer quotes example 5's model (mean-luma bias): its RMS and largest deviation from the bias
    ex5 = load("05_tiny_training")
    images, _ = ex5.training_images(16)
    mean_luma = float(np.mean([_common.make_pair(im, 3)[0].mean() for im in images]))
    model5 = ESPCN.paper(3, seed=0)
    model5.params["conv3.bias"][...] = mean_luma / 255.0
    sr = ex5.super_resolve(model5, lr) - mean_luma
    assert quoted(r"from its bias, at most (\d\.\d)", section(8)) == pytest.approx(np.abs(sr).max(), abs=0.06)
    assert quoted(r"is (\d\.\d) levels RMS from its bias", section(8)) == pytest.approx(sr.std(), abs=0.06)
    bound = np.abs(model.params["conv3.weight"]).reshape(9, -1).sum(axis=1).max()
    assert np.abs(dev).max() <= bound * 255.0 + 1e-3
    assert dev.std() <= 0.001 * math.sqrt(288) * 255.0
    assert 288 * 0.001 * math.sqrt(2 / math.pi) == pytest.approx(0.23, abs=0.005)
    says(f"{0.001 * math.sqrt(288) * 255:.1f} levels")


@pytest.fixture
def one_numba_thread():
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def quoted(pattern: str, body: str) -> float:
    m = re.search(pattern, body, flags=re.S)
    assert m, pattern
    return float(m.group(1))


def test_section_8_quotes_example_5(tmp_path, one_numba_thread):
    res = load("05_tiny_training").main(out_dir=tmp_path, fast=True)
    body = section(8)
    assert abs(res["psnr_before"] - res["psnr_constant"]) < 0.01 and "under 0.01 dB" in body     # exercise 8.1
    assert quoted(r"mean training luma, (\d+\.\d+) dB", body) == pytest.approx(res["psnr_constant"], abs=0.006)
    assert quoted(r"bicubic, (\d+\.\d+) dB", body) == pytest.approx(res["psnr_bicubic"], abs=0.006)
    assert quoted(r"\(300 steps\) reaches (\d+\.\d+) dB", body) == pytest.approx(res["psnr_after"], abs=0.03)
    zero = max(v["periodic"] for v in res["trajectory"]["zero bias"].values())
    mean = max(v["periodic"] for s, v in res["trajectory"]["mean bias"].items() if s <= 80)
    assert quoted(r"differ by up\s+to (\d+\.\d+) levels RMS", body) == pytest.approx(zero, abs=0.06)
    assert quoted(r"against (\d+\.\d+) from the mean bias", body) == pytest.approx(mean, abs=0.06)
    frame = max(v["frame_minus_inside"] for v in res["trajectory"]["mean bias"].values())
    assert quoted(r"by up to (\d+) levels", body) == pytest.approx(frame, abs=1.0)


def test_section_10_quotes_example_7(tmp_path, one_numba_thread):
    res = load("07_checkerboard_and_icnr").main(out_dir=tmp_path, fast=True)
    body = section(10)
    assert quoted(r"is (\d\.\d+) levels for the\s+shipped x3 model", body) == pytest.approx(res["real"]["espcn_x3"],
                                                                                               abs=0.0006)
    assert quoted(r"and (\d\.\d+) for bicubic", body) == pytest.approx(res["real"]["bicubic"], abs=0.0006)
    flat = [v for row in res["flat"].values() for v in row.values()]
    assert quoted(r"up to (\d\.\d+) levels RMS \(", body) == pytest.approx(max(v["rms"] for v in flat), abs=0.006)
    assert quoted(r"\((\d\.\d) levels from the brightest", body) == pytest.approx(max(v["range"] for v in flat),
                                                                                  abs=0.06)
    mid = [v["rms"] for row in res["flat"].values() for level, v in row.items() if 64 <= level <= 192]
    assert quoted(r"spread is (\d\.\d+) to", body) <= min(mid) + 0.005
    assert quoted(r"to (\d\.\d+) levels RMS for luma 64 to 192", body) >= max(mid) - 0.005
    assert quoted(r"\((?:full mode; )?(\d\.\d+) over the 3 seeds", body) == pytest.approx(
        res["init"]["default"]["flat"], abs=0.006)


# ------------------------------------------------------------------------------------------ section 9
def test_exercise_9_1_receptive_field_in_hr_pixels():
    for model, width in ((ESPCN.paper(3, dtype=np.float64), 27), (ESPCN.seven(3, dtype=np.float64), 45)):
        R, r = model.receptive_radius, model.scale
        assert (2 * R + 1) * r == width
        # measured: the input gradient of one output block
        x = np.random.default_rng(10).uniform(size=(1, 1, 21, 21))
        with use_backend("reference"):
            model.forward(x)
            dy = np.zeros((1, 1, 63, 63))
            dy[0, 0, 30:33, 30:33] = 1
            dx = model.backward(dy)[0, 0]
        rows = np.nonzero(np.abs(dx).sum(axis=1))[0]
        assert rows[-1] - rows[0] + 1 == 2 * R + 1


# ------------------------------------------------------------------------------------------ section 10
def test_exercise_10_1_icnr_is_nearest_neighbour_upsampling():
    z0 = np.random.default_rng(11).normal(size=(1, 1, 4, 5))
    y = F.pixel_shuffle(np.repeat(z0, 9, axis=1), 3)
    assert np.array_equal(y[0, 0], z0[0, 0].repeat(3, 0).repeat(3, 1))


def test_exercise_10_2_parseval():
    import _common
    rng = np.random.default_rng(12)
    for r, H, W in ((2, 5, 4), (3, 4, 6)):
        y = rng.normal(size=(r * H, r * W)) + np.tile(rng.normal(size=(r, r)), (H, W))
        Y = np.fft.fft2(y)
        energy = sum(abs(Y[m * H, n * W]) ** 2 for m in range(r) for n in range(r) if (m, n) != (0, 0))
        assert energy == pytest.approx((r * H * r * W) ** 2 * _common.periodic_rms(y, r) ** 2, rel=1e-10)


# ------------------------------------------------------------------------------------------ section 11
def test_exercise_11_1_an_sgd_step_through_the_branches_doubles_the_centre_rate():
    from npespcn.nn.reparam import RepConv2d
    rng = np.random.default_rng(13)
    layer = RepConv2d(3, 3, 3, np.float64)
    for v in layer.params.values():
        v[...] = rng.normal(size=v.shape)
    x, eta = rng.normal(size=(1, 3, 5, 6)), 0.05
    dout = rng.normal(size=(1, 3, 5, 6))
    w0, b0 = layer.folded_weights()
    with use_backend("reference"):
        layer.forward(x)
        layer.backward(dout)
        _, cache = F.conv2d_forward(x, w0, b0)
        _, dw, db = F.conv2d_backward(dout, cache)      # the plain convolution's gradient
    for name, g in layer.grads.items():
        layer.params[name] -= eta * g
    w1, b1 = layer.folded_weights()
    moved = (w0 - w1) / eta
    assert np.allclose(moved[:, :, 1, 1], 2 * dw[:, :, 1, 1], atol=1e-12)
    off = np.ones((3, 3), bool)
    off[1, 1] = False
    assert np.allclose(moved[:, :, off], dw[:, :, off], atol=1e-12)
    assert np.allclose((b0 - b1) / eta, 2 * db, atol=1e-12)
    assert "`2η`" in TEXT


def test_exercise_11_2_multiply_adds_of_a_reparameterised_first_layer():
    train, run = 1 * 64 * (5 * 5 + 1), 1 * 64 * 5 * 5
    says(train)
    says(run)
    layer_doc = TEXT[TEXT.index("## 11."):]
    assert f"{train}" in layer_doc and f"{run}" in layer_doc


# ------------------------------------------------------------------------------------------ section 13
def test_section_13_is_there_with_exercises():
    body = section(13)
    assert "**Exercises.**" in body and "<details><summary>Answers</summary>" in body
    asked = re.findall(r"^13\.(\d+)\. ", body.split("<details>")[0], flags=re.M)
    answered = re.findall(r"^13\.(\d+)\. ", body.split("<details>")[1], flags=re.M)
    assert asked == answered == ["1", "2"]


def test_exercise_13_1_queue_bytes():
    lr, hr = 3 * 640 * 360 * 3, 3 * (3 * 640) * (3 * 360) * 3
    for n in (lr, hr, lr + hr):
        says(int(n))


def test_exercise_13_2_pipeline_throughput():
    stages = (0.010, 0.110, 0.040)
    says(f"= {1 / max(stages):.1f}` frames per second")
    says(f"= {round(1000 * sum(stages))}` ms")
    says(f"`{1 / sum(stages):.2f}` frames per second")
