"""Winograd F(m x m, 3x3) against shifted taps on ESPCN's 3x3 layer shapes (issue 18). A script, not a test.

    python benchmarks/winograd_layers.py [--repeats 7]

For every (C, F) layer on a 640x360 frame: the median time of shifted taps and of Winograd F(2x2),
F(4x4) (through ``npespcn.fast.conv2d_chunked_forward``, ``origin=(0, 0)``, the layer listed in
``WINOGRAD_TILES`` for the call), in alternation (the order rotates every repeat), with the spread
(min-max) of each; and the float32 error of each method against float64, as a fraction of the output's
range, on a 64 -> 32 layer with the paper model's weight scale.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from npespcn.fast import chunked  # noqa: E402
from npespcn.functional.conv import conv2d_forward_reference  # noqa: E402
from npespcn.functional.winograd import conv2d_winograd_reference  # noqa: E402

SHAPES = [(64, 32), (32, 9), (64, 64), (32, 32), (32, 4), (32, 16)]


def run(x, w, b, m):
    C, F = x.shape[1], w.shape[0]
    chunked.WINOGRAD_TILES.clear()
    if m:
        chunked.WINOGRAD_TILES[(C, F)] = m
    return chunked.conv2d_chunked_forward(x, w, b, "tanh", origin=(0, 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("float32 error, fraction of the output's range (64 -> 32, 48x80):")
    x = rng.random((1, 64, 48, 80), dtype=np.float32)
    w = (rng.standard_normal((32, 64, 3, 3)) * 0.06).astype(np.float32)
    b = (rng.standard_normal(32) * 0.1).astype(np.float32)
    want = conv2d_forward_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))[0]
    scale = np.abs(want).max()
    print(f"  direct (im2col, float32)    {np.abs(conv2d_forward_reference(x, w, b)[0] - want).max() / scale:.2e}")
    for m in (2, 4, 6):
        got = conv2d_winograd_reference(x, w, b, m)
        print(f"  F({m}x{m},3x3) reference     {np.abs(got - want).max() / scale:.2e}")
    for C, F in SHAPES:
        x = rng.random((1, C, 360, 640), dtype=np.float32)
        w = (rng.standard_normal((F, C, 3, 3)) * 0.06).astype(np.float32)
        b = np.zeros(F, np.float32)
        methods = (0, 2, 4)
        for m in methods:
            run(x, w, b, m)                                     # compile, warm up
        times = {m: [] for m in methods}
        for rep in range(args.repeats):
            for m in methods[rep % 3:] + methods[:rep % 3]:
                t = time.perf_counter()
                run(x, w, b, m)
                times[m].append(time.perf_counter() - t)
        row = "  ".join(f"{'shifted' if m == 0 else f'F({m}x{m})'} {1e3 * np.median(t):6.1f} ms "
                        f"[{1e3 * min(t):.0f}-{1e3 * max(t):.0f}]" for m, t in times.items())
        print(f"{C:3d} -> {F:2d}: {row}")
    chunked.WINOGRAD_TILES.clear()


if __name__ == "__main__":
    main()
