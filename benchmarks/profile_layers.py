"""Where a forward pass or a training step goes, layer by layer, against PyTorch. A script, not a test.

    python benchmarks/profile_layers.py                          # every case of bench.py, 5 repeats
    python benchmarks/profile_layers.py --cases train-16 --repeats 9

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
"""
from __future__ import annotations

import argparse
import os
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


def layers(model):
    """``[(w, b, activation), ...]`` of the model's convolutions, first to last."""
    names = [n[:-len(".weight")] for n in model.params if n.endswith(".weight")]
    return [(model.params[n + ".weight"], model.params[n + ".bias"],
             model.activation if i < len(names) - 1 else "identity") for i, n in enumerate(names)]


def runners(case, threads):
    """``{(layer, part): {"npespcn": f, "pytorch": g}}`` for one case."""
    import torch
    torch.set_num_threads(threads)
    spec = CASES[case]
    N, _, H, W = spec["shape"]
    rng = np.random.default_rng(2)
    out = {}
    for i, (w, b, act) in enumerate(layers(make_model(spec["arch"]))):
        F, C, k, _ = w.shape
        x = rng.random((N, C, H, W), dtype=np.float32)
        wt, bt, xt = torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(x)
        tact = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v}[act]
        label = f"{i + 1}: {C}->{F} {k}x{k} {act}"
        if spec["kind"] == "forward":
            def nf(x=x, w=w, b=b, act=act):
                return conv2d_act_forward(x, w, b, act)

            def tf(xt=xt, wt=wt, bt=bt, tact=tact, k=k):
                with torch.no_grad():
                    return tact(torch.nn.functional.conv2d(xt, wt, bt, padding=k // 2))
            out[(label, "forward")] = {"npespcn": nf, "pytorch": tf}
            continue
        input_grad = i > 0
        y, cache = conv2d_act_train_forward(x, w, b, act)
        dy = rng.standard_normal(y.shape).astype(np.float32)

        def nf(x=x, w=w, b=b, act=act):
            return conv2d_act_train_forward(x, w, b, act)

        def nb(dy=dy, cache=cache, input_grad=input_grad):
            return conv2d_act_backward(dy, cache, input_grad=input_grad)
        xg = xt.clone().requires_grad_(input_grad)
        wg, bg = wt.clone().requires_grad_(True), bt.clone().requires_grad_(True)
        dyt = torch.from_numpy(dy)

        def tf(xg=xg, wg=wg, bg=bg, tact=tact, k=k):
            with torch.no_grad():
                return tact(torch.nn.functional.conv2d(xg, wg, bg, padding=k // 2))

        def tb(xg=xg, wg=wg, bg=bg, tact=tact, k=k, dyt=dyt, input_grad=input_grad):
            yt = tact(torch.nn.functional.conv2d(xg, wg, bg, padding=k // 2))   # the graph's forward
            wrt = [xg, wg, bg] if input_grad else [wg, bg]
            return torch.autograd.grad(yt, wrt, dyt)
        out[(label, "forward")] = {"npespcn": nf, "pytorch": tf}
        # PyTorch's backward includes its forward (autograd needs the graph); so its time is the
        # difference with its plain forward, computed below.
        out[(label, "backward")] = {"npespcn": nb, "pytorch": tb}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count())))
    args = ap.parse_args(argv)
    print(machine())
    print(f"threads: {args.threads}; load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for case in args.cases.split(","):
        if case not in CASES:
            ap.error(f"unknown case {case!r}; expected one of {', '.join(CASES)}")
        res = {key: {n: 1e3 * t for n, t in alternate(fs, args.repeats)[0].items()}
               for key, fs in runners(case, args.threads).items()}
        if CASES[case]["kind"] == "train":            # PyTorch's timed backward re-ran its forward
            for (label, part), t in res.items():
                if part == "backward":
                    t["pytorch"] = max(t["pytorch"] - res[(label, "forward")]["pytorch"], 0.0)
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
