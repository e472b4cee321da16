"""Model files: npespcn's ``.npz``, and the formats other ESPCN implementations publish.

:func:`load_model` recognises a file by its content, not its name:

=====================  ==============================================  ==================================
format                 recognised by                                   module
=====================  ==============================================  ==================================
npespcn ``.npz``       zip archive with an ``__npespcn__.npy`` entry   :mod:`npespcn.formats.npz`
=====================  ==============================================  ==================================
"""
from __future__ import annotations

from pathlib import Path

from .npz import is_npespcn_npz, load_npz, save_npz

ACCEPTED = "npespcn .npz"


def load_model(path, **overrides):
    """Load an ESPCN from ``path``, whatever its format (see the table above).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the accepted formats for
    anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if is_npespcn_npz(path):
        return load_npz(path, **overrides)
    raise ValueError(f"{path}: not a model file npespcn can read; accepted formats: {ACCEPTED}")


__all__ = ["load_model", "load_npz", "save_npz"]
