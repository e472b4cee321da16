"""The two size-independent kernels behind tiled inference: direct convolution and regional bicubic."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from npespcn.bicubic import HALO, bicubic_region, bicubic_upscale, coefficients, cubic
from npespcn.directconv import conv2d_direct, conv2d_direct_numba, conv2d_direct_reference
from npespcn.functional.conv import conv2d_forward_naive


def conv_case(N, C, F, k, H, W, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(N, C, H, W)).astype(dtype), rng.normal(size=(F, C, k, k)).astype(dtype),
            rng.normal(size=F).astype(dtype))


@pytest.mark.parametrize("N,C,F,k,H,W", [(1, 1, 4, 5, 7, 9), (2, 3, 5, 3, 6, 5), (1, 2, 9, 1, 4, 4),
                                         (1, 4, 7, 5, 3, 2)])
def test_direct_conv_matches_the_loop_definition(N, C, F, k, H, W):
    x, w, b = conv_case(N, C, F, k, H, W, seed=H * W)
    want, _ = conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    for backend in ("reference", "numba"):
        got = conv2d_direct(x, w, b, backend=backend)
        assert got.shape == (N, F, H, W) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_numba_and_reference_agree_exactly():
    x, w, b = conv_case(1, 6, 10, 3, 17, 23, seed=1)
    np.testing.assert_array_equal(conv2d_direct_numba(x, w, b), conv2d_direct_reference(x, w, b))
    x, w, b = conv_case(1, 1, 8, 5, 11, 13, seed=2, dtype=np.float64)
    np.testing.assert_array_equal(conv2d_direct_numba(x, w, b), conv2d_direct_reference(x, w, b))


def test_a_pixel_does_not_depend_on_the_array_size():
    """Crop a window with a margin of p: its interior must be bitwise the interior of the whole result."""
    x, w, b = conv_case(1, 5, 6, 5, 40, 37, seed=3)
    whole = conv2d_direct_numba(x, w, b)
    for (y0, y1, x0, x1) in [(3, 20, 5, 30), (0, 9, 0, 37), (17, 40, 2, 10)]:
        part = conv2d_direct_numba(np.ascontiguousarray(x[:, :, y0:y1, x0:x1]), w, b)
        iy0, iy1 = (0 if y0 == 0 else 2), (y1 - y0) - (0 if y1 == 40 else 2)
        ix0, ix1 = (0 if x0 == 0 else 2), (x1 - x0) - (0 if x1 == 37 else 2)
        assert part[:, :, iy0:iy1, ix0:ix1].tobytes() == \
            whole[:, :, y0 + iy0:y0 + iy1, x0 + ix0:x0 + ix1].tobytes()


def test_conv_argument_checks():
    x, w, b = conv_case(1, 2, 3, 3, 5, 5)
    with pytest.raises(ValueError, match="4-D"):
        conv2d_direct(x[0], w, b)
    with pytest.raises(ValueError, match="channels"):
        conv2d_direct(x, w[:, :1], b)
    with pytest.raises(ValueError, match="bias"):
        conv2d_direct(x, w, b[:2])


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


def test_bicubic_region_refuses_a_crop_missing_taps():
    a = np.zeros((10, 10))
    with pytest.raises(ValueError, match="does not cover"):
        bicubic_region(a[4:8, 4:8], 2, (10, 10), (4, 4), (8, 16), (8, 16))
    with pytest.raises(ValueError, match="outside"):
        bicubic_region(a, 2, (10, 10), (0, 0), (0, 21), (0, 4))
