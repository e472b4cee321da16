"""Winograd minimal filtering: a 3x3 convolution with fewer multiplications (Lavin & Gray, 2016).

The readable NumPy reference; the fast twin is :mod:`npespcn.fast.winograd` (docs/how-it-works.md,
section "Winograd: fewer multiplications for 3x3 layers").

**One dimension.** ``F(m, r)`` computes ``m`` outputs of an ``r``-tap correlation,
``y[i] = sum_k g[k] * d[i + k]``, from ``alpha = m + r - 1`` inputs with ``alpha`` multiplications
instead of ``m*r``::

    y = AT @ ((G @ g) * (BT @ d))          AT (m, alpha)   G (alpha, r)   BT (alpha, alpha)

Where the matrices come from (Toom-Cook): a correlation is the transpose of a polynomial product,
and a product ``s = g * h`` of polynomials of degrees ``r-1`` and ``m-1`` is known from its values at
``alpha`` points. Evaluate both at the points ``a_0 .. a_{alpha-2}`` and "infinity" (the leading
coefficient), multiply the values (the ``alpha`` multiplications), interpolate (Lagrange) back to
coefficients. Written as matrices, ``s = B @ ((G @ g) * (A @ h))``; transposed in ``h``, it is the
correlation above (:func:`~npespcn.fast.winograd.winograd_matrices` builds them from the points, in
the fast path's package since both versions use them).

**Two dimensions.** Nesting the 1-D algorithm in rows and columns: an ``m x m`` output tile from an
``alpha x alpha`` input tile ``d`` and a 3x3 kernel ``g``::

    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T

``alpha**2`` multiplications instead of ``9 m**2``: 16 instead of 36 for F(2x2, 3x3) (2.25x fewer),
36 instead of 144 for F(4x4, 3x3) (4x), 64 instead of 324 for F(6x6, 3x3) (5.06x).

**A layer.** Over channels the products become sums of products, that is matrix products, one per
position ``(xi, nu)`` of the ``alpha x alpha`` tile::

    U[xi, nu, f, c] = (G @ w[f, c] @ G.T)[xi, nu]                  weights, once per layer
    V[xi, nu, c, t] = (BT @ d[c, t] @ BT.T)[xi, nu]                d[c, t]: input tile t of channel c
    M[xi, nu]       = U[xi, nu] @ V[xi, nu]                        (F, C) @ (C, T): alpha**2 GEMMs
    out[f, tile t]  = AT @ M[:, :, f, t] @ AT.T + b[f]

Tiles overlap by 2 input pixels (the 3x3 kernel's reach) and cover the output without overlap.
Here tile ``(ty, tx)`` holds output pixels ``(ty*m + i, tx*m + j)`` of the image: aligned to the
image's coordinates (``origin`` says where the array sits in a larger image), so that a pixel lands
at the same place of the same tile however the image is cut.

**Float32 error.** The transforms multiply by the points' powers and divide by their differences;
larger tiles need more (and larger, up to 2**5 / 8 for F(6x6)) points, so the rounding of the
transformed values grows with ``m`` (measured in benchmarks/README.md and the guide).
"""
from __future__ import annotations

import numpy as np

from ..fast import POINTS, transform_weights, winograd_matrices

__all__ = ["POINTS", "winograd_matrices", "transform_weights", "conv2d_winograd_reference",
           "conv2d_winograd_backward_reference"]



def _matrices(w, m, dt):
    """``(AT, BT)`` of F(m, 3) in ``dt``, for 3x3 weights ``w`` (refused otherwise)."""
    if w.shape[2:] != (3, 3):
        raise ValueError(f"Winograd F(m x m, 3x3) needs 3x3 weights, got {w.shape}")
    AT, _, BT = winograd_matrices(m)
    return AT.astype(dt), BT.astype(dt)


def conv2d_winograd_reference(x, w, b, m: int = 4, origin=(0, 0)):
    """``conv(x, w) + b`` ("same" zero padding) for 3x3 kernels by F(m x m, 3x3), in NumPy.

    Args:
        x: (N, C, H, W); w: (F, C, 3, 3); b: (F,).
        m: output tile side, 2, 4 or 6.
        origin: ``(y, x)`` of ``x``'s first pixel in the image whose tile grid is used: tiles start at
            the image's multiples of ``m``.

    Returns:
        ``out`` (N, F, H, W), ``x``'s dtype; every arithmetic step in that dtype (float32 as the fast path).

    Examples::

        >>> x = np.random.default_rng(0).random((1, 2, 7, 9)).astype(np.float32)
        >>> w, b = np.ones((3, 2, 3, 3), np.float32), np.zeros(3, np.float32)
        >>> y = conv2d_winograd_reference(x, w, b, m=2)
        >>> float(y[0, 0, 3, 4]) == float(x[0, :, 2:5, 3:6].sum())
        True
    """
    dt = x.dtype
    AT, BT = _matrices(w, m, dt)
    alpha = m + 2
    N, C, H, W = x.shape
    oy, ox = origin
    # Pad so that the tile grid starts at an image multiple of m, one pixel above/left of it (the kernel's
    # reach), and the last tile is whole.
    top, left = oy % m, ox % m                  # pixels of the first tile that lie before the array
    ty, tx = -(-(top + H) // m), -(-(left + W) // m)
    xp = np.zeros((N, C, ty * m + 2, tx * m + 2), dtype=dt)
    xp[:, :, 1 + top:1 + top + H, 1 + left:1 + left + W] = x
    # d[n, c, i, j, a, e]: input tile (i, j), its alpha x alpha pixels (a, e).
    s = xp.strides
    d = np.lib.stride_tricks.as_strided(xp, (N, C, ty, tx, alpha, alpha),
                                        (s[0], s[1], m * s[2], m * s[3], s[2], s[3]))
    V = np.einsum("pa,ncijae,qe->pqcnij", BT, d, BT)                  # (alpha, alpha, C, N, ty, tx)
    U = transform_weights(w.astype(dt), m)                            # (alpha, alpha, F, C)
    M = np.matmul(U, V.reshape(alpha, alpha, C, -1))                  # alpha**2 GEMMs: (F, C) @ (C, tiles)
    M = M.reshape(alpha, alpha, -1, N, ty, tx)
    Y = np.einsum("up,pqfnij,vq->nfiujv", AT, M, AT)                  # (N, F, ty, m, tx, m)
    Y = Y.reshape(N, -1, ty * m, tx * m)[:, :, top:top + H, left:left + W]
    return np.ascontiguousarray(Y + b.astype(dt)[:, None, None])


def _tiles(xp, m, alpha, ty, tx):
    """``d[n, c, i, j, a, e] = xp[n, c, i*m + a, j*m + e]``: the overlapping input tiles, as a view."""
    N, C = xp.shape[:2]
    s = xp.strides
    return np.lib.stride_tricks.as_strided(xp, (N, C, ty, tx, alpha, alpha),
                                           (s[0], s[1], m * s[2], m * s[3], s[2], s[3]))


def conv2d_winograd_backward_reference(dout, x, w, m: int = 4):
    """The gradients of :func:`conv2d_winograd_reference` (``origin=(0, 0)``), through its transforms.

    Every step of the forward is linear, so its gradient runs the same steps transposed, in reverse::

        forward                                  backward, given dY = dL/dY per output tile
        V = BT @ d @ BT.T        (per tile)      dd = BT.T @ dV @ BT, added where the tiles overlap
        U = G @ w @ G.T          (per kernel)    dw = G.T @ dU @ G
        M[q] = U[q] @ V[q]       (per position)  dU[q] = dM[q] @ V[q].T   (summed over the tiles)
                                                 dV[q] = U[q].T @ dM[q]
        Y = AT @ M @ AT.T + b    (per tile)      dM = AT.T @ dY @ AT;  db = sum of dY

    In exact arithmetic these are the convolution's gradients (the forward is the convolution); in
    float32 they carry the transforms' rounding, as the forward does. The fast path
    (:mod:`npespcn.fast.winograd`, "Training") computes ``dU`` so, but ``dx`` as the forward convolution of
    ``dout`` with the kernel turned by 180 degrees and its channels swapped (the transpose of a "same"
    convolution), by the same forward kernel: equal in exact arithmetic, without the overlapping adds.

    Args:
        dout: dL/dy, shape (N, F, H, W); x: the forward's input (N, C, H, W); w: (F, C, 3, 3).
        m: output tile side, 2, 4 or 6.

    Returns:
        ``(dx, dw, db)`` of shapes (N, C, H, W), (F, C, 3, 3), (F,), in ``x``'s dtype.

    Examples::

        >>> rng = np.random.default_rng(0)
        >>> x, w = rng.random((1, 2, 6, 7)), rng.random((3, 2, 3, 3))
        >>> dx, dw, db = conv2d_winograd_backward_reference(np.ones((1, 3, 6, 7)), x, w, m=2)
        >>> bool(np.isclose(dw[0, 0, 1, 1], x[0, 0].sum()))     # the centre tap sees every pixel once
        True
    """
    dt = x.dtype
    AT, BT = _matrices(w, m, dt)
    alpha = m + 2
    N, C, H, W = x.shape
    F = w.shape[0]
    ty, tx = -(-H // m), -(-W // m)
    xp = np.zeros((N, C, ty * m + 2, tx * m + 2), dtype=dt)        # the forward's padded input and tiles
    xp[:, :, 1:1 + H, 1:1 + W] = x
    V = np.einsum("pa,ncijae,qe->pqcnij", BT, _tiles(xp, m, alpha, ty, tx), BT).reshape(alpha, alpha, C, -1)
    U = transform_weights(w.astype(dt), m)                            # (alpha, alpha, F, C)
    dY = np.zeros((N, F, ty * m, tx * m), dtype=dt)                   # outputs past the array: gradient 0
    dY[:, :, :H, :W] = dout
    dY = dY.reshape(N, F, ty, m, tx, m)
    dM = np.einsum("up,nfiujv,vq->pqfnij", AT, dY, AT).reshape(alpha, alpha, F, -1)
    dU = np.matmul(dM, V.transpose(0, 1, 3, 2))                       # (alpha, alpha, F, C)
    _, G64, _ = winograd_matrices(m)
    dw = np.einsum("pi,pqfc,qj->fcij", G64, dU.astype(np.float64), G64).astype(dt)
    dV = np.matmul(U.transpose(0, 1, 3, 2), dM).reshape(alpha, alpha, C, N, ty, tx)
    dd = np.einsum("pa,pqcnij,qe->ncijae", BT, dV, BT)                # (N, C, ty, tx, alpha, alpha)
    dxp = np.zeros_like(xp)
    for a in range(alpha):                                            # tile (i, j)'s pixel (a, e) is
        for e in range(alpha):                                        # xp[i*m + a, j*m + e]
            dxp[:, :, a:a + ty * m:m, e:e + tx * m:m] += dd[..., a, e]
    db = dout.sum(axis=(0, 2, 3)).astype(dt)
    return np.ascontiguousarray(dxp[:, :, 1:1 + H, 1:1 + W]), dw, db

