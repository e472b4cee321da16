"""npespcn's own model file: a NumPy ``.npz`` that records the architecture next to the parameters.

Entries::

    __npespcn__      0-d unicode array: JSON {"format": "npespcn", "version": 1, "scale": 3, "channels": 1,
                     "layers": [[5, 64], [3, 32]], "activation": "tanh", "output_activation": null}
    conv1.weight     float32 (64, 1, 5, 5)     PyTorch (out, in, kH, kW) layout
    conv1.bias       float32 (64,)
    ...              one entry per key of ``ESPCN.params``

Reading never unpickles (object arrays are refused: nothing in the file can execute code) and never
allocates more than the file holds: the record is read first (at most :data:`MAX_RECORD_BYTES`) and checked
(:func:`npespcn.formats.arch.check_arch`), then every member's ``.npy`` header (shape, dtype) is compared
with the shape the record implies and with the member's declared size, and only then is any array data
read, in bounded chunks (:mod:`npespcn.formats.ziparchive`). Weights must be float16, float32 or float64.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from ..atomic import atomic_write
from .arch import ARCH_FIELDS, ArchError, check_arch, element_budget, param_shapes
from .ziparchive import ZIP_ERRORS, members, open_member, read_exactly

ARCH_KEY = "__npespcn__"
FORMAT_VERSION = 1
"""Version of the architecture record; a file of a newer version is refused rather than misread."""
MAX_RECORD_BYTES = 1 << 16
FLOAT_DTYPES = ("f2", "f4", "f8")


def arch_to_json(arch: dict) -> str:
    """The architecture record stored under ``__npespcn__``."""
    return json.dumps({"format": "npespcn", "version": FORMAT_VERSION, **arch}, sort_keys=True)


def save_npz(model, path, overwrite: bool = True) -> None:
    """Write ``model`` to ``path`` atomically (the extension is kept as given); with ``overwrite=False`` an
    existing ``path`` is never replaced (``FileExistsError``, see :func:`npespcn.atomic.atomic_write`)."""
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in model.params.items()}
    arrays[ARCH_KEY] = np.array(arch_to_json(model.arch))
    with atomic_write(path, overwrite=overwrite) as f:
        np.savez(f, **arrays)


def is_npespcn_npz(path) -> bool:
    """True when ``path`` is a zip archive holding the ``__npespcn__`` entry."""
    try:
        with zipfile.ZipFile(path) as z:
            return f"{ARCH_KEY}.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError):
        return False


def _npy_header(fh, what: str):
    """``(shape, fortran_order, dtype, header bytes)`` of the ``.npy`` member open in ``fh``."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=10000)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        return shape, fortran, dtype, fh.tell()
    except ZIP_ERRORS:
        raise
    except Exception as e:  # noqa: BLE001 - numpy parses the header with ast / tokenize: any error is damage
        raise ValueError(f"{what}: damaged .npy header ({type(e).__name__}: {e})") from None


def _read_npy(z, info, what: str, check) -> np.ndarray:
    """The array of the member ``info``: ``check(shape, dtype)`` runs on its header before any data is read;
    the data must fill the member exactly."""
    with open_member(z, info) as fh:
        shape, fortran, dtype, head = _npy_header(fh, what)
        check(shape, dtype)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size != head + nbytes:
            raise ValueError(f"{what}: the header declares {nbytes} bytes of {dtype} {shape}, the member holds "
                             f"{info.file_size - head}")
        data = read_exactly(fh, nbytes, what)
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def read_npz(path) -> tuple[dict, dict]:
    """``(arch, params)`` stored in ``path``: the architecture record's fields and the named arrays.

    Raises ``ValueError`` naming the file for an unreadable, truncated or corrupted archive, a record that
    is not npespcn's, lacks a field or is outside the limits of :func:`npespcn.formats.arch.check_arch`, and
    arrays of other names, shapes or sizes than the record implies or of a dtype other than float16/32/64.
    """
    try:
        budget = element_budget(os.path.getsize(path))
        with zipfile.ZipFile(path) as z:
            infos = members(z)
            rec = infos.get(f"{ARCH_KEY}.npy")
            if rec is None:
                raise ValueError("no architecture record (__npespcn__.npy)")
            if rec.file_size > MAX_RECORD_BYTES:
                raise ValueError(f"the architecture record declares {rec.file_size} bytes, more than the "
                                 f"{MAX_RECORD_BYTES} accepted")

            def is_text(shape, dtype):
                if dtype.kind != "U" or shape != ():
                    raise ValueError(f"the architecture record is a {dtype} array of shape {shape}, not a string")

            text = str(_read_npy(z, rec, "the architecture record", is_text)[()])
            try:
                record = json.loads(text)
            except (ValueError, RecursionError) as e:
                raise ValueError(f"the architecture record is not JSON ({type(e).__name__}: {e})") from None
            if not isinstance(record, dict) or record.get("format") != "npespcn":
                raise ValueError("the architecture record is not npespcn's")
            if record.get("version") != FORMAT_VERSION:
                raise ValueError(f"npespcn .npz format version {record.get('version')!r}; this npespcn reads "
                                 f"version {FORMAT_VERSION} (a newer npespcn wrote it?)")
            missing = [k for k in ARCH_FIELDS if k not in record]
            if missing:
                raise ValueError(f"the architecture record lacks {missing}")
            arch = check_arch({k: record[k] for k in ARCH_FIELDS})
            expected = param_shapes(arch)
            names = {n.removesuffix(".npy"): info for n, info in infos.items()
                     if n != rec.filename}
            unexpected, absent = sorted(set(names) - set(expected)), sorted(set(expected) - set(names))
            if unexpected or absent:
                raise ValueError(f"the architecture record implies other parameters: missing {absent}, "
                                 f"unexpected {unexpected}")
            if sum(int(np.prod(s)) for s in expected.values()) > budget:
                raise ValueError(f"the record implies {sum(int(np.prod(s)) for s in expected.values())} "
                                 f"parameters, more than a file of its size may hold ({budget})")

            def checker(name):
                def check(shape, dtype):
                    if dtype.kind != "f" or dtype.str[1:] not in FLOAT_DTYPES:
                        raise ValueError(f"{name}: weights must be float16, float32 or float64, got {dtype}")
                    if tuple(shape) != expected[name]:
                        raise ValueError(f"{name}: shape {tuple(shape)}, the record implies {expected[name]}")
                return check

            for name in expected:                       # every header first: no data before all are right
                with open_member(z, names[name]) as fh:
                    shape, _, dtype, head = _npy_header(fh, name)
                checker(name)(shape, dtype)
                if names[name].file_size != head + int(np.prod(shape)) * dtype.itemsize:
                    raise ValueError(f"{name}: the header declares {int(np.prod(shape)) * dtype.itemsize} "
                                     f"bytes, the member holds {names[name].file_size - head}")
            params = {name: _read_npy(z, names[name], name, checker(name)) for name in expected}
    except ValueError as e:
        raise (ArchError if isinstance(e, ArchError) else ValueError)(f"{path}: {e}") from None
    except ZIP_ERRORS as e:                      # damaged zip structures, CRC errors, ...
        raise ValueError(f"{path}: not a readable npespcn .npz model ({type(e).__name__}: {e})") from None
    return arch, params
