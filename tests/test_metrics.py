"""PSNR and SSIM against their definitions written out in the test."""
import math

import numpy as np
import pytest

from npespcn.evaluation.metrics import psnr, ssim


def ssim_by_windows(a, b, L=255.0, size=11, sigma=1.5):
    """Wang et al. (2004), one window position at a time, population statistics, "valid" positions only."""
    ax = np.arange(size) - (size - 1) / 2
    w = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i:i + size, j:j + size], b[i:i + size, j:j + size]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_window_by_window_definition():
    rng = np.random.default_rng(0)
    a = rng.random((19, 23)) * 255
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    assert ssim(a, b) == pytest.approx(ssim_by_windows(a, b), abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b, border=2) == pytest.approx(ssim_by_windows(a[2:-2, 2:-2], b[2:-2, 2:-2]), abs=1e-12)


def test_psnr_definition_and_border():
    a = np.zeros((10, 10))
    b = np.zeros((10, 10))
    b[0, 0] = 255                       # one wrong pixel, in the border
    assert psnr(a, b, border=1) == math.inf
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / (255 ** 2 / 100)))


def test_metric_errors_name_the_problem():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
