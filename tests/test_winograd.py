"""Winograd F(m x m, 3x3): the matrices, the NumPy reference, the fast block kernel and its promise
(a pixel's bits depend only on its position in the image: not on the crop, the array size, the blocks
or the thread count, on every machine, since every GEMM has one shape and a tile one column in it).

Expected values come from the definition (``np.correlate``, the float64 im2col reference), never from
the code under test. The fast kernels run whatever ``NPESPCN_BACKEND`` says (they are the fast path's tests);
the tiled ``upscale`` test pins the fast backend, whose promise tiling's bits are."""
import numba
import numpy as np
import pytest

from npespcn import functional as F
from npespcn.fast import ACT_CODES, chunked, image_origin, winograd_matrices
from npespcn.fast.chunked import conv2d_chunked_forward
from npespcn.functional.conv import conv2d_act_backward, conv2d_act_train_forward, conv2d_forward_reference
from npespcn.functional.winograd import conv2d_winograd_reference, transform_weights

from _tiles import assert_same


def rand(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def exact(x, w, b):
    """The convolution in float64 (im2col reference): the yardstick for float32 errors."""
    return conv2d_forward_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))[0]


def rel_err(got, want):
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


@pytest.mark.parametrize("m", [2, 4, 6])
def test_1d_minimal_filtering_is_the_correlation(m):
    AT, G, BT = winograd_matrices(m)
    assert AT.shape == (m, m + 2) and G.shape == (m + 2, 3) and BT.shape == (m + 2, m + 2)
    rng = np.random.default_rng(m)
    for _ in range(5):
        d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), np.correlate(d, g, "valid"), rtol=0, atol=1e-12)


def test_lavin_and_grays_f2_matrices():
    """The paper's matrices up to signs of rows and columns (Lagrange's denominators and the point at
    infinity; the signs cancel in the product)."""
    AT, G, BT = winograd_matrices(2)
    np.testing.assert_array_equal(np.abs(BT), np.abs([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]))
    np.testing.assert_array_equal(np.abs(AT), [[1, 1, 1, 0], [0, 1, 1, 1]])
    np.testing.assert_array_equal(np.abs(G), [[1, 0, 0], [.5, .5, .5], [.5, .5, .5], [0, 0, 1]])


def test_wrong_number_of_points_is_refused():
    with pytest.raises(ValueError, match="needs 5 finite points"):
        winograd_matrices(4, points=(0, 1, -1))


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("origin", [(0, 0), (3, 5), (10, 1)])
def test_reference_in_float64_is_the_convolution(m, origin):
    x, w, b = rand((2, 5, 13, 17), 1).astype(np.float64), rand((4, 5, 3, 3), 2).astype(np.float64), rand((4,), 3)
    got = conv2d_winograd_reference(x, w, b.astype(np.float64), m, origin)
    np.testing.assert_allclose(got, exact(x, w, b), rtol=0, atol=1e-11)


def test_reference_refuses_other_kernels():
    with pytest.raises(ValueError, match="3x3 weights"):
        conv2d_winograd_reference(rand((1, 2, 8, 8), 0), rand((3, 2, 5, 5), 1), rand((3,), 2))


def test_float32_error_grows_with_the_tile_but_stays_within_the_forward_tolerance():
    """Measured on a 64 -> 32 layer (the paper model's): direct float32 summation about 2e-7 of the
    output's range; F(2x2) about the same, F(4x4) about 10x, F(6x6) about 20x more. The PyTorch
    forward tolerance of tests/test_torch_reference.py is 1e-5 of the range."""
    x, w, b = rand((1, 64, 24, 30), 4), rand((32, 64, 3, 3), 5, 0.06), rand((32,), 6, 0.1)
    want = exact(x, w, b)
    errs = {m: rel_err(conv2d_winograd_reference(x, w, b, m), want) for m in (2, 4, 6)}
    direct = rel_err(conv2d_forward_reference(x, w, b)[0], want)
    assert direct < 1e-6 and errs[2] < 1e-6
    assert errs[2] < errs[4] < errs[6] < 1e-5


@pytest.fixture
def winograd_layers(monkeypatch):
    """Every layer shape of these tests runs by Winograd F(4x4) inside image_origin."""
    table = {}
    monkeypatch.setattr(chunked, "WINOGRAD_TILES", table)
    return table


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("act", ["identity", "tanh", "relu"])
def test_fast_path_agrees_with_the_exact_convolution(winograd_layers, m, act):
    x, w, b = rand((2, 16, 37, 70), 7), rand((8, 16, 3, 3), 8, 0.1), rand((8,), 9, 0.1)
    winograd_layers[(16, 8)] = m
    z = exact(x, w, b)
    want = {"identity": lambda z: z, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[act](z)
    for origin in [(0, 0), (5, 131)]:
        got = conv2d_chunked_forward(x, w, b, act, origin=origin)
        assert got.dtype == np.float32
        err = float(np.abs(got - want).max() / np.abs(z).max())     # of the pre-activation's range
        # F(2): as exact as the direct convolution. F(4), F(6): issue 18's bound, the PyTorch forward
        # tolerance (1e-5); F(4) measured 3.9e-6 with OpenBLAS's Haswell sgemm (AMD EPYC) and 5.9e-6 with
        # its SkylakeX one (Intel Xeon): the GEMMs' summation order moves the last bits.
        assert err < {2: 1e-6, 4: 1e-5, 6: 1e-5}[m], (m, origin, err)


def test_image_origin_turns_winograd_on_for_the_listed_shapes_only(winograd_layers):
    x, w, b = rand((1, 16, 20, 30), 10), rand((8, 16, 3, 3), 11, 0.1), rand((8,), 12)
    outside = conv2d_chunked_forward(x, w, b)                        # shifted taps
    winograd_layers[(16, 8)] = 4
    with image_origin(0, 0):
        inside = conv2d_chunked_forward(x, w, b)
        w2 = rand((4, 16, 3, 3), 13, 0.1)
        assert conv2d_chunked_forward(x, w2, b[:4]).tobytes() == conv2d_chunked_forward(x, w2, b[:4],
                                                                                       origin=None).tobytes()
    assert inside.tobytes() == conv2d_chunked_forward(x, w, b, origin=(0, 0)).tobytes()
    assert inside.tobytes() != outside.tobytes()                     # another method ...
    assert rel_err(inside, outside.astype(np.float64)) < 5e-6     # ... the same convolution
    assert conv2d_chunked_forward(x, w, b).tobytes() == outside.tobytes()   # the block restored it


@pytest.mark.parametrize("m", [2, 4])
def test_a_crop_that_says_where_it_lies_gives_bitwise_the_whole_images_pixels(winograd_layers, m):
    """Pixels at least m + 1 from a cut (their whole tile's input inside the crop) are bitwise equal,
    whatever the crop's offset: tiles and blocks are aligned to the image."""
    winograd_layers[(16, 8)] = m
    x, w, b = rand((2, 16, 61, 150), 14), rand((8, 16, 3, 3), 15, 0.2), rand((8,), 16)
    whole = conv2d_chunked_forward(x, w, b, "tanh", origin=(0, 0))
    H, W = x.shape[2:]
    for (h0, h1, w0, w1) in [(3, 50, 5, 141), (0, 61, 0, 150), (17, 40, 33, 70), (7, 61, 90, 150), (0, 9, 1, 150)]:
        crop = conv2d_chunked_forward(np.ascontiguousarray(x[:, :, h0:h1, w0:w1]), w, b, "tanh", origin=(h0, w0))
        keep = m + 1
        ih0, ih1 = h0 + (keep if h0 > 0 else 0), h1 - (keep if h1 < H else 0)
        iw0, iw1 = w0 + (keep if w0 > 0 else 0), w1 - (keep if w1 < W else 0)
        got = crop[:, :, ih0 - h0:ih1 - h0, iw0 - w0:iw1 - w0]
        assert got.size and got.tobytes() == whole[:, :, ih0:ih1, iw0:iw1].tobytes(), (h0, h1, w0, w1)
        one = conv2d_chunked_forward(np.ascontiguousarray(x[1:, :, h0:h1, w0:w1]), w, b, "tanh", origin=(h0, w0))
        assert one.tobytes() == crop[1:].tobytes()                  # nor does the batch matter


def test_winograd_does_not_depend_on_the_thread_count(winograd_layers):
    winograd_layers[(8, 16)] = 4
    x, w, b = rand((3, 8, 70, 140), 17), rand((16, 8, 3, 3), 18, 0.3), rand((16,), 19)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = conv2d_chunked_forward(x, w, b, "relu", origin=(2, 3))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = conv2d_chunked_forward(x, w, b, "relu", origin=(2, 3))
    finally:
        numba.set_num_threads(before)
    assert one.tobytes() == many.tobytes()


def test_weight_transform_is_g_w_gt():
    w = rand((3, 2, 3, 3), 20).astype(np.float64)
    _, G, _ = winograd_matrices(4)
    U = transform_weights(w, 4)
    np.testing.assert_allclose(U[:, :, 1, 0], G @ w[1, 0] @ G.T, rtol=0, atol=1e-12)


def test_guide_section_12_answers():
    text = (__import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "how-it-works.md").read_text()
    body = text.split("## 12. Winograd")[1].split("## References")[0]
    answers = body.split("<details>")[1]
    assert f"`4 * 3 - 6 = {4 * 3 - (4 + 2)}`" in answers and f"`16 * 9 - 36 = {16 * 9 - 6 * 6}`" in answers
    direct, products = 640 * 360 * 64 * 32 * 9, (640 // 4) * (360 // 4) * 6 * 6 * 64 * 32
    assert f"{direct:,}" in answers and f"{products:,}" in answers.replace(" =\n", " = ")
    assert direct == 4 * products


@pytest.mark.parametrize("y0,x0", [(0, 0), (-3, -5), (8, 1), (30, 200), (-1, 300)])
def test_written_out_f4_block_gives_the_generic_blocks_bits(y0, x0):
    """winograd_block_f4 spells out F(4x4)'s matrices; on every block, inside, on an edge or sticking out
    of the array, it gives bitwise what the generic block computes from the matrices as data."""
    from npespcn.fast.blas import GEMMS
    from npespcn.fast.winograd import BLOCK, scratch_shapes, winograd_block, winograd_block_f4
    x, w, b = rand((1, 16, 37, 331), 21), rand((8, 16, 3, 3), 22, 0.2), rand((8,), 23)
    R, T = BLOCK[4]
    AT, _, BT = (a.astype(np.float32) for a in winograd_matrices(4))
    U = np.ascontiguousarray(transform_weights(w, 4).reshape(36, 8, 16)).astype(np.float32)
    fn = GEMMS[np.dtype(np.float32)]
    generic = {"ph": (6, 4 * (R + 1) * T), "Cs": (6, 6, R * T), "V": (36, 17, R * T + 16),
               "M": (36, 9, R * T + 16), "Z": (4, 6, R * T), "Y": (4, 4, R * T), "rowbuf": (T * 4,)}
    outs = []
    for kernel, shapes in ((winograd_block, generic), (winograd_block_f4, scratch_shapes(4, 16, 8))):
        out = np.full((1, 8, 37, 331), np.nan, np.float32)
        bufs = [np.full(s, np.nan, np.float32) for s in shapes.values()]    # scratch starts as garbage
        kernel(x, 0, y0, x0, 4, R, T, BT, U, AT, b, ACT_CODES["tanh"], fn, *bufs, out)
        outs.append(out)
    assert np.isfinite(outs[1]).any()
    assert outs[0].tobytes() == outs[1].tobytes()


def test_every_shipped_layer_shape_runs_by_winograd_and_tiles_keep_their_bits():
    """The shipped 3x3 layer shapes are in WINOGRAD_TILES, and a tiled upscale still gives the whole
    image's bits (the halo covers each Winograd layer's reach, npespcn.fast.inference_reach)."""
    from npespcn import upscale
    from npespcn.fast import inference_reach
    from npespcn.nn.model import ESPCN
    for arch, scale in [("paper", 2), ("paper", 3), ("paper", 4), ("seven", 3)]:
        net = getattr(ESPCN, arch)(scale)
        chans = [1] + [f for _, f in net.hidden] + [scale * scale]
        for (k, _), c, f in zip(list(net.hidden[1:]) + [(3, None)], chans[1:], chans[2:]):
            assert k == 3 and chunked.winograd_tile(c, f) == 4, (arch, scale, c, f)
    assert inference_reach(64, 32, 3) == 4 and inference_reach(1, 64, 5) == 2
    net = ESPCN.paper(3)
    net.init_weights(seed=4)
    img = np.random.default_rng(5).random((45, 70, 3)).astype(np.float32)    # float: no rounding to hide behind
    with F.use_backend("numba"):                 # the fast backend's promise, whatever NPESPCN_BACKEND says
        whole = upscale(img, 3, net, tile=1000)
        for tile in (16, 33):
            assert_same(upscale(img, 3, net, tile=tile), whole, f"tile={tile}")   # bitwise where BLAS allows


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("m", [2, 4, 6])
def test_backward_reference_is_the_convolutions_gradient(m):
    """Through the transposed transforms, in float64: the im2col reference's gradients to 1e-12."""
    from npespcn.functional.conv import conv2d_backward_reference
    from npespcn.functional.winograd import conv2d_winograd_backward_reference
    rng = np.random.default_rng(30 + m)
    x, w = rng.standard_normal((2, 5, 13, 18)), rng.standard_normal((4, 5, 3, 3))
    d = rng.standard_normal((2, 4, 13, 18))
    got = conv2d_winograd_backward_reference(d, x, w, m)
    for g, want, what in zip(got, conv2d_backward_reference(d, (x, w)), ("dx", "dw", "db")):
        assert g.shape == want.shape and float(np.abs(g - want).max()) < 1e-12 * np.abs(want).max(), what


@pytest.fixture
def train_winograd(monkeypatch):
    """The training shapes of these tests run by Winograd; counts the driver's calls."""
    if chunked.parallel_gemm(np.float32) is None:
        pytest.skip("the training Winograd runs in the compiled drivers (OpenMP or TBB and NumPy's OpenBLAS)")
    calls = []
    monkeypatch.setattr(chunked, "TRAIN_WINOGRAD", {(16, 8): (0, 0), (8, 8): (0, 0)})
    real = chunked._par.winograd_forward
    monkeypatch.setattr(chunked._par, "winograd_forward", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("W", [1, 2, 13, 14, 15, 16, 17])    # every width mod 4: shared or spare slot columns
@pytest.mark.parametrize("act", ["identity", "relu", "tanh"])
def test_training_convolution_by_winograd_agrees_with_the_exact_one(train_winograd, W, act):
    """The training forward and backward of a 3x3 layer by F(4x4) across the batch (blocks of tile rows
    from several images; 11 rows: a partial last tile row) against the float64 im2col reference, within
    issue 18's bound (1e-5 of the range, the PyTorch tolerance). The backward reference gets the fast
    forward's output, so that both take the same ReLU branches."""
    x, w, b = rand((7, 16, 11, W), 31), rand((8, 16, 3, 3), 32, 0.2), rand((8,), 33, 0.1)
    y, cache = conv2d_act_train_forward(x, w, b, act, backend="numba")
    assert len(train_winograd) == 1
    z = exact(x, w, b)
    want = {"identity": lambda z: z, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[act](z)
    assert float(np.abs(y - want).max()) < 1e-5 * np.abs(z).max()
    dy = rand(y.shape, 34)
    got = conv2d_act_backward(dy, cache, backend="numba")
    assert len(train_winograd) == 2                                   # dx: the forward with the kernel turned
    ref_cache = ((x.astype(np.float64), w.astype(np.float64)), act, y.astype(np.float64))
    for g, r, what in zip(got, conv2d_act_backward(dy.astype(np.float64), ref_cache, backend="reference"),
                          ("dx", "dw", "db")):
        assert g.dtype == np.float32 and g.shape == r.shape
        assert float(np.abs(g - r).max()) < 1e-5 * np.abs(r).max(), (what, float(np.abs(g - r).max()))


def test_training_winograd_is_deterministic_and_its_blocks_change_only_rounding(train_winograd, monkeypatch):
    """Twice the same call, bitwise the same results (the weight gradient's partial sums are per worker,
    added in order); other block sizes move only the last bits."""
    x, w, b = rand((9, 8, 17, 17), 35), rand((8, 8, 3, 3), 36, 0.3), rand((8,), 37)
    dy = rand((9, 8, 17, 17), 38)

    def run():
        y, cache = conv2d_act_train_forward(x, w, b, "tanh", backend="numba")
        return (y,) + tuple(conv2d_act_backward(dy, cache, backend="numba"))
    first = run()
    assert all(a.tobytes() == c.tobytes() for a, c in zip(first, run()))
    monkeypatch.setattr(chunked, "TRAIN_WINOGRAD_COLUMNS", 20)          # blocks of a few tile rows
    for a, c in zip(first, run()):
        np.testing.assert_allclose(c, a, rtol=0, atol=1e-5 * np.abs(a).max())


def test_training_runs_by_winograd_for_the_listed_float32_3x3_shapes_and_widths_only():
    on = chunked.parallel_gemm(np.float32) is not None and chunked.WINOGRAD
    assert chunked.TRAIN_WINOGRAD
    for (c, f), (forward, backward) in chunked.TRAIN_WINOGRAD.items():
        for wide in (max(forward, backward), 64):
            assert chunked.train_by_winograd(c, f, 3, np.float32, wide) == on
            assert chunked.train_by_winograd(c, f, 3, np.float32, wide, backward=True) == on
        if forward:
            assert not chunked.train_by_winograd(c, f, 3, np.float32, forward - 1)
        if backward:
            assert not chunked.train_by_winograd(c, f, 3, np.float32, backward - 1, backward=True)
    assert not chunked.train_by_winograd(64, 64, 5, np.float32, 64)
    assert not chunked.train_by_winograd(64, 64, 3, np.float64, 64)
    assert not chunked.train_by_winograd(32, 9, 3, np.float32, 64)
