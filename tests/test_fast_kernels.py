"""The fast path's own promises, beyond "agrees with the reference" (tests/test_kernels.py checks that):

* size independence: a convolution of a crop equals the crop of the convolution, bitwise, away from the
  border (tiled inference relies on it), whatever the image width, chunking and thread count;
* fused conv + activation gives bitwise the numbers of the unfused pair, and inference those of training
  when their GEMMs are the same size (training lets small GEMMs run, see conv2d_forward_numba);
* the float32 tanh without libm is within 7 ulps of the float64 tanh, odd and never above 1;
* backward is deterministic (bitwise equal on repeated runs);
* NumPy's BLAS thread count is restored after the worker threads are done.

Every test here runs the fast backend, whatever ``NPESPCN_BACKEND`` says (``pin_fast_backend``).
"""
import math

import numba
import numpy as np
import pytest

import npespcn.functional as F
from npespcn.fast import blas as _blas
from npespcn.fast import chunked as conv_chunked
from npespcn.fast.vecmath import tanh32
from npespcn.functional.conv import conv2d_act_forward, conv2d_backward_numba, conv2d_forward_numba
from npespcn.functional.im2col import im2col_reference
from npespcn.nn.model import ESPCN

from _tiles import assert_same


@pytest.fixture(autouse=True)
def pin_fast_backend():
    """These are the fast path's promises: test it even when the suite runs with NPESPCN_BACKEND=reference."""
    with F.use_backend("numba"):
        yield


def rand(shape, seed=0, scale=1.0, dtype=np.float32):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.fixture(params=["compiled", "thread-pool"])
def drivers(request, monkeypatch):
    """Run a training test with each of the two ways the chunks reach the threads: the compiled drivers
    (npespcn.fast.compiled, numba prange) and the Python drivers on the thread pool."""
    if request.param == "compiled":
        if conv_chunked.parallel_gemm(np.float32) is None:
            pytest.skip("compiled drivers unavailable here (no OpenBLAS cblas_sgemm, or numba's threading "
                        "layer is workqueue): the thread-pool drivers run instead")
    else:
        monkeypatch.setattr(conv_chunked, "PARALLEL_DRIVERS", False)
    return request.param


@numba.njit
def _tanh32_array(x, y):
    for t in range(x.size):
        y[t] = tanh32(x[t])


# ------------------------------------------------------------------------------------------------ tanh
def _ulps_from_tanh(x, y):
    """|y - tanh(x)| in float32 ulps of tanh(x), with the float64 tanh as the truth."""
    exact = np.tanh(x.astype(np.float64))
    return np.abs(y.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)


def test_tanh32_is_within_7_ulps_of_tanh():
    """Every 61st float32 between 0 and 10 (its bit patterns: 18 million values, all exponents), their
    negatives, and points around the clamp, zero and saturation; vecmath's docstring quotes the bound."""
    positive = np.arange(1, np.float32(10).view(np.int32), 61, dtype=np.int32).view(np.float32)
    special = np.array([7.905311, 7.9053106, 7.9053116, 4e-4, 3.9999e-4, 9.01, 8.9, 1e-38, 1e-45], np.float32)
    x = np.concatenate([positive, special])
    y = np.empty_like(x)
    _tanh32_array(x, y)
    ulps = _ulps_from_tanh(x, y)
    assert ulps.max() <= 7.0, f"{ulps.max():.2f} ulps at x = {x[ulps.argmax()]!r}"
    assert (np.abs(y) <= 1).all()
    ny = np.empty_like(x)
    _tanh32_array(-x, ny)
    np.testing.assert_array_equal(ny, -y)                                   # odd, bitwise


def test_tanh32_special_values():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 20.0, -20.0], np.float32)
    y = np.empty_like(x)
    _tanh32_array(x, y)
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], [1, -1, 0, 1, -1])


# ------------------------------------------------------------------------------------ size independence
# ------------------------------------------------------------------------------------------ im2col
def test_im2col_of_any_band_of_stacked_rows_is_exact():
    """A band may start and end mid-image, cross images, and be narrower than the kernel; the copy is
    bit-exact, and columns past the band are left alone (spare columns of a padded GEMM)."""
    from npespcn.functional.im2col import im2col_rows
    rng = np.random.default_rng(3)
    for _ in range(300):
        N, C, H, W = (int(v) for v in rng.integers(1, [4, 4, 9, 9], endpoint=True))
        k = int(rng.choice([1, 3, 5, 7]))
        x = rand((N, C, H, W), int(rng.integers(1 << 30)))
        r0 = int(rng.integers(0, N * H))
        r1 = int(rng.integers(r0 + 1, N * H, endpoint=True))
        cols = np.full((C * k * k, (r1 - r0) * W + 2), 7.0, np.float32)
        im2col_rows(x, k, r0, r1, cols)
        whole = im2col_reference(x, k)                      # (N, C*k*k, H*W)
        expected = np.concatenate([whole[r // H][:, (r % H) * W:(r % H + 1) * W] for r in range(r0, r1)],
                                  axis=1)
        np.testing.assert_array_equal(cols[:, :-2], expected, err_msg=f"{(N, C, H, W)} k={k} [{r0}, {r1})")
        assert (cols[:, -2:] == 7.0).all()


@pytest.mark.parametrize("C, Fo, k, act", [(1, 64, 5, "tanh"), (64, 32, 3, "tanh"), (32, 9, 3, "identity"),
                                           (16, 8, 3, "relu")])
def test_conv_of_a_crop_is_the_crop_of_the_conv_bitwise(C, Fo, k, act):
    x = rand((2, C, 23, 41), 1)
    w, b = rand((Fo, C, k, k), 2, 0.2), rand((Fo,), 3, 0.1)
    full = conv2d_act_forward(x, w, b, act)
    p = (k - 1) // 2
    for (h0, h1, w0, w1) in [(3, 20, 5, 36), (0, 23, 0, 41), (6, 13, 9, 16), (2, 9, 30, 41)]:
        crop = conv2d_act_forward(np.ascontiguousarray(x[:, :, h0:h1, w0:w1]), w, b, act)
        # pixels whose k x k window lies inside the crop (or the crop touches the image border there)
        ih0, ih1 = h0 + (p if h0 > 0 else 0), h1 - (p if h1 < 23 else 0)
        iw0, iw1 = w0 + (p if w0 > 0 else 0), w1 - (p if w1 < 41 else 0)
        assert_same(crop[:, :, ih0 - h0:ih1 - h0, iw0 - w0:iw1 - w0], full[:, :, ih0:ih1, iw0:iw1])
        # and the batch does not matter either
        one = conv2d_act_forward(np.ascontiguousarray(x[1:, :, h0:h1, w0:w1]), w, b, act)
        assert_same(one, crop[1:])


def test_the_blas_column_probe_tells_exact_products_from_position_dependent_ones():
    def exact(a, b):                                    # each column on its own, in float64: position-free
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)

    def by_position(a, b):                              # the last 8 columns rounded another way
        c = exact(a, b)
        c[:, -8:] = np.nextafter(c[:, -8:], np.float32(np.inf))
        return c

    assert _blas.columns_exact(1 << 16, exact)
    assert not _blas.columns_exact(1 << 16, by_position)


def test_model_inference_of_a_tile_is_bitwise_the_tile_of_the_whole(monkeypatch):
    m = ESPCN.paper(3)
    for seed, arr in enumerate(m.params.values()):
        arr[...] = rand(arr.shape, seed, 0.2)
    x = np.random.default_rng(4).random((1, 1, 40, 57)).astype(np.float32)
    full = m.infer(x)
    r, rad = 3, m.receptive_radius
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", 64)          # many small chunks in the tile run
    tile = m.infer(np.ascontiguousarray(x[:, :, 10:30, 12:45]))
    core = (slice(None), slice(None), slice((10 + rad) * r, (30 - rad) * r), slice((12 + rad) * r, (45 - rad) * r))
    assert_same(tile[:, :, rad * r:(20 - rad) * r, rad * r:(33 - rad) * r], full[core])


def test_forward_does_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", 40)           # 2 rows per chunk: 45 chunks,
    monkeypatch.setattr(conv_chunked, "MIN_GEMM_MNK", 1)            # however small the GEMM
    x, w, b = rand((3, 8, 30, 17), 5), rand((16, 8, 3, 3), 6, 0.3), rand((16,), 7)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = conv2d_act_forward(x, w, b, "tanh")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = conv2d_act_forward(x, w, b, "tanh")
    finally:
        numba.set_num_threads(before)
    assert_same(one, many)


# ----------------------------------------------------------------------------------------- fusion
@pytest.mark.parametrize("act", ["identity", "relu", "tanh", "gelu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_conv_activation_equals_conv_then_activation_bitwise(act, dtype):
    x, w, b = rand((2, 4, 9, 13), 8, dtype=dtype), rand((6, 4, 3, 3), 9, 0.5, dtype), rand((6,), 10, dtype=dtype)
    fused = conv2d_act_forward(x, w, b, act)                                   # inference
    unfused = F.activation_forward(conv2d_act_forward(x, w, b, "identity"), act, "numba")[0]
    assert fused.dtype == dtype
    np.testing.assert_array_equal(fused, unfused)
    if act in F.conv.FUSED_TRAIN_ACTIVATIONS:                                 # training
        fused_train = F.conv.conv2d_act_train_forward(x, w, b, act)[0]
        unfused_train = F.activation_forward(conv2d_forward_numba(x, w, b)[0], act, "numba")[0]
        np.testing.assert_array_equal(fused_train, unfused_train)
    ref = conv2d_act_forward(x, w, b, act, backend="reference")
    np.testing.assert_allclose(fused, ref, rtol=0, atol=(2e-5 if dtype == np.float32 else 1e-12) * np.abs(ref).max())


@pytest.mark.parametrize("act", ["identity", "relu", "tanh"])
@pytest.mark.parametrize("shape, k, chunk", [((3, 6, 7, 8), 3, 24), ((2, 12, 9, 5), 5, 10),
                                             ((4, 6, 3, 17), 3, 2048), ((1, 6, 1, 4), 3, 4)])
def test_training_forward_by_kn2row_agrees_with_im2col_and_the_reference(monkeypatch, drivers, act, shape, k, chunk):
    """F < C: the training forward adds up every tap's product shifted into place (kn2row). Over chunks
    that cross image borders (and images of one row), it gives the reference's numbers, and im2col's."""
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", chunk)
    N, C, H, W = shape
    x, w, b = rand(shape, 41), rand((C // 2, C, k, k), 42, 0.3), rand((C // 2,), 43)
    z = F.conv.conv2d_forward_reference(x, w, b)[0]
    ref = F.activation_forward(z, act, "reference")[0]
    kn2row = F.conv.conv2d_act_train_forward(x, w, b, act)[0]
    monkeypatch.setattr(conv_chunked, "KN2ROW_MAX_WIDTH", 0)
    im2col = F.conv.conv2d_act_train_forward(x, w, b, act)[0]
    tol = 1e-5 * np.abs(z).max()                  # float32 rounding of the sums; act' <= 1 adds none
    np.testing.assert_allclose(kn2row, ref, rtol=0, atol=tol)
    np.testing.assert_allclose(kn2row, im2col, rtol=0, atol=tol)
    assert not np.array_equal(kn2row, im2col) or act == "relu" and H == 1    # it did run the other way


@pytest.mark.parametrize("act", ["identity", "tanh"])
@pytest.mark.parametrize("shape, k", [((3, 6, 7, 8), 3), ((2, 4, 9, 5), 5), ((4, 3, 1, 6), 3)])
@pytest.mark.parametrize("min_mnk", [0, None])
def test_inference_by_shifted_taps_agrees_with_im2col_and_the_reference(monkeypatch, act, shape, k, min_mnk):
    """C > 1 at inference: every tap is a GEMM reading the zero-padded input in place. Over chunks of
    several image parts (and images of one row), with and without spare columns, it gives the
    reference's numbers, and im2col's."""
    if not conv_chunked.SHIFTED_TAPS:
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose cblas_sgemm npespcn can call")
    monkeypatch.setattr(conv_chunked, "SHIFTED_CHUNK_PIXELS", 20)
    if min_mnk is not None:
        monkeypatch.setattr(conv_chunked, "MIN_GEMM_MNK", min_mnk)
    N, C, H, W = shape
    x, w, b = rand(shape, 51), rand((5, C, k, k), 52, 0.3), rand((5,), 53)
    z = F.conv.conv2d_forward_reference(x, w, b)[0]
    ref = F.activation_forward(z, act, "reference")[0]
    shifted = conv2d_act_forward(x, w, b, act)
    monkeypatch.setattr(conv_chunked, "SHIFTED_TAPS", False)
    im2col = conv2d_act_forward(x, w, b, act)
    tol = 1e-5 * np.abs(z).max()
    np.testing.assert_allclose(shifted, ref, rtol=0, atol=tol)
    np.testing.assert_allclose(shifted, im2col, rtol=0, atol=tol)


def test_sgemm_add_reads_a_window_in_place_and_checks_its_bounds():
    if not _blas.SGEMM_AVAILABLE:
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose cblas_sgemm npespcn can call")
    a, b, c = rand((5, 7), 61), rand((7, 30), 62), rand((5, 12), 63)
    want = c.copy()
    want[:, :10] += a.astype(np.float64) @ b[:, 3:13].astype(np.float64)
    _blas.sgemm_add(a, b, 3, 10, c)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    for bad in (dict(offset=21), dict(offset=-1), dict(n=13), dict(b=b[:6]), dict(b=b.astype(np.float64)),
                dict(c=c[:4])):
        args = dict(a=a, b=b, offset=3, n=10, c=c) | bad
        with pytest.raises(ValueError, match="sgemm_add: bad operands"):
            _blas.sgemm_add(args["a"], args["b"], args["offset"], args["n"], args["c"])


def test_fused_conv_rejects_prelu_and_bad_shapes():
    x, w, b = rand((1, 2, 5, 5)), rand((3, 2, 3, 3)), rand((3,))
    with pytest.raises(ValueError, match="parameter-free"):
        conv2d_act_forward(x, w, b, "prelu")
    with pytest.raises(ValueError, match="input has 2 channels but the weights expect 4"):
        conv2d_act_forward(x, rand((3, 4, 3, 3)), b, "tanh")


def test_model_infer_equals_forward_bitwise_with_the_same_gemms(monkeypatch):
    """Inference (fused, padded GEMMs, shifted taps) and training (layer by layer where not fused, small
    GEMMs allowed, kn2row for F < C, Winograd F(4x4) for the wide 3x3 layers) give bitwise the same numbers
    when they run the same algorithm with the same GEMMs, and agree to rounding otherwise (within
    Winograd's bound, the PyTorch forward tolerance: 1e-5 of the range)."""
    for m in (ESPCN.paper(2), ESPCN.seven(3), ESPCN.paper(3, activation="prelu")):
        for name, arr in m.params.items():
            if name.endswith("weight") and arr.ndim == 4:
                arr[...] = rand(arr.shape, 11, 0.3)
        x = np.random.default_rng(12).random((2, 1, 11, 14)).astype(np.float32)
        y = m.forward(x)
        np.testing.assert_allclose(m.infer(x), y, rtol=0, atol=1e-5 * np.abs(y).max())
        with monkeypatch.context() as mp:
            mp.setattr(conv_chunked, "MIN_GEMM_MNK", 0)                    # inference pads no GEMM either
            mp.setattr(conv_chunked, "KN2ROW_MAX_WIDTH", 0)                # training runs im2col,
            mp.setattr(conv_chunked, "TRAIN_WINOGRAD", {})
            mp.setattr(conv_chunked, "SHIFTED_TAPS", False)                # and so does inference
            np.testing.assert_array_equal(m.infer(x), m.forward(x))


def test_calls_from_several_threads_at_once_give_the_sequential_results():
    """Scratch buffers are reused between calls but belong to one thread: two callers never share one."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = [(rand((2, 8, 23, 19), 40 + i), rand((6, 8, 3, 3), 50 + i, 0.3), rand((6,), 60 + i)) for i in range(6)]
    expected = [conv2d_act_forward(x, w, b, "tanh") for x, w, b in jobs]
    grads = [conv2d_backward_numba(e, (x, w)) for (x, w, b), e in zip(jobs, expected)]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            got = list(pool.map(lambda j: conv2d_act_forward(*j, "tanh"), jobs))
            got_grads = list(pool.map(lambda a: conv2d_backward_numba(a[1], a[0][:2]), zip(jobs, expected)))
            for e, g in zip(expected, got):
                np.testing.assert_array_equal(g, e)
            for e, g in zip(grads, got_grads):
                for a, c in zip(e, g):
                    np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------------------------------------ backward
@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_backward_without_input_gradient_gives_the_same_parameter_gradients(backend):
    """``input_grad=False`` (training) skips only dL/dx: every parameter gradient is bitwise the same."""
    m = ESPCN.paper(3)
    for name, arr in m.params.items():
        arr[...] = rand(arr.shape, 21 + len(name), 0.3)
    x, dy = rand((3, 1, 9, 10), 22), rand((3, 1, 27, 30), 23)
    with F.use_backend(backend):
        m.forward(x)
        dx = m.backward(dy)
        full = {k: v.copy() for k, v in m.grads.items()}
        m.forward(x)
        assert m.backward(dy, input_grad=False) is None
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    for name, g in m.grads.items():
        np.testing.assert_array_equal(g, full[name], err_msg=name)


def test_backward_is_deterministic_and_matches_the_reference():
    x, w, b = rand((5, 6, 21, 19), 13), rand((7, 6, 3, 3), 14, 0.3), rand((7,), 15)
    d = rand((5, 7, 21, 19), 16)
    runs = [conv2d_backward_numba(d, conv2d_forward_numba(x, w, b)[1]) for _ in range(2)]
    for a, c in zip(*runs):
        np.testing.assert_array_equal(a, c)
    ref = F.conv.conv2d_backward_reference(d, F.conv.conv2d_forward_reference(x, w, b)[1])
    for a, r in zip(runs[0], ref):
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-5 * np.abs(r).max())


@pytest.mark.parametrize("C, Fo", [(6, 3), (4, 4), (3, 6)])
@pytest.mark.parametrize("act", ["identity", "relu", "tanh"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_backward_by_the_columns_of_dz_or_of_x_agrees_with_the_reference(monkeypatch, drivers, C, Fo, act,
                                                                         input_grad):
    """The fast backward unfolds dz (fewer output channels) or x (fewer input channels): both give the
    reference's gradients for every channel ratio and activation, over chunks that cross image borders."""
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", 24)            # 3-row chunks of 8-pixel rows
    x, w, b = rand((3, C, 7, 8), 31), rand((Fo, C, 3, 3), 32, 0.3), rand((Fo,), 33)
    dy = rand((3, Fo, 7, 8), 34)
    z, conv_cache = F.conv.conv2d_forward_reference(x, w, b)
    y = F.activation_forward(z, act, "reference")[0]
    dz = F.activation_backward(dy, (act, z, y), "reference")
    ref = F.conv.conv2d_backward_reference(dz, conv_cache)
    for unfold in (conv_chunked.backward_unfolding_dz, conv_chunked.backward_unfolding_x):
        dx, dw, db = unfold(dy, y, {"identity": 0, "relu": 1, "tanh": 2}[act], x, w, input_grad, None)
        assert (dx is None) == (not input_grad)
        for got, want in zip((dx, dw, db), ref):
            if got is not None:
                np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max(),
                                           err_msg=unfold.__name__)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, Fo, k", [(1, 6, 5), (6, 3, 3), (4, 4, 3), (3, 6, 3)])
def test_compiled_training_drivers_agree_with_the_thread_pool(monkeypatch, dtype, C, Fo, k):
    """The same chunks through one numba parallel region (conv_parallel) and through the thread pool:
    the same row kernels and the same GEMMs, so the forward, dx and db are bitwise equal; dw to
    rounding (the compiled driver lets BLAS accumulate it, beta = 1, instead of adding each product)."""
    if conv_chunked.parallel_gemm(dtype) is None:
        pytest.skip("compiled drivers unavailable here (no OpenBLAS cblas_?gemm, or numba's threading "
                    "layer is workqueue)")
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", 30)            # 3-row chunks of 10-pixel rows
    x, w, b = rand((3, C, 7, 10), 71, dtype=dtype), rand((Fo, C, k, k), 72, 0.3, dtype), rand((Fo,), 73, dtype=dtype)
    dy = rand((3, Fo, 7, 10), 74, dtype=dtype)

    def run():
        y, cache = F.conv.conv2d_act_train_forward(x, w, b, "tanh")
        return (y,) + F.conv.conv2d_act_backward(dy, cache)
    compiled = run()
    monkeypatch.setattr(conv_chunked, "PARALLEL_DRIVERS", False)
    pool = run()
    for name, a, c in zip(("y", "dx", "dw", "db"), compiled, pool):
        if name == "dw":
            np.testing.assert_allclose(a, c, rtol=0, atol=(1e-5 if dtype == np.float32 else 1e-12) * np.abs(c).max())
        else:
            np.testing.assert_array_equal(a, c, err_msg=name)


def test_backward_with_many_chunks_equals_one_chunk(monkeypatch, drivers):
    x, w = rand((3, 4, 12, 10), 17), rand((5, 4, 5, 5), 18, 0.3)
    d = rand((3, 5, 12, 10), 19)
    one = conv2d_backward_numba(d, (x, w))
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", 10)            # one row per chunk
    many = conv2d_backward_numba(d, (x, w))
    for a, c in zip(one, many):
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-5 * np.abs(a).max())


@pytest.mark.parametrize("N,H,W,min_pixels,workers", [(16, 17, 17, 0, 2), (16, 17, 17, 0, 1), (1, 5, 640, 0, 2),
                                                        (3, 100, 7, 1500, 2), (1, 1, 3, 5000, 2)])
def test_chunks_cover_every_row_once_in_balanced_runs(monkeypatch, N, H, W, min_pixels, workers):
    chunks = conv_chunked.plan_chunks(N, H, W, min_pixels, workers)
    assert chunks[0][0] == 0 and chunks[-1][1] == N * H
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    rows = [r1 - r0 for r0, r1 in chunks]
    assert max(rows) - min(rows[:-1] or rows) == 0                    # equal, the last may be shorter
    if len(chunks) > 1:
        assert min(rows[:-1]) * W >= min_pixels
    if N * H >= 4 and N * H * W >= 2 * conv_chunked.CHUNK_PIXELS:
        assert len(chunks) % workers == 0


# ------------------------------------------------------------------------------------------ threads
@pytest.mark.skipif(not _blas.AVAILABLE, reason="NumPy's BLAS thread count cannot be set here")
def test_blas_thread_count_is_restored():
    setter, getter = _blas.THREAD_FUNCS
    before = getter()
    with _blas.single_threaded_blas():
        assert getter() == 1
        with _blas.single_threaded_blas():
            assert getter() == 1
        assert getter() == 1
    assert getter() == before
    conv2d_act_forward(rand((1, 2, 64, 64)), rand((3, 2, 3, 3)), rand((3,)), "tanh")
    assert getter() == before
    assert math.isfinite(before)


def test_training_steps_are_bitwise_reproducible(monkeypatch, drivers):
    """Same seed, same data, same thread count: bitwise the same parameters after a few Adam steps."""
    from npespcn.nn.optim import Adam
    monkeypatch.setattr(conv_chunked, "CHUNK_PIXELS", 100)          # several chunks, both workers busy
    rng = np.random.default_rng(20)
    x = rng.random((6, 1, 13, 11)).astype(np.float32)
    t = rng.random((6, 1, 39, 33)).astype(np.float32)
    finals = []
    for _ in range(2):
        m = ESPCN.paper(3, seed=5)
        opt = Adam(m.params, lr=1e-2)
        for _ in range(3):
            loss, dy = F.mse_loss(m.forward(x), t)
            m.backward(dy)
            opt.step(m.grads)
        finals.append({k: v.copy() for k, v in m.params.items()})
    for k in finals[0]:
        np.testing.assert_array_equal(finals[0][k], finals[1][k], err_msg=k)
    assert not np.array_equal(finals[0]["conv1.weight"], ESPCN.paper(3, seed=5).params["conv1.weight"])


def test_inference_pads_its_gemms_and_keeps_no_cache(monkeypatch):
    """infer / forward(train=False) keep nothing for a backward pass and run size-independent GEMMs;
    only a training forward lets small GEMMs run."""
    calls = []
    real = conv_chunked.conv2d_chunked_forward

    def spy(*args, **kwargs):
        calls.append(kwargs.get("size_independent", True))
        return real(*args, **kwargs)
    import npespcn.fast
    monkeypatch.setattr(npespcn.fast, "conv2d_chunked_forward", spy)
    m = ESPCN.paper(3, seed=1)
    x = np.random.default_rng(0).random((1, 1, 20, 24), dtype=np.float32)
    m.infer(x)
    assert calls == [True, True, True]
    m.layers[0].forward(x, train=False)
    assert calls[-1] is True and m.layers[0]._cache is None
    m.forward(x)
    assert calls[-3:] == [False, False, False]


# ------------------------------------------------------------------------------------ out= arrays
@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_convolutions_write_into_out(backend):
    from npespcn.functional.conv import (conv2d_act_backward, conv2d_act_forward, conv2d_act_train_forward,
                                         conv2d_forward)
    x, w, b = rand((2, 3, 8, 7), 30), rand((5, 3, 3, 3), 31, 0.3), rand((5,), 32)
    d = rand((2, 5, 8, 7), 33)
    with F.use_backend(backend):
        y, cache = conv2d_act_train_forward(x, w, b, "tanh")
        out = np.full_like(y, np.nan)
        y2, cache2 = conv2d_act_train_forward(x, w, b, "tanh", out=out)
        assert y2 is out
        np.testing.assert_array_equal(out, y)
        dx = conv2d_act_backward(d, cache)[0]
        dx_out = np.full_like(x, np.nan)
        assert conv2d_act_backward(d, cache2, out=dx_out)[0] is dx_out
        np.testing.assert_array_equal(dx_out, dx)
        for bad in (np.empty((2, 5, 8, 6), np.float32), np.empty((2, 5, 8, 7), np.float64),
                    np.empty((2, 5, 7, 8), np.float32).transpose(0, 1, 3, 2)):
            with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array"):
                conv2d_forward(x, w, b, out=bad)
            with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array"):
                conv2d_act_forward(x, w, b, "tanh", out=bad)
        inferred = np.full_like(y, np.nan)                  # inference: the same numbers, into out
        assert conv2d_act_forward(x, w, b, "tanh", out=inferred) is inferred
        np.testing.assert_array_equal(inferred, conv2d_act_forward(x, w, b, "tanh"))


@pytest.mark.parametrize("preset", [None, "50"])
def test_starting_the_threads_sets_gomp_spincount_only_while_openmp_loads(preset):
    """npespcn gives GNU OpenMP a short spin (conv_parallel.SPIN_COUNT) through GOMP_SPINCOUNT for the
    moment numba loads it, leaves no trace in the environment, and never overrides the user's value.
    (A fresh process: in this one numba's threads may have started already.)"""
    import os
    import subprocess
    import sys
    code = ("import os, numba\n"
            "from npespcn.fast import compiled as P\n"
            "seen = []\n"
            "real = numba.get_num_threads\n"
            "numba.get_num_threads = lambda: seen.append(os.environ.get('GOMP_SPINCOUNT')) or real()\n"
            "P.start_threads(); P.start_threads()\n"
            "print(seen, os.environ.get('GOMP_SPINCOUNT'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    expected = ["1000"] if preset is None else [preset]
    assert out.split("\n")[0] == f"{expected} {preset}"


def _train_and_infer(seed):
    """One training forward + backward and one inference forward of a small layer: (dw sum, y sum)."""
    x, w, b = rand((4, 8, 17, 17), seed), rand((4, 8, 3, 3), seed + 1, 0.3), rand((4,), seed + 2)
    y, cache = F.conv.conv2d_act_train_forward(x, w, b, "tanh")
    dw = F.conv.conv2d_act_backward(y, cache)[1]
    return float(dw.astype(np.float64).sum()), float(conv2d_act_forward(x, w, b, "tanh").astype(np.float64).sum())


@pytest.mark.skipif(not hasattr(__import__("os"), "register_at_fork"), reason="needs os.fork")
def test_a_process_forked_after_training_and_inference_can_do_both():
    """multiprocessing's "fork" start method after npespcn ran in the parent: the parent's pool threads
    and OpenMP threads are not in the child (OpenMP even refuses to run there), so the child must start
    its own pool and use it; before, it waited forever on the parent's threads."""
    import multiprocessing
    expected = [_train_and_infer(s) for s in (5, 9)]          # also starts this process's threads
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = [pool.apply_async(_train_and_infer, (s,)).get(timeout=120) for s in (5, 9)]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-6)          # the child's drivers may differ in rounding


# ------------------------------------------------------------------------------------------------ prefetch
def test_prefetch_is_a_cache_hint_that_changes_nothing():
    """npespcn.fast.memory.prefetch compiles to the CPU's prefetch instruction, inline, and a loop
    that issues it (past the array's end too: a hint never faults) computes what it did without."""
    import platform

    from npespcn.fast.memory import prefetch

    @numba.njit
    def total(a, ahead):
        s = 0.0
        for i in range(a.size):
            prefetch(a, i + ahead)
            s += a[i]
        return s

    a = np.arange(1000, dtype=np.float32)
    assert total(a, 64) == total(a, 10_000) == float(a.sum())
    if platform.machine() in ("x86_64", "AMD64"):
        asm = next(iter(total.inspect_asm().values()))
        assert "prefetch" in asm
    with pytest.raises(numba.TypingError):
        numba.njit(lambda a: prefetch(a, 0))(np.zeros((2, 2), np.float32))     # 1-D arrays only


def test_run_concurrently_returns_results_in_order_and_raises_what_a_call_raises():
    from npespcn.fast import run_concurrently
    assert run_concurrently(*(lambda i=i: i * i for i in range(7))) == [i * i for i in range(7)]
    assert run_concurrently() == []

    def bad():
        raise ValueError("from a call")
    with pytest.raises(ValueError, match="from a call"):
        run_concurrently(lambda: 1, bad, lambda: 3)
