"""Example 2: a convolution in LR space followed by the periodic shuffle IS a stride-r deconvolution.

The paper's central claim (Shi et al. 2016, section 2.2), checked numerically. Take the last layer of ESPCN,
a k x k convolution (the one defined in guide section 1, with taps ``(i, j)``) from ``C_in`` feature maps
to ``C*r*r`` channels, then the shuffle of example 1 (phases ``(α, β)``)::

    x (C_in, H, W)  --conv K (C*r*r, C_in, k, k), bias b (C*r*r,)-->  z (C*r*r, H, W)  --PS-->  y (C, rH, rW)

The same ``y`` comes out of a transposed convolution ("deconvolution") with stride ``r`` run on ``x``,
whose kernel ``D`` (C_in, C, r*k, r*k) is ``K`` rearranged (``p = (k - 1) // 2``)::

    D[c, o, α + r*(k-1-i), β + r*(k-1-j)] = K[o*r*r + α*r + β, c, i, j]      α, β < r;  i, j < k

Every LR pixel ``x[:, u, v]`` adds a copy of ``D`` scaled by its values at HR position ``(r*u - r*p,
r*v - r*p)``; cropping ``r*p`` pixels from every side of the ``(r*(H-1) + r*k)``-high result leaves
``r*H`` rows (PyTorch: ``ConvTranspose2d(C_in, C, r*k, stride=r, padding=r*p)``). The bias becomes
periodic: ``B[o, U, V] = b[o*r*r + (U % r)*r + V % r]``.

Why "transposed": the deconvolution's matrix is exactly the transpose of the matrix of a stride-``r``
convolution with the same kernel (HR -> LR), checked entry by entry below. And a deconvolution of another
size, ``ConvTranspose2d(C_in, C, K_d, stride=r, padding=P)`` with ``K_d = r + 2P`` (so that the output is
``rH``), is a sub-pixel convolution too: pad its kernel with ``r*p - P`` zeros on every side, where
``p = ceil(P / r)``; the result is ``r*(2p + 1)`` wide, an odd multiple of ``r``.

Cost, in multiply-adds (MACs) per image, counted in the code below:

* LR convolution (im2col + GEMM):        H*W * k² * C_in * C*r²
* deconvolution as scatter-add:          H*W * (r*k)² * C_in * C          (the same number)
* deconvolution as "insert zeros, then convolve in HR space": rH*rW * (r*k)² * C_in * C, r² times more,
  and all but about 1/r² of those products multiply an inserted zero.

Run: ``python examples/02_subpixel_is_deconvolution.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn import ESPCN
from npespcn.functional import conv2d_forward, pixel_shuffle


# ---------------------------------------------------------------------------------- the two computations
def lr_conv_then_shuffle(x, K, b, r):
    """``PS(conv(x, K) + b)`` for one image ``x`` (C_in, H, W). Returns ``(y (C, rH, rW), macs)``.

    The MAC count is read off the GEMM the convolution performs: ``(C*r*r, C_in*k*k) @ (C_in*k*k, H*W)``.
    """
    z, _ = conv2d_forward(x[None], K, b, backend="reference")
    M, C_in, k, _ = K.shape
    macs = M * (C_in * k * k) * (x.shape[1] * x.shape[2])
    return pixel_shuffle(z, r)[0], macs


def deconv_kernel(K: np.ndarray, r: int) -> np.ndarray:
    """Rearrange the LR kernel ``K`` (C*r*r, C_in, k, k) into the deconvolution kernel (C_in, C, rk, rk).

    ``D[c, o, α + r*(k-1-i), β + r*(k-1-j)] = K[o*r*r + α*r + β, c, i, j]``: the phase ``(α, β)``
    becomes the position inside each r x r cell of ``D``, and the k x k taps are flipped, because a
    convolution *gathers* (output at u reads input u + i - p) while a deconvolution *scatters* (input at
    u writes output r*u + s - r*p for s < r*k).
    """
    M, C_in, k, _ = K.shape
    C = M // (r * r)
    D = np.zeros((C_in, C, r * k, r * k), dtype=K.dtype)
    for o in range(C):
        for al in range(r):
            for be in range(r):
                for i in range(k):
                    for j in range(k):
                        D[:, o, al + r * (k - 1 - i), be + r * (k - 1 - j)] = K[o * r * r + al * r + be, :, i, j]
    return D


def lr_kernel(D: np.ndarray, r: int) -> np.ndarray:
    """The inverse rearrangement: every (C_in, C, rk, rk) deconvolution kernel is some LR kernel."""
    C_in, C, rk, _ = D.shape
    k = rk // r
    K = np.empty((C * r * r, C_in, k, k), dtype=D.dtype)
    for o in range(C):
        for al in range(r):
            for be in range(r):
                for i in range(k):
                    for j in range(k):
                        K[o * r * r + al * r + be, :, i, j] = D[:, o, al + r * (k - 1 - i), be + r * (k - 1 - j)]
    return K


def periodic_bias(b: np.ndarray, r: int, H: int, W: int) -> np.ndarray:
    """The LR bias as an HR bias map (C, rH, rW): ``B[o, U, V] = b[o*r*r + (U % r)*r + V % r]``."""
    C = b.size // (r * r)
    return np.tile(b.reshape(C, r, r), (1, H, W))


def deconv_scatter(x, D, r):
    """Stride-r transposed convolution by scatter-add, cropped to (C, rH, rW). Returns ``(y, macs)``.

    Every LR pixel ``(u, v)`` adds the kernel, weighted by its ``C_in`` values, into an ``rk x rk`` window
    that starts at ``r*u`` of the uncropped canvas; the canvas is ``r*(H-1) + rk`` high and ``r*p`` is
    cropped per side.
    """
    C_in, H, W = x.shape
    _, C, rk, _ = D.shape
    k = rk // r
    p = (k - 1) // 2
    canvas = np.zeros((C, r * (H - 1) + rk, r * (W - 1) + rk), dtype=np.result_type(x, D))
    macs = 0
    for u in range(H):
        for v in range(W):
            canvas[:, r * u:r * u + rk, r * v:r * v + rk] += np.tensordot(x[:, u, v], D, axes=(0, 0))
            macs += C_in * C * rk * rk
    assert canvas.shape[1:] == (r * H + 2 * r * p, r * W + 2 * r * p)       # crop r*p per side -> r*H
    return canvas[:, r * p:r * p + r * H, r * p:r * p + r * W], macs


def deconv_zero_insertion(x, D, r):
    """The same deconvolution as "insert r-1 zeros between pixels, then convolve in HR space".

    ``x_up[:, r*u, r*v] = x[:, u, v]`` (zeros elsewhere), padded by ``r*p + r - 1`` before and ``r*p`` after,
    correlated with the spatially flipped kernel. Returns ``(y, macs, nonzero_macs)``: the products
    actually computed, and those whose input is not an inserted or padded zero.
    """
    C_in, H, W = x.shape
    _, C, rk, _ = D.shape
    p = (rk // r - 1) // 2
    x_up = np.zeros((C_in, r * H, r * W), dtype=x.dtype)
    x_up[:, ::r, ::r] = x
    before, after = r * p + r - 1, r * p
    upad = np.pad(x_up, ((0, 0), (before, after), (before, after)))
    nz = np.pad(np.zeros((r * H, r * W), bool), ((before, after), (before, after)))
    nz[before:before + r * H:r, before:before + r * W:r] = True
    Dflip = D[:, :, ::-1, ::-1]
    y = np.zeros((C, r * H, r * W), dtype=np.result_type(x, D))
    macs = nonzero = 0
    for s in range(rk):
        for t in range(rk):
            y += np.tensordot(Dflip[:, :, s, t], upad[:, s:s + r * H, t:t + r * W], axes=(0, 0))
            macs += C_in * C * r * H * r * W
            nonzero += C_in * C * int(nz[s:s + r * H, t:t + r * W].sum())
    return y, macs, nonzero


def strided_conv(y, D, r):
    """The stride-``r`` convolution HR -> LR with the deconvolution's kernel ``D`` (C_in, C, rk, rk): for
    ``y`` (C, rH, rW), ``out[c, u, v] = sum_{o,s,t} D[c, o, s, t] * ypad[o, r*u + s, r*v + t]``, ``ypad`` being
    ``y`` with ``r*p`` zeros on every side. Its matrix is the transpose of :func:`deconv_scatter`'s."""
    C, rH, rW = y.shape
    _, _, rk, _ = D.shape
    p = (rk // r - 1) // 2
    ypad = np.pad(y, ((0, 0), (r * p, r * p), (r * p, r * p)))
    H, W = rH // r, rW // r
    out = np.zeros((D.shape[0], H, W), dtype=np.result_type(y, D))
    for u in range(H):
        for v in range(W):
            out[:, u, v] = np.tensordot(D, ypad[:, r * u:r * u + rk, r * v:r * v + rk], axes=([1, 2, 3], [0, 1, 2]))
    return out


def as_matrix(f, shape):
    """The matrix of the linear map ``f`` on arrays of ``shape``: column ``q`` is ``f`` of the ``q``-th unit array."""
    n = int(np.prod(shape))
    return np.stack([f(e.reshape(shape)).ravel() for e in np.eye(n)], axis=1)


def deconv_general(x, D, r, P):
    """``ConvTranspose2d(stride=r, padding=P)`` with any kernel size ``K_d`` (D: (C_in, C, K_d, K_d)): scatter
    as :func:`deconv_scatter`, then crop ``P`` per side; the output is ``r*(H-1) - 2P + K_d`` high."""
    C_in, H, W = x.shape
    _, C, Kd, _ = D.shape
    canvas = np.zeros((C, r * (H - 1) + Kd, r * (W - 1) + Kd), dtype=np.result_type(x, D))
    for u in range(H):
        for v in range(W):
            canvas[:, r * u:r * u + Kd, r * v:r * v + Kd] += np.tensordot(x[:, u, v], D, axes=(0, 0))
    return canvas[:, P:canvas.shape[1] - P, P:canvas.shape[2] - P]


def as_subpixel_kernel(D, r, P):
    """A ``K_d x K_d`` deconvolution kernel with padding ``P`` and ``K_d = r + 2P``, padded with ``r*p - P`` zeros
    on every side (``p = ceil(P / r)``) to ``r*(2p + 1)``, an odd multiple of ``r``: the kernel of
    :func:`deconv_scatter` for the LR kernel size ``k = 2p + 1``. Returns ``(padded D, k)``."""
    Kd = D.shape[-1]
    if Kd != r + 2 * P:
        raise ValueError(f"an output r times the input needs K_d = r + 2P, got K_d = {Kd}, r = {r}, P = {P}")
    p = -(-P // r)
    z = r * p - P
    return np.pad(D, ((0, 0), (0, 0), (z, z), (z, z))), 2 * p + 1


# ---------------------------------------------------------------------------------- pictures
def kernel_pictures(r: int = 2, k: int = 3):
    """Label every tap of a one-channel LR kernel (r*r, 1, k, k) and show where it sits in D (rk, rk)."""
    M = r * r
    K = np.arange(M * k * k, dtype=np.float64).reshape(M, 1, k, k)
    D = deconv_kernel(K, r)[0, 0]
    name = {int(K[m, 0, i, j]): f"{m}:{i}{j}" for m in range(M) for i in range(k) for j in range(k)}
    cols = _draw.category_colours(M)
    cells = [_draw.table([[name[int(K[m, 0, i, j])] for j in range(k)] for i in range(k)],
                         [[cols[m]] * k for _ in range(k)], cell=36) for m in range(M)]
    left = _draw.grid(cells, [f"K[{m}]: phase ({m // r},{m % r})" for m in range(M)], ncols=r,
                      title=f"LR kernel K: {M} channels x {k}x{k}")
    right = _draw.table([[name[int(v)] for v in row] for row in D],
                        [[cols[int(v) // (k * k)] for v in row] for row in D], cell=36,
                        title=f"deconvolution kernel D: {r * k}x{r * k}")
    return _draw.hstack([left, right], pad=12)


# ---------------------------------------------------------------------------------- main
def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    rng = np.random.default_rng(0)
    results = {"cases": []}
    print("LR kernel K (C*r*r, C_in, k, k)  ->  deconvolution kernel D (C_in, C, r*k, r*k):\n"
          "  D[c, o, α + r*(k-1-i), β + r*(k-1-j)] = K[o*r*r + α*r + β, c, i, j]   (phase α, β; tap i, j)\n"
          "  LR pixel (u, v) adds x[:, u, v] . D at HR (r*u - r*p, r*v - r*p); the canvas is r*H + 2*r*p "
          "high, crop r*p per side\n"
          "  = ConvTranspose2d(C_in, C, r*k, stride=r, padding=r*p), plus the periodic bias "
          "B[o, U, V] = b[o*r*r + (U%r)*r + V%r]\n")

    # 1. Random layers of several shapes (float64): both directions of the rearrangement, both
    #    deconvolution forms, exact MAC counts.
    cases = [(2, 3, 3, 2, 5, 4), (3, 3, 32, 1, 8, 7), (2, 5, 4, 3, 6, 6)]     # (r, k, C_in, C, H, W)
    for r, k, C_in, C, H, W in cases:
        x = rng.normal(size=(C_in, H, W))
        K = rng.normal(size=(C * r * r, C_in, k, k))
        b = rng.normal(size=C * r * r)
        y_lr, macs_lr = lr_conv_then_shuffle(x, K, b, r)
        D = deconv_kernel(K, r)
        assert np.array_equal(lr_kernel(D, r), K), "the rearrangement is not a bijection"
        y_sc, macs_sc = deconv_scatter(x, D, r)
        y_zi, macs_zi, nonzero = deconv_zero_insertion(x, D, r)
        bias = periodic_bias(b, r, H, W)
        err_sc = float(np.max(np.abs(y_sc + bias - y_lr)))
        err_zi = float(np.max(np.abs(y_zi + bias - y_lr)))
        scale = float(np.max(np.abs(y_lr)))
        assert err_sc <= 1e-12 * scale and err_zi <= 1e-12 * scale, (err_sc, err_zi)
        assert macs_lr == H * W * k * k * C_in * C * r * r
        assert macs_sc == H * W * (r * k) ** 2 * C_in * C == macs_lr
        assert macs_zi == (r * H) * (r * W) * (r * k) ** 2 * C_in * C == r * r * macs_lr
        print(f"r={r} k={k} C_in={C_in} C={C} LR {H}x{W}: K {K.shape} -> D {D.shape}; "
              f"max |PS(conv) - deconv| = {err_sc:.1e} (scatter), {err_zi:.1e} (zero insertion); "
              f"MACs {macs_lr} (LR conv) = {macs_sc} (scatter), {macs_zi} (zero insertion, "
              f"{nonzero / macs_zi:.1%} on non-zeros)")
        results["cases"].append({"r": r, "k": k, "C_in": C_in, "C": C, "H": H, "W": W, "err_scatter": err_sc,
                                 "err_zero_insertion": err_zi, "macs_lr": macs_lr, "macs_scatter": macs_sc,
                                 "macs_zero_insertion": macs_zi, "nonzero_macs": nonzero, "scale": scale})

    # 2. The whole ESPCN: its output equals the deconvolution of its last hidden features.
    r = 3
    model = ESPCN.paper(r, dtype=np.float64, seed=1)
    for name, p in model.params.items():        # a visible, non-trivial last layer
        if name.startswith(model.last_layer):
            p[...] = rng.normal(scale=0.05, size=p.shape)
    n = 12 if fast else 32
    _, lr, _ = _common.make_pair(_common.synthetic_chart(r * n), r)
    x = (lr / 255.0)[None, None]
    h = x
    for _, layer in model.named_layers[:-2]:      # everything before the last convolution and the shuffle
        h = layer.forward(h, train=False)
    conv = model.named_layers[-2][1]
    K, b = conv.params["weight"], conv.params["bias"]
    y_model = model.infer(x)[0]
    y_deconv, macs_sc = deconv_scatter(h[0], deconv_kernel(K, r), r)
    y_deconv += periodic_bias(b, r, n, n)
    err_model = float(np.max(np.abs(y_model - y_deconv)))
    assert err_model <= 1e-12 * float(np.max(np.abs(y_model)))
    C_in, k = K.shape[1], K.shape[2]
    print(f"\nESPCN x{r} on a {n}x{n} LR chart: model.infer(x) == deconv(h2, D) + B with D "
          f"{(C_in, 1, r * k, r * k)}: max difference {err_model:.1e}")
    print(f"last layer: {macs_sc} MACs either way = H*W*k^2*C_in*r^2 = {n}*{n}*{k}^2*{C_in}*{r}^2; "
          f"a zero-insertion deconvolution would do {r * r}x more, and running the whole network "
          f"in HR space (after bicubic upsampling, as SRCNN does) costs r^2 = {r * r}x more per layer")
    results.update({"model_err": err_model, "model_lr_size": n, "model_macs_last": macs_sc})

    # 3. Why "transposed": the deconvolution's matrix is the transpose of the strided convolution's.
    r, k, C_in, C, H, W = 2, 3, 2, 1, 3, 4
    D = rng.normal(size=(C_in, C, r * k, r * k))
    A = as_matrix(lambda a: strided_conv(a, D, r), (C, r * H, r * W))       # (C_in*H*W, C*rH*rW)
    T = as_matrix(lambda a: deconv_scatter(a, D, r)[0], (C_in, H, W))        # (C*rH*rW, C_in*H*W)
    assert np.array_equal(T, A.T)
    print(f"\nthe deconvolution's matrix T ({T.shape[0]}x{T.shape[1]}) is exactly the transpose of the matrix A "
          f"({A.shape[0]}x{A.shape[1]}) of the stride-{r} convolution HR -> LR with the same kernel: "
          "a transposed convolution")
    results["transpose_shapes"] = (A.shape, T.shape)

    # 4. Deconvolutions of other sizes: ConvTranspose2d(K_d, stride r, padding P) with K_d = r + 2P.
    results["general"] = []
    for r, Kd, P in ((2, 4, 1), (2, 2, 0), (3, 5, 1), (4, 8, 2), (3, 9, 3)):
        x = rng.normal(size=(3, 4, 5))
        D = rng.normal(size=(3, 1, Kd, Kd))
        Dpad, k = as_subpixel_kernel(D, r, P)
        y_dec = deconv_general(x, D, r, P)
        y_sub, _ = lr_conv_then_shuffle(x, lr_kernel(Dpad, r), np.zeros(r * r), r)
        err = float(np.max(np.abs(y_dec - y_sub)))
        assert y_dec.shape == (1, r * 4, r * 5) and err < 1e-12
        print(f"ConvTranspose2d(kernel {Kd}, stride {r}, padding {P}) = LR conv {k}x{k} to {r * r} channels + PS: "
              f"kernel padded by {(r * k - Kd) // 2} zeros per side to {r * k}; max difference {err:.1e}")
        results["general"].append({"r": r, "Kd": Kd, "P": P, "k": k, "err": err})

    files = [_draw.save_png(kernel_pictures(2, 3), out / "02_kernel_rearrangement.png")]
    for f in files:
        print(f"wrote {f}")
    results["files"] = [str(f) for f in files]
    return results


if __name__ == "__main__":
    _common.run(main)
