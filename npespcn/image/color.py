"""Colour conversion: RGB <-> YCbCr, ITU-R BT.601 "studio range" (the SR literature's convention).

On 8-bit values (``R, G, B`` in [0, 255])::

    Y  =  16 + ( 65.481 R + 128.553 G +  24.966 B) / 255        Y  in [16, 235]
    Cb = 128 + (-37.797 R -  74.203 G + 112.0   B) / 255        Cb in [16, 240]
    Cr = 128 + (112.0   R -  93.786 G -  18.214 B) / 255        Cr in [16, 240]

(MATLAB's ``rgb2ycbcr``, used by every ESPCN/SRCNN evaluation.) The functions below take and return
float arrays on the 0..255 scale, channels last: ``(..., 3)``. Networks see ``Y / 255``.
"""
from __future__ import annotations

import numba
import numpy as np

BT601 = np.array([[65.481, 128.553, 24.966],
                  [-37.797, -74.203, 112.0],
                  [112.0, -93.786, -18.214]]) / 255.0
"""RGB -> YCbCr matrix on 0..255 values (rows Y, Cb, Cr), before :data:`OFFSET` is added."""
OFFSET = np.array([16.0, 128.0, 128.0])
BT601_INV = np.linalg.inv(BT601)


def _check_rgb(a, name):
    a = np.asarray(a)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"{name} expects an array with 3 channels last (..., 3), got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def rgb_to_ycbcr(rgb):
    """RGB (..., 3) on 0..255 -> YCbCr (..., 3) on 0..255 (float64), BT.601 studio range."""
    return _check_rgb(rgb, "rgb_to_ycbcr") @ BT601.T + OFFSET


def ycbcr_to_rgb(ycc):
    """YCbCr (..., 3) on 0..255 -> RGB (..., 3) on 0..255 (float64, not clipped): the exact inverse."""
    return (_check_rgb(ycc, "ycbcr_to_rgb") - OFFSET) @ BT601_INV.T


def rgb_to_y(rgb):
    """Luma only: RGB (..., 3) on 0..255 -> Y (...) on 16..235 (float64)."""
    return _check_rgb(rgb, "rgb_to_y") @ BT601[0] + 16.0


def rgb_to_ycc_planes(rgb):
    """``[Y, Cb, Cr]`` planes of RGB (..., 3) on 0..255, element by element: the same numbers as
    :func:`rgb_to_ycbcr` without a matrix product (whose rounding could depend on the array's size)."""
    R, G, B = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return [off + m[0] * R + m[1] * G + m[2] * B for m, off in zip(BT601, OFFSET)]


def to_255(a):
    """Pixel values on the 0..255 scale, float64: uint8 as is, uint16 * 255 / 65535, floats clipped to
    [0, 1] then * 255."""
    v = np.asarray(a).astype(np.float64)
    if a.dtype.kind == "f":
        return np.clip(v, 0.0, 1.0) * 255.0
    if a.dtype == np.uint16:
        return v * (255.0 / 65535.0)
    return v


def image_to_ycc_planes(image):
    """``[Y, Cb, Cr]`` float64 planes (h, w) on 0..255 of an RGB(A) image (h, w, >= 3) of any of
    npespcn's dtypes: :func:`rgb_to_ycc_planes` of :func:`to_255` (alpha ignored).
    :func:`image_to_ycc_planes_numba` is the same in one pass."""
    return rgb_to_ycc_planes(to_255(image[..., :3]))


_SCALE_AS_IS, _SCALE_UINT16, _SCALE_FLOAT = 0, 1, 2


@numba.njit(cache=True, nogil=True, inline="always")
def _scaled(v, mode):
    """One value of :func:`to_255`, ``v`` already float64."""
    if mode == _SCALE_UINT16:
        return v * (255.0 / 65535.0)
    if mode == _SCALE_FLOAT:
        return min(max(v, 0.0), 1.0) * 255.0
    return v


@numba.njit(cache=True, nogil=True)
def _ycc_planes_kernel(image, mode, m, off, y, cb, cr):
    h, w = y.shape
    for i in range(h):
        for j in range(w):
            R = _scaled(np.float64(image[i, j, 0]), mode)
            G = _scaled(np.float64(image[i, j, 1]), mode)
            B = _scaled(np.float64(image[i, j, 2]), mode)
            y[i, j] = off[0] + m[0, 0] * R + m[0, 1] * G + m[0, 2] * B
            cb[i, j] = off[1] + m[1, 0] * R + m[1, 1] * G + m[1, 2] * B
            cr[i, j] = off[2] + m[2, 0] * R + m[2, 1] * G + m[2, 2] * B


def image_to_ycc_planes_numba(image):
    """:func:`image_to_ycc_planes` in one numba pass, the same operations in the same order (no
    fused multiply-adds), so the same bits, without the float64 copy of the image."""
    if image.dtype.kind == "f":
        mode = _SCALE_FLOAT
    elif image.dtype == np.uint16:
        mode = _SCALE_UINT16
    else:
        mode = _SCALE_AS_IS
    planes = [np.empty(image.shape[:2]) for _ in range(3)]
    _ycc_planes_kernel(image, mode, BT601, OFFSET, *planes)
    return planes


def ycc_planes_to_rgb(y, cb, cr):
    """``[R, G, B]`` planes from Y, Cb, Cr planes on 0..255 (not clipped), element by element."""
    y, cb, cr = y - 16.0, cb - 128.0, cr - 128.0
    return [m[0] * y + m[1] * cb + m[2] * cr for m in BT601_INV]


@numba.njit(cache=True, nogil=True)
def ycc_to_rgb_uint8(ynet, cb, cr, m_inv, dst):
    """The last step for uint8 RGB, in one pass: ``dst[..., c] = clip(rint(m_inv[c] . (Y - 16, Cb - 128,
    Cr - 128)), 0, 255)`` with ``Y = float64(ynet) * 255``. The same operations in the same order as
    :func:`ycc_planes_to_rgb`, rounding and clipping (no fused multiply-adds), so the same bits, without their dozen
    float64 temporaries of the whole tile.

    ynet (h, w) float32 network output; cb, cr (h, w) on 0..255, float64 or float32 (taken as float64,
    exactly); dst (h, w, >= 3) uint8.
    """
    h, w = cb.shape
    m00, m01, m02 = m_inv[0, 0], m_inv[0, 1], m_inv[0, 2]
    m10, m11, m12 = m_inv[1, 0], m_inv[1, 1], m_inv[1, 2]
    m20, m21, m22 = m_inv[2, 0], m_inv[2, 1], m_inv[2, 2]
    red, green, blue = np.empty(w, np.int32), np.empty(w, np.int32), np.empty(w, np.int32)
    for i in range(h):
        yr, br, rr, d = ynet[i], cb[i], cr[i], dst[i]
        for j in range(w):                      # planar int32 rows: this loop vectorises
            y = np.float64(yr[j]) * 255.0 - 16.0
            b = np.float64(br[j]) - 128.0
            r = np.float64(rr[j]) - 128.0
            red[j] = np.int32(min(max(np.rint(m00 * y + m01 * b + m02 * r), 0.0), 255.0))
            green[j] = np.int32(min(max(np.rint(m10 * y + m11 * b + m12 * r), 0.0), 255.0))
            blue[j] = np.int32(min(max(np.rint(m20 * y + m21 * b + m22 * r), 0.0), 255.0))
        for j in range(w):                      # then interleaved into the uint8 pixels
            d[j, 0] = red[j]
            d[j, 1] = green[j]
            d[j, 2] = blue[j]
