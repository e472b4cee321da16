"""Where a forward pass or a training step goes, layer by layer, against PyTorch. A script, not a test.

    python benchmarks/profile_layers.py                          # every case of bench.py, 5 repeats
    python benchmarks/profile_layers.py --cases train-16 --repeats 9
    python benchmarks/profile_layers.py --cases train-16 --apart 3    # each library in its own processes

For each convolution of the model of a ``benchmarks/bench.py`` case (same shapes, same weights), both
libraries run that layer alone on an input of its shape: inference cases time the fused forward
(:func:`npespcn.functional.conv2d_act_forward`, the path ``ESPCN.infer`` takes, against
``torch.nn.functional.conv2d`` + activation under ``no_grad``); training cases time the training forward
(:func:`~npespcn.functional.conv2d_act_train_forward`) and the backward
(:func:`~npespcn.functional.conv2d_act_backward`, with the input gradient except for the first layer,
as the trainer asks) against PyTorch's forward and ``autograd.grad`` of the same layer. The two libraries
alternate (the order turns every repeat, with bench.py's settle pause before each turn); the table gives
medians in ms, PyTorch's time over npespcn's (above 1: npespcn is faster) and each layer's share of
npespcn's total. The rest of a step (loss, shuffle, Adam, Python) is what bench.py's step time has beyond
the sum of the layers.

With ``--apart ROUNDS`` each library runs in processes of its own, ``ROUNDS`` of each, alternating
(npespcn, PyTorch, PyTorch, npespcn, ...), and the table gives the medians over the rounds: no library's
threads can then still be busy in the other's turn, at the price of comparing calls minutes apart.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import CASES, alternate, machine, make_model

from npespcn.functional.conv import (
    conv2d_act_backward,
    conv2d_act_forward,
    conv2d_act_train_forward,
)

LIBRARIES = ("npespcn", "pytorch")


def layers(model):
    """``[(w, b, activation), ...]`` of the model's convolutions, first to last."""
    names = [n[:-len(".weight")] for n in model.params if n.endswith(".weight")]
    return [(model.params[n + ".weight"], model.params[n + ".bias"],
             model.activation if i < len(names) - 1 else "identity") for i, n in enumerate(names)]


def runners(case, threads, libraries=LIBRARIES):
    """``{(layer, part): {"npespcn": f, "pytorch": g}}`` for one case, with only the ``libraries`` asked."""
    torch = None
    if "pytorch" in libraries:
        import torch
        torch.set_num_threads(threads)
    spec = CASES[case]
    N, _, H, W = spec["shape"]
    rng = np.random.default_rng(2)
    out = {}
    for i, (w, b, act) in enumerate(layers(make_model(spec["arch"]))):
        F, C, k, _ = w.shape
        x = rng.random((N, C, H, W), dtype=np.float32)
        label = f"{i + 1}: {C}->{F} {k}x{k} {act}"
        train = spec["kind"] == "train"
        input_grad = i > 0
        parts = {(label, "forward"): {}}
        if train:
            parts[(label, "backward")] = {}
            y, cache = conv2d_act_train_forward(x, w, b, act)
            dy = rng.standard_normal(y.shape).astype(np.float32)
        if "npespcn" in libraries:
            if train:
                parts[(label, "forward")]["npespcn"] = lambda x=x, w=w, b=b, act=act: (
                    conv2d_act_train_forward(x, w, b, act))
                parts[(label, "backward")]["npespcn"] = lambda dy=dy, cache=cache, g=input_grad: (
                    conv2d_act_backward(dy, cache, input_grad=g))
            else:
                parts[(label, "forward")]["npespcn"] = lambda x=x, w=w, b=b, act=act: (
                    conv2d_act_forward(x, w, b, act))
        if torch is not None:
            tact = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v}[act]
            xg = torch.from_numpy(x).requires_grad_(train and input_grad)
            wg = torch.from_numpy(w).clone().requires_grad_(train)
            bg = torch.from_numpy(b).clone().requires_grad_(train)

            def tf(xg=xg, wg=wg, bg=bg, tact=tact, k=k):
                with torch.no_grad():
                    return tact(torch.nn.functional.conv2d(xg, wg, bg, padding=k // 2))
            parts[(label, "forward")]["pytorch"] = tf
            if train:
                def tb(xg=xg, wg=wg, bg=bg, tact=tact, k=k, dyt=torch.from_numpy(dy), g=input_grad):
                    yt = tact(torch.nn.functional.conv2d(xg, wg, bg, padding=k // 2))   # the graph's forward
                    return torch.autograd.grad(yt, [xg, wg, bg] if g else [wg, bg], dyt)
                # PyTorch's backward includes its forward (autograd needs the graph); so its time is the
                # difference with its plain forward, computed in measure().
                parts[(label, "backward")]["pytorch"] = tb
        out.update(parts)
    return out


def measure(case, threads, repeats, libraries=LIBRARIES):
    """``{(layer, part): {library: median ms}}``, the libraries alternating within this process."""
    res = {key: {n: 1e3 * t for n, t in alternate(fs, repeats)[0].items()}
           for key, fs in runners(case, threads, libraries).items()}
    if CASES[case]["kind"] == "train" and "pytorch" in libraries:   # its timed backward re-ran its forward
        for (label, part), t in res.items():
            if part == "backward":
                t["pytorch"] = max(t["pytorch"] - res[(label, "forward")]["pytorch"], 0.0)
    return res


def measure_apart(case, threads, repeats, rounds):
    """Like :func:`measure`, each library in processes of its own (``rounds`` of them, alternating with
    the other library's), so no library's threads can still be running in another's turn; the medians
    over the rounds."""
    runs = {lib: [] for lib in LIBRARIES}
    for r in range(rounds):
        order = LIBRARIES if r % 2 == 0 else LIBRARIES[::-1]
        for lib in order:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, "--cases", case,
                   "--repeats", str(repeats), "--threads", str(threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[lib].append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = [tuple(k.split("|")) for k in runs["npespcn"][0]]
    return {key: {lib: float(np.median([run["|".join(key)][lib] for run in runs[lib]])) for lib in LIBRARIES}
            for key in keys}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count())))
    ap.add_argument("--apart", type=int, default=0, metavar="ROUNDS",
                    help="run each library in processes of its own, ROUNDS of each, alternating (0: both "
                         "libraries in this process, alternating call by call)")
    ap.add_argument("--child", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    for case in cases:
        if case not in CASES:
            ap.error(f"unknown case {case!r}; expected one of {', '.join(CASES)}")
    if args.apart < 0:
        ap.error(f"--apart must be >= 0, got {args.apart}")
    if args.child:                                      # one library's process of --apart
        res = measure(cases[0], args.threads, args.repeats, (args.child,))
        print(json.dumps({"|".join(key): t for key, t in res.items()}))
        return
    print(machine())
    print(f"threads: {args.threads}; load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.apart:
        print(f"each library in its own processes: {args.apart} of each, alternating")
    for case in cases:
        res = (measure_apart(case, args.threads, args.repeats, args.apart) if args.apart
               else measure(case, args.threads, args.repeats))
        total = sum(t["npespcn"] for t in res.values())
        total_t = sum(t["pytorch"] for t in res.values())
        print(f"\n{case} (shape {CASES[case]['shape']})\n")
        print("| layer | part | npespcn ms | PyTorch ms | PyTorch / npespcn | share of npespcn |")
        print("|---|---|---:|---:|---:|---:|")
        for (label, part), t in res.items():
            print(f"| {label} | {part} | {t['npespcn']:.3f} | {t['pytorch']:.3f} | "
                  f"{t['pytorch'] / t['npespcn']:.2f} | {100 * t['npespcn'] / total:.0f} % |")
        print(f"| all layers | | {total:.3f} | {total_t:.3f} | {total_t / total:.2f} | 100 % |")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
