"""Example 0: ESPCN in 50 lines of NumPy: forward, backward, Adam, and a few training steps on real images.

Read it top to bottom; it imports nothing but NumPy and Pillow (to read and shrink images; and ``sys`` for the
command line). It is the whole of docs/how-it-works.md in one file, slowly: the package computes the same
numbers with fused, threaded kernels (tests/test_guide.py checks every function against it in float64, to
1e-10 or better). Shapes: N images, LR size H x W, scale r; names as in the guide's section 0.

    x (N, 1, H, W) -conv 5x5, tanh-> h1 (N, 64, H, W) -conv 3x3, tanh-> h2 (N, 32, H, W)
      -conv 3x3-> z (N, r*r, H, W) -shuffle-> y (N, 1, rH, rW)

Run: ``python examples/00_espcn_in_50_lines.py [--out DIR] [--fast]``
"""
import numpy as np
from PIL import Image


# ---------------------------------------------------------------- 1. the layers (guide sections 1-4)
def im2col(x, k):          # (N, C, H, W) -> (N, C*k*k, H*W): row (c, i, j) is channel c shifted by (i-p, j-p)
    N, C, H, W = x.shape
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    return np.stack([xp[:, :, i:i + H, j:j + W] for i in range(k) for j in range(k)], 2).reshape(N, -1, H * W)


def col2im(cols, shape, k):     # the adjoint of im2col: every copy added back where it was taken from
    N, C, H, W = shape
    p = k // 2
    xp = np.zeros((N, C, H + 2 * p, W + 2 * p))
    for t, c in enumerate(cols.reshape(N, C, k * k, H, W).transpose(2, 0, 1, 3, 4)):
        xp[:, :, t // k:t // k + H, t % k:t % k + W] += c
    return xp[:, :, p:p + H, p:p + W]


def conv(x, K, b):              # "same" k x k convolution: one matrix product per image
    return (K.reshape(len(K), -1) @ im2col(x, K.shape[-1]) + b[:, None]).reshape(len(x), len(K), *x.shape[2:])


def conv_backward(d, x, K):     # d = dL/d(output) (N, C_out, H, W) -> dL/dx, dL/dK, dL/db
    d = d.reshape(len(d), len(K), -1)
    dK = np.einsum("nop,nqp->oq", d, im2col(x, K.shape[-1])).reshape(K.shape)
    return col2im(K.reshape(len(K), -1).T @ d, x.shape, K.shape[-1]), dK, d.sum(axis=(0, 2))


def shuffle(z, r):              # (N, C*r*r, H, W) -> (N, C, rH, rW), PyTorch's channel order
    N, M, H, W = z.shape
    return z.reshape(N, M // r**2, r, r, H, W).transpose(0, 1, 4, 2, 5, 3).reshape(N, M // r**2, r * H, r * W)


def unshuffle(y, r):            # its inverse, which is also its backward pass
    N, C, H, W = y.shape
    return y.reshape(N, C, H // r, r, W // r, r).transpose(0, 1, 3, 5, 2, 4).reshape(N, C * r * r, H // r, W // r)


# ---------------------------------------------------------------- 2. the network (sections 1, 6, 8)
def init(r, seed=0, bias=0.0):  # He normal, fan-out, for hidden layers; N(0, 0.001^2) for the last; biases 0
    rng, P = np.random.default_rng(seed), {}
    for name, (o, i, k) in (("conv1", (64, 1, 5)), ("conv2", (32, 64, 3)), ("conv3", (r * r, 32, 3))):
        std = 0.001 if name == "conv3" else np.sqrt(2 / (o * k * k))
        P[name + ".weight"], P[name + ".bias"] = rng.normal(0, std, (o, i, k, k)), np.zeros(o)
    P["conv3.bias"][:] = bias   # the trainer starts it at the mean HR luma
    return P


def forward(P, x, r):           # returns y and what backward needs
    h1 = np.tanh(conv(x, P["conv1.weight"], P["conv1.bias"]))
    h2 = np.tanh(conv(h1, P["conv2.weight"], P["conv2.bias"]))
    return shuffle(conv(h2, P["conv3.weight"], P["conv3.bias"]), r), (x, h1, h2)


def backward(P, cache, dy, r):  # the chain rule, back to front; tanh' = 1 - tanh^2
    (x, h1, h2), G = cache, {}
    dh2, G["conv3.weight"], G["conv3.bias"] = conv_backward(unshuffle(dy, r), h2, P["conv3.weight"])
    dh1, G["conv2.weight"], G["conv2.bias"] = conv_backward(dh2 * (1 - h2**2), h1, P["conv2.weight"])
    dx, G["conv1.weight"], G["conv1.bias"] = conv_backward(dh1 * (1 - h1**2), x, P["conv1.weight"])
    return G, dx


def adam(P, G, S, lr, mult, b1=0.9, b2=0.999, eps=1e-8):   # PyTorch's Adam, in place; S holds its state
    S["t"] = t = S.get("t", 0) + 1
    for k in P:
        m, v = S.setdefault(k, (np.zeros_like(P[k]), np.zeros_like(P[k])))
        m += (1 - b1) * (G[k] - m)
        v[...] = b2 * v + (1 - b2) * G[k] ** 2
        P[k] -= lr * mult.get(k, 1.0) / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)


# ---------------------------------------------------------------- 3. data and training (sections 7, 8)
def luma(rgb):                  # BT.601 studio-range Y of 0..255 RGB, on 16..235
    return 16 + rgb @ np.array([65.481, 128.553, 24.966]) / 255


def pair(path, r):              # HR cropped to a multiple of r, LR its bicubic shrink; luma / 255
    hr = Image.open(path).convert("RGB")
    hr = hr.crop((0, 0, hr.width // r * r, hr.height // r * r))
    lr = hr.resize((hr.width // r, hr.height // r), Image.BICUBIC)
    return luma(np.asarray(hr, float)) / 255, luma(np.asarray(lr, float)) / 255


def psnr(a, b, border):         # on 0..1 values, `border` pixels cut on every side
    d = (a - b)[border:-border, border:-border]
    return 10 * np.log10(1 / np.mean(d * d))


def main(argv=None, out_dir=None, fast=False):
    argv = list(argv or [])
    fast = fast or "--fast" in argv
    here = __file__.replace("\\", "/").rsplit("/", 1)[0]
    out = str(out_dir) if out_dir is not None else (argv[argv.index("--out") + 1] if "--out" in argv[:-1]
                                                     else here + "/out")
    r, steps, batch, s = 3, (10 if fast else 150), 8, 17              # s x s LR patches
    pairs = [pair(f"{here}/../data/T91/{name}.png", r) for name in ("t1", "t10", "t11", "t12")]
    test_hr, test_lr = pair(f"{here}/../data/Set5/butterfly.png", r)
    P = init(r, seed=0, bias=np.mean([hr.mean() for hr, _ in pairs]))
    grey = np.full_like(test_hr, P["conv3.bias"][0])                  # what the untrained model outputs
    S, mult, rng, losses = {}, {"conv3.weight": 0.1, "conv3.bias": 0.1}, np.random.default_rng(0), []
    print(f"ESPCN x{r} in NumPy, {sum(p.size for p in P.values())} parameters; {steps} Adam steps of {batch} "
          f"patches {s}x{s} from 4 images of T91")
    for step in range(steps):
        xs, ts = [], []
        for _ in range(batch):          # a random LR patch and the HR patch that covers the same scene
            hr, lr = pairs[rng.integers(len(pairs))]
            u, v = rng.integers(lr.shape[0] - s + 1), rng.integers(lr.shape[1] - s + 1)
            xs.append(lr[u:u + s, v:v + s])
            ts.append(hr[r * u:r * (u + s), r * v:r * (v + s)])
        x, t = np.stack(xs)[:, None], np.stack(ts)[:, None]
        y, cache = forward(P, x, r)
        losses.append(float(np.mean((y - t) ** 2)))                   # MSE
        G, _ = backward(P, cache, 2 * (y - t) / y.size, r)            # dL/dy = 2 (y - t) / M
        adam(P, G, S, 1e-3 if fast else 3e-3, mult)
        if step % max(1, steps // 5) == 0 or step == steps - 1:
            print(f"  step {step + 1:4d}  loss {losses[-1]:.5f}")
    sr = np.clip(forward(P, test_lr[None, None], r)[0][0, 0], 0, 1)
    result = {"losses": losses, "psnr": psnr(sr, test_hr, r), "psnr_constant": psnr(grey, test_hr, r),
              "params": P}
    print(f"Set5 butterfly, PSNR on Y: this model {result['psnr']:.2f} dB; the constant grey it starts from "
          f"{result['psnr_constant']:.2f} dB (example 5 trains longer and passes bicubic)")
    try:
        pic = np.concatenate([test_lr.repeat(r, 0).repeat(r, 1), sr, test_hr], axis=1)
        Image.fromarray(np.uint8(np.round(pic * 255))).save(out + "/00_lr_sr_hr.png")
        print(f"wrote {out}/00_lr_sr_hr.png (LR with its pixels repeated | this model | HR)")
    except OSError as e:               # no such folder: the numbers above are the result
        print(f"no picture written ({e.strerror}: {out}); give --out an existing folder")
    return result


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
