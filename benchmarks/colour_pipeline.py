"""What the colour pipeline adds to the network: ``npespcn.upscale`` of a 640x360 RGB uint8 frame (x3, to
1920x1080) against :meth:`ESPCN.infer` of its luma alone, with the numba colour kernels and with their
NumPy references (``npespcn.inference.pipeline.FAST_COLOUR``; the same bits, checked here).

    python benchmarks/colour_pipeline.py                         # in-process, 9 alternating repeats
    python benchmarks/colour_pipeline.py --repeats 15 --baseline /path/to/older/checkout

Three measurements, all on the shipped x3 ``espcn`` model:

* ``in-process``: ``infer``, ``upscale`` (references) and ``upscale`` (numba) of one frame, and the two
  ``upscale`` again with the network's output computed once beforehand (``colour_*``: the pipeline
  around the network alone), their order rotating every repeat; medians and (min-max) in milliseconds.
* ``first call``: a fresh process times its first ``upscale`` of the frame (numba's compilation or cache
  loading included), with an empty numba cache and then with the cache it left; each with
  ``FAST_COLOUR`` on and off.
* ``CLI``: ``python -m npespcn.upscale`` of a 512x512 PNG, whole processes alternating between this
  checkout and ``--baseline`` (another checkout's root, e.g. ``git worktree add /tmp/base main``) when
  given, caches warm.
* with ``--baseline``, also the frame in processes alternating between the two checkouts: each times
  ``upscale`` and ``infer`` 5 times, interleaved, and reports its medians.

One JSON line at the end. The frame is a 640x360 window of a Set14 photograph enlarged to 1280x720
(``data/Set14``, else a synthetic chart), as in ``video_fps.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from video_fps import source_picture

import npespcn
from npespcn.image.color import rgb_to_ycc_planes
from npespcn.inference import pipeline

FIRST_CALL = """
import os, sys, time, numpy as np
t0 = time.perf_counter()
import npespcn
from npespcn.inference import pipeline
pipeline.FAST_COLOUR = os.environ["FAST_COLOUR"] == "1"
net = npespcn.nn.resolve_model("espcn", 3)
frame = np.load(sys.argv[1])
t1 = time.perf_counter()
npespcn.upscale(frame, 3, net)
t2 = time.perf_counter()
npespcn.upscale(frame, 3, net)
print(t1 - t0, t2 - t1, time.perf_counter() - t2)
"""


FRAME_PROCESS = """
import sys, time, statistics, numpy as np
import npespcn
from npespcn.image.color import rgb_to_ycc_planes
net = npespcn.nn.resolve_model("espcn", 3)
frame = np.load(sys.argv[1])
luma = (rgb_to_ycc_planes(frame.astype(np.float64))[0] / 255.0).astype(np.float32)[None, None]
npespcn.upscale(frame, 3, net), net.infer(luma)
up, inf = [], []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter(); npespcn.upscale(frame, 3, net); t1 = time.perf_counter(); net.infer(luma)
    up.append(t1 - t0); inf.append(time.perf_counter() - t1)
print(statistics.median(up), statistics.median(inf))
"""


def frame_processes(frame_path, trees, rounds: int, per_process: int = 5) -> dict:
    """Per process (checkouts alternating): median ``upscale`` and ``infer`` times of the frame."""
    times = {name: [] for name in trees}
    names = list(trees)     # each process runs in its checkout's folder: Python puts the working folder first
    for rep in range(rounds):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            env = {**os.environ, "PYTHONPATH": str(trees[name])}
            res = subprocess.run([sys.executable, "-c", FRAME_PROCESS, str(frame_path), str(per_process)],
                                 env=env, check=True, capture_output=True, text=True, cwd=trees[name])
            times[name].append([float(x) for x in res.stdout.split()])
    return times


def spread(v, scale=1000.0) -> str:
    return f"{scale * statistics.median(v):.0f} ({scale * min(v):.0f}-{scale * max(v):.0f})"


def in_process(frame, repeats: int) -> dict:
    net = npespcn.nn.resolve_model("espcn", 3)
    luma = (rgb_to_ycc_planes(frame.astype(np.float64))[0] / 255.0).astype(np.float32)[None, None]

    def up(fast):
        def run():
            pipeline.FAST_COLOUR = fast
            return npespcn.upscale(frame, 3, net)
        return run

    remembered, calls = {}, [0]

    def network_once(net, x, *rest):                # each tile's network output (tiles come in order), once
        calls[0] += 1
        if calls[0] not in remembered:
            remembered[calls[0]] = network(net, x, *rest)
        return remembered[calls[0]]

    def colour_only(fast):
        def run():
            pipeline.network, calls[0] = network_once, 0
            try:
                return up(fast)()
            finally:
                pipeline.network = network
        return run

    network = pipeline.network
    cases = {"infer": lambda: net.infer(luma), "upscale_reference": up(False), "upscale_numba": up(True),
             "colour_reference": colour_only(False), "colour_numba": colour_only(True)}
    outs = [cases[k]() for k in cases if k != "infer"]                 # warm-up, and the same bits
    assert all(o.tobytes() == outs[0].tobytes() for o in outs)
    cases["infer"]()
    times = {k: [] for k in cases}
    names = list(cases)
    for rep in range(repeats):
        for k in names[rep % len(names):] + names[:rep % len(names)]:
            t0 = time.perf_counter()
            cases[k]()
            times[k].append(time.perf_counter() - t0)
    pipeline.FAST_COLOUR = True
    return times


def first_call(frame_path) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for fast in ("1", "0"):
            for p in Path(cache).iterdir():                             # cold: an empty cache
                subprocess.run(["rm", "-rf", str(p)], check=True)
            for state in ("cold", "warm"):                              # warm: the cache cold left
                env = {**os.environ, "NUMBA_CACHE_DIR": cache, "FAST_COLOUR": fast}
                res = subprocess.run([sys.executable, "-c", FIRST_CALL, str(frame_path)], env=env, check=True,
                                     capture_output=True, text=True)
                out[f"{state}_fast{fast}"] = [float(x) for x in res.stdout.split()]
    return out


def cli(png, trees, repeats: int) -> dict:
    times = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as d:
        for name, tree in trees.items():                                # warm the caches
            env = {**os.environ, "PYTHONPATH": str(tree)}
            subprocess.run([sys.executable, "-m", "npespcn.upscale", str(png), "-o", f"{d}/{name}.png",
                            "--overwrite"], env=env, check=True, capture_output=True, cwd=tree)
        names = list(trees)
        for rep in range(repeats):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                env = {**os.environ, "PYTHONPATH": str(trees[name])}
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "npespcn.upscale", str(png), "-o", f"{d}/{name}.png",
                                "--overwrite"], env=env, check=True, capture_output=True, cwd=trees[name])
                times[name].append(time.perf_counter() - t0)
        outs = [np.asarray(Image.open(f"{d}/{name}.png")) for name in names]
        # the checkouts may compute differently (e.g. Winograd against shifted taps): within one level
        assert all(np.abs(o.astype(np.int16) - outs[0]).max() <= 1 for o in outs)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--cli-repeats", type=int, default=5)
    p.add_argument("--baseline", type=Path, help="root of another checkout to compare the CLI with")
    args = p.parse_args()
    frame = np.ascontiguousarray(source_picture()[100:460, 200:840])
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        frame_path = Path(d) / "frame.npy"
        np.save(frame_path, frame)
        png = Path(d) / "in.png"
        Image.fromarray(source_picture()[0:512, 0:512]).save(png)
        times = in_process(frame, args.repeats)
        first = first_call(frame_path)
        trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
        cli_times = cli(png, trees, args.cli_repeats)
        processes = frame_processes(frame_path, trees, args.cli_repeats) if args.baseline else {}
    load1 = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load average {load0[0]:.1f} at the start, "
          f"{load1[0]:.1f} at the end")
    print(f"in-process, 640x360 -> 1920x1080, {args.repeats} repeats, ms: median (min-max)")
    for k, v in times.items():
        print(f"  {k:18s} {spread(v)}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"  upscale / infer: references {med['upscale_reference'] / med['infer']:.2f}, "
          f"numba {med['upscale_numba'] / med['infer']:.2f}; colour beyond the network: "
          f"{1000 * (med['upscale_reference'] - med['infer']):.0f} -> {1000 * (med['upscale_numba'] - med['infer']):.0f} ms")
    print("first call in a fresh process, s (import + model, first upscale, second upscale):")
    for k, v in first.items():
        print(f"  {k:12s} " + " ".join(f"{x:.2f}" for x in v))
    print(f"python -m npespcn.upscale of a 512x512 PNG, {args.cli_repeats} alternating processes, s:")
    for k, v in cli_times.items():
        print(f"  {k:10s} {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
    if processes:
        print(f"the frame in alternating processes ({args.cli_repeats} each, medians of 5 per process), "
              "ms: upscale, infer, upscale / infer")
        for k, v in processes.items():
            up, inf = [x[0] for x in v], [x[1] for x in v]
            ratio = [a / b for a, b in zip(up, inf)]
            print(f"  {k:10s} {spread(up)}, {spread(inf)}, {statistics.median(ratio):.2f} "
                  f"({min(ratio):.2f}-{max(ratio):.2f})")
    print(json.dumps({"in_process_s": times, "first_call_s": first, "cli_s": cli_times, "processes_s": processes,
                      "load": [load0[0], load1[0]], "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
