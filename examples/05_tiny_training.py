"""Example 5: a tiny training run that visibly learns, in well under a minute.

The whole training loop of ESPCN, written out with the library's pieces::

    for step in range(steps):
        x, y = random batch of LR patches (B, 1, 17, 17) and their HR patches (B, 1, 17r, 17r), Y / 255
        loss, dy = mse_loss(model.forward(x), y)      # forward keeps the caches
        model.backward(dy)                            # fills model.grads
        opt.step(model.grads)                         # Adam, rate 3e-3

Training images: the first few of T91 (the paper's training set) when the datasets are present, else a
synthetic chart. The rate is higher than the paper's (which also trains the last layer ten times slower,
``Adam(..., lr_mult=model.lr_multipliers(0.1))``) so that a few hundred steps show progress. A held-out
image (Set5's butterfly, or the chart) is scored before and after with PSNR on Y (border r removed), next
to the bicubic baseline. Writes the loss curve and the crops as PNG.

Run: ``python examples/05_tiny_training.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import time

import _common
import _draw
import numpy as np

from npespcn import ESPCN, Adam
from npespcn.evaluation.metrics import psnr
from npespcn.functional import mse_loss


def training_images(n: int):
    """``n`` uint8 RGB images from T91 (sorted names), or one synthetic chart. Returns (images, source)."""
    folder = _common.datasets_dir() / "T91"
    paths = sorted(folder.glob("*.png"))[:n] if folder.is_dir() else []
    if paths:
        return [_common.load_rgb8(p) for p in paths], f"T91 ({len(paths)} images from {folder})"
    return [_common.synthetic_chart(192)], "a synthetic chart (T91 not found; set NPESPCN_DATASETS)"


def held_out_image():
    path = _common.find_image("Set5", "butterfly.png")
    if path is not None:
        return _common.load_rgb8(path), f"Set5 butterfly ({path})"
    return _common.synthetic_chart(144), "a synthetic chart (Set5 not found; set NPESPCN_DATASETS)"


def super_resolve(model, lr_y):
    """ESPCN on a whole luma plane (H, W) on 16..235 -> (rH, rW) on 0..255 (clipped)."""
    return np.clip(model.infer((lr_y / 255.0)[None, None].astype(np.float32))[0, 0] * 255.0, 0, 255)


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    r, patch = 3, 17
    # --fast (the tests): a slimmer network, fewer steps. Otherwise the paper's 5x5x64, 3x3x32.
    layers, steps, batch = (((5, 16), (3, 8)), 80, 8) if fast else (((5, 64), (3, 32)), 400, 16)
    images, source = training_images(4 if fast else 16)
    sampler = _common.PatchSampler([_common.make_pair(im, r)[:2] for im in images], r, patch)
    test_rgb, test_source = held_out_image()
    hr_y, lr_y, lr_rgb = _common.make_pair(test_rgb, r)
    if fast:                                   # a central 96x96 HR crop keeps the evaluation cheap
        t, l = (lr_y.shape[0] - 32) // 2, (lr_y.shape[1] - 32) // 2
        hr_y, lr_y = hr_y[r * t:r * t + 96, r * l:r * l + 96], lr_y[t:t + 32, l:l + 32]
        lr_rgb = lr_rgb[t:t + 32, l:l + 32]
    print(f"training ESPCN x{r} with hidden layers {layers} on {source}; {steps} steps of {batch} LR "
          f"patches {patch}x{patch}")
    print(f"held out: {test_source}, HR {hr_y.shape[0]}x{hr_y.shape[1]}")

    model = ESPCN(r, layers=layers, activation="tanh", seed=0)
    opt = Adam(model.params, lr=3e-3)
    bicubic = _common.bicubic_y(lr_rgb, r)
    psnr_bicubic = psnr(hr_y, bicubic, border=r)
    sr_before = super_resolve(model, lr_y)
    psnr_before = psnr(hr_y, sr_before, border=r)

    losses = []
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        x, y = sampler.batch(batch)
        loss, dy = mse_loss(model.forward(x), y)
        model.backward(dy)
        opt.step(model.grads)
        losses.append(loss)
        if step % max(1, steps // 8) == 0 or step == steps - 1:
            print(f"  step {step:4d}  loss {loss:.5f}  ({time.perf_counter() - t0:.1f} s)")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    sr_after = super_resolve(model, lr_y)
    psnr_after = psnr(hr_y, sr_after, border=r)

    window = max(1, steps // 10)
    first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    print(f"mean loss over the first {window} steps {first:.5f} -> last {window} steps {last:.5f} "
          f"({first / last:.1f}x lower) in {seconds:.1f} s ({cpu:.1f} s of CPU)")
    print(f"held-out PSNR (Y, border {r}): untrained {psnr_before:.2f} dB -> trained {psnr_after:.2f} dB; "
          f"bicubic {psnr_bicubic:.2f} dB")
    if psnr_after < psnr_bicubic:
        print("(still below bicubic: the paper trains for hours, this demo for seconds)")
    else:
        print("(above bicubic already: the sub-pixel network has learned more than interpolation)")
    assert last < first / 3, "the loss did not fall"
    assert psnr_after > psnr_before + 10, "the held-out image did not improve"

    # Pictures: the loss curve (raw and smoothed, log scale) and the held-out crops side by side.
    xs = np.arange(1, steps + 1)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    curve = _draw.line_plot({"loss per step": (xs, losses), f"mean of {window}": (xs[window - 1:], smooth)},
                            logy=True, title=f"ESPCN x{r} training on {source.split(' (')[0]}",
                            xlabel="step", ylabel="MSE (Y/255)")
    files = [_draw.save_png(curve, out / "05_loss_curve.png")]
    n = min(96, hr_y.shape[0], hr_y.shape[1])
    t, l = (hr_y.shape[0] - n) // 2, (hr_y.shape[1] - n) // 2
    crops = [a[t:t + n, l:l + n] for a in (bicubic, sr_before, sr_after, hr_y)]
    caps = [f"bicubic {psnr_bicubic:.2f} dB", f"untrained {psnr_before:.2f} dB",
            f"after {steps} steps {psnr_after:.2f} dB", "HR"]
    files.append(_draw.save_png(_draw.grid([_draw.gray(c, scale=2) for c in crops], caps, ncols=4),
                                out / "05_before_after.png"))
    for f in files:
        print(f"wrote {f}")
    return {"steps": steps, "batch": batch, "losses": losses, "loss_first": first, "loss_last": last,
            "psnr_before": psnr_before, "psnr_after": psnr_after, "psnr_bicubic": psnr_bicubic,
            "seconds": seconds, "cpu_seconds": cpu, "layers": layers, "source": source,
            "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
