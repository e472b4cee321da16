"""The numba loops over the rows of one chunk that the fast convolution's drivers call
(:mod:`npespcn.fast.chunked`, :mod:`npespcn.fast.compiled`): im2col and col2im of a band, bias and
activation on the way out of a GEMM, kn2row's shifted adds, the shifted taps' padded copies, and the
backward pass's activation gradient.

Rows are the batch's stacked rows, ``r = n*H + h``; a chunk is ``r0 <= r < r1`` and may cross images,
so every loop walks one image part at a time (:func:`image_part`), contiguous in an NCHW plane.
"""
from __future__ import annotations

import math

import numba

from .vecmath import GELU, IDENTITY, RELU, TANH, TANH_LIBM, gelu, tanh32

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(inline="always", **_OPTS)
def image_part(r, r1, H, W):
    """Stacked rows ``[r, r1)`` from row ``r`` to the end of its image (or ``r1``): ``(n, h0, L)``, the image,
    its first row and the part's length in pixels (the part is contiguous in an NCHW plane)."""
    n, h0 = r // H, r % H
    return n, h0, (min(H, h0 + r1 - r) - h0) * W


@numba.njit(inline="always", **_OPTS)
def plane(a, n, f, h0, L):
    """``L`` pixels of plane ``a[n, f]`` (N, F, H, W, C-contiguous) from row ``h0`` on, as a flat view."""
    HW, W = a.shape[2] * a.shape[3], a.shape[3]
    return a[n, f].reshape(HW)[h0 * W:h0 * W + L]


@numba.njit(**_OPTS)
def bias_act_rows(tmp, b, act, r0, r1, out):
    """``out[n, f, h, :] = act(tmp[f, (r-r0)*W : (r-r0+1)*W] + b[f])`` for the stacked rows of the chunk.

    One loop per image and channel over its rows in the chunk (contiguous in ``out``, C-contiguous)."""
    N, F, H, W = out.shape
    for f in range(F):
        bf = b[f]
        r = r0
        while r < r1:                               # one image's rows of the chunk at a time
            n, h0, L = image_part(r, r1, H, W)
            dst = plane(out, n, f, h0, L)
            src = tmp[f, (r - r0) * W:(r - r0) * W + L]
            if act == IDENTITY:
                for t in range(L):
                    dst[t] = src[t] + bf
            elif act == RELU:
                for t in range(L):
                    v = src[t] + bf
                    dst[t] = v if v > 0 else 0
            elif act == TANH:
                for t in range(L):
                    dst[t] = tanh32(src[t] + bf)
            elif act == GELU:
                for t in range(L):
                    dst[t] = gelu(src[t] + bf)
            else:
                for t in range(L):
                    dst[t] = math.tanh(src[t] + bf)
            r += L // W


@numba.njit(**_OPTS)
def kn2row_rows(Y, ra, k, b, act, r0, r1, out):
    """``out[n, f, h, w] = act(b[f] + sum_{i,j} Y[(f*k + i)*k + j, (r + i - p - ra)*W + w + j - p])`` for
    the stacked rows ``r0 <= r < r1``, leaving out the terms that fall outside the image.

    ``Y`` holds every kernel tap's product for the input's stacked rows ``ra, ra + 1, ...``::

        Y[(f*k + i)*k + j, (r - ra)*W + w] = sum_c w[f, c, i, j] * x[n, c, h, w]

    First the entries of ``Y`` that no output reads are set to zero: columns ``w < j - p`` and
    ``w >= W + j - p`` of tap ``(i, j)``. Then every tap's shifted rows of one image part are added as
    one contiguous run (as in :func:`im2col_rows`); a read that wraps
    around a row end lands on one of those zeros. Every pixel sums ``b + Y[centre]`` and then the other
    taps in a fixed order, whatever the chunk."""
    N, F, H, W = out.shape
    p = (k - 1) // 2
    rows = Y.shape[1] // W
    for q in range(Y.shape[0]):                     # zero what no output reads
        dj = q % k - p
        lo, hi = (0, dj) if dj > 0 else (W + dj, W)
        if dj != 0:
            row = Y[q]
            for rr in range(rows):
                for t in range(rr * W + lo, rr * W + hi):
                    row[t] = 0
    for f in range(F):
        bf = b[f]
        r = r0
        while r < r1:                               # one image's rows of the chunk at a time
            n, h0, L = image_part(r, r1, H, W)
            h1 = h0 + L // W
            dst = plane(out, n, f, h0, L)
            base = (r - ra) * W                     # Y's column of pixel (h0, 0)
            centre = Y[(f * k + p) * k + p, base:base + L]
            for t in range(L):
                dst[t] = centre[t] + bf
            for i in range(k):
                di = i - p
                ha = min(max(h0, -di), h1)          # rows whose row h + di is inside the image
                hb = max(min(h1, H - di), ha)
                for j in range(k):
                    dj = j - p
                    if ha == hb or (di == 0 and dj == 0):
                        continue
                    a = (ha - h0) * W + max(0, -dj)
                    e = (hb - 1 - h0) * W + min(W, W - dj)
                    s0 = base + a + di * W + dj
                    src = Y[(f * k + i) * k + j, s0:s0 + e - a]
                    part = dst[a:e]
                    for t in range(e - a):
                        part[t] += src[t]
            activate(dst, act)
            r += h1 - h0


@numba.njit(inline="always", **_OPTS)
def activate(a, act):
    """``a[:] = act(a)`` in place, for the codes of :data:`~npespcn.fast.vecmath.ACT_CODES`.

    (:func:`bias_act_rows` keeps its own copy of this switch: adding the bias and applying the
    activation in one loop reads and writes each value once, where a copy followed by this pass
    would do it twice.)"""
    if act == RELU:
        for t in range(a.size):
            a[t] = a[t] if a[t] > 0 else 0
    elif act == TANH:
        for t in range(a.size):
            a[t] = tanh32(a[t])
    elif act == GELU:
        for t in range(a.size):
            a[t] = gelu(a[t])
    elif act == TANH_LIBM:
        for t in range(a.size):
            a[t] = math.tanh(a[t])


@numba.njit(**_OPTS)
def pad_rows(x, p, r0, r1, xp):
    """Copy the chunk's stacked rows ``[r0, r1)`` into ``xp`` (C, L), zero-padded for the shifted taps.

    Each image part of the chunk gets ``p`` rows above and below (the image's own rows, or zeros past
    its edge), every row ``p`` zeros on its right (row stride ``Wp = W + p``: a read ``p`` columns
    left of a row lands on the previous row's zeros), and ``xp`` starts with ``p`` zeros. Everything
    after the last part is zero. Image part ``m``'s row ``h`` starts at ``p + (rowbase_m + p + h -
    h0)*Wp``, where ``rowbase_m`` counts the earlier parts' rows, halos included."""
    N, C, H, W = x.shape
    Wp = W + p
    for c in range(C):
        dst = xp[c]
        for t in range(p):
            dst[t] = 0
        pos = p
        r = r0
        while r < r1:                               # one image's rows of the chunk at a time
            n, h0 = r // H, r % H
            h1 = min(H, h0 + r1 - r)
            for h in range(h0 - p, h1 + p):
                row = dst[pos:pos + Wp]
                if 0 <= h < H:
                    src = x[n, c, h]
                    for t in range(W):
                        row[t] = src[t]
                    for t in range(W, Wp):
                        row[t] = 0
                else:
                    for t in range(Wp):
                        row[t] = 0
                pos += Wp
            r += h1 - h0
        for t in range(pos, dst.size):
            dst[t] = 0


@numba.njit(**_OPTS)
def unpad_rows(tmp, p, act, r0, r1, out):
    """``out[n, f, h, :] = act(tmp[f, (rowbase + h - h0)*Wp : ... + W])`` for the chunk's stacked rows,
    the layout of :func:`pad_rows` (``tmp`` column 0 is the first part's first output pixel)."""
    N, F, H, W = out.shape
    Wp = W + p
    for f in range(F):
        rowbase = 0
        r = r0
        while r < r1:
            n, h0 = r // H, r % H
            h1 = min(H, h0 + r1 - r)
            for h in range(h0, h1):
                src = tmp[f, (rowbase + h - h0) * Wp:(rowbase + h - h0) * Wp + W]
                dst = out[n, f, h]
                for t in range(W):
                    dst[t] = src[t]
                activate(dst, act)
            rowbase += h1 - h0 + 2 * p
            r += h1 - h0


@numba.njit(**_OPTS)
def gather_rows(d, y, act, r0, r1, dT, db, dz):
    """``dz = d * act'`` into ``dT[f, (r-r0)*W + w]`` (the chunk's columns) or, if ``dT`` is empty, into
    ``dz[n, f, h, w]``; ``db[f] += `` its sum (float64, fixed order). ``act'`` comes from the output
    ``y``: 1 (act 0), ``y > 0`` (1, relu), ``1 - y*y`` (2, tanh). With act 0 both may be empty: then
    only ``db`` is summed, from ``d`` itself."""
    N, F, H, W = d.shape
    write_dT = dT.size > 0
    write_dz = dz.size > 0
    for f in range(F):
        s = 0.0
        r = r0
        while r < r1:                               # one image's rows of the chunk at a time
            n, h0, L = image_part(r, r1, H, W)
            src = plane(d, n, f, h0, L)
            if write_dT:
                dst = dT[f, (r - r0) * W:(r - r0) * W + L]
            elif write_dz:
                dst = plane(dz, n, f, h0, L)
            else:
                dst = src                           # act 0: nothing to write, sum d itself
            if act == IDENTITY:
                if write_dT or write_dz:
                    for t in range(L):
                        dst[t] = src[t]
            else:
                yv = plane(y, n, f, h0, L)
                if act == RELU:
                    for t in range(L):
                        dst[t] = src[t] if yv[t] > 0 else 0
                else:
                    for t in range(L):
                        dst[t] = src[t] * (1 - yv[t] * yv[t])
            # The bias gradient: four running sums (one would wait on each add's latency), fixed order.
            s0 = s1 = s2 = s3 = 0.0
            L4 = L - L % 4
            for t in range(0, L4, 4):
                s0 += dst[t]
                s1 += dst[t + 1]
                s2 += dst[t + 2]
                s3 += dst[t + 3]
            for t in range(L4, L):
                s0 += dst[t]
            s += (s0 + s1) + (s2 + s3)
            r += L // W
        db[f] += s


# --------------------------------------------------------------------------------------------------
# im2col and col2im over a band of rows (the whole-image forms and their maths are in
# npespcn.functional.im2col), so that the chunked convolution can unfold a few rows at a time into a
# cache-sized buffer.
# The batch's rows are stacked, ``r = n*H + h``; a band is ``r0 <= r < r1`` and its columns are
# ``cols[(c*k+i)*k+j, (r-r0)*W + w]``. Within one image, the rows of column row ``(c, i, j)`` are the
# channel's plane shifted by ``(i-p)*W + (j-p)`` places: one contiguous copy per image and kernel offset,
# then a few zeros where the shift wrapped around a row end (a 17-pixel-wide training patch would
# otherwise pay a loop start per 17 values). The innermost loops run over 0-based slices, so reads and
# writes are contiguous and LLVM vectorises them; the padding is handled by clipping the row range
# instead of materialising a padded copy.
# --------------------------------------------------------------------------------------------------
@numba.njit(**_OPTS)
def im2col_rows(x, k, r0, r1, cols):
    """``cols[(c*k+i)*k+j, (r-r0)*W + w] = xpad[n, c, h+i, w+j]`` for the stacked rows ``r0 <= r < r1``.

    ``x`` must be C-contiguous; ``cols`` may have more columns than the band (they are left alone)."""
    N, C, H, W = x.shape
    p = (k - 1) // 2
    kk = k * k
    xf = x.reshape(N * C * H * W)
    for q in range(C * kk):
        c = q // kk
        di = (q // k) % k - p                  # row shift of this kernel offset
        dj = q % k - p                         # column shift
        w0 = min(max(0, -dj), W)               # columns w < w0 read left of the image: zero
        w1 = max(min(W, W - dj), w0)           # columns w >= w1 read right of it: zero
        dst_q = cols[q]
        r = r0
        while r < r1:                          # one image's part of the band at a time
            n, h0 = r // H, r % H
            h1 = min(H, h0 + r1 - r)
            dst = dst_q[(r - r0) * W:(r - r0 + h1 - h0) * W]    # dst[(h - h0)*W + w]
            ha = min(max(h0, -di), h1)         # rows h < ha or h >= hb read above/below the image: zero
            hb = max(min(h1, H - di), ha)
            for t in range((ha - h0) * W):
                dst[t] = 0
            for t in range((hb - h0) * W, (h1 - h0) * W):
                dst[t] = 0
            if w0 < w1 and ha < hb:
                # Rows ha..hb-1 of the shifted plane are one contiguous run of the source: copy it in
                # one go, then zero the columns that wrapped around from a neighbouring row.
                a = (ha - h0) * W + w0
                e = (hb - 1 - h0) * W + w1
                s0 = ((n * C + c) * H + ha + di) * W + w0 + dj
                src = xf[s0:s0 + e - a]
                mid = dst[a:e]
                for t in range(e - a):
                    mid[t] = src[t]
                if dj != 0:
                    for h in range(ha - h0, hb - h0):
                        row = dst[h * W:(h + 1) * W]
                        for t in range(w0):
                            row[t] = 0
                        for t in range(w1, W):
                            row[t] = 0
            else:                              # no column of the shifted plane is inside the image
                for t in range((ha - h0) * W, (hb - h0) * W):
                    dst[t] = 0
            r += h1 - h0


@numba.njit(**_OPTS)
def col2im_rows(dcols, k, r0, r1, dx):
    """Adjoint of :func:`im2col_rows`: ``dx[n, c, h+i-p, w+j-p] += dcols[(c*k+i)*k+j, (r-r0)*W + w]``."""
    N, C, H, W = dx.shape
    p = (k - 1) // 2
    for c in range(C):
        for i in range(k):
            for j in range(k):
                w0 = min(max(0, p - j), W)
                w1 = max(min(W, W + p - j), w0)
                for r in range(r0, r1):
                    hs = r % H + i - p
                    if hs < 0 or hs >= H:
                        continue
                    base = (r - r0) * W
                    src = dcols[(c * k + i) * k + j, base + w0:base + w1]
                    dst = dx[r // H, c, hs, w0 + j - p:w1 + j - p]
                    for t in range(w1 - w0):
                        dst[t] += src[t]
