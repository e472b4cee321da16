"""Example 8: re-parameterised training -- more branches to train, one plain convolution to run.

A re-parameterisable layer (RepVGG, Ding et al. 2021; ECBSR, Zhang et al. 2021) trains a k x k
convolution as the sum of branches on the same input, ``conv_k(x; W, b) + conv_1(x; W1, b1) [+ x]``, and
is folded into one k x k convolution before it is saved (``npespcn train --reparam``,
:class:`npespcn.nn.reparam.RepConv2d`). This example shows, in the guide's order (section 11):

1. The fold is exact: the branches and the folded convolution give the same output (float64, to rounding),
   with and without the identity branch.
2. What the branches change is the optimisation, not the function: one SGD step on the branches, then
   folding, is one SGD step of the plain convolution in which the centre taps and the bias move at twice
   the rate (their gradient arrives through two parameters).
3. The price: the multiply-adds of training (k*k + 1 per input-output pair) against inference (k*k).
4. A short training of the paper network on a T91 crop with and without the branches, from the same
   start; both are folded and scored on the crop, and the folded model runs at the plain network's cost.

Run: ``python examples/08_reparameterised_training.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn import ESPCN, Adam, psnr
from npespcn import functional as F
from npespcn.functional import mse_loss
from npespcn.nn.reparam import RepConv2d


def branches_and_fold(c_in: int, c_out: int, k: int, seed: int):
    """A RepConv2d with random branches (float64) and the largest |branches - folded| on a random input."""
    rng = np.random.default_rng(seed)
    layer = RepConv2d(c_in, c_out, k, np.float64)
    for v in layer.params.values():
        v[...] = rng.normal(0.0, 0.3, v.shape)
    x = rng.normal(0.0, 1.0, (2, c_in, 9, 11))
    w, b = layer.folded_weights()
    return layer, x, float(np.max(np.abs(layer.forward(x) - F.conv2d_forward(x, w, b)[0])))


def sgd_step_through_the_branches(layer: RepConv2d, x, lr: float, seed: int):
    """One SGD step on the branches from a random output gradient; returns the folded weights before and
    after, and the plain convolution's gradient ``(dW, db)`` at the folded weights for the same ``dout``."""
    dout = np.random.default_rng(seed).normal(0.0, 1.0, layer.forward(x).shape)
    before = layer.folded_weights()
    layer.backward(dout)
    for name, g in layer.grads.items():
        layer.params[name] -= lr * g
    after = layer.folded_weights()
    _, cache = F.conv2d_forward(x, *before)
    _, dw, db = F.conv2d_backward(dout, cache)
    return before, after, (dw, db)


def train(model: ESPCN, lr_y, hr_y, steps: int, seed: int):
    """Adam on random 17 x 17 crops of one image (batch 8, last layer at 0.1x); the loss after every step."""
    r = model.scale
    rng = np.random.default_rng(seed)
    model.params[f"{model.last_layer}.bias"][...] = np.float32(hr_y.mean() / 255.0)
    opt = Adam(model.params, 1e-3, lr_mult=model.lr_multipliers(0.1))
    losses = []
    for _ in range(steps):
        ys = rng.integers(0, lr_y.shape[0] - 17, 8)
        xs = rng.integers(0, lr_y.shape[1] - 17, 8)
        x = np.stack([lr_y[a:a + 17, b:b + 17] for a, b in zip(ys, xs)])[:, None] / 255.0
        y = np.stack([hr_y[r * a:r * a + 17 * r, r * b:r * b + 17 * r] for a, b in zip(ys, xs)])[:, None] / 255.0
        pred = model.forward(x.astype(np.float32))
        loss, dpred = mse_loss(pred, y.astype(np.float32))
        model.backward(dpred, input_grad=False)
        opt.step(model.grads)
        losses.append(float(loss))
    return losses


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    res = {}

    # 1. The fold is exact.
    print("1. branches against the folded convolution (float64, random weights and input)")
    res["fold"] = {}
    for c_in, c_out in ((8, 8), (8, 4)):
        layer, x, err = branches_and_fold(c_in, c_out, 3, seed=c_in + c_out)
        res["fold"][f"{c_in}->{c_out}"] = {"identity": layer.identity, "max_abs_diff": err}
        print(f"   {c_in:2d} -> {c_out}: identity branch {'on ' if layer.identity else 'off'}, "
              f"largest difference {err:.1e}")
        assert err < 1e-12

    # 2. One SGD step through the branches = one plain step with the centre taps and bias at twice the rate.
    lr = 0.01
    layer, x, _ = branches_and_fold(8, 8, 3, seed=3)
    (w0, b0), (w1, b1), (dw, db) = sgd_step_through_the_branches(layer, x, lr, seed=4)
    rate = np.ones_like(dw)
    rate[:, :, 1, 1] = 2.0
    step_err = max(float(np.max(np.abs(w1 - (w0 - lr * rate * dw)))), float(np.max(np.abs(b1 - (b0 - 2 * lr * db)))))
    plain_err = float(np.max(np.abs(w1 - (w0 - lr * dw))))
    res["sgd"] = {"lr": lr, "max_abs_diff_doubled_centre": step_err, "max_abs_diff_plain_step": plain_err}
    print(f"2. one SGD step (rate {lr}) on the branches, folded, against one step of the plain convolution:")
    print(f"   with the centre taps and the bias at {2 * lr} : largest difference {step_err:.1e}")
    print(f"   with every tap at {lr}                  : largest difference {plain_err:.1e} (not the same step)")
    assert step_err < 1e-12 and plain_err > 1e-6

    # 3. Multiply-adds per LR pixel, training against inference.
    res["macs"] = {}
    print("3. multiply-adds per LR pixel of a 3x3 layer: trained as branches / run folded")
    for c_in, c_out in ((64, 32), (32, 32)):
        train_macs, run_macs = c_in * c_out * (9 + 1), c_in * c_out * 9
        res["macs"][f"{c_in}->{c_out}"] = (train_macs, run_macs)
        print(f"   {c_in} -> {c_out}: {train_macs} / {run_macs} ({train_macs / run_macs:.3f}x in training"
              f"{', + 1 add per value for the identity' if c_in == c_out else ''})")

    # 4. A short training from the same start, with and without the branches.
    path = _common.find_image("T91", "t1.png")
    rgb = _common.load_rgb8(path) if path else _common.synthetic_chart(120)
    hr_y, lr_y, lr_rgb = _common.make_pair(rgb, 3)
    steps = 60 if fast else 1500
    curves, scores = {}, {}
    for reparam in (False, True):
        model = ESPCN.paper(3, seed=0, reparam=reparam)
        losses = train(model, lr_y, hr_y, steps, seed=1)
        plain = model.folded() if reparam else model
        assert all(not k.endswith(("weight1", "bias1")) for k in plain.params)     # the plain network
        sr = plain.infer((lr_y[None, None] / 255.0).astype(np.float32))[0, 0] * 255.0
        name = "branches, folded" if reparam else "plain"
        scores[name] = float(psnr(np.clip(sr, 0, 255), hr_y, border=3))
        curves[name] = (list(range(1, steps + 1)), losses)
    res["train"] = {"image": path.name if path else "synthetic chart", "steps": steps, "psnr": scores}
    print(f"4. {steps} Adam steps on {res['train']['image']} (x3, the same start and batches), PSNR on Y:")
    for name, value in scores.items():
        print(f"   {name:17s} {value:6.2f} dB")
    print("   one crop and a short run show the mechanics, not which wins: weights/README.md measures "
          "--reparam on the tuning set")

    w, b = layer.folded_weights()
    cells = [_draw.heatmap(a, 24, "diverging", symmetric=True)
             for a in (layer.params["weight"][0, 0], np.pad(layer.params["weight1"][0, 0], 1),
                       np.pad([[1.0]], 1), w[0, 0])]
    files = [_draw.save_png(_draw.grid(cells, ["W", "pad(W1)", "I", "W'"], ncols=4,
                                       title="kernel (0, 0): W' = W + pad(W1) + I"), out / "08_fold.png"),
             _draw.save_png(_draw.line_plot(curves, title=f"training loss, {steps} steps", xlabel="step",
                                            ylabel="MSE on Y/255", logy=True), out / "08_losses.png")]
    for f in files:
        print(f"wrote {f}")
    res["files"] = [str(f) for f in files]
    return res


if __name__ == "__main__":
    _common.run(main)
