"""npespcn's own model file: a NumPy ``.npz`` that records the architecture next to the parameters.

Entries::

    __npespcn__      0-d unicode array: JSON {"format": "npespcn", "version": 1, "scale": 3, "channels": 1,
                     "layers": [[5, 64], [3, 32]], "activation": "tanh", "output_activation": null}
    conv1.weight     float32 (64, 1, 5, 5)     PyTorch (out, in, kH, kW) layout
    conv1.bias       float32 (64,)
    ...              one entry per key of ``ESPCN.params``

It loads with ``allow_pickle=False``: nothing in the file can execute code.
"""
from __future__ import annotations

import json
import struct
import zipfile
import zlib

import numpy as np

from ..atomic import atomic_write
from .arch import ARCH_FIELDS

ARCH_KEY = "__npespcn__"
FORMAT_VERSION = 1
"""Version of the architecture record; a file of a newer version is refused rather than misread."""


def arch_to_json(arch: dict) -> str:
    """The architecture record stored under ``__npespcn__``."""
    return json.dumps({"format": "npespcn", "version": FORMAT_VERSION, **arch}, sort_keys=True)


def save_npz(model, path) -> None:
    """Write ``model`` to ``path`` atomically (the extension is kept as given)."""
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in model.params.items()}
    arrays[ARCH_KEY] = np.array(arch_to_json(model.arch))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def is_npespcn_npz(path) -> bool:
    """True when ``path`` is a zip archive holding the ``__npespcn__`` entry."""
    try:
        with zipfile.ZipFile(path) as z:
            return f"{ARCH_KEY}.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError):
        return False


def read_npz(path) -> tuple[dict, dict]:
    """``(arch, params)`` stored in ``path``: the architecture record's fields and the named arrays.

    Raises ``ValueError`` for an unreadable file or an architecture record that is not npespcn's or lacks a
    field.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            record = json.loads(str(data[ARCH_KEY]))
            params = {k: data[k] for k in data.files if k != ARCH_KEY}
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError,
            NotImplementedError, RuntimeError, zlib.error, struct.error) as e:  # corrupt zip headers raise these
        raise ValueError(f"{path}: not a readable npespcn .npz model ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or record.get("format") != "npespcn":
        raise ValueError(f"{path}: the architecture record is not npespcn's")
    if record.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: npespcn .npz format version {record.get('version')!r}; this npespcn reads "
                         f"version {FORMAT_VERSION} (a newer npespcn wrote it?)")
    missing = [k for k in ARCH_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{path}: the architecture record lacks {missing}")
    arch = {k: record[k] for k in ARCH_FIELDS}
    return arch, params
