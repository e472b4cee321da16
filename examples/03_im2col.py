"""Example 3: im2col step by step, against a naive loop convolution, and the backward pass through col2im.

A k x k "same" convolution (stride 1, zero padding ``p = (k - 1) // 2``) of ``x`` (N, C, H, W) with ``w``
(F, C, k, k) is, per output pixel, a dot product with a k x k x C patch. im2col copies every patch into a
column (:mod:`npespcn.functional.im2col`)::

    cols[n, (c*k + i)*k + j, h*W + w] = xpad[n, c, h + i, w + j]          cols (N, C*k*k, H*W)

and the convolution becomes one matrix product per image (:mod:`npespcn.functional.conv`)::

    out[n] = w.reshape(F, C*k*k) @ cols[n] + b[:, None]                  (F, H*W) -> (F, H, W)

Backward: ``dw = sum_n dout[n] @ cols[n].T``, ``db = sum dout``, ``dcols[n] = W2.T @ dout[n]`` and
``dx = col2im(dcols)``, where col2im scatters every column entry back to the pixel it was copied from and
adds up the copies: it is the adjoint (transpose) of im2col, not its inverse.

All arrays here hold small integers in float64, so every sum is exact and the checks are equalities.

Run: ``python examples/03_im2col.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import string

import _common
import _draw
import numpy as np

from npespcn.functional import col2im, conv2d_backward, conv2d_forward, im2col
from npespcn.functional.conv import conv2d_backward_naive, conv2d_forward_naive


def copies_per_pixel(H: int, W: int, k: int) -> np.ndarray:
    """How many columns of im2col hold pixel (h, w): the in-range kernel offsets, counted by hand.

    Row h is read by the output rows h - i + p for i in 0..k-1 that lie in 0..H-1, i.e.
    ``min(h, p) + min(H - 1 - h, p) + 1`` of them; likewise for columns; the count is the product.
    """
    p = (k - 1) // 2
    rows = np.array([min(h, p) + min(H - 1 - h, p) + 1 for h in range(H)])
    cols = np.array([min(w, p) + min(W - 1 - w, p) + 1 for w in range(W)])
    return np.outer(rows, cols)


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    rng = np.random.default_rng(0)
    N, C, H, W, k, F = 1, 2, 4, 5, 3, 3
    p = (k - 1) // 2

    # Step 0: a small labelled image. Entry x[0, c, h, w] = 1 + (c*H + h)*W + w, so 0 can only be padding.
    x = (1 + np.arange(N * C * H * W, dtype=np.float64)).reshape(N, C, H, W)

    def letter(v):
        """Label of an entry: <channel letter><h><w>, or "." for a padding zero."""
        if v == 0:
            return "."
        c, rest = divmod(int(v) - 1, H * W)
        return f"{string.ascii_lowercase[c]}{rest // W}{rest % W}"

    print(f"x: (N, C, H, W) = {x.shape}, entries labelled <channel letter><h><w>; kernel k={k}, padding p={p}")
    for c in range(C):
        print("\n".join("   " + " ".join(letter(v) for v in row) for row in x[0, c]))

    # Step 1: pad by p and copy every k x k x C patch into a column.
    cols = im2col(x, k, backend="reference")
    assert cols.shape == (N, C * k * k, H * W)
    assert np.array_equal(cols, im2col(x, k, backend="numba"))
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    for h in range(H):
        for w in range(W):
            assert np.array_equal(cols[0, :, h * W + w], xpad[0, :, h:h + k, w:w + k].ravel())
    for c in range(C):
        for i in range(k):
            for j in range(k):           # row (c, i, j) is channel c shifted by (i - p, j - p)
                assert np.array_equal(cols[0, (c * k + i) * k + j].reshape(H, W), xpad[0, c, i:i + H, j:j + W])
    h0, w0 = 1, 2
    print(f"\ncols = im2col(x): shape {cols.shape} = (N, C*k*k, H*W); column h*W + w = {h0 * W + w0} "
          f"is the patch around (h, w) = ({h0}, {w0}):")
    print("   " + " ".join(letter(v) for v in cols[0, :, h0 * W + w0]))
    print("every column is its padded patch, and row (c, i, j) is channel c shifted by (i - p, j - p): checked")
    blowup = cols.size / x.size
    assert blowup == k * k
    print(f"cost: cols holds {cols.size} numbers for an input of {x.size}, k*k = {blowup:.0f} copies "
          f"(padding zeros included); ESPCN's first 5x5 layer stores 25 copies of its input")

    # Step 2: the convolution as one matrix product, against the six-loop definition.
    wgt = rng.integers(-3, 4, size=(F, C, k, k)).astype(np.float64)
    b = rng.integers(-3, 4, size=F).astype(np.float64)
    out_gemm = (wgt.reshape(F, -1) @ cols[0] + b[:, None]).reshape(1, F, H, W)
    out_naive, naive_cache = conv2d_forward_naive(x, wgt, b)
    out_ref, cache_ref = conv2d_forward(x, wgt, b, backend="reference")
    out_nb, cache_nb = conv2d_forward(x, wgt, b, backend="numba")
    assert np.array_equal(out_gemm, out_naive) and np.array_equal(out_ref, out_naive)
    assert np.array_equal(out_nb, out_naive)
    macs_gemm = F * (C * k * k) * (H * W)
    macs_loops = N * F * H * W * C * k * k
    print(f"\nout = w.reshape({F}, {C * k * k}) @ cols + b  ==  six nested loops (conv2d_forward_naive): exact; "
          f"both do {macs_gemm} multiply-adds = F*C*k*k*H*W")

    # Step 3: backward. The gradient w.r.t. the columns is a matrix product; col2im folds it back.
    dout = rng.integers(-2, 3, size=out_naive.shape).astype(np.float64)
    d = dout.reshape(F, H * W)
    dw = (d @ cols[0].T).reshape(wgt.shape)
    db = d.sum(axis=1)
    dcols = wgt.reshape(F, -1).T @ d                      # (C*k*k, H*W)
    dx = col2im(dcols[None], x.shape, k, backend="reference")
    dx_n, dw_n, db_n = conv2d_backward_naive(dout, naive_cache)
    assert np.array_equal(dx, dx_n) and np.array_equal(dw, dw_n) and np.array_equal(db, db_n)
    for cache, be in ((cache_ref, "reference"), (cache_nb, "numba")):
        gx, gw, gb = conv2d_backward(dout, cache, backend=be)
        assert np.array_equal(gx, dx_n) and np.array_equal(gw, dw_n) and np.array_equal(gb, db_n)
    assert np.array_equal(col2im(dcols[None], x.shape, k, backend="numba"), dx)
    print("backward: dw = dout @ cols.T, db = sum(dout), dx = col2im(w2.T @ dout)  ==  the loop "
          "gradients (conv2d_backward_naive): exact, both backends")

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

    # Pictures: x with labels, the column matrix with the same labels, the copy counts.
    colours = _draw.category_colours(C)
    pad_col = (235, 235, 235)
    xs = [_draw.table([[letter(v) for v in row] for row in x[0, c]], [[colours[c]] * W] * H, cell=34,
                      title=f"x channel {c}") for c in range(C)]
    ctxt = [[letter(v) for v in row] for row in cols[0]]
    ccol = [[pad_col if v == 0 else colours[int(v - 1) // (H * W)] for v in row] for row in cols[0]]
    colpic = _draw.table(ctxt, ccol, cell=30, size=10,
                         title=f"cols = im2col(x): {C * k * k} rows (c, i, j) x {H * W} columns (h, w)")
    cnt = _draw.table([[str(int(v)) for v in row] for row in counts],
                      [[tuple(_draw.colorize(v / (k * k), "viridis") // 2 + 127) for v in row] for row in counts],
                      cell=34, title="copies per pixel")
    files = [_draw.save_png(_draw.hstack([_draw.grid(xs + [cnt], ncols=1), colpic]), out / "03_im2col.png")]
    for f in files:
        print(f"wrote {f}")
    return {"x_shape": x.shape, "cols_shape": cols.shape, "blowup": blowup, "macs_gemm": macs_gemm,
            "macs_loops": macs_loops, "max_forward_diff": float(np.max(np.abs(out_gemm - out_naive))),
            "max_dx_diff": float(np.max(np.abs(dx - dx_n))), "adjoint_lhs": lhs, "adjoint_rhs": rhs,
            "copies": counts, "k": k, "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
