"""The periodic shuffle (pixel shuffle, depth-to-space) and its inverse (pixel unshuffle, space-to-depth).

ESPCN's last convolution produces ``C*r*r`` low-resolution channels; the periodic shuffle ``PS`` interleaves
them into a ``C``-channel image ``r`` times larger, in PyTorch's channel order::

    x    (N, C*r*r, H, W)
    out  (N, C, H*r, W*r)      out[n, c, u*r + α, v*r + β] = x[n, c*r*r + α*r + β, u, v]      0 <= α, β < r

So channel ``c*r*r + α*r + β`` holds the sub-pixel at the phase ``(α, β)`` (its offset inside the block) of
every r×r output block; ``(u, v)`` is the block, an LR pixel. (TensorFlow's ``depth_to_space`` uses
``x[n, (α*r + β)*C + c, u, v]`` instead; see :func:`npespcn.formats.tf_graphdef.tf_to_torch_channel_order`.)

The shuffle only moves numbers, so its backward is its inverse applied to the gradient::

    dx = pixel_unshuffle(dout, r)      and      d(unshuffle)/dx = pixel_shuffle

That is also the paper's training trick: compare the network's ``C*r*r`` channels with
``pixel_unshuffle(target)`` and the loss, and every gradient, are the same as with the shuffled output.
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import resolve


def _check_shuffle(x, r, inverse: bool = False):
    """Return ``r`` as an int after checking ``x`` can be shuffled (or, ``inverse``, unshuffled) by it."""
    if not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"upscale factor r must be a positive integer, got {r!r}")
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"pixel shuffle expects a 4-D (N, C, H, W) array, got "
                         f"{'shape ' + str(x.shape) if isinstance(x, np.ndarray) else type(x).__name__}")
    r = int(r)
    N, C, H, W = x.shape
    if inverse and (H % r or W % r):
        raise ValueError(f"pixel unshuffle by {r} needs height and width divisible by {r}, got {H}x{W}")
    if not inverse and C % (r * r):
        raise ValueError(f"pixel shuffle by {r} needs a channel count divisible by {r * r}, got {C}")
    return r


# --------------------------------------------------------------------------------------------------
# Reference: a reshape that names the (c, α, β) split of the channel axis, a transpose that moves α next
# to u and β next to v, and a reshape that merges them: (u, α) -> u*r + α, (v, β) -> v*r + β.
# --------------------------------------------------------------------------------------------------
def pixel_shuffle_reference(x, r):
    """Periodic shuffle ``(N, C*r*r, H, W) -> (N, C, H*r, W*r)`` (formula in the module docstring)."""
    r = _check_shuffle(x, r)
    N, Cr2, H, W = x.shape
    C = Cr2 // (r * r)
    return x.reshape(N, C, r, r, H, W).transpose(0, 1, 4, 2, 5, 3).reshape(N, C, H * r, W * r)


def pixel_unshuffle_reference(x, r):
    """Inverse periodic shuffle ``(N, C, H*r, W*r) -> (N, C*r*r, H, W)``."""
    r = _check_shuffle(x, r, inverse=True)
    N, C, Hr, Wr = x.shape
    H, W = Hr // r, Wr // r
    return x.reshape(N, C, H, r, W, r).transpose(0, 1, 3, 5, 2, 4).reshape(N, C * r * r, H, W)


# --------------------------------------------------------------------------------------------------
# Fast path: the index formula as explicit loops over (image, output channel), writing each
# output row contiguously. Serial: it only moves memory, and a parallel region's barrier waits for
# the slowest core when the cores are shared.
# --------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _shuffle_numba(x, r, out):
    N, C, Hr, Wr = out.shape
    H = Hr // r
    W = Wr // r
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        for h in range(H):
            for i in range(r):
                for w in range(W):
                    for j in range(r):
                        out[n, c, h * r + i, w * r + j] = x[n, c * r * r + i * r + j, h, w]


@numba.njit(cache=True, nogil=True)
def _unshuffle_numba(x, r, out):
    N, C, Hr, Wr = x.shape
    H = Hr // r
    W = Wr // r
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        for h in range(H):
            for i in range(r):
                for w in range(W):
                    for j in range(r):
                        out[n, c * r * r + i * r + j, h, w] = x[n, c, h * r + i, w * r + j]


def pixel_shuffle_numba(x, r):
    """Same contract as :func:`pixel_shuffle_reference`, fast."""
    r = _check_shuffle(x, r)
    N, Cr2, H, W = x.shape
    out = np.empty((N, Cr2 // (r * r), H * r, W * r), dtype=x.dtype)
    _shuffle_numba(np.ascontiguousarray(x), r, out)
    return out


def pixel_unshuffle_numba(x, r):
    """Same contract as :func:`pixel_unshuffle_reference`, fast."""
    r = _check_shuffle(x, r, inverse=True)
    N, C, Hr, Wr = x.shape
    out = np.empty((N, C * r * r, Hr // r, Wr // r), dtype=x.dtype)
    _unshuffle_numba(np.ascontiguousarray(x), r, out)
    return out


# --------------------------------------------------------------------------------------------------
# Dispatch, CS231n style: forward returns (out, cache), backward returns dx.
# --------------------------------------------------------------------------------------------------
def pixel_shuffle(x, r, backend: str | None = None):
    """Periodic shuffle with the chosen backend (no cache)."""
    return (pixel_shuffle_reference if resolve(backend) == "reference" else pixel_shuffle_numba)(x, r)


def pixel_unshuffle(x, r, backend: str | None = None):
    """Inverse periodic shuffle with the chosen backend (no cache)."""
    return (pixel_unshuffle_reference if resolve(backend) == "reference" else pixel_unshuffle_numba)(x, r)


def pixel_shuffle_forward(x, r, backend: str | None = None):
    """Periodic shuffle. Returns ``(out, cache)``; the cache is just ``r``."""
    return pixel_shuffle(x, r, backend), r


def pixel_shuffle_backward(dout, cache, backend: str | None = None):
    """Gradient of the shuffle: the inverse shuffle of ``dout``."""
    return pixel_unshuffle(dout, cache, backend)


def pixel_unshuffle_forward(x, r, backend: str | None = None):
    """Inverse periodic shuffle. Returns ``(out, cache)``."""
    return pixel_unshuffle(x, r, backend), r


def pixel_unshuffle_backward(dout, cache, backend: str | None = None):
    """Gradient of the inverse shuffle: the shuffle of ``dout``."""
    return pixel_shuffle(dout, cache, backend)
