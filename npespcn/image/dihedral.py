"""The 8 symmetries of the square (the dihedral group D4) acting on the last two axes of an array.

``op = 4*t + k`` (0..7): transpose the two axes if ``t``, then turn by ``k`` quarter turns
(``np.rot90``, counter-clockwise); op 0 is the identity. Training draws one per patch (augmentation);
inference averages the network's output over all 8 (self-ensemble).
"""
from __future__ import annotations

import numpy as np

N_DIHEDRAL = 8


def _check(op) -> int:
    op = int(op)
    if not 0 <= op < N_DIHEDRAL:
        raise ValueError(f"dihedral op must be in 0..7, got {op}")
    return op


def dihedral(x: np.ndarray, op: int) -> np.ndarray:
    """Apply op ``op`` to the last two axes of ``x``; a view where possible."""
    op = _check(op)
    if op >= 4:
        x = np.swapaxes(x, -1, -2)
    return np.rot90(x, op % 4, axes=(-2, -1))


def dihedral_inverse(x: np.ndarray, op: int) -> np.ndarray:
    """Undo :func:`dihedral`: ``dihedral_inverse(dihedral(x, op), op) == x``."""
    op = _check(op)
    x = np.rot90(x, -(op % 4), axes=(-2, -1))
    return np.swapaxes(x, -1, -2) if op >= 4 else x
