"""Training data: find images, make HR/LR pairs, cut aligned patches, augment them.

The pipeline, for an upscale factor ``r`` (the SR literature's convention, as in ESPCN and SRCNN)::

    rgb  (H, W, 3) uint8          an image file, grey expanded to R = G = B
    hr   (r*h, r*w, 3) uint8      cropped (top-left) to a multiple of r: h = H // r, w = W // r
    lr   (h, w, 3) uint8          Pillow's bicubic downscale of the RGB HR, rounded to uint8
    Y    = rgb_to_y(.) / 255      BT.601 studio-range luma of both, float32 in [16/255, 235/255]

Patches of ``p x p`` LR pixels are cut every ``stride`` pixels; the HR patch aligned to the LR patch at
``(i, j)`` is the ``p*r x p*r`` block at ``(r*i, r*j)``. All patches of a dataset live in two contiguous
float32 arrays, ``lr (N, 1, p, p)`` and ``hr (N, 1, p*r, p*r)``: T91 at x3 with p = 17 gives 2 701 patches
(31 MB) at stride 13 and 8 726 (101 MB) at stride 7. Patches are gathered with strided views, no Python
loop per patch.

Augmentation is the dihedral group of the square (8 ops: identity, 3 rotations by 90 degrees, and
those after a transpose), applied to each (LR, HR) pair with the same op, drawn per patch per epoch.
Optional rescaling (``rescale=(1.0, 0.9, 0.8, 0.7, 0.6)``, FSRCNN's recipe) shrinks each HR image before
the pair is made, which adds more scales of texture.

The paper's trick: training against the *inverse-shuffled* HR target ``unshuffle(hr) (N, r*r, p, p)``
lets the loop skip the periodic shuffle (the loss is a mean over the same numbers). A dihedral op on
an HR patch is, on its unshuffled form, the same op on the spatial axes plus a permutation of the
``r*r`` sub-pixel channels; :func:`dihedral_subpixel` applies it, so augmentation still works.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..evaluation.protocol import degrade
from ..evaluation.protocol import (
    load_rgb8 as load_rgb,  # the evaluation's reader: training sees what it scores
)
from ..image.color import rgb_to_y
from ..image.dihedral import N_DIHEDRAL, dihedral
from ..nn.model import check_scale


# ------------------------------------------------------------------------------------------ pairs
def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an RGB uint8 ``img`` (H, W, 3) at the top-left so that both sides are multiples of ``scale``
    (:func:`npespcn.evaluation.protocol.degrade`'s crop)."""
    return degrade(img, check_scale(scale))[0]


def bicubic_downscale(hr_rgb: np.ndarray, scale: int) -> np.ndarray:
    """Pillow's bicubic resize of an RGB uint8 (r*h, r*w, 3) image to (h, w, 3) uint8
    (:func:`npespcn.evaluation.protocol.degrade`'s LR)."""
    scale = check_scale(scale)
    hr_rgb = np.asarray(hr_rgb)
    if hr_rgb.dtype != np.uint8 or hr_rgb.ndim != 3 or hr_rgb.shape[2] != 3:
        raise ValueError(f"bicubic_downscale expects RGB uint8 (H, W, 3), got {hr_rgb.dtype} {hr_rgb.shape}")
    H, W = hr_rgb.shape[:2]
    if H % scale or W % scale:
        raise ValueError(f"HR size {H}x{W} is not a multiple of the scale {scale}; crop it first")
    return degrade(hr_rgb, scale)[1]


def make_pair(rgb: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """One training/evaluation pair on the Y channel.

    Parameters
    ----------
    rgb : uint8 (H, W, 3)
    scale : int r

    Returns
    -------
    lr_y : float32 (H // r, W // r), Y / 255 of the bicubic-downscaled image
    hr_y : float32 (r * (H // r), r * (W // r)), Y / 255 of the cropped HR image
    """
    hr, lr = degrade(rgb, check_scale(scale))           # exactly the evaluation protocol's pair
    return (rgb_to_y(lr) / 255.0).astype(np.float32), (rgb_to_y(hr) / 255.0).astype(np.float32)


def rescale_rgb(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Shrink an RGB uint8 image by ``factor`` (0 < factor <= 1) with Pillow's bicubic filter."""
    if not 0 < factor <= 1:
        raise ValueError(f"rescale factors must be in (0, 1], got {factor}")
    if factor == 1:
        return rgb
    H, W = rgb.shape[:2]
    size = (max(1, int(round(W * factor))), max(1, int(round(H * factor))))
    return np.asarray(Image.fromarray(rgb, "RGB").resize(size, Image.BICUBIC), dtype=np.uint8)


# ------------------------------------------------------------------------------------------ patches
def patch_origins(h: int, w: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners ``(rows, cols)`` of all ``size x size`` patches every ``stride`` pixels of an
    ``h x w`` image (row-major order). Empty when the image is smaller than a patch."""
    if size < 1 or stride < 1:
        raise ValueError(f"patch size and stride must be >= 1, got {size}, {stride}")
    ii = np.arange(0, h - size + 1, stride)
    jj = np.arange(0, w - size + 1, stride)
    rows, cols = np.meshgrid(ii, jj, indexing="ij")
    return rows.ravel(), cols.ravel()


def extract_patches(lr: np.ndarray, hr: np.ndarray, scale: int, size: int, stride: int):
    """Aligned patches of one Y pair.

    Parameters
    ----------
    lr : (h, w) float32
    hr : (r*h, r*w) float32
    scale, size, stride : int

    Returns
    -------
    lr_patches : (n, 1, size, size)
    hr_patches : (n, 1, size*r, size*r), ``hr_patches[k]`` = ``hr[r*i : r*(i+size), r*j : r*(j+size)]``
    """
    r = check_scale(scale)
    h, w = lr.shape
    if hr.shape != (h * r, w * r):
        raise ValueError(f"HR {hr.shape} is not {r} x LR {lr.shape}")
    rows, cols = patch_origins(h, w, size, stride)
    n = rows.size
    # Strided views of every patch, then one fancy-index gather per array: no Python loop per patch.
    lv = np.lib.stride_tricks.sliding_window_view(lr, (size, size))
    hv = np.lib.stride_tricks.sliding_window_view(hr, (size * r, size * r))
    lp = lv[rows, cols].reshape(n, 1, size, size)
    hp = hv[rows * r, cols * r].reshape(n, 1, size * r, size * r)
    return np.ascontiguousarray(lp, np.float32), np.ascontiguousarray(hp, np.float32)


@dataclass
class PatchSet:
    """All training patches of a dataset, in memory.

    ``lr`` (N, 1, p, p) and ``hr`` (N, 1, p*r, p*r) float32 Y / 255; ``scale`` r; ``sources`` the image
    files they came from.
    """

    lr: np.ndarray
    hr: np.ndarray
    scale: int
    sources: list

    def __len__(self):
        return self.lr.shape[0]

    @property
    def patch_size(self) -> int:
        return self.lr.shape[-1]


def build_patches(paths, scale: int, size: int = 17, stride: int = 13, rescale=(1.0,)) -> PatchSet:
    """Make the :class:`PatchSet` of the images ``paths`` (see the module docstring).

    Parameters
    ----------
    paths : list of image files (:func:`~npespcn.image.io.list_images`)
    scale : int r
    size, stride : LR patch size and stride
    rescale : factors in (0, 1] applied to each HR image before making its pair (1.0 = as is)
    """
    r = check_scale(scale)
    paths = list(paths)
    if not paths:
        raise ValueError("build_patches got no image files")
    factors = tuple(float(f) for f in rescale)
    if not factors:
        raise ValueError("rescale needs at least one factor (1.0 keeps the images as they are)")
    lrs, hrs = [], []
    for path in paths:
        rgb = load_rgb(path)
        for f in factors:
            img = rescale_rgb(rgb, f)
            if img.shape[0] < size * r or img.shape[1] < size * r:
                continue
            lr, hr = make_pair(img, r)
            lp, hp = extract_patches(lr, hr, r, size, stride)
            lrs.append(lp)
            hrs.append(hp)
    if not lrs:
        raise ValueError(f"no image among {len(paths)} is large enough for {size}x{size} LR patches at x{r} "
                         f"(needs at least {size * r}x{size * r} pixels)")
    return PatchSet(np.concatenate(lrs), np.concatenate(hrs), r, paths)


# ------------------------------------------------------------------------------------------ augmentation
def dihedral_subpixel(z: np.ndarray, op: int, scale: int) -> np.ndarray:
    """The dihedral op on an HR image given in inverse-shuffled form.

    For ``z = pixel_unshuffle(y, r)`` of shape (N, C*r*r, H, W)::

        dihedral_subpixel(z, op, r) == pixel_unshuffle(dihedral(y, op), r)

    because sub-pixel ``(i, j)`` of block ``(h, w)`` moves exactly as block ``(h, w)`` does inside the
    image, with ``(i, j)`` transformed by the same op inside an ``r x r`` block.
    """
    r = check_scale(scale)
    N, Crr, H, W = z.shape
    C = Crr // (r * r)
    # Spatial axes of the blocks and of the sub-pixel grid both get the op.
    z6 = z.reshape(N, C, r, r, H, W)
    z6 = dihedral(z6, op)                              # blocks (H, W) move
    z6 = np.moveaxis(dihedral(np.moveaxis(z6, (2, 3), (-2, -1)), op), (-2, -1), (2, 3))   # (i, j) move
    return np.ascontiguousarray(z6).reshape(N, Crr, z6.shape[-2], z6.shape[-1])


def augment_batch(lr: np.ndarray, hr: np.ndarray, ops: np.ndarray, subpixel_scale: int | None = None):
    """Apply op ``ops[k]`` to pair ``k`` of a batch; returns new contiguous arrays.

    ``hr`` is (B, 1, p*r, p*r), or the inverse-shuffled (B, r*r, p, p) when ``subpixel_scale = r``.
    """
    ops = np.asarray(ops)
    if ops.shape != (lr.shape[0],):
        raise ValueError(f"need one op per patch: {lr.shape[0]} patches, ops of shape {ops.shape}")
    lo, ho = np.empty_like(lr), np.empty_like(hr)
    for op in np.unique(ops):
        sel = np.flatnonzero(ops == op)
        lo[sel] = dihedral(lr[sel], op)
        ho[sel] = dihedral(hr[sel], op) if subpixel_scale is None else dihedral_subpixel(hr[sel], op,
                                                                                          subpixel_scale)
    return lo, ho


def epoch_plan(n: int, batch_size: int, seed: int, epoch: int, augment: bool = True):
    """The order and augmentation of one epoch, a pure function of ``(seed, epoch)``.

    Returns
    -------
    order : int64 (n,), a permutation of the patches
    ops : int8 (n,), the dihedral op of each position (all 0 without augmentation)
    steps : int, ``ceil(n / batch_size)`` batches (the last one may be smaller)

    Because it depends on nothing else, a run resumed in the middle of an epoch replays exactly the
    batches an uninterrupted run would have seen.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 patches and batch_size >= 1, got {n}, {batch_size}")
    rng = np.random.default_rng([int(seed), int(epoch), 0x5EED])
    order = rng.permutation(n)
    ops = rng.integers(0, N_DIHEDRAL, size=n, dtype=np.int8) if augment else np.zeros(n, np.int8)
    return order, ops, -(-n // batch_size)
