"""The training-data pipeline: files, HR/LR pairs, aligned patches, augmentation, epoch plans."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from npespcn import functional as F
from npespcn.image.io import list_images
from npespcn.training.patches import (
    augment_batch,
    bicubic_downscale,
    build_patches,
    crop_to_multiple,
    dihedral,
    dihedral_subpixel,
    epoch_plan,
    extract_patches,
    load_rgb,
    make_pair,
    patch_origins,
)


def _y_by_hand(rgb):
    """BT.601 studio-range luma written out from the standard, independent of npespcn.image.color."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------ files
def test_find_images_recursive_suffixes_sorted_hidden(tmp_path, rng):
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for rel in ("b.png", "a/c.JPG", "a/deep/d.bmp", "e.jpeg", ".hidden.png", ".dot/f.png"):
        _save(tmp_path / rel, img)
    (tmp_path / "notes.txt").write_text("not an image")
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert got == ["a/c.JPG", "a/deep/d.bmp", "b.png", "e.jpeg"]


def test_training_reads_the_formats_and_pairs_of_the_evaluation(tmp_path, rng):
    from npespcn import evaluation
    img = rng.integers(0, 256, (20, 23, 3), dtype=np.uint8)
    for rel in ("a.tif", "b.TIFF", "c.png"):                       # TIFF was missed by training only
        _save(tmp_path / rel, img)
    got = list_images(tmp_path, recursive=True)
    assert [p.name for p in got] == [p.name for p in list_images(tmp_path)] == ["a.tif", "b.TIFF", "c.png"]
    hr, lr = evaluation.degrade(load_rgb(got[0]), 3)
    lr_y, hr_y = make_pair(load_rgb(got[0]), 3)
    from npespcn.image.color import rgb_to_y
    np.testing.assert_array_equal(lr_y, (rgb_to_y(lr) / 255.0).astype(np.float32))
    np.testing.assert_array_equal(hr_y, (rgb_to_y(hr) / 255.0).astype(np.float32))


def test_find_images_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere", recursive=True)


def test_load_rgb_grey_becomes_rgb(tmp_path, rng):
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    rgb = load_rgb(tmp_path / "g.png")
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey)


# ------------------------------------------------------------------------------------------ pairs
def test_crop_to_multiple(rng):
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    out = crop_to_multiple(img, 3)
    assert out.shape == (12, 15, 3)
    np.testing.assert_array_equal(out, img[:12, :15])
    with pytest.raises(ValueError, match="smaller than the scale"):
        crop_to_multiple(img[:2], 3)
    with pytest.raises(ValueError, match="positive integer"):
        crop_to_multiple(img, 0)


def test_make_pair_is_pillow_bicubic_then_bt601_luma(rng):
    rgb = rng.integers(0, 256, (31, 26, 3), dtype=np.uint8)
    lr_y, hr_y = make_pair(rgb, 3)
    hr = rgb[:30, :24]
    lr = np.asarray(Image.fromarray(hr).resize((8, 10), Image.BICUBIC))
    assert lr_y.shape == (10, 8) and hr_y.shape == (30, 24)
    assert lr_y.dtype == hr_y.dtype == np.float32
    np.testing.assert_allclose(hr_y, _y_by_hand(hr) / 255, atol=1e-6)
    np.testing.assert_allclose(lr_y, _y_by_hand(lr) / 255, atol=1e-6)


def test_bicubic_downscale_rejects_bad_input(rng):
    with pytest.raises(ValueError, match="multiple of the scale"):
        bicubic_downscale(rng.integers(0, 256, (10, 9, 3), dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="RGB uint8"):
        bicubic_downscale(np.zeros((9, 9, 3), np.float32), 3)


# ------------------------------------------------------------------------------------------ patches
def test_patch_origins_grid():
    rows, cols = patch_origins(10, 12, 4, 3)
    assert list(zip(rows, cols)) == [(i, j) for i in (0, 3, 6) for j in (0, 3, 6)]
    assert patch_origins(3, 12, 4, 3)[0].size == 0
    with pytest.raises(ValueError, match=">= 1"):
        patch_origins(10, 10, 0, 1)


@pytest.mark.parametrize("r", [2, 3, 4])
def test_extract_patches_are_aligned(rng, r):
    lr = rng.random((11, 14)).astype(np.float32)
    hr = rng.random((11 * r, 14 * r)).astype(np.float32)
    lp, hp = extract_patches(lr, hr, r, 5, 3)
    expect = [(i, j) for i in range(0, 7, 3) for j in range(0, 10, 3)]
    assert lp.shape == (len(expect), 1, 5, 5) and hp.shape == (len(expect), 1, 5 * r, 5 * r)
    for k, (i, j) in enumerate(expect):
        np.testing.assert_array_equal(lp[k, 0], lr[i:i + 5, j:j + 5])
        np.testing.assert_array_equal(hp[k, 0], hr[r * i:r * i + 5 * r, r * j:r * j + 5 * r])


def test_extract_patches_shape_mismatch(rng):
    with pytest.raises(ValueError, match="is not 3 x LR"):
        extract_patches(np.zeros((4, 4), np.float32), np.zeros((12, 11), np.float32), 3, 2, 1)


def test_build_patches_counts_and_rescale(tmp_path, rng):
    sizes = [(40, 50), (33, 61), (20, 20)]                      # the last is too small for x3, p = 8
    paths = []
    for k, (h, w) in enumerate(sizes):
        _save(tmp_path / f"{k}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(tmp_path / f"{k}.png")
    ps = build_patches(paths, 3, size=8, stride=4)
    expected = sum(((h // 3 - 8) // 4 + 1) * ((w // 3 - 8) // 4 + 1) for h, w in sizes if min(h, w) >= 24)
    assert len(ps) == expected and ps.lr.shape == (expected, 1, 8, 8) and ps.hr.shape == (expected, 1, 24, 24)
    assert ps.patch_size == 8 and ps.scale == 3
    # the first patch is the top-left corner of the first image's pair
    lr_y, hr_y = make_pair(load_rgb(paths[0]), 3)
    np.testing.assert_array_equal(ps.lr[0, 0], lr_y[:8, :8])
    np.testing.assert_array_equal(ps.hr[0, 0], hr_y[:24, :24])
    more = build_patches(paths, 3, size=8, stride=4, rescale=(1.0, 0.8))
    assert len(more) > len(ps)
    with pytest.raises(ValueError, match="large enough"):
        build_patches(paths[2:], 3, size=8, stride=4)
    with pytest.raises(ValueError, match="no image files"):
        build_patches([], 3)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        build_patches(paths, 3, size=8, stride=4, rescale=(1.5,))


def test_t91_patch_count_matches_the_grid(t91_dir):
    paths = list_images(t91_dir, recursive=True)
    assert len(paths) == 91
    ps = build_patches(paths, 3, 17, 13)
    expected = 0
    for p in paths:
        with Image.open(p) as im:
            w, h = im.size
        expected += max(0, (h // 3 - 17) // 13 + 1) * max(0, (w // 3 - 17) // 13 + 1)
    assert len(ps) == expected
    assert 16 / 255 - 1e-6 <= ps.hr.min() and ps.hr.max() <= 235 / 255 + 1e-6


# ------------------------------------------------------------------------------------------ augmentation
def test_dihedral_ops_are_the_eight_symmetries(rng):
    x = rng.random((2, 1, 5, 5))
    outs = [dihedral(x, op) for op in range(8)]
    np.testing.assert_array_equal(outs[0], x)
    np.testing.assert_array_equal(outs[1], np.flip(np.swapaxes(x, -1, -2), -2))     # quarter turn
    np.testing.assert_array_equal(outs[2], np.flip(np.flip(x, -1), -2))              # half turn
    np.testing.assert_array_equal(outs[4], np.swapaxes(x, -1, -2))                   # transpose
    flat = {o.tobytes() for o in outs}
    assert len(flat) == 8                                        # all different on a generic array
    for op in range(8):                                          # closed under composition
        for op2 in range(8):
            assert dihedral(dihedral(x, op), op2).tobytes() in flat
    with pytest.raises(ValueError, match="0..7"):
        dihedral(x, 8)


@pytest.mark.parametrize("r", [2, 3, 4])
def test_dihedral_on_inverse_shuffled_target(rng, r):
    y = rng.random((3, 1, 5 * r, 5 * r)).astype(np.float32)
    z = F.pixel_unshuffle(y, r, backend="reference")
    for op in range(8):
        expect = F.pixel_unshuffle(np.ascontiguousarray(dihedral(y, op)), r, backend="reference")
        np.testing.assert_array_equal(dihedral_subpixel(z, op, r), expect)


def test_augment_batch_per_patch(rng):
    lr = rng.random((16, 1, 4, 4)).astype(np.float32)
    hr = rng.random((16, 1, 12, 12)).astype(np.float32)
    ops = rng.integers(0, 8, 16)
    lo, ho = augment_batch(lr, hr, ops)
    for k in range(16):
        np.testing.assert_array_equal(lo[k], dihedral(lr[k], ops[k]))
        np.testing.assert_array_equal(ho[k], dihedral(hr[k], ops[k]))
    z = F.pixel_unshuffle(hr, 3)
    _, zo = augment_batch(lr, z, ops, subpixel_scale=3)
    np.testing.assert_array_equal(zo, F.pixel_unshuffle(ho, 3))
    with pytest.raises(ValueError, match="one op per patch"):
        augment_batch(lr, hr, ops[:3])


def test_augmentation_commutes_with_making_the_pair(rng):
    """Flipping/rotating an HR image and then downscaling gives the flipped/rotated LR (Pillow's
    bicubic kernel is symmetric), so augmenting the pair is the same as augmenting the image."""
    rgb = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    lr_y, hr_y = make_pair(rgb, 3)
    for op in range(8):
        lr2, hr2 = make_pair(np.ascontiguousarray(dihedral(rgb.transpose(2, 0, 1), op).transpose(1, 2, 0)), 3)
        np.testing.assert_array_equal(hr2, dihedral(hr_y, op))
        np.testing.assert_allclose(lr2, dihedral(lr_y, op), atol=1.5 / 255)


def test_epoch_plan_is_a_function_of_seed_and_epoch():
    o1, a1, s1 = epoch_plan(100, 16, seed=7, epoch=3)
    o2, a2, _ = epoch_plan(100, 16, seed=7, epoch=3)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(a1, a2)
    assert s1 == 7 and sorted(o1) == list(range(100)) and a1.min() >= 0 and a1.max() <= 7
    assert not np.array_equal(o1, epoch_plan(100, 16, seed=7, epoch=4)[0])
    assert not np.array_equal(o1, epoch_plan(100, 16, seed=8, epoch=3)[0])
    assert not epoch_plan(100, 16, 7, 3, augment=False)[1].any()
    with pytest.raises(ValueError, match="batch_size"):
        epoch_plan(100, 0, 0, 0)
