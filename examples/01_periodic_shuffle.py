"""Example 1: the periodic shuffle on a tiny labelled array.

ESPCN's last convolution outputs ``C*r*r`` low-resolution channels; the periodic shuffle ``PS`` interleaves
them into ``C`` channels ``r`` times larger (PyTorch's channel order, :mod:`npespcn.functional.shuffle`)::

    z   (N, C*r*r, H, W)   ->   y = PS(z)   (N, C, r*H, r*W)
    y[n, c, r*u + α, r*v + β] = z[n, c*r*r + α*r + β, u, v]          0 <= α, β < r

``(u, v)`` is an LR pixel and ``(α, β)`` the **phase**: the position of a sub-pixel inside its r x r block.
This script labels every input entry ``m:uv`` (channel m, row u, column v), shows where each one lands,
checks the formula entry by entry, undoes the shuffle, compares TensorFlow's channel order, and shows why
training may skip the shuffle: ``PS`` is a permutation, so for a target ``t`` (N, C, rH, rW)
``||PS(z) - t||² = ||z - PS⁻¹(t)||²`` and the gradients agree too.

Run: ``python examples/01_periodic_shuffle.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn.formats.tf_graphdef import tf_to_torch_channel_order
from npespcn.functional import mse_loss, pixel_shuffle, pixel_unshuffle


def labelled_input(C: int, r: int, H: int, W: int):
    """A (1, C*r*r, H, W) array whose entries encode where they came from, and their text labels.

    Entry ``z[0, m, u, v] = 100*m + 10*u + v``; label ``"m:uv"`` (``"0:00"``, ``"1:12"``, ...): digits, so
    that no label looks like one of the guide's symbols.
    """
    M = C * r * r
    m, u, v = np.meshgrid(np.arange(M), np.arange(H), np.arange(W), indexing="ij")
    z = (100 * m + 10 * u + v).astype(np.float64)[None]
    labels = np.array([[[label(mm, uu, vv) for vv in range(W)] for uu in range(H)] for mm in range(M)])
    return z, labels


def label(m: int, u: int, v: int) -> str:
    """The text label of ``z[0, m, u, v]``."""
    return f"{m}:{u}{v}"


def decode(v: float):
    """Inverse of the labelling: value -> (m, u, v)."""
    v = int(v)
    return v // 100, (v % 100) // 10, v % 10


def tf_depth_to_space(z: np.ndarray, r: int) -> np.ndarray:
    """TensorFlow's depth_to_space on NCHW: ``y[n, c, r*u + α, r*v + β] = z[n, (α*r + β)*C + c, u, v]``."""
    N, M, H, W = z.shape
    C = M // (r * r)
    return z.reshape(N, r, r, C, H, W).transpose(0, 3, 4, 1, 5, 2).reshape(N, C, H * r, W * r)


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    C, r, H, W = 2, 2, 2, 3          # non-square, two image channels: every index gets exercised
    z, labels = labelled_input(C, r, H, W)
    M = C * r * r
    print(f"input z: shape {z.shape} = (N, C*r*r, H, W) with C={C}, r={r}, H={H}, W={W}; entry m:uv is z[0, m, u, v]")
    for m in range(M):
        c, rem = divmod(m, r * r)
        ph_a, ph_b = divmod(rem, r)
        print(f"  channel {m} = c*r*r + α*r + β with c = {c}, phase (α, β) = ({ph_a}, {ph_b}):  "
              + "  ".join(" ".join(row) for row in labels[m]))

    # 1. The shuffle, and where every input entry lands.
    y = pixel_shuffle(z, r, backend="reference")
    assert y.shape == (1, C, r * H, r * W)
    assert np.array_equal(y, pixel_shuffle(z, r, backend="numba")), "the two backends disagree"
    print(f"\ny = PS(z): shape {y.shape} = (N, C, r*H, r*W)")
    landing = {}
    for c in range(C):
        print(f"  output channel {c}:")
        for U in range(r * H):
            row = []
            for V in range(r * W):
                row.append(label(*decode(y[0, c, U, V])))
                landing[row[-1]] = (c, U, V)
            print("    " + " ".join(row))
    # Every entry lands exactly once (PS is a permutation) and where the formula says.
    assert len(landing) == z.size and np.array_equal(np.sort(y.ravel()), np.sort(z.ravel()))
    checked = 0
    for c in range(C):
        for ph_a in range(r):
            for ph_b in range(r):
                for u in range(H):
                    for v in range(W):
                        m = c * r * r + ph_a * r + ph_b
                        assert y[0, c, r * u + ph_a, r * v + ph_b] == z[0, m, u, v]
                        assert landing[labels[m, u, v]] == (c, r * u + ph_a, r * v + ph_b)
                        checked += 1
    print(f"formula y[c, r*u + α, r*v + β] = z[c*r*r + α*r + β, u, v] holds for all {checked} entries")
    print("so channel c*r*r + α*r + β fills the sub-pixel at phase (α, β) of every r x r block of output channel c")

    # 2. The inverse shuffle (space-to-depth) undoes it, in both directions.
    back = pixel_unshuffle(y, r)
    assert np.array_equal(back, z)
    hr = np.random.default_rng(0).normal(size=(2, C, r * 4, r * 5))
    assert np.array_equal(pixel_shuffle(pixel_unshuffle(hr, r), r), hr)
    print("\nPS^-1(PS(z)) == z and PS(PS^-1(y)) == y: exact (the shuffle only moves numbers)")

    # 3. TensorFlow's depth_to_space reads the channels in the other order.
    y_tf = tf_depth_to_space(z, r)
    tf_differs = not np.array_equal(y_tf, y)
    # tf_to_torch_channel_order turns TF-ordered channels into PyTorch's order: PyTorch's shuffle of the
    # reordered array is TensorFlow's shuffle of the original.
    tf_fixed = np.array_equal(pixel_shuffle(tf_to_torch_channel_order(z[0], r)[None], r), y_tf)
    assert tf_differs and tf_fixed
    block = {name: [[decode(arr[0, 0, U, V])[0] for V in range(r)] for U in range(r)]
             for name, arr in (("torch", y), ("tf", y_tf))}
    print(f"\nTensorFlow's depth_to_space: y[c, r*u + α, r*v + β] = z[(α*r + β)*C + c, u, v]. With C={C} the "
          f"first {r}x{r} block of output channel 0 reads channels {block['tf']} (TF) instead of "
          f"{block['torch']} (PyTorch); tf_to_torch_channel_order converts one order into the other")

    # 4. The training trick: the loss and its gradient are the same with the target unshuffled.
    rng = np.random.default_rng(1)
    zz = rng.normal(size=(4, C * r * r, 5, 6))           # network output before the shuffle
    t = rng.normal(size=(4, C, 5 * r, 6 * r))             # the HR target, a different array from PS(zz)
    loss_a, dy = mse_loss(pixel_shuffle(zz, r), t, backend="reference")
    dz_a = pixel_unshuffle(dy, r)                         # backward through the shuffle
    loss_b, dz_b = mse_loss(zz, pixel_unshuffle(t, r), backend="reference")
    assert np.isclose(loss_a, loss_b, rtol=1e-13, atol=0) and loss_a > 0.1
    assert np.array_equal(dz_a, dz_b)
    print(f"\nMSE(PS(z), t) = {loss_a:.15f}\nMSE(z, PS^-1(t)) = {loss_b:.15f}")
    print("and dL/dz is the same array either way: shuffle the targets once, skip PS in every step")

    # 5. PS as a permutation matrix P: P^T P = I, which is why both losses agree.
    n = z.size
    P = np.stack([pixel_shuffle(e.reshape(z.shape), r).ravel() for e in np.eye(n)], axis=1)
    assert np.array_equal(P @ z.ravel(), y.ravel())
    assert np.array_equal(P.T @ P, np.eye(n)) and np.all(P.sum(0) == 1) and np.all(P.sum(1) == 1)
    print(f"P ({n}x{n}) with P @ z = PS(z) is a permutation matrix: P^T P = I, "
          "so ||P z - t|| = ||P^T (P z - t)|| = ||z - P^T t|| and P^T = PS^-1")

    # Pictures: the input channels and the shuffled output, one colour per input channel.
    cols = _draw.category_colours(M)
    cells = [_draw.table(labels[m], [[cols[m]] * W] * H, cell=40) for m in range(M)]
    caps = [f"ch {m}: c {m // (r * r)}, phase ({(m % (r * r)) // r},{m % r})" for m in range(M)]
    files = [_draw.save_png(_draw.grid(cells, caps, ncols=r * r, title=f"z: (1, {M}, {H}, {W})"),
                            out / "01_input_channels.png")]
    outs = []
    for c in range(C):
        txt = [[None] * (r * W) for _ in range(r * H)]
        colr = [[None] * (r * W) for _ in range(r * H)]
        for U in range(r * H):
            for V in range(r * W):
                m, u, v = decode(y[0, c, U, V])
                txt[U][V], colr[U][V] = label(m, u, v), cols[m]
        outs.append(_draw.table(txt, colr, cell=40, title=f"PS(z) channel {c}"))
    files.append(_draw.save_png(_draw.hstack(outs), out / "01_shuffled.png"))
    for f in files:
        print(f"wrote {f}")
    return {"shape_in": z.shape, "shape_out": y.shape, "r": r, "C": C, "landing": landing,
            "entries_checked": checked, "tf_differs": tf_differs, "tf_fixed": tf_fixed,
            "first_block_torch": block["torch"], "first_block_tf": block["tf"],
            "loss_shuffled": loss_a, "loss_unshuffled": loss_b,
            "grad_max_abs_diff": float(np.max(np.abs(dz_a - dz_b))), "permutation_size": n,
            "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
