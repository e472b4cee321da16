"""Colour conversion: RGB <-> YCbCr, ITU-R BT.601 "studio range" (the SR literature's convention).

On 8-bit values (``R, G, B`` in [0, 255])::

    Y  =  16 + ( 65.481 R + 128.553 G +  24.966 B) / 255        Y  in [16, 235]
    Cb = 128 + (-37.797 R -  74.203 G + 112.0   B) / 255        Cb in [16, 240]
    Cr = 128 + (112.0   R -  93.786 G -  18.214 B) / 255        Cr in [16, 240]

(MATLAB's ``rgb2ycbcr``, used by every ESPCN/SRCNN evaluation.) The functions below take and return
float arrays on the 0..255 scale, channels last: ``(..., 3)``. Networks see ``Y / 255``.
"""
from __future__ import annotations

import numpy as np

_M = np.array([[65.481, 128.553, 24.966],
               [-37.797, -74.203, 112.0],
               [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])
_M_INV = np.linalg.inv(_M)


def _check_rgb(a, name):
    a = np.asarray(a)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"{name} expects an array with 3 channels last (..., 3), got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def rgb_to_ycbcr(rgb):
    """RGB (..., 3) on 0..255 -> YCbCr (..., 3) on 0..255 (float64), BT.601 studio range."""
    return _check_rgb(rgb, "rgb_to_ycbcr") @ _M.T + _OFFSET


def ycbcr_to_rgb(ycc):
    """YCbCr (..., 3) on 0..255 -> RGB (..., 3) on 0..255 (float64, not clipped): the exact inverse."""
    return (_check_rgb(ycc, "ycbcr_to_rgb") - _OFFSET) @ _M_INV.T


def rgb_to_y(rgb):
    """Luma only: RGB (..., 3) on 0..255 -> Y (...) on 16..235 (float64)."""
    return _check_rgb(rgb, "rgb_to_y") @ _M[0] + 16.0
