"""Example 9: video is the image pipeline on every frame, streamed.

ESPCN has no notion of time: a clip is upscaled frame by frame, each frame exactly as an image
(:func:`npespcn.upscale`: Y through the network, chroma bicubic). What video adds is the stream:
:func:`npespcn.upscale_frames` takes any iterable of frames and yields the results in order, reading
ahead on another thread (the decoder's work overlaps the network's), so only a few frames exist at any
moment however long the clip is::

    frames (an iterator) --[prefetch queue]--> upscale(frame) --> yielded, one at a time

This script streams a moving synthetic clip through it and checks three claims:

1. every result is bitwise ``upscale(frame)`` and in order;
2. the number of frames produced but not yet consumed never exceeds the read-ahead (plus the one in the
   producer's hand and the one being upscaled), whatever the clip's length;
3. with PyAV installed (``pip install "npespcn[video]"``), a clip written to a file, upscaled by
   :func:`npespcn.upscale_video` and decoded again differs from ``upscale`` of its decoded frames only by
   the codec's loss (PSNR of Y, lossless 4:4:4 H.264 here, so only rounding in the YUV <-> RGB conversions).

Picture: ``09_frames.png``, three LR frames (enlarged by repeating pixels) above their upscaled frames.

Run: ``python examples/09_video.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import importlib.util
import tempfile
import threading
from pathlib import Path

import _common
import _draw
import numpy as np
from PIL import Image

import npespcn
from npespcn.image.color import rgb_to_y


def moving_clip(n: int, h: int, w: int, alive: list, lock: threading.Lock):
    """``n`` RGB frames of a chart sliding right by 2 pixels a frame; counts in ``alive[0]`` the frames
    handed out and not yet consumed (the consumer subtracts)."""
    chart = _common.synthetic_chart(max(h, w) + 2 * n)
    for i in range(n):
        with lock:
            alive[0] += 1
            alive[1] = max(alive[1], alive[0])
        yield np.ascontiguousarray(chart[:h, 2 * i:2 * i + w])


def psnr(a, b) -> float:
    mse = float(np.mean((rgb_to_y(a).astype(np.float64) - rgb_to_y(b).astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def through_a_file(frames, r: int, net, folder: Path) -> dict:
    """Write ``frames`` as a lossless H.264 4:4:4 clip, upscale the file, decode both; PSNR per frame."""
    av = npespcn.extras.require("av", "the video-file part of example 9")

    src, dst = folder / "clip.mkv", folder / "clip_x3.mkv"
    h, w = frames[0].shape[:2]
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"qp": "0"})
        v.width, v.height, v.pix_fmt = w, h, "yuv444p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv444p", threads=1)
            vf.pts = i
            for pk in v.encode(vf):
                c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
    info = npespcn.upscale_video(src, dst, r, net, pix_fmt="yuv444p", crf=0)

    def decoded(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24", threads=1) for f in c.decode(video=0)]

    ins, outs = decoded(src), decoded(dst)
    return {"frames_written": info["frames"], "frames_decoded": len(outs),
            "psnr_db": [psnr(o, npespcn.upscale(i, r, net)) for i, o in zip(ins, outs)]}


def main(argv=None, out_dir=None, fast=False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    r, prefetch = 3, 2
    n, h, w = (12, 24, 32) if fast else (60, 90, 160)
    net = npespcn.nn.resolve_model("espcn", r)
    alive, lock = [0, 0], threading.Lock()
    frames_in, results = [], []
    print(f"1. streaming {n} frames of {w}x{h} through upscale_frames (x{r}, read-ahead {prefetch})")
    source = moving_clip(n, h, w, alive, lock)
    for big in npespcn.upscale_frames(source, r, net, prefetch=prefetch):
        with lock:
            alive[0] -= 1
        results.append(big)
    # the frames again, to compare (the same generator, nothing counted this time)
    frames_in = list(moving_clip(n, h, w, [0, 0], threading.Lock()))
    exact = sum(np.array_equal(b, npespcn.upscale(f, r, net)) for f, b in zip(frames_in, results))
    print(f"   {exact} of {n} results are bitwise upscale(frame), in order")
    assert exact == n
    bound = prefetch + 2
    print(f"2. at most {alive[1]} frames were alive at once (read-ahead {prefetch} + 2 = {bound}), for {n} frames")
    assert alive[1] <= bound
    file_part = None
    if importlib.util.find_spec("av") is None:
        print("3. PyAV is not installed: the video-file part is skipped (pip install \"npespcn[video]\")")
    else:
        with tempfile.TemporaryDirectory() as d:
            file_part = through_a_file(frames_in[:6], r, net, Path(d))
        worst = min(file_part["psnr_db"])
        print(f"3. through a file: {file_part['frames_decoded']} frames back, PSNR of Y against upscale of the "
              f"decoded frames >= {worst:.1f} dB (codec rounding only)")
        assert file_part["frames_decoded"] == 6 and worst > 40
    picks = [0, n // 2, n - 1]
    top = [Image.fromarray(frames_in[i]).resize((r * w, r * h), Image.Resampling.NEAREST) for i in picks]
    bottom = [Image.fromarray(results[i]) for i in picks]
    canvas = Image.new("RGB", (top[0].width * 3 + 16, top[0].height * 2 + 8), "white")
    for k in range(3):
        canvas.paste(top[k], (k * (top[0].width + 8), 0))
        canvas.paste(bottom[k], (k * (top[0].width + 8), top[0].height + 8))
    f = _draw.save_png(canvas, out / "09_frames.png")
    print(f"wrote {f}")
    return {"frames": n, "exact": exact, "max_alive": alive[1], "prefetch": prefetch, "scale": r,
            "shape_in": frames_in[0].shape, "shape_out": results[0].shape, "file": file_part, "files": [str(f)]}


if __name__ == "__main__":
    _common.run(main)
