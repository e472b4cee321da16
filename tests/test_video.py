"""Video and animations: ``upscale_frames``, ``upscale_video`` (PyAV) and ``upscale_animation`` (Pillow).

The clips are made here with PyAV, a few frames of a few dozen pixels, so each test takes a fraction of a
second; tests needing PyAV skip when it is not installed (``pip install "npespcn[video]"``; CI installs it
through the README's Quick start line). Animated GIF, APNG and WebP need Pillow only. Every result is
checked against :func:`npespcn.upscale` of the decoded input frames, which the image tests check on their
own: the video path must add nothing but the codec's loss.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _clips import frames_for, make_clip, read_packets
from PIL import Image, features

import npespcn
from npespcn.atomic import TMP_PREFIX
from npespcn.cli.upscale import main as upscale_main
from npespcn.extras import MissingExtra
from npespcn.image.color import rgb_to_ycc_planes
from npespcn.inference import animation

ROOT = Path(__file__).resolve().parents[1]


def _av():
    return pytest.importorskip("av", reason='PyAV is not installed (pip install "npespcn[video]")')


def decode(path, fmt="rgb24", threads=1):
    """``(frames as arrays, timestamps in seconds, rotation, (width, height))`` of the first video stream."""
    av = _av()
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        arrays, times, rotation = [], [], 0
        for f in c.decode(v):
            arrays.append(f.to_ndarray(format=fmt, threads=threads))
            times.append(float(f.pts * f.time_base))
            rotation = f.rotation
        return arrays, times, rotation, (v.codec_context.width, v.codec_context.height)


def psnr_y(a, b):
    """PSNR (dB) of the BT.601 luma of two uint8 RGB images."""
    ya = rgb_to_ycc_planes(a.astype(np.float64))[0]
    yb = rgb_to_ycc_planes(b.astype(np.float64))[0]
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def no_leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(TMP_PREFIX)]


# ------------------------------------------------------------------------------------ upscale_frames
def test_upscale_frames_is_upscale_of_every_frame_in_order():
    frames = frames_for(5, 12, 16)
    got = list(npespcn.upscale_frames(iter(frames), scale=2))
    assert len(got) == 5
    for f, g in zip(frames, got):
        assert np.array_equal(g, npespcn.upscale(f, 2))


def test_upscale_frames_streams_and_stops_its_thread():
    made = []

    def endless():
        i = 0
        while True:
            made.append(i)
            yield np.full((10, 10, 3), i % 256, np.uint8)
            i += 1

    before = threading.active_count()
    stream = npespcn.upscale_frames(endless(), scale=2, prefetch=2)
    first = [next(stream) for _ in range(3)]
    for i, f in enumerate(first):
        assert np.array_equal(f, npespcn.upscale(np.full((10, 10, 3), i, np.uint8), 2))
    assert len(made) <= 3 + 2 + 2                 # read ahead by the queue and one in hand, not more
    stream.close()
    for _ in range(100):
        if threading.active_count() <= before:
            break
        time.sleep(0.02)
    assert threading.active_count() <= before


def test_upscale_frames_raises_a_bad_frame_where_it_is():
    def frames():
        yield np.zeros((10, 10, 3), np.uint8)
        yield np.zeros((10, 10, 2), np.uint8)

    stream = npespcn.upscale_frames(frames(), scale=2)
    assert next(stream).shape == (20, 20, 3)
    with pytest.raises(ValueError, match="channels"):
        next(stream)
    with pytest.raises(ValueError, match="scale"):
        npespcn.upscale_frames([], scale=0)


def test_an_error_of_the_source_reaches_the_caller():
    def frames():
        yield np.zeros((10, 10), np.uint8)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(npespcn.upscale_frames(frames(), scale=2))


# ------------------------------------------------------------------------------------ without PyAV
def test_without_pyav_a_video_is_one_line_saying_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)          # import av now fails as if not installed
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00" * 64)
    with pytest.raises(MissingExtra, match=r'pip install "npespcn\[video\]"'):
        npespcn.upscale_video(src, tmp_path / "out.mp4")
    assert upscale_main([str(src), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any('PyAV is not installed (needed for video files); install it with: pip install "npespcn[video]"'
               in line for line in err)
    assert not (tmp_path / "clip_x3.mp4").exists()
    # animations need no PyAV
    gif = tmp_path / "a.gif"
    imgs = [Image.fromarray(f) for f in frames_for(2, 10, 12)]
    imgs[0].save(gif, save_all=True, append_images=imgs[1:], duration=[30, 70])
    assert npespcn.upscale_animation(gif, tmp_path / "a_x2.gif", scale=2)["frames"] == 2


# ------------------------------------------------------------------------------------ video files
def test_video_keeps_frames_timestamps_rotation_audio_and_subtitles(tmp_path):
    _av()
    frames = frames_for(6, 20, 28)
    pts = [0, 40, 80, 200, 240, 400]                          # variable frame rate
    src, dst = tmp_path / "clip.mkv", tmp_path / "clip_x3.mkv"
    packets = make_clip(src, frames, pts, audio=2, subtitles=True, rotation=90)
    decoded_in, times_in, _, _ = decode(src)
    seen = []
    info = npespcn.upscale_video(src, dst, scale=3, pix_fmt="yuv444p", crf=0,
                                 progress=lambda done, total: seen.append((done, total)))
    assert info["frames"] == 6 and (info["width"], info["height"]) == (84, 60) and not info["padded"]
    out, times, rotation, size = decode(dst)
    assert size == (84, 60) and len(out) == 6
    assert times == pytest.approx(times_in) and times == pytest.approx([p / 1000 for p in pts])
    assert rotation == 90
    assert read_packets(dst) == packets                       # copied, not re-encoded: the same bytes
    assert len(packets[("audio", 0)]) > 0 and packets[("audio", 0)] != packets[("audio", 1)]
    assert packets[("subtitle", 0)] == [b"a line of subtitle"]
    for a, b in zip(decoded_in, out):                          # lossless 4:4:4: only RGB<->YUV rounding
        assert psnr_y(b, npespcn.upscale(a, 3)) > 40
    assert [d for d, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert no_leftovers(tmp_path) == []


def test_default_is_h264_yuv420p_beside_the_input_through_the_cli(tmp_path, capsys):
    av = _av()
    src = tmp_path / "clip.mp4"
    frames = frames_for(4, 16, 24)
    make_clip(src, frames)
    assert upscale_main([str(src)]) == 0
    err = capsys.readouterr().err
    assert "frames/s" in err and "4/4" in err and "ETA" in err
    dst = tmp_path / "clip_x3.mp4"
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and v.codec_context.format.name == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (72, 48) and not c.streams.audio
        assert v.average_rate == 25
    out, _, _, _ = decode(dst)
    decoded_in = decode(src)[0]
    assert len(out) == 4
    for a, b in zip(decoded_in, out):                          # crf 18, 4:2:0: the codec's loss only
        assert psnr_y(b, npespcn.upscale(a, 3)) > 30
    assert upscale_main([str(src), "-q"]) == 1                 # exists: not replaced
    assert upscale_main([str(src), "-q", "--overwrite", "--codec", "mpeg4", "-o", str(tmp_path / "m.avi")]) == 0
    with av.open(str(tmp_path / "m.avi")) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"


def test_codec_options_are_checked(tmp_path, capsys):
    _av()
    src = tmp_path / "clip.mp4"
    make_clip(src, frames_for(2, 16, 16))
    with pytest.raises(ValueError, match="no crf option"):
        npespcn.upscale_video(src, tmp_path / "o.avi", codec="mpeg4", crf=20)
    with pytest.raises(ValueError, match="unknown video encoder"):
        npespcn.upscale_video(src, tmp_path / "o.mp4", codec="no-such-codec")
    with pytest.raises(ValueError, match="unknown pixel format"):
        npespcn.upscale_video(src, tmp_path / "o.mp4", pix_fmt="yuv999")
    with pytest.raises(ValueError, match="unsupported video suffix"):
        npespcn.upscale_video(src, tmp_path / "o.xyz")
    assert upscale_main([str(src), "--preset", "nonsense", "-q"]) == 1
    assert "clip.mp4: skipped" in capsys.readouterr().err
    assert not (tmp_path / "clip_x3.mp4").exists() and no_leftovers(tmp_path) == []


def test_odd_sizes_are_padded_to_even_for_420_and_kept_for_444(tmp_path):
    _av()
    src = tmp_path / "odd.mkv"
    make_clip(src, frames_for(3, 13, 21), pix_fmt="yuv444p")   # 21x13 -> 63x39
    info = npespcn.upscale_video(src, tmp_path / "a.mkv", scale=3)
    assert (info["width"], info["height"], info["padded"]) == (64, 40, True)
    out = decode(tmp_path / "a.mkv")[0]
    assert out[0].shape == (40, 64, 3)
    ref = npespcn.upscale(decode(src)[0][0], 3)
    assert psnr_y(out[0][:39, :63], ref) > 30
    assert np.abs(out[0][39].astype(int) - out[0][38].astype(int)).mean() < 6   # the repeated row
    info = npespcn.upscale_video(src, tmp_path / "b.mkv", scale=3, pix_fmt="yuv444p")
    assert (info["width"], info["height"], info["padded"]) == (63, 39, False)
    assert decode(tmp_path / "b.mkv")[0][0].shape == (39, 63, 3)


def test_ten_bit_input_is_upscaled_in_16_bits(tmp_path):
    _av()
    src = tmp_path / "ten.mkv"
    make_clip(src, frames_for(6, 16, 20), pix_fmt="yuv420p10le", codec="ffv1")
    info = npespcn.upscale_video(src, tmp_path / "out.mkv", scale=2, pix_fmt="yuv444p10le", codec="ffv1")  # lossless
    assert info["frames"] == 6 and info["pix_fmt"] == "yuv444p10le"
    out = decode(tmp_path / "out.mkv", fmt="rgb48le")[0]
    ref = [npespcn.upscale(f, 2) for f in decode(src, fmt="rgb48le")[0]]
    for a, b in zip(out, ref):
        assert a.dtype == b.dtype == np.uint16 and a.shape == b.shape == (32, 40, 3)
        mse = np.mean(((a.astype(np.float64) - b) / 257) ** 2)      # on the 8-bit scale
        assert 10 * np.log10(255 ** 2 / mse) > 45


def test_bad_inputs_are_one_clear_error_and_leave_nothing(tmp_path):
    av = _av()
    dst = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="no such file"):
        npespcn.upscale_video(tmp_path / "missing.mp4", dst)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(ValueError, match="not a readable video"):
        npespcn.upscale_video(text, dst)
    # audio only
    sound = tmp_path / "sound.mka"
    with av.open(str(sound), "w") as c:
        a = c.add_stream("aac", rate=8000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for pk in list(a.encode(af)) + list(a.encode()):
            c.mux(pk)
    with pytest.raises(ValueError, match="no video stream"):
        npespcn.upscale_video(sound, tmp_path / "out.mkv")
    # a video stream with no frame (and some sound, so the file is not empty)
    empty = tmp_path / "empty.mkv"
    with av.open(str(empty), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 16, 16, "yuv420p"
        a = c.add_stream("aac", rate=8000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        c.start_encoding()
        for pk in list(a.encode(af)) + list(a.encode()):
            c.mux(pk)
    with pytest.raises(ValueError, match="empty.mkv: the video stream holds no frame"):
        npespcn.upscale_video(empty, tmp_path / "out.mkv")
    # truncated: the second half cut off
    good = tmp_path / "good.mp4"
    make_clip(good, frames_for(8, 32, 32))
    for cut in (0.5, 0.9):
        bad = tmp_path / f"cut{cut}.mp4"
        data = good.read_bytes()
        bad.write_bytes(data[:int(len(data) * cut)])
        with pytest.raises(ValueError, match=r"cut.*(not a readable video|truncated|corrupt|no video stream)"):
            npespcn.upscale_video(bad, dst)
    assert not dst.exists() and not (tmp_path / "out.mkv").exists() and no_leftovers(tmp_path) == []


def test_a_truncated_stream_without_an_index_is_refused_or_kept_whole(tmp_path):
    """Matroska written front to back: cut, the frames before the cut decode; the output must be those
    frames, each the upscale of its input, never a half-written file."""
    _av()
    good = tmp_path / "good.mkv"
    make_clip(good, frames_for(10, 32, 32))
    bad = tmp_path / "cut.mkv"
    data = good.read_bytes()
    bad.write_bytes(data[:int(len(data) * 0.6)])
    try:
        info = npespcn.upscale_video(bad, tmp_path / "out.mkv", scale=2, pix_fmt="yuv444p", crf=0)
    except ValueError as e:
        assert "cut.mkv" in str(e)
        assert not (tmp_path / "out.mkv").exists()
        return
    src_frames = decode(bad)[0]
    out = decode(tmp_path / "out.mkv")[0]
    assert info["frames"] == len(src_frames) == len(out) and 0 < len(out) < 10
    for a, b in zip(src_frames, out):
        assert psnr_y(b, npespcn.upscale(a, 2)) > 40


def test_interrupted_run_leaves_nothing_at_the_output(tmp_path):
    _av()
    src = tmp_path / "clip.mp4"
    make_clip(src, frames_for(6, 16, 16))
    dst = tmp_path / "out.mp4"

    def interrupt(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        npespcn.upscale_video(src, dst, scale=2, progress=interrupt)
    assert not dst.exists() and no_leftovers(tmp_path) == []
    dst.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        npespcn.upscale_video(src, dst, scale=2)
    assert dst.read_bytes() == b"precious"


def test_sigkill_leaves_no_file_at_the_output(tmp_path):
    _av()
    src = tmp_path / "clip.mp4"
    make_clip(src, frames_for(40, 48, 64))
    dst = tmp_path / "out.mp4"
    code = textwrap.dedent(f"""
        import sys, npespcn
        def slow(done, total):
            if done == 1:
                print("started", flush=True)
            import time; time.sleep(0.2)
        npespcn.upscale_video({str(src)!r}, {str(dst)!r}, scale=2, progress=slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "started"
        assert [n for n in no_leftovers(tmp_path)]               # a temporary file is being written
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not dst.exists()
    npespcn.upscale_video(src, tmp_path / "again.mp4", scale=2)     # the next write cleans the dead one's file
    assert no_leftovers(tmp_path) == [] and not dst.exists()


def test_ctrl_c_in_the_command_line_leaves_nothing(tmp_path):
    _av()
    src = tmp_path / "clip.mp4"
    make_clip(src, frames_for(60, 48, 64))
    # A shell starts a background job with SIGINT ignored, and a child inherits that; a user's Ctrl-C
    # reaches a foreground process, so the child restores Python's own handler first.
    code = textwrap.dedent(f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import npespcn.inference.video as video
        from npespcn.cli.upscale import main
        slow_upscale = video.upscale
        def upscale(*a, **k):
            print("frame", flush=True)
            time.sleep(0.1)
            return slow_upscale(*a, **k)
        video.upscale = upscale
        sys.exit(main([{str(src)!r}, "--scale", "2"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(3):
            assert proc.stdout.readline().strip() == "frame"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "clip_x2.mp4").exists() and no_leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------ animations
def _animation(path, frames, durations, loop=None, **extra):
    imgs = [Image.fromarray(f) for f in frames]
    options = {"save_all": True, "append_images": imgs[1:], "duration": durations, **extra}
    if loop is not None:
        options["loop"] = loop
    imgs[0].save(path, **options)


def _read(path):
    im = Image.open(path)
    frames, durations = [], []
    for i in range(im.n_frames):
        im.seek(i)
        im.load()
        frames.append(np.array(im.convert("RGBA")))
        durations.append(round(float(im.info.get("duration") or 0)))
    return frames, durations, im.info.get("loop")


def _transparent_frames(n, h, w):
    out = []
    for i, rgb in enumerate(frames_for(n, h, w)):
        a = np.zeros((h, w), np.uint8)
        a[2:h - 2, 2 + i:w // 2 + i] = 255
        out.append(np.dstack([rgb, a]))
    return out


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_animations_keep_frames_durations_loop_and_transparency(tmp_path, suffix):
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("Pillow was built without WebP")
    frames = _transparent_frames(3, 14, 18)
    src, dst = tmp_path / f"anim{suffix}", tmp_path / f"anim_x2{suffix}"
    _animation(src, frames, [40, 120, 250], loop=3, **({"lossless": True} if suffix == ".webp" else {}))
    inputs, _, _ = _read(src)
    info = npespcn.upscale_animation(src, dst, scale=2)
    out, durations, loop = _read(dst)
    assert len(out) == 3 and durations == [40, 120, 250] and loop == 3 and info["alpha"]
    for a, b in zip(inputs, out):
        ref = npespcn.upscale(a, 2)
        assert b.shape == ref.shape == (28, 36, 4)
        shown = ref[..., 3] >= 128
        assert np.array_equal(b[..., 3] >= 128, shown)
        if suffix == ".png":
            assert np.array_equal(b, ref)                          # APNG is lossless
        else:                                                     # a palette, or lossy WebP: close colours
            diff = np.abs(b[..., :3].astype(int) - ref[..., :3].astype(int))[shown]
            assert diff.mean() < 4
    assert no_leftovers(tmp_path) == []


def test_the_cli_upscales_an_animated_gif_beside_it_and_converts(tmp_path):
    frames = frames_for(3, 10, 12)
    src = tmp_path / "spin.gif"
    _animation(src, frames, [50, 60, 70])
    assert upscale_main([str(src), "--scale", "2", "-q"]) == 0
    out, durations, loop = _read(tmp_path / "spin_x2.gif")
    assert len(out) == 3 and durations == [50, 60, 70] and loop is None       # no loop: plays once, as before
    assert out[0].shape == (20, 24, 4) and (out[0][..., 3] == 255).all()
    assert upscale_main([str(src), "--scale", "2", "-q", "-o", str(tmp_path / "spin.png")]) == 0
    apng, durations, _ = _read(tmp_path / "spin.png")
    assert len(apng) == 3 and durations == [50, 60, 70]
    assert upscale_main([str(src), "--scale", "2", "-q", "-o", str(tmp_path / "spin.jpg")]) == 1


def test_an_animation_too_large_to_hold_is_refused_before_decoding(tmp_path, monkeypatch):
    src = tmp_path / "a.gif"
    _animation(src, frames_for(3, 10, 10), [10, 10, 10])
    monkeypatch.setattr(animation, "ANIMATION_BUDGET", 3 * 30 * 30 * 4 - 1)
    with pytest.raises(ValueError, match="would take"):
        npespcn.upscale_animation(src, tmp_path / "b.gif", scale=3)
    assert not (tmp_path / "b.gif").exists()


# ------------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_a_300_frame_360p_clip_stays_below_500_mb(tmp_path):
    """x3 of 300 frames of 640x360 (to 1920x1080) in a fresh process, the default encoder settings (H.264,
    preset medium): peak RSS below 500 MB."""
    av = _av()
    src = tmp_path / "long.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 640, 360, "yuv420p"
        base = frames_for(1, 360, 640)[0]
        for i in range(300):
            f = av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24").reformat(format="yuv420p")
            f.pts = i
            for pk in v.encode(f):
                c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
    code = textwrap.dedent(f"""
        import resource, json, npespcn
        info = npespcn.upscale_video({str(src)!r}, {str(tmp_path / 'out.mp4')!r}, scale=3)   # the defaults
        print(json.dumps({{"frames": info["frames"],
                          "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["frames"] == 300
    assert got["peak_mb"] < 500, got


def test_a_bad_video_in_a_batch_does_not_stop_the_others(tmp_path, capsys):
    _av()
    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    make_clip(good, frames_for(3, 16, 16))
    bad.write_bytes(good.read_bytes()[:200])
    out = tmp_path / "big"
    assert upscale_main([str(bad), str(good), "--out-dir", str(out), "--scale", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert "bad.mp4: skipped" in err and "1 of 2 file(s) failed" in err
    assert (out / "good.mp4").is_file() and not (out / "bad.mp4").exists() and no_leftovers(out) == []


def test_the_library_batch_routes_videos_and_animations_with_their_options(tmp_path):
    """``upscale_files`` (the batch behind the command line) sends a video to ``upscale_video`` with the
    encoder's options, an animated GIF to ``upscale_animation``, a still image to ``upscale``, and reports
    each video's and animation's frames to ``frame_progress``."""
    av = _av()
    clip, gif, still = tmp_path / "clip.mkv", tmp_path / "spin.gif", tmp_path / "still.png"
    make_clip(clip, frames_for(4, 16, 20), pix_fmt="yuv444p")
    _animation(gif, frames_for(3, 10, 12), [50, 60, 70])
    Image.fromarray(frames_for(1, 9, 11)[0]).save(still)
    frames = {}
    records = npespcn.upscale_files([clip, gif, still], tmp_path / "big", scale=2, pix_fmt="yuv444p", crf=0,
                                    preset="veryfast",
                                    frame_progress=lambda rec, done, total: frames.setdefault(rec["src"].name,
                                                                                              []).append(done))
    assert [r["status"] for r in records] == ["written"] * 3, records
    assert [tuple(r["shape"][:2]) for r in records] == [(32, 40), (20, 24), (18, 22)]
    assert frames == {"clip.mkv": [1, 2, 3, 4], "spin.gif": [1, 2, 3]}           # no frames for a still image
    with av.open(str(tmp_path / "big" / "clip.mkv")) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv444p"
    for a, b in zip(decode(clip)[0], decode(tmp_path / "big" / "clip.mkv")[0]):  # crf 0, 4:4:4: rounding only
        assert psnr_y(b, npespcn.upscale(a, 2)) > 40
    out, durations, _ = _read(tmp_path / "big" / "spin.gif")
    assert len(out) == 3 and durations == [50, 60, 70]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "big" / "still.png")), npespcn.upscale(np.asarray(
        Image.open(still)), 2))
    # -o may name a video or animation suffix, which format_for refuses for a still image; an unknown one is refused
    one = npespcn.upscale_files([clip], out=tmp_path / "one.mp4", scale=2, codec="mpeg4")
    assert one[0]["status"] == "written"
    with av.open(str(tmp_path / "one.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
    assert npespcn.upscale_files([gif], out=tmp_path / "one.webp", scale=2)[0]["status"] == "written"
    with pytest.raises(ValueError):
        npespcn.upscale_files([clip], out=tmp_path / "one.xyz", scale=2)
    bad = npespcn.upscale_files([clip], out=tmp_path / "two.mp4", scale=2, codec="no-such-codec")
    assert bad[0]["status"] == "failed" and "no-such-codec" in bad[0]["message"] and not (tmp_path / "two.mp4").exists()
    assert no_leftovers(tmp_path) == [] and no_leftovers(tmp_path / "big") == []


def test_an_animation_above_max_pixels_is_refused_from_its_header(tmp_path):
    src = tmp_path / "a.gif"
    _animation(src, frames_for(2, 10, 12), [10, 10])
    with pytest.raises(ValueError, match="more than the limit"):
        npespcn.upscale_animation(src, tmp_path / "b.gif", scale=2, max_pixels=100)
    with pytest.raises(ValueError, match="not a readable animation|cannot identify"):
        (tmp_path / "c.gif").write_bytes(b"GIF89a" + b"\x00" * 5)
        npespcn.upscale_animation(tmp_path / "c.gif", tmp_path / "d.gif", scale=2)
    assert not (tmp_path / "b.gif").exists() and not (tmp_path / "d.gif").exists()


def test_the_colour_matrix_of_the_input_is_used_and_tagged(tmp_path):
    av = _av()
    frames = frames_for(3, 16, 20)
    src = tmp_path / "hd.mkv"
    make_clip(src, frames, pix_fmt="yuv444p", colorspace=1)           # BT.709
    npespcn.upscale_video(src, tmp_path / "out.mkv", scale=2, pix_fmt="yuv444p", crf=0)
    with av.open(str(tmp_path / "out.mkv")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc) == (1, 1, 1)
    decoded_in = decode(src)
    for a, b in zip(decoded_in[0], decode(tmp_path / "out.mkv")[0]):
        assert psnr_y(b, npespcn.upscale(a, 2)) > 40
    # read with the wrong matrix (BT.601), the input's colours are visibly different: the tag matters
    with av.open(str(src)) as c:
        wrong = next(c.decode(video=0)).to_ndarray(format="rgb24", src_colorspace="itu601", threads=1)
    assert np.abs(wrong.astype(int) - decoded_in[0][0].astype(int)).max() >= 3
