"""Time npespcn's fast path against PyTorch and OpenCV's dnn on ESPCN (issue 6). A script, not a test.

    python benchmarks/bench.py                 # everything, 7 timed repeats per case
    python benchmarks/bench.py --repeats 15 --cases fwd-paper,train-64 --no-memory

Cases (float32, upscale x3):

=============  =================================================================================
fwd-paper      paper model (5x5x64, 3x3x32, tanh), one 640x360 low-resolution frame -> 1920x1080
fwd-seven      seven-layer model (5x5x64, 3x3x64, 3 x 3x3x32, relu), same frame
train-16       paper model, one Adam step (forward, MSE, backward, update): batch 16 of 17x17 patches
train-64       the same with a batch of 64 32x32 patches
train7-16      seven-layer model, one Adam step, batch 16 of 17x17 patches
train7-64      seven-layer model, one Adam step, batch 64 of 32x32 patches
=============  =================================================================================

Every implementation present is timed in the same run, in alternation (the order rotates every
repeat), after two warm-up calls. Each turn waits ``SETTLE_S`` and makes one untimed call (another
library's OpenMP threads may still be busy-waiting from its turn) and then ``INNER`` timed calls; the
table gives the median over all timed calls, the ratio to npespcn (> 1: npespcn is
faster) and the achieved GFLOP/s (2 x multiply-adds of the forward pass; a training step counts 3 x
the forward: forward, input gradient, weight gradient). PyTorch and OpenCV are used when they are
installed and skipped with a note otherwise. OpenCV runs the published TF model
(``$NPESPCN_PUBLISHED/ESPCN_x3.pb``, default ``<repo>/../shared/published``) through
``cv2.dnn_superres`` on a 640x360 colour image: its time includes the colour conversion and the
bicubic chroma, as an application sees it.

Peak memory: each (case, implementation) runs once more in a fresh subprocess, which reports how much
its resident set grew during that first call (peak RSS, reset just before the call, minus the RSS
before it; Linux only).

Threads: ``--threads`` (default: ``NUMBA_NUM_THREADS`` or the CPU count) for PyTorch and OpenCV;
npespcn uses numba's thread count, so run with ``NUMBA_NUM_THREADS=<n>`` to change it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from npespcn.fast import image_origin  # noqa: E402
from npespcn.functional import mse_loss  # noqa: E402
from npespcn.nn.model import ESPCN  # noqa: E402
from npespcn.nn.optim import Adam  # noqa: E402

SCALE = 3
CASES = {
    "fwd-paper": dict(arch="paper", kind="forward", shape=(1, 1, 360, 640)),
    "fwd-seven": dict(arch="seven", kind="forward", shape=(1, 1, 360, 640)),
    "train-16": dict(arch="paper", kind="train", shape=(16, 1, 17, 17)),
    "train-64": dict(arch="paper", kind="train", shape=(64, 1, 32, 32)),
    "train7-16": dict(arch="seven", kind="train", shape=(16, 1, 17, 17)),
    "train7-64": dict(arch="seven", kind="train", shape=(64, 1, 32, 32)),
}


# ---------------------------------------------------------------------------------------------- setup
def make_model(arch):
    m = ESPCN.paper(SCALE) if arch == "paper" else ESPCN.seven(SCALE)
    rng = np.random.default_rng(0)
    for name, arr in m.params.items():            # non-trivial weights (the last layer's init is tiny)
        if name.endswith("weight"):
            arr[...] += rng.normal(0, 0.02, arr.shape)
    return m


def make_data(case):
    rng = np.random.default_rng(1)
    N, C, H, W = CASES[case]["shape"]
    x = rng.random((N, C, H, W), dtype=np.float32)
    t = rng.random((N, C, H * SCALE, W * SCALE), dtype=np.float32)
    return x, t


def flops(case, model):
    N, _, H, W = CASES[case]["shape"]
    f = 2.0 * model.macs_per_pixel() * N * H * W
    return 3 * f if CASES[case]["kind"] == "train" else f


def npespcn_runner(case):
    model, (x, t) = make_model(CASES[case]["arch"]), make_data(case)
    if CASES[case]["kind"] == "forward":
        def forward():
            with image_origin(0, 0):              # a whole image, as upscale() runs it: 3x3 layers by Winograd
                return model.infer(x)
        return forward
    opt = Adam(model.params, lr=1e-3)

    def step():
        y = model.forward(x)
        loss, dy = mse_loss(y, t)
        model.backward(dy, input_grad=False)      # like PyTorch: the input needs no gradient
        opt.step(model.grads)
        return loss
    return step


def torch_model(model):
    import torch
    mods, convs = [], [n[:-len(".weight")] for n in model.params if n.endswith(".weight")]
    for i, name in enumerate(convs):
        w, b = model.params[name + ".weight"], model.params[name + ".bias"]
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
        mods.append(conv)
        if i < len(convs) - 1:
            mods.append(torch.nn.Tanh() if model.activation == "tanh" else torch.nn.ReLU())
    mods.append(torch.nn.PixelShuffle(model.scale))
    return torch.nn.Sequential(*mods)


def torch_runner(case, threads):
    import torch
    torch.set_num_threads(threads)
    model, (x, t) = make_model(CASES[case]["arch"]), make_data(case)
    net, xt, tt = torch_model(model), torch.from_numpy(x), torch.from_numpy(t)
    if CASES[case]["kind"] == "forward":
        net.eval()

        def fwd():
            with torch.no_grad():
                return net(xt)
        return fwd
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = torch.nn.MSELoss()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = lossf(net(xt), tt)
        loss.backward()
        opt.step()
        return float(loss.detach())
    return step


def published_dir():
    return os.environ.get("NPESPCN_PUBLISHED", os.path.join(REPO, "..", "shared", "published"))


def opencv_runner(case, threads):
    import cv2
    if CASES[case]["kind"] != "forward" or CASES[case]["arch"] != "paper":
        return None
    path = os.path.join(published_dir(), f"ESPCN_x{SCALE}.pb")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no published model at {path} (set NPESPCN_PUBLISHED)")
    cv2.setNumThreads(threads)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(path)
    sr.setModel("espcn", SCALE)
    _, _, H, W = CASES[case]["shape"]
    img = (np.random.default_rng(2).random((H, W, 3)) * 255).astype(np.uint8)
    return lambda: sr.upsample(img)


def runners(case, threads, notes):
    out = {"npespcn": npespcn_runner(case)}
    for name, make in (("pytorch", torch_runner), ("opencv-dnn", opencv_runner)):
        try:
            r = make(case, threads)
        except ImportError:
            notes.add(f"{name}: not installed, skipped")
            continue
        except Exception as e:                       # noqa: BLE001 - report and go on
            notes.add(f"{name}: skipped ({type(e).__name__}: {e})")
            continue
        if r is not None:
            out[name] = r
    return out


# ---------------------------------------------------------------------------------------------- timing
INNER = 3
"""Timed calls per turn (after one untimed call); the median is over ``repeats * INNER`` calls."""

SETTLE_S = 0.03
"""Seconds of rest before every turn, longer than OpenMP threads keep spinning after their last task."""


def time_case(case, threads, repeats, notes):
    return alternate(runners(case, threads, notes), repeats)


def alternate(run, repeats):
    """Time the callables of ``run`` (``{name: f}``) in alternation; ``({name: median s}, {name: [s, ...]})``."""
    for f in run.values():                                    # warm-up: JIT caches, allocators, threads
        f()
        f()
    names, times = list(run), {n: [] for n in run}
    for rep in range(repeats):
        k = rep % len(names)
        for name in names[k:] + names[:k]:                    # rotate the order every repeat
            # Another library's threads may still be spinning after its turn (OpenMP keeps its workers
            # busy-waiting for a while: about 8 ms by default, measured; npespcn shortens its own), which
            # would be charged to this one: wait them out, then make one untimed call.
            time.sleep(SETTLE_S)
            run[name]()
            for _ in range(INNER):
                t0 = time.perf_counter()
                run[name]()
                times[name].append(time.perf_counter() - t0)
    return {n: float(np.median(v)) for n, v in times.items()}, {n: v for n, v in times.items()}


def ratio_spread(times, reference):
    """Quartiles (25 %, 75 %) over the repeats of ``median(times) / median(reference)`` within each repeat.

    ``times`` and ``reference`` hold ``repeats * INNER`` calls in repeat order; both implementations ran in
    the same repeat, minutes apart at most, so the per-repeat ratio is less exposed to the machine's drift
    than the ratio of the overall medians."""
    a = np.median(np.reshape(times, (-1, INNER)), axis=1)
    b = np.median(np.reshape(reference, (-1, INNER)), axis=1)
    q25, q75 = np.percentile(a / b, [25, 75])
    return float(q25), float(q75)


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def probe(case, impl, threads):
    """Subprocess entry: peak RSS growth (bytes) during the first call of one implementation on one case.

    Linux resets the peak (``VmHWM``) when ``5`` is written to ``/proc/self/clear_refs``, so imports and
    set-up do not count.
    """
    make = {"npespcn": lambda c, t: npespcn_runner(c), "pytorch": torch_runner, "opencv-dnn": opencv_runner}
    run = make[impl](case, threads)
    if run is None:
        print(json.dumps(None))
        return
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    run()
    print(json.dumps((_status_kib("VmHWM") - before) * 1024))


def peak_memory(case, impl, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--probe", case, impl, "--threads", str(threads)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        return json.loads(res.stdout.strip().splitlines()[-1])
    except Exception:                                          # noqa: BLE001 - a missing number, not a crash
        return None


# ---------------------------------------------------------------------------------------------- report
def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numba
    vers = [f"numpy {np.__version__}", f"numba {numba.__version__}"]
    for mod in ("torch", "cv2"):
        try:
            vers.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return (f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, " + ", ".join(vers))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per implementation and case")
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--probe", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        return probe(*args.probe, args.threads)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or args.repeats < 1 or args.threads < 1:
        print(f"bench.py: expected --cases from {','.join(CASES)}, --repeats >= 1 and --threads >= 1; got "
              f"{args.cases!r}, {args.repeats}, {args.threads}", file=sys.stderr)
        return 2

    print(f"machine: {machine()}")
    print(f"threads: {args.threads} (NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'unset')}); "
          f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; repeats: {args.repeats}\n")
    notes: set = set()
    rows = []
    for case in cases:
        med, times = time_case(case, args.threads, args.repeats, notes)
        fl = flops(case, make_model(CASES[case]["arch"]))
        for impl, t in med.items():
            mem = None if args.no_memory else peak_memory(case, impl, args.threads)
            rows.append((case, impl, t, med["npespcn"], fl, mem, ratio_spread(times[impl], times["npespcn"])))
        print(f"  {case}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items()), flush=True)

    print("\n| case | implementation | median | vs npespcn | time / npespcn's, per repeat | GFLOP/s | peak memory |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case, impl, t, t_np, fl, mem, spread in rows:
        ratio = "1" if impl == "npespcn" else f"{t / t_np:.2f}x slower" if t > t_np else f"{t_np / t:.2f}x faster"
        spread_txt = "-" if impl == "npespcn" else f"{spread[0]:.2f}-{spread[1]:.2f}"
        memtxt = "-" if mem is None else f"{mem / 2 ** 20:.0f} MiB"
        print(f"| {case} | {impl} | {t * 1e3:.1f} ms | {ratio} | {spread_txt} | {fl / t / 1e9:.1f} | {memtxt} |")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("'vs npespcn' says how the implementation compares with npespcn (\"2.00x slower\": npespcn is "
          "twice as fast); 'per repeat' gives the quartiles of that implementation's time over npespcn's "
          "within each repeat (above 1: slower than npespcn), to show how much a noisy machine moved the "
          "ratio. GFLOP/s: OpenCV is credited with the network's FLOPs only.")
    for n in sorted(notes):
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
