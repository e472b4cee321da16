"""Example 3: im2col step by step, against the loop definition, and the backward pass through col2im.

A k x k "same" convolution (stride 1, zero padding ``p = (k - 1) // 2``, guide section 1) of ``x``
(N, C_in, H, W) with the kernel ``K`` (C_out, C_in, k, k) (the code's ``w``) is, per output pixel, a dot
product with a k x k x C_in patch. im2col copies every patch into a column (:mod:`npespcn.functional.im2col`)::

    cols[n, (c*k + i)*k + j, u*W + v] = xpad[n, c, u + i, v + j]       cols (N, C_in*k*k, H*W)

row ``(c, i, j)`` (input channel, kernel tap), column ``(u, v)`` (output pixel); and the convolution
becomes one matrix product per image (:mod:`npespcn.functional.conv`)::

    out[n] = K_mat @ cols[n] + b[:, None]     K_mat = K.reshape(C_out, C_in*k*k)      (C_out, H*W) -> (C_out, H, W)

Backward: ``dK_mat = sum_n dout[n] @ cols[n].T``, ``db = sum dout``, ``dcols[n] = K_mat.T @ dout[n]`` and
``dx = col2im(dcols)``, where col2im scatters every column entry back to the pixel it was copied from and
adds up the copies: it is the adjoint (transpose) of im2col, not its inverse. So ``dx = col2im(K_mat.T @
dout)`` is the transpose of the convolution applied to ``dout``: a stride-1 transposed convolution with the
same kernel (example 2's deconvolution with ``r = 1``), checked below.

The loop definition (``conv2d_forward_naive``) has four loops, over ``(n, o, u, v)``, around a sum over the
patch's ``(c, i, j)``: the same ``N * C_out * H * W * C_in * k * k`` multiply-adds as the matrix product.
All arrays here hold small integers in float64, so every sum is exact and the checks are equalities.

Run: ``python examples/03_im2col.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn.functional import col2im, conv2d_backward, conv2d_forward, im2col
from npespcn.functional.conv import conv2d_backward_naive, conv2d_forward_naive


def copies_per_pixel(H: int, W: int, k: int) -> np.ndarray:
    """How many columns of im2col hold pixel (u, v): the in-range kernel offsets, counted by hand.

    Row u is read by the output rows u - i + p for i in 0..k-1 that lie in 0..H-1, i.e.
    ``min(u, p) + min(H - 1 - u, p) + 1`` of them; likewise for columns; the count is the product.
    """
    p = (k - 1) // 2
    rows = np.array([min(u, p) + min(H - 1 - u, p) + 1 for u in range(H)])
    cols = np.array([min(v, p) + min(W - 1 - v, p) + 1 for v in range(W)])
    return np.outer(rows, cols)


def transposed_conv_stride1(d, K):
    """The stride-1 transposed convolution (example 2's scatter with r = 1) of ``d`` (N, C_out, H, W) with
    ``K`` (C_out, C_in, k, k): every output pixel (u, v) adds ``d[:, o, u, v] * K[o]`` into the k x k window
    around (u, v) of an input-sized canvas, padding cropped. PyTorch: ``conv_transpose2d(d, K, padding=p)``."""
    N, C_out, H, W = d.shape
    _, C_in, k, _ = K.shape
    p = (k - 1) // 2
    canvas = np.zeros((N, C_in, H + 2 * p, W + 2 * p))
    for u in range(H):
        for v in range(W):
            canvas[:, :, u:u + k, v:v + k] += np.tensordot(d[:, :, u, v], K, axes=(1, 0))
    return canvas[:, :, p:p + H, p:p + W]


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    rng = np.random.default_rng(0)
    N, C_in, H, W, k, C_out = 1, 2, 4, 5, 3, 3
    p = (k - 1) // 2

    # Step 0: a small labelled image. Entry x[0, c, u, v] = 1 + (c*H + u)*W + v, so 0 can only be padding.
    x = (1 + np.arange(N * C_in * H * W, dtype=np.float64)).reshape(N, C_in, H, W)

    def label(value):
        """Label of an entry: "c:uv" (channel, row, column), or "." for a padding zero."""
        if value == 0:
            return "."
        c, rest = divmod(int(value) - 1, H * W)
        return f"{c}:{rest // W}{rest % W}"

    print(f"x: (N, C_in, H, W) = {x.shape}, entry c:uv is x[0, c, u, v]; kernel k={k}, padding p={p}")
    for c in range(C_in):
        print("\n".join("   " + " ".join(label(v) for v in row) for row in x[0, c]))

    # Step 1: pad by p and copy every k x k x C_in patch into a column.
    cols = im2col(x, k, backend="reference")
    assert cols.shape == (N, C_in * k * k, H * W)
    assert np.array_equal(cols, im2col(x, k, backend="numba"))
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    for u in range(H):
        for v in range(W):
            assert np.array_equal(cols[0, :, u * W + v], xpad[0, :, u:u + k, v:v + k].ravel())
    for c in range(C_in):
        for i in range(k):
            for j in range(k):           # row (c, i, j) is channel c shifted by (i - p, j - p)
                assert np.array_equal(cols[0, (c * k + i) * k + j].reshape(H, W), xpad[0, c, i:i + H, j:j + W])
    u0, v0 = 1, 2
    print(f"\ncols = im2col(x): shape {cols.shape} = (N, C_in*k*k, H*W); column u*W + v = {u0 * W + v0} "
          f"is the patch around (u, v) = ({u0}, {v0}):")
    print("   " + " ".join(label(v) for v in cols[0, :, u0 * W + v0]))
    print("every column is its padded patch, and row (c, i, j) is channel c shifted by (i - p, j - p): checked")
    blowup = cols.size / x.size
    assert blowup == k * k
    print(f"cost: cols holds {cols.size} numbers for an input of {x.size}, k*k = {blowup:.0f} copies "
          f"(padding zeros included); ESPCN's first 5x5 layer stores 25 copies of its input")

    # Step 2: the convolution as one matrix product, against the loop definition.
    K = rng.integers(-3, 4, size=(C_out, C_in, k, k)).astype(np.float64)
    b = rng.integers(-3, 4, size=C_out).astype(np.float64)
    K_mat = K.reshape(C_out, -1)
    out_gemm = (K_mat @ cols[0] + b[:, None]).reshape(1, C_out, H, W)
    out_naive, naive_cache = conv2d_forward_naive(x, K, b)
    out_ref, cache_ref = conv2d_forward(x, K, b, backend="reference")
    out_nb, cache_nb = conv2d_forward(x, K, b, backend="numba")
    assert np.array_equal(out_gemm, out_naive) and np.array_equal(out_ref, out_naive)
    assert np.array_equal(out_nb, out_naive)
    macs_gemm = N * C_out * (C_in * k * k) * (H * W)        # per image: (C_out, C_in k k) @ (C_in k k, H W)
    macs_loops = N * C_out * H * W * C_in * k * k             # loops (n, o, u, v), a sum over (c, i, j)
    print(f"\nout = K_mat @ cols + b with K_mat = K.reshape({C_out}, {C_in * k * k})  ==  the loop definition "
          f"(conv2d_forward_naive: four loops over (n, o, u, v) around a sum over (c, i, j)): exact; both do "
          f"{macs_gemm} multiply-adds = N*C_out*C_in*k*k*H*W")

    # Step 3: backward. The gradient w.r.t. the columns is a matrix product; col2im folds it back.
    dout = rng.integers(-2, 3, size=out_naive.shape).astype(np.float64)
    d = dout.reshape(C_out, H * W)
    dK = (d @ cols[0].T).reshape(K.shape)
    db = d.sum(axis=1)
    dcols = K_mat.T @ d                                   # (C_in*k*k, H*W)
    dx = col2im(dcols[None], x.shape, k, backend="reference")
    dx_n, dK_n, db_n = conv2d_backward_naive(dout, naive_cache)
    assert np.array_equal(dx, dx_n) and np.array_equal(dK, dK_n) and np.array_equal(db, db_n)
    for cache, be in ((cache_ref, "reference"), (cache_nb, "numba")):
        gx, gK, gb = conv2d_backward(dout, cache, backend=be)
        assert np.array_equal(gx, dx_n) and np.array_equal(gK, dK_n) and np.array_equal(gb, db_n)
    assert np.array_equal(col2im(dcols[None], x.shape, k, backend="numba"), dx)
    print("backward: dK = dout @ cols.T, db = sum(dout), dx = col2im(K_mat.T @ dout)  ==  the loop "
          "gradients (conv2d_backward_naive): exact, both backends")
    # ... and dx is the transposed convolution of dout with the same kernel.
    dx_t = transposed_conv_stride1(dout, K)
    assert np.array_equal(dx_t, dx)
    print("dx = col2im(K_mat.T @ dout) is the stride-1 transposed convolution of dout with K: exact")

    # Step 4: col2im is the adjoint of im2col: <im2col(a), g> = <a, col2im(g)> for every a, g ...
    a = rng.normal(size=(2, 3, 6, 7))
    g = rng.normal(size=(2, 3 * 25, 42))
    lhs = float(np.sum(im2col(a, 5) * g))
    rhs = float(np.sum(a * col2im(g, a.shape, 5)))
    assert np.isclose(lhs, rhs, rtol=1e-12, atol=0)
    # ... and not the inverse: folding the unfolded image multiplies each pixel by its number of copies.
    counts = col2im(im2col(np.ones((1, 1, H, W)), k), (1, 1, H, W), k)[0, 0]
    expected = copies_per_pixel(H, W, k)
    assert np.array_equal(counts, expected)
    assert np.array_equal(col2im(cols, x.shape, k), x * expected)
    print(f"\nadjoint: <im2col(a), g> = {lhs:.12f} = <a, col2im(g)> = {rhs:.12f}")
    print("col2im(im2col(x)) = x * copies, with copies per pixel (k*k inside, fewer at the border):")
    print("\n".join("   " + " ".join(f"{int(v)}" for v in row) for row in counts))

    # Pictures: x with labels, the column matrix with the same labels and its row and column names, the
    # copy counts.
    colours = _draw.category_colours(C_in)
    pad_col, head_col = (235, 235, 235), (255, 255, 255)
    xs = [_draw.table([[label(v) for v in row] for row in x[0, c]], [[colours[c]] * W] * H, cell=34,
                      title=f"x channel {c}") for c in range(C_in)]
    names = [f"{c},{i},{j}" for c in range(C_in) for i in range(k) for j in range(k)]
    ctxt = [["(c,i,j)"] + [f"{u},{v}" for u in range(H) for v in range(W)]]
    ccol = [[head_col] * (1 + H * W)]
    for row_name, row in zip(names, cols[0]):
        ctxt.append([row_name] + [label(v) for v in row])
        ccol.append([head_col] + [pad_col if v == 0 else colours[int(v - 1) // (H * W)] for v in row])
    colpic = _draw.table(ctxt, ccol, cell=32, size=9,
                         title=f"cols = im2col(x): {C_in * k * k} rows (c, i, j) x {H * W} columns (u, v)")
    cnt = _draw.table([[str(int(v)) for v in row] for row in counts],
                      [[tuple(_draw.colorize(v / (k * k), "viridis") // 2 + 127) for v in row] for row in counts],
                      cell=34, title="copies per pixel")
    files = [_draw.save_png(_draw.hstack([_draw.grid(xs + [cnt], ncols=1), colpic]), out / "03_im2col.png")]
    for f in files:
        print(f"wrote {f}")
    return {"x_shape": x.shape, "cols_shape": cols.shape, "blowup": blowup, "macs_gemm": macs_gemm,
            "macs_loops": macs_loops, "max_forward_diff": float(np.max(np.abs(out_gemm - out_naive))),
            "max_dx_diff": float(np.max(np.abs(dx - dx_n))), "transposed_conv_equal": bool(np.array_equal(dx_t, dx)),
            "adjoint_lhs": lhs, "adjoint_rhs": rhs, "copies": counts, "k": k, "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
