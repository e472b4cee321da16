"""Model files: npespcn's ``.npz``, and the formats other ESPCN implementations publish.

:func:`load_model` recognises a file by its content, not its name:

========================  ==============================================  ==================================
format                    recognised by                                   module
========================  ==============================================  ==================================
npespcn ``.npz``          zip archive with an ``__npespcn__.npy`` entry   :mod:`npespcn.formats.npz`
PyTorch ``state_dict``    zip archive with a ``data.pkl`` entry           :mod:`npespcn.formats.torch_pth`
(``torch.save``, .pth)    (ESPCN-pytorch keys ``first_part.0.weight``...)
TensorFlow frozen graph   protobuf starting with a ``GraphDef.node``      :mod:`npespcn.formats.tf_graphdef`
(``.pb``, TF-ESPCN,       (byte 0x0A) whose nodes form the chain Conv2D,
OpenCV dnn_superres)      Add, Relu/Tanh, ..., DepthToSpace, [Tanh]
========================  ==============================================  ==================================

What each format determines:

* ``.npz``: everything (architecture record next to the weights).
* ``.pb``: everything, read off the graph: kernel sizes and filters from the ``Const`` kernels (HWIO),
  activations from the ops, scale from ``DepthToSpace``'s block size. The published TF-ESPCN models are
  ``layers=[[5, 64], [3, 32]], activation="relu", output_activation="tanh"``.
* ``.pth``: layers, channels and scale from the weight shapes (``r = sqrt(out / C)`` of ``last_part.0``);
  the activations are not stored, so they default to ESPCN-pytorch's (``activation="tanh"``,
  ``output_activation=None``) unless given as keyword overrides.

``overrides`` may be any of ``scale, channels, layers, activation, output_activation``. For every format an
override of a field the file determines (scale, channels, layers) must agree with the file; activations are
replaced. No format is ever read with ``pickle``: see :mod:`npespcn.formats.torch_pth` for why a ``.pth``
cannot run code here.
"""
from __future__ import annotations

from pathlib import Path

from .npz import is_npespcn_npz, load_npz, read_npz, save_npz

ACCEPTED = ("npespcn .npz; PyTorch state_dict .pth (torch.save zip format, ESPCN-pytorch keys); "
            "TensorFlow frozen GraphDef .pb of an ESPCN (TF-ESPCN / OpenCV dnn_superres)")
ARCH_FIELDS = ("scale", "channels", "layers", "activation", "output_activation")
FROM_SHAPES = ("scale", "channels", "layers")


def _check_overrides(overrides: dict) -> None:
    unknown = sorted(set(overrides) - set(ARCH_FIELDS))
    if unknown:
        raise TypeError(f"unknown model override(s) {unknown}; expected any of {list(ARCH_FIELDS)}")


def _build(path, arch: dict, params: dict, overrides: dict):
    """Apply ``overrides`` to an ``arch`` read from a model file and load ``params`` into a new ESPCN.

    The one override path of every format: scale, channels and layers must agree with ``arch``."""
    from ..model import ESPCN
    for key, value in overrides.items():
        if key in FROM_SHAPES:
            same = ([list(map(int, l)) for l in value] == arch[key]) if key == "layers" else value == arch[key]
            if not same:
                raise ValueError(f"{path}: the file holds a model with {key}={arch[key]!r}, "
                                 f"but {key}={value!r} was asked for")
        else:
            arch[key] = value
    return ESPCN(**arch).load_params(params)


def read_foreign(path) -> tuple[str, dict, dict] | None:
    """``(format name, arch, params)`` for a ``.pth`` or ``.pb`` file, ``None`` if it is neither.

    ``params`` are in npespcn's naming and layout (``conv1.weight`` (out, in, k, k), ...); for a ``.pth`` the
    ``arch`` holds ESPCN-pytorch's default activations.
    """
    from .tf_graphdef import looks_like_graphdef, read_graphdef
    from .torch_pth import espcn_from_state_dict, is_torch_zip, read_state_dict
    if is_torch_zip(path):
        arch, params = espcn_from_state_dict(read_state_dict(path))
        return "PyTorch state_dict", arch, params
    if looks_like_graphdef(path):
        arch, params = read_graphdef(path)
        return "TensorFlow GraphDef", arch, params
    return None


def load_model(path, **overrides):
    """Load an ESPCN from ``path``, whatever its format (see the table above).

    Parameters
    ----------
    path : str or Path
    **overrides
        Architecture fields (``scale, channels, layers, activation, output_activation``); see the module
        docstring for how each format treats them.

    Returns
    -------
    ESPCN
        float32 model with the file's weights, in npespcn's layout.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is none of the accepted formats, is truncated or corrupted, or holds something that is not
        an ESPCN (the message names the formats accepted or what was wrong). A ``.pth`` whose pickle names a
        global other than the few a tensor state dict needs raises :class:`~npespcn.formats.torch_pth.
        UnsafePickleError` (a ``ValueError``) without running anything.
    TypeError
        An unknown override.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    _check_overrides(overrides)
    if is_npespcn_npz(path):
        arch, params = read_npz(path)
        return _build(path, arch, params, overrides)
    found = read_foreign(path)
    if found is not None:
        _, arch, params = found
        return _build(path, arch, params, overrides)
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == b"\x80":
        raise ValueError(f"{path}: a bare pickle (legacy torch.save before PyTorch 1.6, or pickle.dump) is "
                         f"never unpickled here because it could run code; re-save it with a current "
                         f"torch.save (zip format). Accepted formats: {ACCEPTED}")
    raise ValueError(f"{path}: not a model file npespcn can read; accepted formats: {ACCEPTED}")


__all__ = ["load_model", "load_npz", "save_npz", "read_foreign", "ACCEPTED"]
