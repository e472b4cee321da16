"""Throughput of ``npespcn.upscale_files`` in this process and on a local Dask cluster of 1 and 2 workers.
A script, not a test (needs the dask extra).

    python benchmarks/dask_throughput.py                          # 24 images of 320x240, x3, 5 rounds
    python benchmarks/dask_throughput.py --images 48 --size 640x360 --rounds 3

Every configuration keeps its cluster running; each round times one whole batch per configuration
(in an order that rotates every round), into a fresh output folder, after one untimed warm-up batch
(worker start-up and the numba cache load are not counted). Printed: images per second, median and
range over the rounds, as a Markdown table.

Configurations: ``local`` (the loop in this process, numba on every core), ``dask-1w-Nt`` (one worker
process, numba on N threads) and ``dask-2w-1t`` (two worker processes, one numba thread each), the
clusters started as ``--dask local:N`` starts them (:func:`npespcn.inference.batch.dask_client`), or
with ``--dask-default-environ`` as a plain ``LocalCluster`` does.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import npespcn
from npespcn.extras import require
from npespcn.inference.batch import dask_client


def make_images(folder: Path, n: int, w: int, h: int) -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    for i in range(n):
        base = np.stack([np.sin(7 * x + i) * 0.4 + 0.5, y, 0.5 + 0.3 * np.cos(5 * y * x + i)], -1)
        noisy = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
        Image.fromarray((noisy * 255).astype(np.uint8)).save(folder / f"img{i:03d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", default="320x240", help="WxH of the low-resolution inputs")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--dask-default-environ", action="store_true",
                    help="workers as a plain LocalCluster starts them (MALLOC_TRIM_THRESHOLD_=65536), not as "
                         "npespcn's --dask local:N does")
    args = ap.parse_args()
    distributed = require("distributed", "this benchmark")
    w, h = map(int, args.size.split("x"))
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="npespcn-dask-bench-"))
    try:
        (work / "in").mkdir()
        make_images(work / "in", args.images, w, h)
        configs = {"local": None}
        clusters = []
        for name, n, threads in ((f"dask-1w-{cores}t", 1, cores), ("dask-2w-1t", 2, 1)):
            client, cluster = dask_client(f"local:{n}", env={"NUMBA_NUM_THREADS": str(threads)})
            if args.dask_default_environ:
                client.close()
                cluster.close()
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", env={"NUMBA_NUM_THREADS": str(threads)})
                client = distributed.Client(cluster)
                name += "-dask-default-env"
            clusters.append(cluster)
            configs[name] = client
        names = list(configs)
        for name in names:                                               # warm-up
            npespcn.upscale_files([work / "in"], work / f"warm-{name}", scale=args.scale, client=configs[name])
        times = {name: [] for name in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                out = work / f"out-{name}-{r}"
                t0 = time.perf_counter()
                recs = npespcn.upscale_files([work / "in"], out, scale=args.scale, client=configs[name])
                times[name].append(time.perf_counter() - t0)
                assert all(rec["status"] == "written" for rec in recs)
                shutil.rmtree(out)
        ref = work / "warm-local"
        for name in names[1:]:                      # the clusters wrote the same bits as the local loop
            for p in sorted(ref.iterdir()):
                assert (work / f"warm-{name}" / p.name).read_bytes() == p.read_bytes(), (name, p.name)
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        print(f"{datetime.date.today()}, {cpu}, {cores} logical CPUs; {args.images} images {w}x{h} -> "
              f"x{args.scale}, paper model, PNG out; {args.rounds} rounds")
        print("| configuration | images / s (median) | range | s per batch (median) |")
        print("|---|---|---|---|")
        for name in names:
            rates = sorted(args.images / t for t in times[name])
            print(f"| {name} | {np.median(rates):.1f} | {rates[0]:.1f}–{rates[-1]:.1f} | "
                  f"{np.median(times[name]):.2f} |")
        for name in names[1:]:
            configs[name].close()
        for cluster in clusters:
            cluster.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
