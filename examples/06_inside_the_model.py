"""Example 6: a look inside the shipped model.

Loads ``weights/espcn_x3.npz`` (the paper's model, x3, trained by ``npespcn``'s trainer) with
:func:`npespcn.load_model` and follows one real image (Set5's butterfly) through it::

    x   (1, 1, H, W)       LR luma / 255
    h1  (1, 64, H, W)      tanh(conv 5x5)        the first-layer filters (64, 1, 5, 5) and their responses
    h2  (1, 32, H, W)      tanh(conv 3x3)
    z   (1, 9, H, W)       conv 3x3              the r² = 9 sub-pixel channels, before the shuffle
    y   (1, 1, 3H, 3W)     PS(z)                 channel α*3 + β fills pixel (α, β) of every 3x3 block

so ``z[0, α*r + β]`` is the model's estimate of the HR image sampled at phase ``(α, β)``, ``hr[α::r, β::r]``.
The nine look alike; what tells them apart is a shift of a third of an LR pixel, which shows once their
mean is subtracted: ``z[m] - mean_m z[m]`` next to ``hr[α::r, β::r] - mean`` of the HR phases.

Pictures: the network with its shapes; its receptive field, measured by backpropagating one output block;
the filters; the feature maps; the sub-pixel channels next to the HR phases, each minus the mean of the
nine; bicubic vs ESPCN crops. Without the shipped file the script trains the same model for a few seconds
instead (and says so); without Set5 it uses a synthetic chart.

Run: ``python examples/06_inside_the_model.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn import ESPCN, Adam, load_model
from npespcn.evaluation.metrics import psnr
from npespcn.functional import mse_loss, pixel_shuffle, use_backend

WEIGHTS = _common.ROOT / "weights" / "espcn_x3.npz"


def quick_model(r: int, steps: int, batch: int):
    """The fallback: the paper's model trained for ``steps`` Adam steps of ``batch`` patches on T91 (or
    the chart), as in example 5."""
    folder = _common.datasets_dir() / "T91"
    paths = sorted(folder.glob("*.png"))[:8] if folder.is_dir() else []
    images = [_common.load_rgb8(p) for p in paths] or [_common.synthetic_chart(192)]
    sampler = _common.PatchSampler([_common.make_pair(im, r)[:2] for im in images], r, 17)
    model = ESPCN.paper(r, seed=0)
    opt = Adam(model.params, lr=3e-3)
    for _ in range(steps):
        x, y = sampler.batch(batch)
        _, dy = mse_loss(model.forward(x), y)
        model.backward(dy)
        opt.step(model.grads)
    return model


def activations(model, x):
    """The output of every layer, by name: ``{"conv1": ..., "act1": ..., ..., "shuffle": y}``."""
    acts, h = {}, x
    for name, layer in model.named_layers:
        h = layer.forward(h, train=False)
        acts[name] = h
    return acts


def receptive_picture(dx, u0, v0, radius, r):
    """|dL/dx| around the block's LR pixel (u0, v0), 8x: the receptive field, with its border drawn."""
    R = radius + 3
    a = np.abs(dx[u0 - R:u0 + R + 1, v0 - R:v0 + R + 1])
    s = 18
    img = _draw.heatmap(np.log10(a + 1e-12 * a.max() + 1e-30), scale=s, cmap="viridis",
                        vmin=np.log10(a.max()) - 4, vmax=np.log10(a.max()))
    lo, hi = 3 * s, (3 + 2 * radius + 1) * s
    _draw.outline(img, (lo, lo, hi - 1, hi - 1))                                # the window
    _draw.outline(img, (R * s + 2, R * s + 2, R * s + s - 3, R * s + s - 3), (255, 0, 0))  # the block's pixel
    n = 2 * radius + 1
    return _draw.grid([img], [f"white: the {n}x{n} window; red: the block's pixel"], ncols=1,
                      title=f"|dL/dx| of one {r}x{r} output block (log)")


def maps_grid(maps, title, ncols=8, scale=1, cmap="viridis"):
    """Feature maps (K, H, W), each scaled to its own range."""
    cells = [_draw.heatmap(m, scale=scale, cmap=cmap) for m in maps]
    return _draw.grid(cells, [str(i) for i in range(len(cells))], ncols=ncols, title=title, label_size=9)


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    r = 3
    shipped = WEIGHTS.is_file()
    if shipped:
        model = load_model(WEIGHTS)
        print(f"model: {WEIGHTS} ({model.arch})")
    else:
        steps, batch = (20, 8) if fast else (300, 16)
        print(f"model: {WEIGHTS} not found; training the paper's model for {steps} steps instead "
              f"(the pictures will look rougher than the shipped model's)")
        model = quick_model(r, steps, batch)
    if model.scale != r or model.channels != 1:
        raise ValueError(f"example 6 expects a x{r} luma model, got {model.arch}")

    path = _common.find_image("Set5", "butterfly.png")
    rgb = _common.load_rgb8(path) if path is not None else _common.synthetic_chart(240)
    real = path is not None
    print(f"image: {path if real else 'synthetic chart (Set5 not found; set NPESPCN_DATASETS)'}")
    hr_y, lr_y, lr_rgb = _common.make_pair(rgb, r)
    bic = _common.bicubic_y(lr_rgb, r)
    if fast:                                  # a central 48x48 LR crop: the same pictures, smaller
        t, l = (lr_y.shape[0] - 48) // 2, (lr_y.shape[1] - 48) // 2
        lr_y, hr_y = lr_y[t:t + 48, l:l + 48], hr_y[r * t:r * (t + 48), r * l:r * (l + 48)]
        bic = bic[r * t:r * (t + 48), r * l:r * (l + 48)]
    H, W = lr_y.shape
    x = (lr_y / 255.0)[None, None].astype(np.float32)

    # 1. Every layer's output; the shuffle of z is the model's output, exactly.
    acts = activations(model, x)
    last = model.last_layer
    z = acts[last]
    y = acts["shuffle"]
    assert z.shape == (1, r * r, H, W) and y.shape == (1, 1, r * H, r * W)
    assert np.array_equal(pixel_shuffle(z, r), y)
    # model.infer fuses each convolution with its activation: the same numbers, one pass less.
    assert np.allclose(model.infer(x), y, rtol=1e-5, atol=1e-6)
    for name, a in acts.items():
        print(f"  {name:8s} {str(a.shape):20s} range [{a.min():+.3f}, {a.max():+.3f}]")
    print(f"PS({last} output) == the model's output: exact; receptive field {2 * model.receptive_radius + 1}x"
          f"{2 * model.receptive_radius + 1} LR pixels per {r}x{r} output block")

    # The receptive field, measured: backpropagate dL/dy = 1 on one r x r output block; the input
    # gradient is non-zero exactly on the LR pixels that block depends on. With the reference backend
    # (im2col), whose gradient is exactly 0 elsewhere: the fast backward runs the 3x3 layers by Winograd,
    # whose transforms leave float32 rounding (about 1e-7 of the largest value) on pixels around them.
    u0, v0 = H // 2, W // 2
    dy = np.zeros((1, 1, r * H, r * W), np.float32)
    dy[0, 0, r * u0:r * u0 + r, r * v0:r * v0 + r] = 1.0
    with use_backend("reference"):
        model.forward(x)
        dx = model.backward(dy)[0, 0]
    rows, cols = np.nonzero(np.abs(dx).sum(axis=1))[0], np.nonzero(np.abs(dx).sum(axis=0))[0]
    field = (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
    assert field == (2 * model.receptive_radius + 1,) * 2 and rows[0] == u0 - model.receptive_radius
    print(f"receptive field, measured: dL/dx of one {r}x{r} output block is non-zero on {field[0]}x{field[1]} LR "
          f"pixels, rows {rows[0]}..{rows[-1]} around u = {u0} (radius 2 + 1 + 1 = {model.receptive_radius})")

    # 2. The sub-pixel channels: channel α*r + β against every HR phase.
    sr = np.clip(y[0, 0] * 255.0, 0, 255)
    zc = np.clip(z[0] * 255.0, 0, 255)
    phases = [hr_y[a::r, b::r] for a in range(r) for b in range(r)]
    b = model.receptive_radius               # leave out the LR border, where padding distorts
    err = np.array([[np.mean((zc[m, b:-b, b:-b] - ph[b:-b, b:-b]) ** 2) for ph in phases]
                    for m in range(r * r)])
    own = np.diag(err)
    matched = bool(np.all(np.argmin(err, axis=1) == np.arange(r * r)))
    print(f"sub-pixel channel m = α*{r} + β vs HR phase hr[α::{r}, β::{r}]: MSE with its own phase "
          f"{own.mean():.1f}, with the other phases {err[~np.eye(r * r, dtype=bool)].mean():.1f} "
          f"(mean over channels); every channel closest to its own phase: {matched}")

    # 3. Bicubic vs ESPCN on the whole image (Y, border r).
    p_bic, p_sr = psnr(hr_y, bic, border=r), psnr(hr_y, sr, border=r)
    print(f"PSNR on Y, border {r}: bicubic {p_bic:.2f} dB, ESPCN {p_sr:.2f} dB ({p_sr - p_bic:+.2f} dB)")
    if shipped:
        # Claims about a trained model; the few-second fallback need not meet them.
        assert matched, f"a sub-pixel channel is closer to another phase than its own: {err}"
        if real:
            assert p_sr > p_bic, "the shipped model does not beat bicubic"

    # 4. Filters: how many are smooth (mean far from 0) vs edge-like (positive and negative lobes).
    w1 = model.params["conv1.weight"][:, 0]
    balance = np.abs(w1.sum(axis=(1, 2))) / np.abs(w1).sum(axis=(1, 2))
    edge_like = int(np.sum(balance < 0.3))
    print(f"first layer: {w1.shape[0]} filters 5x5; {edge_like} have |sum w| < 0.3 sum |w| "
          f"(edge/texture detectors), {w1.shape[0] - edge_like} are mostly one sign (smoothing)")

    # Pictures.
    files = []
    filt = [_draw.heatmap(f, scale=10, cmap="diverging", symmetric=True) for f in w1]
    files.append(_draw.save_png(_draw.grid(filt, [str(i) for i in range(len(filt))], ncols=8, label_size=9,
                                           title="conv1 filters (blue < 0 < red, each to its own max)"),
                                out / "06_filters.png"))
    scale = 2 if H <= 64 else 1
    h1 = acts["act1"][0] if "act1" in acts else acts["prelu1"][0]
    h2 = acts["act2"][0] if "act2" in acts else acts["prelu2"][0]
    files.append(_draw.save_png(maps_grid(h1, f"h1 = tanh(conv1(x)): {h1.shape[0]} maps {H}x{W}",
                                          scale=scale), out / "06_features_h1.png"))
    files.append(_draw.save_png(maps_grid(h2, f"h2 = tanh(conv2(h1)): {h2.shape[0]} maps {H}x{W}",
                                          scale=scale), out / "06_features_h2.png"))
    # Each of the nine minus the mean of the nine: what is left is the shift, a third of an LR pixel per
    # phase step, positive on one side of every edge and negative on the other.
    zdev = zc - zc.mean(axis=0)
    hdev = np.array(phases) - np.mean(phases, axis=0)
    m = float(np.percentile(np.abs(hdev), 99)) or 1.0
    sub = [_draw.heatmap(zdev[k], scale=scale, cmap="diverging", vmin=-m, vmax=m) for k in range(r * r)]
    hrp = [_draw.heatmap(hdev[k], scale=scale, cmap="diverging", vmin=-m, vmax=m) for k in range(r * r)]
    labels = [f"phase ({a}, {b})" for a in range(r) for b in range(r)]
    files.append(_draw.save_png(_draw.hstack([
        _draw.grid(sub, labels, ncols=r, title="z[m] - mean of the 9 (model)"),
        _draw.grid(hrp, labels, ncols=r, title="HR phases - mean of the 9"),
    ]), out / "06_subpixel_channels.png"))
    files.append(_draw.save_png(receptive_picture(dx, u0, v0, model.receptive_radius, r),
                                out / "06_receptive_field.png"))
    files.append(_draw.save_png(_draw.network_diagram(model, H, W), out / "06_network.png"))
    n = min(96, r * H, r * W)
    t, l = (r * H - n) // 2, (r * W - n) // 2
    lr_big = np.repeat(np.repeat(lr_y, r, 0), r, 1)
    crops = [a[t:t + n, l:l + n] for a in (lr_big, bic, sr, hr_y)]
    files.append(_draw.save_png(_draw.grid([_draw.gray(c, scale=3) for c in crops],
                                           ["LR (pixels repeated)", f"bicubic {p_bic:.2f} dB",
                                            f"ESPCN {p_sr:.2f} dB", "HR"], ncols=4),
                                out / "06_bicubic_vs_espcn.png"))
    for f in files:
        print(f"wrote {f}")
    return {"shipped": shipped, "real_image": real, "shapes": {k: a.shape for k, a in acts.items()},
            "phase_mse": err, "phase_matched": matched, "psnr_bicubic": p_bic,
            "psnr_espcn": p_sr, "edge_like_filters": edge_like, "receptive_field": field,
            "receptive_rows": (int(rows[0]), int(rows[-1])), "block": (u0, v0), "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
