"""``python -m npespcn.upscale``: formats, folders and globs, overwrite protection, bad files, the demo.

Most tests call :func:`npespcn.cli.upscale.main` in-process (``npespcn.upscale`` is the function, so the
module file ``npespcn/upscale.py`` is never imported); two run the real ``python -m`` in a subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npespcn
from npespcn import ESPCN
from npespcn.cli.upscale import main
from npespcn.evaluation.chart import test_chart as draw_chart
from npespcn.inference.pipeline import upscale
from npespcn.nn import pretrained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    m = ESPCN.paper(2, seed=3)
    m.params["conv3.weight"][...] *= 200
    m.params["conv3.bias"][...] = 0.4
    path = tmp_path_factory.mktemp("model") / "x2.npz"
    m.save(path)
    return path, m


def write(path, arr, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


def img(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_png_bmp_tiff_jpeg_keep_their_format(tmp_path, model_file, capsys):
    path, m = model_file
    a = img((20, 24, 3))
    files = [write(tmp_path / "a.png", a), write(tmp_path / "b.bmp", a), write(tmp_path / "c.tif", a),
             write(tmp_path / "d.jpg", a, quality=95)]
    assert main([str(f) for f in files] + ["--model", str(path)]) == 0
    err = capsys.readouterr().err
    assert "[4/4]" in err
    for f, fmt in zip(files, ["PNG", "BMP", "TIFF", "JPEG"]):
        out = f.with_name(f"{f.stem}_x2{f.suffix}")
        with Image.open(out) as im:
            assert im.format == fmt and im.size == (48, 40)
            got = np.asarray(im)
        if fmt != "JPEG":                                  # lossless formats: exactly upscale's pixels
            np.testing.assert_array_equal(got, upscale(a, 2, m))


def test_jpeg_quality_option(tmp_path, model_file):
    path, _ = model_file
    src = write(tmp_path / "p.jpg", img((40, 40, 3), 1))
    assert main([str(src), "-o", str(tmp_path / "lo.jpg"), "--quality", "10", "--model", str(path)]) == 0
    assert main([str(src), "-o", str(tmp_path / "hi.jpg"), "--quality", "98", "--model", str(path)]) == 0
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_png_compression_option_changes_the_size_not_the_pixels(tmp_path, model_file):
    path, _ = model_file
    smooth = np.add.outer(np.arange(48), np.arange(48)).astype(np.uint8)
    src = write(tmp_path / "p.png", np.dstack([smooth, smooth // 2, 255 - smooth]))
    for level in ("0", "9"):
        assert main([str(src), "-o", str(tmp_path / f"l{level}.png"), "--png-compression", level,
                     "--model", str(path)]) == 0
    default = tmp_path / "default.png"
    assert main([str(src), "-o", str(default), "--model", str(path)]) == 0
    sizes = [(tmp_path / n).stat().st_size for n in ("l0.png", "default.png", "l9.png")]
    assert sizes[0] > sizes[1] >= sizes[2]                   # level 0 stores the filtered rows as they are
    pixels = [np.asarray(Image.open(tmp_path / n)) for n in ("l0.png", "default.png", "l9.png")]
    np.testing.assert_array_equal(pixels[0], pixels[1])
    np.testing.assert_array_equal(pixels[0], pixels[2])


def test_grey_rgba_and_16_bit_pngs(tmp_path, model_file):
    path, m = model_file
    grey = img((15, 16), 2)
    rgba = img((15, 16, 4), 3)
    g16 = (img((15, 16), 4).astype(np.uint16) * 257)
    for name, arr in (("g.png", grey), ("a.png", rgba), ("w.png", g16)):
        write(tmp_path / name, arr)
    assert main([str(tmp_path), "--out-dir", str(tmp_path / "out" / "deep"), "--model", str(path), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "deep").iterdir()) == ["a.png", "g.png", "w.png"]
    assert main([str(tmp_path), "--out-dir", str(tmp_path / "out"), "--model", str(path), "-q"]) == 0
    for name, arr in (("g.png", grey), ("a.png", rgba), ("w.png", g16)):
        with Image.open(tmp_path / "out" / name) as im:
            got = np.asarray(im)
        np.testing.assert_array_equal(got, upscale(arr, 2, m))


def test_globs_and_directories(tmp_path, model_file):
    path, _ = model_file
    (tmp_path / "in").mkdir()
    for i in range(3):
        write(tmp_path / "in" / f"f{i}.png", img((10, 12, 3), i))
    (tmp_path / "in" / "notes.txt").write_text("not an image: folders take image suffixes only")
    (tmp_path / "out").mkdir()
    assert main([str(tmp_path / "in" / "f[01].png"), "--out-dir", str(tmp_path / "out"),
                 "--model", str(path), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png"]
    assert main([str(tmp_path / "in"), "--out-dir", str(tmp_path / "out"), "--model", str(path), "-q",
                 "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert main([str(tmp_path / "in" / "zzz*.png"), "--model", str(path)]) == 2


def test_refuses_to_overwrite_without_the_flag(tmp_path, model_file, capsys):
    path, m = model_file
    a = img((12, 12, 3), 5)
    src = write(tmp_path / "a.png", a)
    dst = tmp_path / "a_x2.png"
    dst.write_bytes(b"precious")
    assert main([str(src), "--model", str(path)]) == 1
    assert dst.read_bytes() == b"precious"
    assert "--overwrite" in capsys.readouterr().err
    assert main([str(src), "--model", str(path), "--overwrite"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(dst)), upscale(a, 2, m))


def test_a_corrupt_file_is_reported_and_the_others_are_written(tmp_path, model_file, capsys):
    path, _ = model_file
    good1 = write(tmp_path / "a.png", img((10, 10, 3), 6))
    bad = tmp_path / "b.png"
    bad.write_bytes(good1.read_bytes()[:60])             # truncated PNG
    text = tmp_path / "c.jpg"
    text.write_text("hello")
    good2 = write(tmp_path / "d.png", img((10, 10, 3), 7))
    rc = main([str(good1), str(bad), str(text), str(tmp_path / "missing.png"), str(good2),
               "--model", str(path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "b.png: skipped" in err and "c.jpg: skipped" in err and "missing.png: skipped" in err
    assert "3 of 5 file(s) failed" in err
    assert (tmp_path / "a_x2.png").is_file() and (tmp_path / "d_x2.png").is_file()
    assert not (tmp_path / "b_x2.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]       # no temporary leftovers


@pytest.mark.parametrize("args,match", [
    (["--scale", "0"], "positive integer"),
    (["--scale", "5"], "no shipped espcn model at scale 5"),
    (["--model", "nope.npz"], "neither a shipped model name"),
    (["-o", "missing-dir/out.png"], "does not exist"),
    (["-o", "out.xyz"], "unsupported output suffix"),
    (["--tile", "0"], "--tile must be a positive integer"),
    (["--quality", "0"], "quality"),
    (["--png-compression", "10"], "--png-compression must be in 0..9"),
])
def test_usage_errors_are_one_line(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.png", img((10, 10, 3)))
    assert main(["a.png"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert match in err


def test_scale_contradicting_a_model_file(tmp_path, model_file, capsys):
    path, _ = model_file
    write(tmp_path / "a.png", img((10, 10, 3)))
    assert main([str(tmp_path / "a.png"), "--model", str(path), "--scale", "3"]) == 2
    assert "upscales x2 but scale=3" in capsys.readouterr().err


def test_demo_writes_a_side_by_side_and_prints_both_psnrs(tmp_path, monkeypatch, capsys):
    m = ESPCN(2, 1, ((5, 8), (3, 4)), seed=1)                # small: the demo takes any model
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    m.save(tmp_path / "espcn_x2.npz")
    out = tmp_path / "demo.png"
    assert main(["--demo", "--scale", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bicubic" in text and "ESPCN" in text and text.count("dB") == 2
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width == 3 * 480 and im.height > 360


def test_demo_without_shipped_weights_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    assert main(["--demo", "--out", str(tmp_path / "demo.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "espcn_x3.npz" in err
    assert not (tmp_path / "demo.png").exists()


def test_chart_is_deterministic_and_has_the_three_parts():
    a, b = draw_chart(), draw_chart()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (360, 480, 3) and a.dtype == np.uint8
    zone = a[:240, :240, 0].astype(float)
    assert zone.std() > 80                                  # full-contrast rings
    assert (a[240:, :200] < 100).any()                      # dark text on white
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 100


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "npespcn.upscale"] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_dash_m_runs_and_errors_without_traceback(tmp_path, model_file):
    path, m = model_file
    a = img((9, 11, 3), 8)
    write(tmp_path / "in.png", a)
    ok = _run(["in.png", "-o", "out.png", "--model", str(path)], tmp_path)
    assert ok.returncode == 0, ok.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), upscale(a, 2, m))
    bad = _run(["in.png", "--scale", "1.5"], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "1.5" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_package_attribute_survives_the_cli(tmp_path, model_file):
    path, _ = model_file
    write(tmp_path / "a.png", img((10, 10, 3)))
    main([str(tmp_path / "a.png"), "--model", str(path), "-q"])
    assert npespcn.upscale is upscale and callable(npespcn.upscale)
