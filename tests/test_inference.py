"""npespcn.upscale: the colour pipeline, dtypes and layouts, and tiles bitwise equal to the whole image.

Expected values come from independent routes: the training forward (im2col + GEMM, ``model.infer``),
``npespcn.image.color``'s matrix conversion and Pillow's own bicubic resize; or from hand-built networks whose
output is known in closed form (nearest-neighbour upscaling).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npespcn
from npespcn import ESPCN
from npespcn import functional as F
from npespcn.image.color import rgb_to_ycbcr, ycbcr_to_rgb
from npespcn.inference.pipeline import upscale

from _tiles import assert_same


def rand_image(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.fixture(scope="module")
def net3():
    """A paper-sized x3 model with weights large enough to matter (the default init's last layer is tiny)."""
    m = ESPCN.paper(3, seed=7)
    rng = np.random.default_rng(1)
    for k, v in m.params.items():
        v[...] = rng.normal(0, 0.3 if "weight" in k else 0.1, v.shape) / np.sqrt(v[0].size if v.ndim > 1 else 1)
    m.params["conv3.bias"][...] += 0.5
    return m


def nearest_model(r, layers=((5, 8), (3, 4))):
    """An identity-activation ESPCN that copies the input pixel to all r*r sub-pixels: nearest upscaling."""
    m = ESPCN(r, 1, layers, activation="identity", output_activation=None)
    for name, p in m.params.items():
        p[...] = 0
    convs = [f"conv{i}" for i in range(1, len(layers) + 2)]
    for name in convs:
        w = m.params[f"{name}.weight"]
        c = w.shape[2] // 2
        if name == convs[-1]:
            w[:, 0, c, c] = 1.0          # every sub-pixel channel reads channel 0 at the centre
        else:
            w[0, 0, c, c] = 1.0          # channel 0 passes through
    return m


def pipeline_by_hand(img_u8, net):
    """RGB uint8 through npespcn.image.color (matrix form), model.infer (GEMM) and Pillow's float bicubic."""
    r = net.scale
    H, W = img_u8.shape[:2]
    ycc = rgb_to_ycbcr(img_u8.astype(np.float64))
    y = net.infer((ycc[..., 0] / 255).astype(np.float32)[None, None])[0, 0].astype(np.float64) * 255

    def bic(plane):
        im = Image.fromarray(plane.astype(np.float32), mode="F")
        return np.asarray(im.resize((W * r, H * r), Image.BICUBIC)).astype(np.float64)

    rgb = ycbcr_to_rgb(np.stack([y, bic(ycc[..., 1]), bic(ycc[..., 2])], axis=-1))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def test_package_attribute_is_the_function():
    assert npespcn.upscale is upscale
    assert callable(npespcn.upscale)


def test_rgb_matches_the_literature_pipeline_built_independently(net3):
    img = rand_image((23, 31, 3), seed=3)
    out = upscale(img, 3, net3)
    ref = pipeline_by_hand(img, net3)
    assert out.shape == (69, 93, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - ref)
    assert diff.max() <= 1                      # float rounding only may flip a .5
    assert (diff > 0).mean() < 0.01


def test_grey_goes_straight_through_the_network(net3):
    img = rand_image((17, 20), seed=4)
    out = upscale(img, 3, net3)
    ref = net3.infer((img / 255.0).astype(np.float32)[None, None])[0, 0] * 255.0
    ref = np.clip(np.rint(ref), 0, 255)
    assert out.shape == (51, 60) and out.dtype == np.uint8
    assert np.abs(out - ref).max() <= 1


@pytest.mark.parametrize("r", [2, 3, 4])
def test_nearest_neighbour_network_gives_exact_kron(r):
    img = rand_image((19, 26), seed=r)
    out = upscale(img, r, nearest_model(r), tile=6)
    np.testing.assert_array_equal(out, np.kron(img, np.ones((r, r), np.uint8)))


@pytest.mark.parametrize("shape,dtype", [((29, 34, 3), np.uint8), ((29, 34, 4), np.uint16),
                                         ((29, 34), np.float32), ((29, 34, 3), np.float64),
                                         ((29, 34, 1), np.uint8)])
def test_tiles_are_bitwise_equal_to_the_whole_image(net3, shape, dtype):
    """The promise of the fast backend (the default), whatever NPESPCN_BACKEND says."""
    img = rand_image(shape, dtype, seed=5)
    with F.use_backend("numba"):
        whole = upscale(img, 3, net3, tile=10 ** 6)
        for tile in (5, 8, 13, None):
            tiled = upscale(img, 3, net3, tile=tile)
            assert_same(tiled, whole, f"tile={tile}")


@pytest.mark.parametrize("shape,dtype", [((29, 34), np.float32), ((29, 34, 3), np.float64)])
def test_reference_backend_tiles_agree_with_the_whole_image_to_rounding(net3, shape, dtype):
    """The NumPy reference runs one GEMM per image, whose rounding depends on its size: there a tile
    agrees with the whole image to float32 rounding, not bitwise."""
    img = rand_image(shape, dtype, seed=5)
    with F.use_backend("reference"):
        whole = upscale(img, 3, net3, tile=10 ** 6)
        for tile in (5, 13):
            np.testing.assert_allclose(upscale(img, 3, net3, tile=tile), whole, rtol=0, atol=2e-6)


def test_tiles_bitwise_for_seven_layers_prelu_and_rgb_model():
    img = rand_image((22, 27, 3), seed=6)
    for net in (ESPCN.seven(2, seed=3), ESPCN.paper(4, activation="prelu", seed=4),
                ESPCN.paper(3, channels=3, seed=5)):
        for k, v in net.params.items():
            if k.endswith("weight") and v.ndim == 4:
                v *= 5.0
        with F.use_backend("numba"):
            whole = upscale(img, net.scale, net, tile=1000)
            for tile in (4, 9):
                assert_same(upscale(img, net.scale, net, tile=tile), whole, f"tile={tile}")


def test_three_channel_model_takes_rgb_directly():
    net = ESPCN.paper(2, channels=3, seed=2)
    net.params["conv3.weight"][...] *= 300
    img = rand_image((15, 18, 4), seed=8)
    out = upscale(img, 2, net)
    ref = net.infer((img[..., :3].transpose(2, 0, 1)[None] / 255.0).astype(np.float32))[0].transpose(1, 2, 0)
    ref = np.clip(np.rint(ref * 255.0), 0, 255)
    assert np.abs(out[..., :3] - ref).max() <= 1
    alpha = np.asarray(Image.fromarray(img[..., 3].astype(np.float32), mode="F").resize((36, 30), Image.BICUBIC))
    assert np.abs(out[..., 3] - np.clip(np.rint(alpha), 0, 255)).max() <= 1


def test_alpha_is_bicubic_and_colour_ignores_it(net3):
    rgb = rand_image((16, 21, 3), seed=9)
    alpha = rand_image((16, 21), seed=10)
    out = upscale(np.dstack([rgb, alpha]), 3, net3)
    np.testing.assert_array_equal(out[..., :3], upscale(rgb, 3, net3))
    ref = np.asarray(Image.fromarray(alpha.astype(np.float32), mode="F").resize((63, 48), Image.BICUBIC))
    assert np.abs(out[..., 3] - np.clip(np.rint(ref), 0, 255)).max() <= 1
    flat = upscale(np.dstack([rgb, np.full((16, 21), 200, np.uint8)]), 3, net3)
    assert (flat[..., 3] == 200).all()


def test_dtypes_share_one_pipeline(net3):
    img8 = rand_image((18, 22, 3), seed=11)
    out8 = upscale(img8, 3, net3).astype(np.float64)
    out16 = upscale(img8.astype(np.uint16) * 257, 3, net3)
    outf = upscale(img8 / 255.0, 3, net3)
    out32 = upscale((img8 / 255.0).astype(np.float32), 3, net3)
    assert out16.dtype == np.uint16 and outf.dtype == np.float64 and out32.dtype == np.float32
    assert np.abs(out16 / 257.0 - out8).max() <= 0.51           # same numbers, finer rounding
    assert np.abs(outf * 255.0 - out8).max() <= 0.51
    assert np.abs(out32 * 255.0 - out8).max() <= 0.51
    assert outf.min() >= 0 and outf.max() <= 1


def test_uint16_keeps_more_than_8_bits():
    img = np.linspace(0, 65535, 12 * 14).reshape(12, 14).astype(np.uint16)
    out = upscale(img, 2, nearest_model(2))
    np.testing.assert_array_equal(out, np.kron(img, np.ones((2, 2), np.uint16)))


def test_pil_in_pil_out(net3):
    rgb = rand_image((14, 17, 3), seed=12)
    for im, mode in ((Image.fromarray(rgb), "RGB"), (Image.fromarray(rgb[..., 0]), "L"),
                     (Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "RGBA"),
                     (Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "I;16"),
                     (Image.fromarray((rgb[..., 0] / 255.0).astype(np.float32)), "F")):
        out = upscale(im, 3, net3)
        assert isinstance(out, Image.Image) and out.mode == mode and out.size == (51, 42)
    np.testing.assert_array_equal(np.asarray(upscale(Image.fromarray(rgb), 3, net3)), upscale(rgb, 3, net3))


def test_clip_flag_clamps_out_of_range_floats(net3):
    img = rand_image((12, 12), np.float64, seed=13) * 1.4 - 0.2
    out = upscale(img, 3, net3, clip=True)
    np.testing.assert_array_equal(out, upscale(np.clip(img, 0, 1), 3, net3))


def test_model_from_file_and_progress(tmp_path, net3):
    path = tmp_path / "m.npz"
    net3.save(path)
    img = rand_image((12, 15, 3), seed=14)
    calls = []
    out = upscale(img, 3, str(path), tile=5, progress=lambda i, n: calls.append((i, n)))
    np.testing.assert_array_equal(out, upscale(img, 3, net3))
    assert calls == [(i, 9) for i in range(1, 10)]


def test_large_image_is_not_refused_and_auto_tiles():
    img = rand_image((700, 40), seed=15)                      # taller than one automatic tile
    net = nearest_model(2)
    np.testing.assert_array_equal(upscale(img, 2, net), np.kron(img, np.ones((2, 2), np.uint8)))


def test_automatic_tiles_count_what_the_image_path_takes(monkeypatch):
    """A uint8 RGB image through a luma network takes the fused path, which needs less memory per pixel:
    the paper model's 640x360 frame then runs whole (no halo: the fastest), in full-width bands otherwise;
    a whole image that fits is never cut, whatever its halo."""
    from npespcn.inference.tiling import TILE_BUDGET, _bytes_per_pixel, auto_tiles
    net = ESPCN.paper(3)
    assert _bytes_per_pixel(net, fused=True) < _bytes_per_pixel(net)
    assert auto_tiles(net, 360, 640, fused=True) == (360, 640)
    assert auto_tiles(net, 360, 640) == (180, 640)
    per = _bytes_per_pixel(net)
    side = int((TILE_BUDGET // per) ** 0.5)
    assert auto_tiles(net, side, side) == (side, side)                  # fits only without a halo
    import npespcn.inference.pipeline as pipeline
    calls = []
    monkeypatch.setattr(pipeline, "auto_tiles", lambda *a, **k: calls.append(k.get("fused")) or auto_tiles(*a, **k))
    for dtype, channels in ((np.uint8, 3), (np.uint8, 4), (np.uint16, 3), (np.uint8, 1)):
        upscale(np.zeros((8, 9, channels) if channels > 1 else (8, 9), dtype), 3, net)
    assert calls == [True, False, False, False]


SHIPPED_X3 = Path(__file__).resolve().parents[1] / "weights" / "espcn_x3.npz"


@pytest.mark.skipif(not SHIPPED_X3.is_file(), reason=f"shipped weights not trained yet: {SHIPPED_X3} is missing")
def test_default_model_is_the_shipped_x3():
    from npespcn import load_model
    from npespcn.nn import pretrained
    assert pretrained.shipped_path("espcn", 3).resolve() == SHIPPED_X3.resolve()
    img = rand_image((14, 16, 3), seed=16)
    np.testing.assert_array_equal(upscale(img), upscale(img, 3, load_model(SHIPPED_X3)))


@pytest.mark.parametrize("n,side,expected", [(512, 153, 128), (512, 600, 512), (700, 100, 100), (701, 100, 88),
                                             (1, 32, 1), (33, 32, 17)])
def test_balanced_tiles_are_as_few_and_nearly_equal(n, side, expected):
    from npespcn.inference.tiling import balanced, tiles
    t = balanced(n, side)
    assert t == expected
    pieces = [x1 - x0 for _, _, x0, x1 in tiles((1, n), (1, t))]
    assert len(pieces) == -(-n // side) and max(pieces) - min(pieces) <= len(pieces)


@pytest.mark.parametrize("shape,tile", [((37, 29, 3), None), ((37, 29, 4), 16), ((64, 80, 3), 24)])
def test_fused_uint8_colour_step_gives_the_numpy_bits(monkeypatch, shape, tile):
    """The one-pass numba colour conversion + rounding of uint8 RGB(A) equals the NumPy expressions."""
    import npespcn.inference.pipeline as inference
    net = ESPCN.paper(3, seed=4)
    for arr in net.params.values():                      # outputs that reach past 0 and 255 (clipping)
        arr += np.random.default_rng(5).normal(0, 0.2, arr.shape).astype(arr.dtype)
    img = rand_image(shape, seed=17)
    fused = upscale(img, 3, net, tile=tile)
    monkeypatch.setattr(inference, "FUSED_UINT8", False)
    numpy_path = upscale(img, 3, net, tile=tile)
    np.testing.assert_array_equal(fused, numpy_path)
    assert (fused == 0).any() and (fused == 255).any() and len(np.unique(fused)) > 100


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (16, 9, 4), (31, 2, 3)])
def test_numba_ycc_planes_are_bitwise_the_numpy_ones(dtype, shape):
    from npespcn.image.color import (
        image_to_ycc_planes,
        image_to_ycc_planes_numba,
        rgb_to_ycc_planes,
    )
    img = rand_image((shape[0] + 4, shape[1] + 5, shape[2]), dtype, seed=shape[0] + shape[1])
    if np.dtype(dtype).kind == "f":                        # values to clip, as with clip=True, and both ends
        img = (img * 1.4 - 0.2).astype(dtype)
        img[0, 0], img[-1, -1] = 0.0, 1.0
    crop = img[2:2 + shape[0], 3:3 + shape[1]]             # a strided view, as the pipeline's tiles
    fast, ref = image_to_ycc_planes_numba(crop), image_to_ycc_planes(crop)
    for f, r in zip(fast, ref):
        assert f.dtype == r.dtype == np.float64 and f.shape == r.shape == shape[:2]
        assert f.tobytes() == r.tobytes()
    if dtype == np.uint8:                                  # and uint8 is taken as is
        for f, r in zip(fast, rgb_to_ycc_planes(crop[..., :3].astype(np.float64))):
            assert f.tobytes() == r.tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("shape,tile", [((37, 29, 3), None), ((37, 29, 4), 16), ((20, 23, 3), 7),
                                        ((21, 19), 8), ((12, 14, 1), None)])
def test_fast_colour_kernels_give_the_numpy_bits(monkeypatch, dtype, shape, tile):
    """FAST_COLOUR (numba Y/Cb/Cr planes and chroma bicubic) equals the NumPy references, every dtype,
    with the fused uint8 step on and off."""
    import npespcn.inference.pipeline as inference
    net = ESPCN.paper(3, seed=4)
    for arr in net.params.values():                      # outputs that reach past 0 and 255 (clipping)
        arr += np.random.default_rng(5).normal(0, 0.2, arr.shape).astype(arr.dtype)
    img = rand_image(shape, dtype, seed=18)
    results = {}
    for fast in (True, False):
        for fused in (True, False):
            monkeypatch.setattr(inference, "FAST_COLOUR", fast)
            monkeypatch.setattr(inference, "FUSED_UINT8", fused)
            results[fast, fused] = upscale(img, 3, net, tile=tile)
    ref = results[False, False]
    for out in results.values():
        assert out.dtype == ref.dtype and out.tobytes() == ref.tobytes()
    assert len(np.unique(ref)) > 100
