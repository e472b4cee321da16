"""Image files: mode conversions on reading, atomic writing, and the streamed PNG writer (checked by
decoding with Pillow, an independent PNG reader)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from npespcn import ESPCN
from npespcn.image.io import png_filter_rows, png_filter_rows_reference, read_image, write_image, write_png_rows
from npespcn.inference.pipeline import upscale, upscale_bands


def rand(shape, dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("mode,want_shape,want_dtype", [
    ("L", (9, 11), np.uint8), ("RGB", (9, 11, 3), np.uint8), ("RGBA", (9, 11, 4), np.uint8),
    ("1", (9, 11), np.uint8), ("LA", (9, 11, 4), np.uint8), ("CMYK", (9, 11, 3), np.uint8),
    ("I;16", (9, 11), np.uint16), ("P", (9, 11, 3), np.uint8),
])
def test_read_converts_modes_for_upscale(tmp_path, mode, want_shape, want_dtype):
    src = Image.fromarray(rand((9, 11, 3))).convert(mode) if mode != "I;16" else Image.fromarray(rand((9, 11), np.uint16))
    path = tmp_path / ("a.tif" if mode in ("CMYK", "LA") else "a.png")
    src.save(path)
    arr, info = read_image(path)
    assert arr.shape == want_shape and arr.dtype == want_dtype
    assert info["mode"] == src.mode


def test_palette_with_transparency_becomes_rgba(tmp_path):
    im = Image.fromarray(rand((8, 8, 3))).convert("P")
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    arr, _ = read_image(tmp_path / "p.png")
    assert arr.shape == (8, 8, 4)


@pytest.mark.parametrize("shape,dtype,suffix", [((10, 12, 3), np.uint8, ".png"), ((10, 12), np.uint16, ".png"),
                                                ((10, 12, 4), np.uint8, ".tif"), ((10, 12, 3), np.uint8, ".bmp"),
                                                ((10, 12), np.float32, ".tiff")])
def test_write_then_read_is_lossless(tmp_path, shape, dtype, suffix):
    a = rand(shape, dtype) if dtype != np.float32 else np.random.default_rng(1).random(shape).astype(dtype)
    write_image(tmp_path / f"x{suffix}", a)
    b, _ = read_image(tmp_path / f"x{suffix}")
    np.testing.assert_array_equal(b, a)
    assert [p.name for p in tmp_path.iterdir()] == [f"x{suffix}"]          # no temporary file left


@pytest.mark.parametrize("shape,dtype", [((37, 41), np.uint8), ((37, 41, 3), np.uint8), ((37, 41, 4), np.uint8),
                                         ((37, 41), np.uint16), ((37, 41, 1), np.uint8)])
def test_streamed_png_decodes_to_the_same_pixels(tmp_path, shape, dtype):
    a = rand(shape, dtype, seed=2)
    a[:12] = a[:12] // 9 * 9                                   # some smooth-ish rows: other filters win
    write_png_rows(tmp_path / "s.png", a.shape, dtype, [a[:5], a[5:6], a[6:30], a[30:]], chunk_rows=4)
    with Image.open(tmp_path / "s.png") as im:
        im.load()
        b = np.asarray(im)
    np.testing.assert_array_equal(b, a.reshape(b.shape))


def test_png_filters_are_the_standard_ones():
    for fn in (png_filter_rows, png_filter_rows_reference):
        _check_standard_filters(fn)


def _check_standard_filters(png_filter_rows):
    # A 3-pixel grey row [10, 20, 60] below [5, 5, 5], residuals from the PNG specification by hand:
    #   None [10, 20, 60] (sum 90), Sub [10, 10, 40] (60), Up [5, 15, 55] (75),
    #   Average x - (a + b) // 2 = [8, 13, 48] (69), Paeth [5, 10, 40] (55): Paeth has the smallest sum.
    f = png_filter_rows(np.array([[10, 20, 60]], np.uint8), np.array([5, 5, 5], np.uint8), 1)
    assert f[0, 0] == 4 and list(f[0, 1:]) == [5, 10, 40]
    # a constant row under an identical one: Up gives all zeros (None/Sub/Average cost more)
    f = png_filter_rows(np.array([[7, 7, 7, 7]], np.uint8), np.array([7, 7, 7, 7], np.uint8), 1)
    assert list(f[0, 1:]) == [0, 0, 0, 0] and f[0, 0] in (2, 4)


def test_numba_png_filter_gives_the_reference_bytes():
    """Noise, smooth ramps and flat rows (where costs tie), 1..8 bytes per pixel, strides shorter than a pixel
    run, read-only inputs: the same filter choice and residuals as the NumPy version."""
    rng = np.random.default_rng(7)
    for t in range(300):
        h, bpp = int(rng.integers(1, 6)), int(rng.choice([1, 2, 3, 4, 6, 8]))
        stride = bpp * int(rng.integers(1, 20))
        kind = t % 3
        if kind == 0:
            rows = rng.integers(0, 256, (h, stride))
        elif kind == 1:
            rows = np.cumsum(rng.integers(-3, 4, (h, stride)), axis=1) % 256
        else:
            rows = np.full((h, stride), int(rng.integers(0, 256)))
        rows, prev = rows.astype(np.uint8), rng.integers(0, 256, stride).astype(np.uint8)
        rows.flags.writeable = False
        np.testing.assert_array_equal(png_filter_rows(rows, prev, bpp), png_filter_rows_reference(rows, prev, bpp),
                                      err_msg=f"case {t}: {h}x{stride}, bpp {bpp}")


@pytest.mark.parametrize("level", [-1, 10, 2.5, True, "6"])
def test_png_compression_level_is_checked(tmp_path, level):
    a = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="0..9"):
        write_png_rows(tmp_path / "a.png", a.shape, a.dtype, [a], png_compression=level)
    with pytest.raises(ValueError, match="0..9"):
        write_image(tmp_path / "b.png", a, png_compression=level)
    assert not list(tmp_path.iterdir())


def test_streamed_png_is_atomic_on_error(tmp_path):
    path = tmp_path / "keep.png"
    path.write_bytes(b"old")
    a = rand((10, 10, 3))
    with pytest.raises(ValueError, match="bands hold 5 rows, expected 10"):
        write_png_rows(path, a.shape, np.uint8, [a[:5]])
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    with pytest.raises(ValueError, match="does not exist"):
        write_png_rows(tmp_path / "no" / "x.png", a.shape, np.uint8, [a])


def test_streamed_png_copes_with_a_producer_that_reuses_its_array(tmp_path):
    """The encoder runs on another thread: a band must be copied before the producer overwrites it."""
    a = rand((64, 9, 3), seed=5)

    def bands():
        buf = np.empty((8, 9, 3), np.uint8)
        for y in range(0, 64, 8):
            buf[...] = a[y:y + 8]
            yield buf
    write_png_rows(tmp_path / "r.png", a.shape, np.uint8, bands(), chunk_rows=3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.png")), a)


def test_streamed_png_failures_on_either_thread_leave_no_file(tmp_path, monkeypatch):
    import threading

    import npespcn.image.io as imageio
    a = rand((40, 6, 3), seed=6)
    path = tmp_path / "keep.png"
    path.write_bytes(b"old")

    def producer_fails():
        yield a[:10]
        raise OSError("camera unplugged")
    with pytest.raises(OSError, match="camera unplugged"):
        write_png_rows(path, a.shape, np.uint8, producer_fails())
    real, calls = imageio.png_filter_rows, []

    def encoder_fails(*args):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no room for the filter")
        return real(*args)
    monkeypatch.setattr(imageio, "png_filter_rows", encoder_fails)
    with pytest.raises(MemoryError, match="no room"):
        write_png_rows(path, a.shape, np.uint8, [a[y:y + 4] for y in range(0, 40, 4)], chunk_rows=2)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    assert not [t for t in threading.enumerate() if t.name == "npespcn-png"]


def test_bands_put_together_are_the_upscaled_image():
    net = ESPCN.paper(2, seed=1)
    net.params["conv3.weight"][...] *= 100
    img = rand((23, 19, 3), seed=3)
    shape, dtype, bands = upscale_bands(img, 2, net, tile=7)
    parts = list(bands())
    assert [p.shape[0] for p in parts] == [14, 14, 14, 4] and shape == (46, 38, 3) and dtype == np.uint8
    assert np.concatenate(parts).tobytes() == upscale(img, 2, net).tobytes()


def test_large_images_are_not_refused_as_decompression_bombs(tmp_path, monkeypatch):
    Image.fromarray(rand((40, 50, 3))).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)        # make 2000 pixels "huge" for Pillow
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png")
    arr, _ = read_image(tmp_path / "big.png")
    assert arr.shape == (40, 50, 3)
    assert Image.MAX_IMAGE_PIXELS == 100                       # the limit is restored afterwards
