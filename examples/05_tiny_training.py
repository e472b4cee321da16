"""Example 5: training ESPCN, and measuring honestly what it has learned.

The loop, with the choices of npespcn's trainer (:mod:`npespcn.training.trainer`, minus its epochs,
augmentation and checkpoints)::

    model = ESPCN.paper(3)
    model.params["conv3.bias"][...] = mean HR luma / 255       # start at the mean grey, not at black
    opt = Adam(model.params, lr, lr_mult=model.lr_multipliers(0.1))    # the last layer at 0.1 x the rate
    for step in range(steps):
        x, t = LR patches (B, 1, 17, 17) and their HR patches (B, 1, 17r, 17r), luma / 255
        loss, dy = mse_loss(model.forward(x), t)
        model.backward(dy, input_grad=False)                   # fills model.grads
        opt.step(model.grads)

Training images: the first 16 of T91 (the paper's training set, built into the repository); held out:
Set5's butterfly, scored by PSNR on luma with ``r`` pixels of border removed. Three baselines are printed
beside the result, so that the gain is not misread:

* the constant image at the mean training luma: what the untrained model outputs (its last layer starts
  at N(0, 0.001²) weights and the mean-luma bias), and the score a network earns for the bias alone;
* bicubic interpolation, the bar any super-resolution method has to clear;
* the untrained model itself.

Full mode trains the paper's model for 4000 steps of 16 patches at Adam's rate 3e-3 (three times the
trainer's 1e-3, so that a few thousand steps suffice), the last fifth at a tenth of it, and beats bicubic.
``--fast`` (the tests) runs 300 steps: it learns visibly but stays below bicubic. The first step takes longer
than the others: numba compiles every kernel the first time it runs (and caches it on disk for later runs).

Two things the early outputs show are measured while training, from the trainer's start and from a zero
bias (PyTorch's default, and this example's former start): a **frame** along the border, where the
network's 9 x 9 window reaches into the zero padding (black), and a **3 x 3 checkerboard**, the ``r``-periodic
pattern left while the r² sub-pixel channels disagree on their mean (:func:`_common.periodic_rms`, guide
section 10 and example 7).

Run: ``python examples/05_tiny_training.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import time

import _common
import _draw
import numpy as np

from npespcn import ESPCN, Adam, psnr
from npespcn.functional import mse_loss


def training_images(n: int):
    """``n`` uint8 RGB images of T91 (sorted names), or one synthetic chart. Returns (images, source)."""
    folder = _common.datasets_dir() / "T91"
    paths = sorted(folder.glob("*.png"))[:n] if folder.is_dir() else []
    if paths:
        return [_common.load_rgb8(p) for p in paths], f"T91 ({len(paths)} images from {folder})"
    return [_common.synthetic_chart(192)], "a synthetic chart (T91 not found in NPESPCN_DATASETS)"


def held_out_image():
    path = _common.find_image("Set5", "butterfly.png")
    if path is not None:
        return _common.load_rgb8(path), f"Set5 butterfly ({path})"
    return _common.synthetic_chart(144), "a synthetic chart (Set5 not found in NPESPCN_DATASETS)"


def super_resolve(model, lr_y):
    """ESPCN on a whole luma plane (H, W) on 16..235 -> (rH, rW) on 0..255 (clipped)."""
    return np.clip(model.infer((lr_y / 255.0)[None, None].astype(np.float32))[0, 0] * 255.0, 0, 255)


def frame_errors(sr, hr, width: int) -> dict:
    """Mean signed error and RMS error (luma levels) in the ``width``-pixel frame and inside it."""
    err = sr - hr
    inner = np.zeros(err.shape, bool)
    inner[width:-width, width:-width] = True
    return {"frame_mean": float(err[~inner].mean()), "frame_rms": float(np.sqrt(np.mean(err[~inner] ** 2))),
            "inner_mean": float(err[inner].mean()), "inner_rms": float(np.sqrt(np.mean(err[inner] ** 2)))}


def train(model, opt, sampler, steps: int, batch: int, lr: float, snapshots, lr_y, decay: bool = True,
          verbose: bool = True):
    """``steps`` Adam steps (with ``decay``, the last fifth at ``lr / 10``).

    Returns ``(losses, {step: output for lr_y after that many steps, for step in snapshots}, seconds of
    the first step, seconds of the others)``.
    """
    losses, outputs, first = [], {}, 0.0
    t0 = time.perf_counter()
    for step in range(steps):
        if decay and step == steps - steps // 5:
            opt.lr = lr / 10
        x, y = sampler.batch(batch)
        loss, dy = mse_loss(model.forward(x), y)
        model.backward(dy, input_grad=False)
        opt.step(model.grads)
        losses.append(loss)
        if step == 0:
            first = time.perf_counter() - t0
        if step + 1 in snapshots:
            outputs[step + 1] = super_resolve(model, lr_y)
        if not verbose:
            continue
        if step == 0:
            print(f"  step    1  loss {loss:.5f}  ({first:.1f} s: the first call of every numba kernel compiles "
                  f"it, or loads it from numba's on-disk cache)")
        elif (step + 1) % max(1, steps // 8) == 0:
            print(f"  step {step + 1:4d}  loss {loss:.5f}")
    return losses, outputs, first, time.perf_counter() - t0 - first


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    r, patch, batch, lr = 3, 17, 16, 3e-3
    steps = 300 if fast else 4000
    images, source = training_images(16)
    pairs = [_common.make_pair(im, r)[:2] for im in images]
    test_rgb, test_source = held_out_image()
    hr_y, lr_y, lr_rgb = _common.make_pair(test_rgb, r)
    bicubic = _common.bicubic_y(lr_rgb, r)
    print(f"training ESPCN x{r} (5x5x64, 3x3x32, tanh) on {source}: {steps} Adam steps of {batch} LR patches "
          f"{patch}x{patch}, rate {lr:g} (last layer x0.1), a tenth of it for the last {steps // 5} steps")
    print(f"held out: {test_source}, HR {hr_y.shape[0]}x{hr_y.shape[1]}")

    model = ESPCN.paper(r, seed=0)
    # As the trainer (TrainConfig.init_bias_mean): the last bias at the mean HR luma of the training data,
    # so that the untrained output is mid-grey rather than black (the weights start at N(0, 0.001²)).
    mean_luma = float(np.mean([hr.mean() for hr, _ in pairs]))
    model.params[f"{model.last_layer}.bias"][...] = mean_luma / 255.0
    opt = Adam(model.params, lr=lr, lr_mult=model.lr_multipliers(0.1))

    border = r
    psnr_bicubic = psnr(hr_y, bicubic, border=border)
    psnr_constant = psnr(hr_y, np.full_like(hr_y, mean_luma), border=border)
    sr_before = super_resolve(model, lr_y)
    psnr_before = psnr(hr_y, sr_before, border=border)
    print(f"baselines (PSNR on Y, border {border}): constant image at the mean luma {mean_luma:.1f}: "
          f"{psnr_constant:.2f} dB; untrained model: {psnr_before:.2f} dB; bicubic: {psnr_bicubic:.2f} dB")

    marks = [s for s in (10, 20, 40, 80, 160, 320, 640, 1280, 2560) if s < steps] + [steps]
    losses, outputs, first, seconds = train(model, opt, _common.PatchSampler(pairs, r, patch), steps, batch, lr,
                                            marks, lr_y)
    sr_after = outputs[steps]
    psnr_after = psnr(hr_y, sr_after, border=border)
    window = max(1, steps // 10)
    loss_first, loss_last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    print(f"mean loss over the first {window} steps {loss_first:.5f} -> last {window} steps {loss_last:.5f} "
          f"({loss_first / loss_last:.1f}x lower); steps 2..{steps} took {seconds:.1f} s")
    print(f"held-out PSNR: trained {psnr_after:.2f} dB = the constant image's {psnr_constant:.2f} dB "
          f"{psnr_after - psnr_constant:+.2f} dB; bicubic {psnr_bicubic:.2f} dB ({psnr_after - psnr_bicubic:+.2f} dB)")
    if psnr_after < psnr_bicubic:
        print(f"(below bicubic after {steps} steps; the full mode's 4000 steps pass it; the shipped model "
              f"weights/espcn_x3.npz had 212 940)")
    else:
        print("(above bicubic: the network has learned more than interpolation)")

    # The frame and the checkerboard while training, from the trainer's start and from a zero bias
    # (PyTorch's default, and this example's former start): the same batches.
    zero = ESPCN.paper(r, seed=0)
    zero_marks = [s for s in marks if s <= 80]
    _, zero_outputs, _, _ = train(zero, Adam(zero.params, lr=lr, lr_mult=zero.lr_multipliers(0.1)),
                                  _common.PatchSampler(pairs, r, patch), zero_marks[-1], batch, lr, zero_marks,
                                  lr_y, decay=False, verbose=False)
    width = r * model.receptive_radius          # outputs this close to the border see the zero padding
    inner = (slice(width, -width), slice(width, -width))

    def measure(a):
        fr = frame_errors(a, hr_y, width)
        return {"psnr": psnr(hr_y, a, border=border), "frame_minus_inside": fr["frame_mean"] - fr["inner_mean"],
                "periodic": _common.periodic_rms(a[inner], r), **fr}

    trajectory = {"mean bias": {s: measure(outputs[s]) for s in marks},
                  "zero bias": {s: measure(zero_outputs[s]) for s in zero_marks}}
    reference = {"HR": measure(hr_y), "bicubic": measure(bicubic)}
    print(f"\nwhile training: PSNR; how much brighter the {width}-pixel frame (r x receptive radius "
          f"{model.receptive_radius}) is than the inside, on average; and the 3x3-periodic part (RMS of the 9 "
          f"phase means inside the frame), luma levels. HR's own periodic part {reference['HR']['periodic']:.3f}, "
          f"bicubic's {reference['bicubic']['periodic']:.3f}; bicubic's frame "
          f"{reference['bicubic']['frame_minus_inside']:+.2f}")
    print("  step " + "".join(f"{s:>7d}" for s in marks))
    for start, rows in trajectory.items():
        for key, fmt in (("psnr", "{:7.2f}"), ("frame_minus_inside", "{:+7.1f}"), ("periodic", "{:7.2f}")):
            print(f"  {start:9s} {key:18s} " + "".join(fmt.format(rows[s][key]) for s in rows))
    zero_peak = max(v["periodic"] for v in trajectory["zero bias"].values())
    mean_peak = max(v["periodic"] for s, v in trajectory["mean bias"].items() if s <= 80)
    frame_peak = max(v["frame_minus_inside"] for v in trajectory["mean bias"].values())
    final = trajectory["mean bias"][steps]
    print(f"The frame: outputs whose 9x9 LR window reaches past the border read zero padding (black); early on "
          f"the network turns that into a frame whose mean error differs from the inside's by up to "
          f"{frame_peak:+.1f} levels, and learns to undo it (every 17x17 training patch has the same padding "
          f"around it): {final['frame_minus_inside']:+.1f} after {steps} steps.")
    print(f"The checkerboard: each of the 9 phases is its own output channel, with its own bias and weights; "
          f"from a zero bias each must climb ~{mean_luma:.0f} levels through its own weights, and they do not climb "
          f"in step: their means differ by up to {zero_peak:.2f} levels RMS in the first 80 steps ({mean_peak:.2f} "
          f"from the mean bias); {final['periodic']:.2f} after {steps} steps.")

    assert loss_last < loss_first / 2, "the loss did not fall"
    assert psnr_after > psnr_constant + 5, "the held-out image did not improve on the constant image"
    assert abs(psnr_before - psnr_constant) < 0.5, "the untrained model should be the constant image"
    assert final["periodic"] < zero_peak and abs(final["frame_minus_inside"]) < frame_peak
    if not fast:
        assert psnr_after > psnr_bicubic, "full mode should beat bicubic"

    # Pictures: the loss curve; crops; the early outputs with their frame and checkerboard; error maps.
    xs = np.arange(1, steps + 1)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    curve = _draw.line_plot({"loss per step": (xs, losses), f"mean of {window}": (xs[window - 1:], smooth)},
                            logy=True, title=f"ESPCN x{r} training on {source.split(' (')[0]}",
                            xlabel="step", ylabel="MSE (Y/255)")
    files = [_draw.save_png(curve, out / "05_loss_curve.png")]
    n = min(96, hr_y.shape[0], hr_y.shape[1])
    t, l = (hr_y.shape[0] - n) // 2, (hr_y.shape[1] - n) // 2
    crops = [a[t:t + n, l:l + n] for a in (sr_before, bicubic, sr_after, hr_y)]
    caps = [f"untrained {psnr_before:.2f} dB", f"bicubic {psnr_bicubic:.2f} dB",
            f"after {steps} steps {psnr_after:.2f} dB", "HR"]
    files.append(_draw.save_png(_draw.grid([_draw.gray(c, scale=2) for c in crops], caps, ncols=4),
                                out / "05_before_after.png"))
    corner = min(48, hr_y.shape[0], hr_y.shape[1])       # the top-left corner: frame and checkerboard
    pics = [(zero_outputs[20], "zero bias, 20 steps"), (outputs[20], "mean bias, 20 steps"),
            (sr_after, f"mean bias, {steps} steps"), (hr_y, "HR")]
    files.append(_draw.save_png(_draw.grid([_draw.gray(a[:corner, :corner], scale=4) for a, _ in pics],
                                           [c for _, c in pics], ncols=4, title="top-left corner, 4x"),
                                out / "05_frame_and_checkerboard.png"))
    errs = [_draw.heatmap(a - hr_y, cmap="diverging", vmin=-40, vmax=40) for a in (bicubic, sr_after)]
    files.append(_draw.save_png(_draw.grid(errs, ["bicubic - HR", f"ESPCN after {steps} steps - HR"], ncols=2,
                                           title="error, luma levels -40 (blue) .. +40 (red)"),
                                out / "05_errors.png"))
    for f in files:
        print(f"wrote {f}")
    return {"steps": steps, "batch": batch, "losses": losses, "loss_first": loss_first, "loss_last": loss_last,
            "mean_luma": mean_luma, "psnr_constant": psnr_constant, "psnr_before": psnr_before,
            "psnr_after": psnr_after, "psnr_bicubic": psnr_bicubic, "trajectory": trajectory,
            "reference": reference, "frame_width": width, "seconds": seconds, "first_step_seconds": first,
            "source": source, "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
