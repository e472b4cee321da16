"""Comparing a tiled (or cropped, or re-threaded) result with the whole: bitwise where the machine's BLAS
computes every column of a product alike (:func:`npespcn.fast.size_independent_is_bitwise`), else to the
float32 rounding that a column's position may change: about 2e-7 of the values' range for one
convolution, up to 2.7e-6 measured after a whole model with random weights, which amplifies it)."""
from __future__ import annotations

import numpy as np

from npespcn.fast import size_independent_is_bitwise

BITWISE = size_independent_is_bitwise()
ROUNDING = 4e-6
"""Largest difference allowed where BLAS rounds a column by its position, as a fraction of the range."""


def assert_same(got, want, what=""):
    """``got`` equals ``want`` bitwise where :data:`BITWISE`; otherwise within :data:`ROUNDING` of the range
    (at least 1) for floats and one level for integer images (a rounding difference may cross a half-level)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if BITWISE:
        assert got.tobytes() == want.tobytes(), f"not bitwise equal {what}"
    elif np.issubdtype(got.dtype, np.integer):
        assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max(initial=0) <= 1, what
    else:
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        worst = float(np.abs(got.astype(np.float64) - want).max(initial=0)) / scale
        assert worst <= ROUNDING, f"{worst:.3g} of the range apart {what}"
