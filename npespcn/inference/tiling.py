"""Tiling: cut a low-resolution image into tiles, each processed with a halo and only its core kept.

Each tile is processed with a halo of low-resolution pixels (:func:`halo`: the network's receptive
radius, more where 3x3 layers run by Winograd, and at least 2, the bicubic's reach). With the fast
backend the convolutions give a pixel the same bits whatever the array size, and everything else is
elementwise or position-based, so a tiled result is bitwise equal to the untiled one, wherever NumPy's
BLAS computes every column of a product alike
(:func:`npespcn.fast.size_independent_is_bitwise`; one OpenBLAS kernel on some AMD machines does not,
and there tiles agree to float32 rounding). (The NumPy reference backend runs one GEMM per image, whose rounding depends on the
image's size: there tiles agree with the whole image to float rounding, about 1e-6.) ``tile=None`` keeps
the working memory of one tile near :data:`TILE_BUDGET` bytes: the whole image, or bands of its full
width, or squares (:func:`auto_tiles`), evened out (:func:`balanced`).
"""
from __future__ import annotations

import math

import numpy as np

from ..fast import inference_reach
from ..image.bicubic import HALO as BICUBIC_HALO
from ..nn.model import ESPCN

TILE_BUDGET = 128 * 2 ** 20
"""Bytes of working memory one tile may take when the tile size is chosen automatically."""
MIN_TILE = 32


def max_kernel(net: ESPCN) -> int:
    """The largest kernel side of ``net``: the smallest image it takes."""
    return max([k for k, _ in net.hidden] + [3])


def halo(net: ESPCN) -> int:
    """Low-resolution pixels added around every tile: how far the bits of a pixel of the network's output
    reach into its input, the sum of its layers' :func:`npespcn.fast.inference_reach` (the receptive
    radius, more where 3x3 layers run by Winograd), and at least 2, the bicubic's reach."""
    return max(sum(inference_reach(c, f, k, net.dtype) for c, f, k in _convs(net)), BICUBIC_HALO)


def _convs(net: ESPCN) -> list:
    """``(inputs, outputs, kernel side)`` of each convolution of ``net``, the implied last 3x3 one included."""
    chans = [net.channels] + [f for _, f in net.hidden] + [net.channels * net.scale ** 2]
    return list(zip(chans, chans[1:], [k for k, _ in net.hidden] + [3]))


def _bytes_per_pixel(net: ESPCN, fused: bool = False) -> int:
    """Working memory per low-resolution pixel of a tile: two float32 feature maps of the widest
    convolution (its input and output), plus, per ``r x r`` high-resolution block, about eight float64
    planes (colour conversion, bicubic, network output); with ``fused`` (a uint8 RGB image through a luma
    network, :data:`~npespcn.inference.pipeline.FUSED_UINT8`: float32 luma and chroma go straight into the
    uint8 result) four float32 planes, and three float64 planes of the low-resolution Y, Cb, Cr."""
    widest = max(c + f for c, f, _ in _convs(net))
    if fused:
        return 4 * widest + 4 * 4 * net.scale ** 2 + 3 * 8
    return 4 * widest + 8 * 8 * net.scale ** 2


def auto_tile(net: ESPCN, budget: int = TILE_BUDGET, fused: bool = False) -> int:
    """The side of a square tile whose working memory (with its halo) is about ``budget`` bytes."""
    side = int(math.sqrt(budget / _bytes_per_pixel(net, fused))) - 2 * halo(net)
    return max(MIN_TILE, side)


def auto_tiles(net: ESPCN, H: int, W: int, budget: int = TILE_BUDGET, fused: bool = False) -> tuple[int, int]:
    """The tile ``(rows, cols)`` that ``tile=None`` uses on an ``H x W`` image: the whole image if it fits
    in ``budget`` bytes of working memory (a whole image needs no halo); else bands of the full width, if
    a band of at least :data:`MIN_TILE` rows (and its halo) fits, which the Winograd blocks (320 pixels
    wide) and the halos waste least on; else squares of :func:`auto_tile`. Then evened out
    (:func:`balanced`). ``fused``: the image takes the uint8 RGB path (:func:`_bytes_per_pixel`)."""
    per, h = _bytes_per_pixel(net, fused), halo(net)
    if per * H * W <= budget:
        return H, W
    rows = budget // (per * (W + 2 * h)) - 2 * h              # < H: a band with its halo is larger
    if rows >= MIN_TILE:
        return balanced(H, rows), W
    side = auto_tile(net, budget, fused)
    return balanced(H, side), balanced(W, side)


def tiles(shape, tile):
    """The tile cores ``(y0, y1, x0, x1)`` covering an image of ``shape`` (H, W), row by row;
    ``tile`` is a side or a ``(height, width)``."""
    H, W = shape
    th, tw = (tile, tile) if np.ndim(tile) == 0 else tile
    for y0 in range(0, H, th):
        for x0 in range(0, W, tw):
            yield y0, min(H, y0 + th), x0, min(W, x0 + tw)


def balanced(n: int, side: int) -> int:
    """The tile length that cuts ``n`` pixels into as few pieces as tiles of ``side`` would, all
    (nearly) equal: 512 with side 153 gives 4 x 128, not 153 + 153 + 153 + 53."""
    return -(-n // -(-n // side))
