"""Image quality metrics: PSNR and SSIM, as the super-resolution literature computes them.

``psnr(a, b, data_range=255, border=0)``::

    MSE  = mean((a - b)**2)          over the image with ``border`` pixels removed on every side
    PSNR = 10 * log10(data_range**2 / MSE)          (inf when the images are equal)

``ssim(a, b, data_range=255, border=0)``: Wang et al. (2004) with a Gaussian window 11×11, sigma 1.5,
``K1 = 0.01``, ``K2 = 0.03``, population (not sample) statistics, averaged over the positions where the
window lies fully inside the image (MATLAB's ``ssim_index`` / "valid" filtering)::

    mu_a = G * a, mu_b = G * b, s_a = G * a² - mu_a², s_b = G * b² - mu_b², s_ab = G * ab - mu_a mu_b
    SSIM = mean( (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a² + mu_b² + C1)(s_a + s_b + C2)) )
    C1 = (K1 L)², C2 = (K2 L)², L = data_range

Both take 2-D arrays (one channel, e.g. Y) and compute in float64.
"""
from __future__ import annotations

import numpy as np


def _prepare(a, b, border, fn):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{fn}: images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 2:
        raise ValueError(f"{fn} expects 2-D (H, W) arrays (one channel), got shape {a.shape}")
    border = int(border)
    if border < 0 or 2 * border >= min(a.shape):
        raise ValueError(f"{fn}: border {border} leaves nothing of a {a.shape} image")
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return a, b


def psnr(a, b, data_range: float = 255.0, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB between two (H, W) images (see module docstring)."""
    a, b = _prepare(a, b, border, "psnr")
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised 2-D Gaussian window (size, size) used by :func:`ssim`."""
    ax = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(ax ** 2) / (2.0 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def ssim(a, b, data_range: float = 255.0, border: int = 0, size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Structural similarity index between two (H, W) images (see module docstring)."""
    a, b = _prepare(a, b, border, "ssim")
    if min(a.shape) < size:
        raise ValueError(f"ssim needs images at least {size}x{size} after the border, got {a.shape}")
    # The window is separable, outer(g, g): two 1-D passes instead of one 11x11 pass per filtering.
    ax = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(ax ** 2) / (2.0 * sigma ** 2))
    g /= g.sum()

    def filt(x):
        """Weighted window sums at the "valid" positions (window fully inside): (H - size + 1, W - size + 1)."""
        h, w = x.shape[0] - size + 1, x.shape[1] - size + 1
        rows = sum(g[i] * x[i:i + h] for i in range(size))
        return sum(g[j] * rows[:, j:j + w] for j in range(size))

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_a, mu_b = filt(a), filt(b)
    s_a = filt(a * a) - mu_a ** 2
    s_b = filt(b * b) - mu_b ** 2
    s_ab = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (s_a + s_b + c2)
    return float(np.mean(num / den))
