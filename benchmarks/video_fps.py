"""Frames per second of video super-resolution, 640x360 -> 1920x1080 (x3), end to end and in parts.

    python benchmarks/video_fps.py                    # both shipped x3 models, 3 alternating repeats
    python benchmarks/video_fps.py --frames 30 --repeats 5 --preset veryfast
    python benchmarks/video_fps.py --memory           # peak RSS of a 300-frame clip, in a fresh process

Needs PyAV (``pip install "npespcn[video]"``). The input clip is made first: a 1280x720 bicubic
enlargement of a Set14 photograph (``data/Set14``, else a synthetic chart), panned a few pixels per frame
inside a 640x360 window, H.264 at crf 18, 30 frames per second, with an AAC sound track (copied, as a user's
would be). For each model (the shipped ``espcn`` and ``espcn7`` at x3), three things are timed, the
models and the stages alternating every repeat:

* ``network``: :meth:`ESPCN.infer` on the frames' luma alone, each a whole image inside
  ``image_origin(0, 0)`` as :func:`npespcn.upscale` runs it (what the network costs);
* ``upscale``: :func:`npespcn.upscale` of the decoded RGB frames (the network, colour conversion,
  chroma bicubic), no codec;
* ``video``: :func:`npespcn.upscale_video` of the file (decode + upscale + encode, H.264 crf 18 at the
  preset given, yuv420p), written to a temporary folder.

Printed: median frames per second and the spread (min-max) over the repeats, and the PSNR (BT.601 Y, dB)
of the output's decoded frames against ``upscale`` of the input's decoded frames, which is the loss of
the encoder alone. One JSON line per case at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import npespcn
from npespcn.fast import image_origin
from npespcn.image.color import rgb_to_ycc_planes

ROOT = Path(__file__).resolve().parents[1]


def source_picture() -> np.ndarray:
    """A 1280x720 RGB picture: a Set14 photograph enlarged bicubic, else a synthetic chart."""
    folder = ROOT / "data" / "Set14"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if files:
        im = Image.open(max(files, key=lambda p: Image.open(p).size[0] * Image.open(p).size[1])).convert("RGB")
        return np.asarray(im.resize((1280, 720), Image.Resampling.BICUBIC))
    y, x = np.mgrid[0:720, 0:1280]
    rgb = np.stack([x / 1280, y / 720, 0.5 + 0.5 * np.sin(x / 9.0) * np.cos(y / 13.0)], -1)
    return (rgb * 255).astype(np.uint8)


def make_clip(path, frames: int, av) -> None:
    pic = source_picture()
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=30, options={"crf": "18", "preset": "medium"})
        v.width, v.height, v.pix_fmt = 640, 360, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        a.layout = "stereo"
        for i in range(frames):
            x0, y0 = (3 * i) % 640, (2 * i) % 360
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(pic[y0:y0 + 360, x0:x0 + 640]), format="rgb24")
            f = f.reformat(format="yuv420p", threads=1)
            f.pts = i
            for pk in v.encode(f):
                c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
        samples = int(44100 * frames / 30)
        tone = (0.1 * np.sin(np.arange(samples) * 0.03))[None].repeat(2, 0).astype(np.float32)
        for s0 in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, s0:s0 + 1024]), format="fltp",
                                            layout="stereo")
            af.sample_rate, af.pts = 44100, s0
            for pk in a.encode(af):
                c.mux(pk)
        for pk in a.encode():
            c.mux(pk)


def decode(path, av):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24", threads=1) for f in c.decode(video=0)]


def psnr_y(a, b) -> float:
    ya = rgb_to_ycc_planes(a.astype(np.float64))[0]
    yb = rgb_to_ycc_planes(b.astype(np.float64))[0]
    return float(10 * np.log10(255.0 ** 2 / np.mean((ya - yb) ** 2)))


def memory(args) -> None:
    """Peak RSS of upscale_video on a 300-frame clip, this process fresh (run through a subprocess)."""
    av = npespcn.extras.require("av", "the video benchmark")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.mp4"
        make_clip(src, 300, av)
        code = ("import json, resource, time, npespcn, sys\n"
                "t0 = time.perf_counter()\n"
                f"info = npespcn.upscale_video({str(src)!r}, {str(Path(d) / 'out.mp4')!r}, 3, 'espcn', "
                f"preset={args.preset!r})\n"
                "print(json.dumps({'frames': info['frames'], 'seconds': time.perf_counter() - t0,"
                " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(res.stdout.strip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--preset", default="medium", help="x264 preset of the output")
    p.add_argument("--models", nargs="+", default=["espcn", "espcn7"])
    p.add_argument("--memory", action="store_true", help="only the 300-frame peak-RSS measurement")
    args = p.parse_args()
    if args.memory:
        memory(args)
        return
    av = npespcn.extras.require("av", "the video benchmark")
    nets = {m: npespcn.nn.resolve_model(m, 3) for m in args.models}
    results = {(m, s): [] for m in args.models for s in ("network", "upscale", "video")}
    psnrs = {}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.mp4"
        make_clip(src, args.frames, av)
        frames = decode(src, av)
        lumas = [(rgb_to_ycc_planes(f.astype(np.float64))[0] / 255.0).astype(np.float32)[None, None] for f in frames]
        for m, net in nets.items():                       # warm-up: compile, caches
            with image_origin(0, 0):
                net.infer(lumas[0])
            npespcn.upscale(frames[0], 3, net)
        for rep in range(args.repeats):
            order = [(m, s) for m in args.models for s in ("network", "upscale", "video")]
            k = rep % len(order)
            for m, stage in order[k:] + order[:k]:
                net = nets[m]
                t0 = time.perf_counter()
                if stage == "network":
                    with image_origin(0, 0):
                        for y in lumas:
                            net.infer(y)
                elif stage == "upscale":
                    for f in frames:
                        npespcn.upscale(f, 3, net)
                else:
                    dst = Path(d) / f"out_{m}.mp4"
                    npespcn.upscale_video(src, dst, 3, net, preset=args.preset, overwrite=True)
                results[(m, stage)].append(args.frames / (time.perf_counter() - t0))
        for m, net in nets.items():
            out = decode(Path(d) / f"out_{m}.mp4", av)
            assert len(out) == len(frames)
            psnrs[m] = statistics.median(psnr_y(o, npespcn.upscale(f, 3, net)) for o, f in zip(out, frames))
    load = os.getloadavg()
    print(f"{args.frames} frames 640x360 -> 1920x1080, x264 crf 18 preset {args.preset}, {args.repeats} repeats, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| model | network alone | upscale() (no codec) | video end to end | PSNR output vs upscale (dB) |")
    print("|---|---:|---:|---:|---:|")
    lines = []
    for m in args.models:
        cells = []
        for stage in ("network", "upscale", "video"):
            v = results[(m, stage)]
            cells.append(f"{statistics.median(v):.2f} fps ({min(v):.2f}-{max(v):.2f})")
        print(f"| {m} | " + " | ".join(cells) + f" | {psnrs[m]:.2f} |")
        lines.append({"model": m, **{s: results[(m, s)] for s in ("network", "upscale", "video")},
                      "psnr_codec_db": psnrs[m], "preset": args.preset, "frames": args.frames,
                      "peak_rss_mb_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
