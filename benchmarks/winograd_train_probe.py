"""A probe for issue 18: Winograd F(2x2, 3x3) on training batches, tiles blocked across the batch. A script,
not a test, and not used by npespcn: it measures whether the training forward of the 3x3 layers would gain.

    python benchmarks/winograd_train_probe.py [--repeats 5] [--rows 16]

The inference Winograd block (``npespcn/fast/winograd.py``) covers one image's tiles, so on 17x17 training
patches its GEMMs get a few dozen columns each (benchmarks/README.md). Here a block is ``--rows`` tile rows
taken across the whole batch (tile row ``g`` is row ``g % th`` of image ``g // th``), so its 16 GEMMs are
``(F, C) @ (C, rows * tw)`` for ``tw`` tiles a row::

    xp   (N, C, 2*th + 2, 2*tw + 2)   the batch zero-padded once (1 before, up to 2 after)
    V    (16, C, rows*tw)             V[xi*4 + nu, c, tile] = (BT @ d @ BT.T)[xi, nu]     (input transform)
    M    (16, F, rows*tw)             M[q] = U[q] @ V[q]                                  (16 sgemm calls)
    out  act(AT @ M[:, f, tile] @ AT.T + b[f])                                          (output transform)

For every layer shape of ESPCN's training steps it prints the largest difference from
``conv2d_act_train_forward`` (the forward the trainer runs), the probe's median time and the trainer's,
alternating, and the probe with each of its three stages left out (what each stage costs).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np
from numba import prange

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from npespcn.fast import transform_weights  # noqa: E402
from npespcn.fast.blas import GEMMS, gemm_rows, single_threaded_blas  # noqa: E402
from npespcn.fast.compiled import start_threads  # noqa: E402
from npespcn.functional.conv import conv2d_act_train_forward  # noqa: E402

SKIP_INPUT, SKIP_GEMM, SKIP_OUTPUT = 1, 2, 4
CASES = [(16, 64, 64, 17), (16, 64, 32, 17), (16, 32, 32, 17), (64, 64, 64, 32), (64, 64, 32, 32),
         (64, 32, 32, 32)]


@numba.njit(parallel=True, nogil=True, error_model="numpy")
def forward_f2(xp, H, W, U, b, relu, rows, workers, Vbuf, Mbuf, Hbuf, rowbuf, fn, out, skip):
    """``out = act(conv(x, w) + b)`` by F(2x2, 3x3) (the points of ``npespcn.fast.POINTS[2]``:
    ``BT = [[-1, 0, 1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]``, ``AT = [[1, 1, 1, 0], [0, 1, -1, 1]]``),
    worker ``wid`` taking blocks ``wid, wid + workers, ...``; ``skip`` leaves stages out (timing only)."""
    N, C, Hp, Wp = xp.shape
    F = out.shape[1]
    th, tw = (Hp - 2) // 2, (Wp - 2) // 2
    blocks = (N * th + rows - 1) // rows
    for wid in prange(workers):
        V, M, Hs, rb = Vbuf[wid], Mbuf[wid], Hbuf[wid], rowbuf[wid]
        for blk in range(wid, blocks, workers):
            g0 = blk * rows
            ng = min(rows, N * th - g0)
            for c in range(0 if skip & SKIP_INPUT else C):
                for g in range(ng):
                    n, ty = (g0 + g) // th, (g0 + g) % th
                    for i in range(4):                  # along the tile row's 4 input rows
                        r = xp[n, c, 2 * ty + i]
                        h0, h1, h2, h3 = Hs[i, 0], Hs[i, 1], Hs[i, 2], Hs[i, 3]
                        for t in range(tw):
                            d0, d1, d2, d3 = r[2 * t], r[2 * t + 1], r[2 * t + 2], r[2 * t + 3]
                            h0[t] = d2 - d0
                            h1[t] = d1 + d2
                            h2[t] = d2 - d1
                            h3[t] = d3 - d1
                    o = g * tw
                    for j in range(4):                  # across them
                        e0, e1, e2, e3 = Hs[0, j], Hs[1, j], Hs[2, j], Hs[3, j]
                        v0, v1 = V[j, c, o:o + tw], V[4 + j, c, o:o + tw]
                        v2, v3 = V[8 + j, c, o:o + tw], V[12 + j, c, o:o + tw]
                        for t in range(tw):
                            v0[t] = e2[t] - e0[t]
                            v1[t] = e1[t] + e2[t]
                            v2[t] = e2[t] - e1[t]
                            v3[t] = e3[t] - e1[t]
            nt = ng * tw
            for q in range(0 if skip & SKIP_GEMM else 16):
                gemm_rows(fn, F, nt, C, U[q], C, V[q], V.shape[2], M[q], M.shape[2])
            for f in range(0 if skip & SKIP_OUTPUT else F):
                bf = b[f]
                for g in range(ng):
                    n, ty = (g0 + g) // th, (g0 + g) % th
                    o = g * tw
                    r0, r1 = rb[0], rb[1]
                    m = M[:, f, o:o + tw]
                    for t in range(tw):                 # across rows (z: output row 0, y: row 1), then along
                        z0 = m[0, t] + m[4, t] + m[8, t]
                        z1 = m[1, t] + m[5, t] + m[9, t]
                        z2 = m[2, t] + m[6, t] + m[10, t]
                        z3 = m[3, t] + m[7, t] + m[11, t]
                        y0 = m[4, t] - m[8, t] + m[12, t]
                        y1 = m[5, t] - m[9, t] + m[13, t]
                        y2 = m[6, t] - m[10, t] + m[14, t]
                        y3 = m[7, t] - m[11, t] + m[15, t]
                        r0[2 * t] = z0 + z1 + z2 + bf
                        r0[2 * t + 1] = z1 - z2 + z3 + bf
                        r1[2 * t] = y0 + y1 + y2 + bf
                        r1[2 * t + 1] = y1 - y2 + y3 + bf
                    for u in range(2):
                        h = 2 * ty + u
                        if h < H:
                            dst, src = out[n, f, h], rb[u]
                            for t in range(W):
                                dst[t] = max(src[t], np.float32(0)) if relu else src[t]


def probe(N, C, F, H, rows, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((F, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = (0.1 * rng.standard_normal(F)).astype(np.float32)
    workers = numba.get_num_threads()
    th = tw = (H + 1) // 2
    U = np.ascontiguousarray(transform_weights(w, 2).reshape(16, F, C))
    Vbuf = np.zeros((workers, 16, C + 1, rows * tw + 16), np.float32)   # padded rows, as the inference block's
    Mbuf = np.zeros((workers, 16, F + 1, rows * tw + 16), np.float32)
    Hbuf = np.zeros((workers, 4, 4, tw), np.float32)
    rowbuf = np.zeros((workers, 2, 2 * tw), np.float32)
    out = np.empty((N, F, H, H), np.float32)
    trainer_out = np.empty_like(out)
    fn = GEMMS[np.dtype(np.float32)]

    def winograd(skip=0):
        xp = np.zeros((N, C, 2 * th + 2, 2 * tw + 2), np.float32)
        xp[:, :, 1:H + 1, 1:H + 1] = x
        forward_f2(xp, H, H, U, b, True, rows, workers, Vbuf, Mbuf, Hbuf, rowbuf, fn, out, skip)

    def trainer():
        conv2d_act_train_forward(x, w, b, "relu", out=trainer_out)

    calls = {"probe": winograd, "trainer": trainer, "probe w/o input": lambda: winograd(SKIP_INPUT),
             "probe w/o GEMMs": lambda: winograd(SKIP_GEMM), "probe w/o output": lambda: winograd(SKIP_OUTPUT)}
    with single_threaded_blas():
        winograd()
        trainer()
        err = float(np.abs(out - trainer_out).max() / np.abs(trainer_out).max())
        times = {k: [] for k in calls}
        inner = max(1, int(2e8 / (N * C * F * H * H * 9)))
        for rep in range(repeats):
            names = list(calls)
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                t = time.perf_counter()
                for _ in range(inner):
                    calls[name]()
                times[name].append((time.perf_counter() - t) / inner)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    print(f"| {N}x{C}x{H}x{H} -> {F} | {med['probe']:.3f} | {med['trainer']:.3f} | "
          f"{med['trainer'] / med['probe']:.2f} | {med['probe'] - med['probe w/o input']:.3f} | "
          f"{med['probe'] - med['probe w/o GEMMs']:.3f} | {med['probe'] - med['probe w/o output']:.3f} | {err:.1e} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, default=16, help="tile rows per block (default: 16)")
    args = ap.parse_args()
    start_threads()
    print(f"{numba.get_num_threads()} thread(s), {args.rows} tile rows a block; medians of {args.repeats}, ms\n")
    print("| layer | probe | trainer | trainer / probe | input transform | GEMMs | output transform | max diff / max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        probe(*case, args.rows, args.repeats)


if __name__ == "__main__":
    main()
