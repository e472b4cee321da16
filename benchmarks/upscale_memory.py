"""Peak memory and time of ``npespcn.upscale`` on a 2560x1440 RGB image at x3 (an 8K result).

Run each measurement in a fresh process, so the peak RSS (``ru_maxrss``) is the whole process's::

    python benchmarks/upscale_memory.py library [--tile N]     # npespcn.upscale on an array
    python benchmarks/upscale_memory.py cli                    # python -m npespcn.upscale on a PNG file

The model is the paper's x3 architecture with its seeded initialisation (memory and time do not depend
on the weights). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def test_image(h=1440, w=2560):
    """A smooth colourful gradient with some noise, uint8 RGB (h, w, 3)."""
    rng = np.random.default_rng(0)
    out = np.empty((h, w, 3), np.uint8)
    x = np.arange(w)
    for y0 in range(0, h, 64):                      # in bands, so making it costs little memory
        y = np.arange(y0, min(h, y0 + 64))[:, None]
        band = np.stack(np.broadcast_arrays(x / w + 0 * y, y / h + 0 * x,
                                            0.5 + 0.5 * np.sin(x / 37.0) * np.cos(y / 23.0)), axis=-1) * 230
        out[y0:y0 + 64] = np.clip(band + rng.normal(0, 8, band.shape), 0, 255).astype(np.uint8)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["library", "cli"])
    p.add_argument("--tile", type=int, default=None)
    args = p.parse_args()
    from npespcn import ESPCN
    model = ESPCN.paper(3)
    if args.mode == "library":
        from npespcn import upscale
        img = test_image()
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        out = upscale(img, 3, model, tile=args.tile)
        seconds = time.perf_counter() - t0
        shape = out.shape
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        from PIL import Image
        with tempfile.TemporaryDirectory() as d:
            src, dst, mfile = (os.path.join(d, n) for n in ("in.png", "out.png", "m.npz"))
            Image.fromarray(test_image()).save(src)
            model.save(mfile)
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "npespcn.upscale", src, "-o", dst, "--model", mfile]
            if args.tile:
                cmd += ["--tile", str(args.tile)]
            subprocess.run(cmd, check=True)
            seconds = time.perf_counter() - t0
            shape = Image.open(dst).size[::-1]
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else_base = locals().get("base_mb")
    who = resource.RUSAGE_SELF if args.mode == "library" else resource.RUSAGE_CHILDREN
    use = resource.getrusage(who)
    print(json.dumps({"mode": args.mode, "rss_before_mb": else_base and round(else_base, 1),
                      "cpu_seconds": round(use.ru_utime + use.ru_stime, 1), "tile": args.tile, "out_shape": list(shape),
                      "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb, 1)}))


if __name__ == "__main__":
    main()
