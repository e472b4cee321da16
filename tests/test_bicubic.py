"""Regional bicubic, one of the size-independent pieces behind bitwise-exact tiled inference."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from npespcn.image import bicubic
from npespcn.image.bicubic import (
    HALO,
    bicubic_region,
    bicubic_upscale,
    coefficients,
    cubic,
)


def test_cubic_kernel_values():
    # Keys (1981) with a = -0.5: K(0) = 1, K(1) = K(2) = 0, K(0.5) = 0.5625, K(1.5) = -0.0625
    np.testing.assert_allclose(cubic([0, 0.5, 1, 1.5, 2, 2.5, -0.5]),
                               [1, 0.5625, 0, -0.0625, 0, 0, 0.5625], atol=1e-15)


@pytest.mark.parametrize("n,r", [(1, 3), (5, 2), (9, 3), (13, 4)])
def test_coefficients_are_normalised_and_local(n, r):
    index, weight = coefficients(n, r, 0, n * r)
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=1e-12)
    centre = (np.arange(n * r) + 0.5) / r - 0.5
    used = np.where(weight != 0, index, np.nan)
    assert np.nanmax(np.abs(used - centre[:, None])) < 2           # taps within the support


@pytest.mark.parametrize("H,W,r", [(7, 9, 3), (20, 13, 2), (5, 5, 4), (1, 6, 3), (33, 40, 3)])
def test_bicubic_equals_pillow_float_resize(H, W, r):
    a = (np.random.default_rng(H + W).random((H, W)) * 255).astype(np.float32)
    pil = np.asarray(Image.fromarray(a, mode="F").resize((W * r, H * r), Image.BICUBIC))
    mine = bicubic_upscale(a, r)
    assert mine.dtype == np.float32 and mine.shape == (H * r, W * r)
    np.testing.assert_allclose(mine, pil, rtol=0, atol=1e-4)


def test_bicubic_region_is_bitwise_the_same_rectangle_of_the_whole():
    H, W, r = 21, 26, 3
    a = np.random.default_rng(4).random((H, W)) * 255
    whole = bicubic_upscale(a, r)
    for (y0, y1, x0, x1) in [(0, 5, 0, 7), (4, 11, 9, 26), (15, 21, 3, 4)]:
        oy, ox = max(0, y0 - HALO), max(0, x0 - HALO)
        crop = a[oy:min(H, y1 + HALO), ox:min(W, x1 + HALO)]
        part = bicubic_region(crop, r, (H, W), (oy, ox), (r * y0, r * y1), (r * x0, r * x1))
        assert part.tobytes() == whole[r * y0:r * y1, r * x0:r * x1].tobytes()


@pytest.mark.parametrize("fn", ["bicubic_region", "bicubic_region_numba"])
def test_bicubic_region_refuses_a_crop_missing_taps(fn):
    region = getattr(bicubic, fn)
    a = np.zeros((10, 10))
    with pytest.raises(ValueError, match="does not cover"):
        region(a[4:8, 4:8], 2, (10, 10), (4, 4), (8, 16), (8, 16))
    with pytest.raises(ValueError, match="outside"):
        region(a, 2, (10, 10), (0, 0), (0, 21), (0, 4))


def _region_cases():
    """(H, W, r, core) with cores at the corners, edges and inside, odd sizes and one-pixel images."""
    for H, W, r in [(21, 26, 3), (7, 9, 2), (5, 5, 4), (1, 6, 3), (13, 1, 2), (33, 40, 3)]:
        yield H, W, r, (0, H, 0, W)
        yield H, W, r, (0, (H + 1) // 2, W // 3, W)
        yield H, W, r, (H // 2, H, 0, max(1, W // 2))
        yield H, W, r, (H // 3, max(H // 3 + 1, 2 * H // 3), W // 4, max(W // 4 + 1, 3 * W // 4))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.uint16])
@pytest.mark.parametrize("H,W,r,core", list(_region_cases()))
def test_numba_bicubic_region_is_bitwise_the_numpy_one(dtype, H, W, r, core):
    from npespcn.image.bicubic import bicubic_region_numba
    rng = np.random.default_rng(H * 100 + W + r)
    a = rng.random((H, W)) * 255 if np.dtype(dtype).kind == "f" else rng.integers(0, 256, (H, W))
    a = a.astype(dtype)
    y0, y1, x0, x1 = core
    oy, ox = max(0, y0 - HALO), max(0, x0 - HALO)
    crop = a[oy:min(H, y1 + HALO), ox:min(W, x1 + HALO)]              # a strided view, as the pipeline's
    args = (r, (H, W), (oy, ox), (r * y0, r * y1), (r * x0, r * x1))
    fast, ref = bicubic_region_numba(crop, *args), bicubic_region(crop, *args)
    assert fast.dtype == ref.dtype == np.float32 and fast.shape == ref.shape
    assert fast.tobytes() == ref.tobytes()


def test_numba_bicubic_region_is_bitwise_on_values_that_round():
    """Wide-range float64 values: the float32 rounding of the input and between the passes matters."""
    from npespcn.image.bicubic import bicubic_region_numba
    a = np.random.default_rng(7).normal(0, 1e3, (17, 23)) ** 3
    args = (3, a.shape, (0, 0), (0, 51), (0, 69))
    assert bicubic_region_numba(a, *args).tobytes() == bicubic_region(a, *args).tobytes()

