"""Model files: npespcn's ``.npz``, and the formats other ESPCN implementations publish.

:func:`read_model_file` recognises a file by its content, not its name (:func:`npespcn.load_model`
builds the model from what it reads):

========================  ==============================================  ==================================
format                    recognised by                                   module
========================  ==============================================  ==================================
npespcn ``.npz``          zip archive with an ``__npespcn__.npy`` entry   :mod:`npespcn.formats.npz`
PyTorch ``state_dict``    zip archive with a ``data.pkl`` entry           :mod:`npespcn.formats.torch_pth`
(``torch.save``, .pth)    (ESPCN-pytorch keys ``first_part.0.weight``...)
TensorFlow frozen graph   protobuf starting with a ``GraphDef.node``      :mod:`npespcn.formats.tf_graphdef`
(``.pb``, TF-ESPCN,       (byte 0x0A) whose nodes form the chain Conv2D,
OpenCV dnn_superres)      Add, Relu/Tanh, ..., DepthToSpace, [Tanh]
ONNX model (``.onnx``)    protobuf starting with ``ir_version`` (byte     :mod:`npespcn.formats.onnx`
                          0x08) and holding a graph: Conv,
                          Relu/Tanh/PRelu, ..., DepthToSpace, [Tanh]
========================  ==============================================  ==================================

Writing: :func:`save_npz` (a model), :func:`export_model` (``.onnx`` by :func:`~npespcn.formats.onnx.write_onnx`,
``.pb`` by :func:`~npespcn.formats.tf_graphdef_writer.write_graphdef`, chosen by the file's suffix), all with
npespcn's own protobuf writer (:mod:`npespcn.formats.protobuf`), atomically.

What each format determines:

* ``.npz``: everything (architecture record next to the weights).
* ``.pb``: everything, read off the graph: kernel sizes and filters from the ``Const`` kernels (HWIO),
  activations from the ops, scale from ``DepthToSpace``'s block size. The published TF-ESPCN models are
  ``layers=[[5, 64], [3, 32]], activation="relu", output_activation="tanh"``.
* ``.onnx``: everything, read off the graph like a ``.pb`` (initializers in ONNX's ``(out, in, k, k)``).
* ``.pth``: layers, channels and scale from the weight shapes (``r = sqrt(out / C)`` of ``last_part.0``);
  the activations are not stored, so they default to ESPCN-pytorch's (``activation="tanh"``,
  ``output_activation=None``) unless given as keyword overrides.

``overrides`` may be any of ``scale, channels, layers, activation, output_activation``. For every format an
override of a field the file determines (scale, channels, layers) must agree with the file; activations are
replaced. This package is a leaf: it reads and writes files of arrays and records and imports nothing else
of npespcn (but :mod:`npespcn.atomic`). No format is ever read with ``pickle``: see
:mod:`npespcn.formats.torch_pth` for why a ``.pth`` cannot run code here.

Every reader treats its file as hostile: the architecture (read from the record or from the declared
shapes) is checked against :func:`~npespcn.formats.arch.check_arch`'s limits and the arrays' declared
shapes and sizes against it and against :func:`~npespcn.formats.arch.element_budget` of the file's size
before any array data is decoded or decompressed (zip members in bounded chunks,
:mod:`npespcn.formats.ziparchive`; graph constants only where the chain uses them), so loading a file
of ``n`` bytes needs memory of a small multiple of ``max(n, 8 MB)``. Damaged files raise ``ValueError``
(or a subclass) naming the file.
"""
from __future__ import annotations

from pathlib import Path

from .arch import ARCH_FIELDS, ArchError, apply_overrides, check_arch, check_overrides
from .npz import is_npespcn_npz, read_npz, save_npz
from .onnx import OPSET, looks_like_onnx, read_onnx, write_onnx
from .tf_graphdef import looks_like_graphdef, read_graphdef
from .tf_graphdef_writer import write_graphdef
from .torch_pth import espcn_from_state_dict, espcn_layout, is_torch_zip, read_state_dict

ACCEPTED = ("npespcn .npz; PyTorch state_dict .pth (torch.save zip format, ESPCN-pytorch keys); "
            "TensorFlow frozen GraphDef .pb of an ESPCN (TF-ESPCN / OpenCV dnn_superres); ONNX .onnx of an ESPCN")
EXPORTS = {".onnx": "ONNX", ".pb": "TensorFlow GraphDef"}
"""The suffixes :func:`export_model` writes, with their format's name."""


def read_foreign(path) -> tuple[str, dict, dict] | None:
    """``(format name, arch, params)`` for a ``.pth``, ``.pb`` or ``.onnx`` file, ``None`` if it is none.

    ``params`` are in npespcn's naming and layout (``conv1.weight`` (out, in, k, k), ...); for a ``.pth`` the
    ``arch`` holds ESPCN-pytorch's default activations.
    """
    if is_torch_zip(path):
        def check(meta):                 # before any storage is read: the layout and its limits
            try:
                arch, _ = espcn_layout(meta)
            except ValueError as e:
                raise ValueError(f"not an ESPCN-pytorch state dict: {e}") from None
            check_arch(arch, path)

        arch, params = espcn_from_state_dict(read_state_dict(path, check=check))
        return "PyTorch state_dict", arch, params
    if looks_like_graphdef(path):
        arch, params = read_graphdef(path)
        return "TensorFlow GraphDef", arch, params
    if looks_like_onnx(path):
        arch, params = read_onnx(path)
        return "ONNX", arch, params
    return None


def export_model(arch: dict, params: dict, path, overwrite: bool = False, layout: str = "nchw") -> str:
    """Write the ESPCN ``(arch, params)`` (npespcn's names and layout) in the format of ``path``'s suffix
    (:data:`EXPORTS`), atomically, never replacing an existing file unless ``overwrite``.

    Args:
        arch, params: :attr:`npespcn.ESPCN.arch` and :attr:`npespcn.ESPCN.params` of a plain (folded) model.
        path: ``*.onnx`` or ``*.pb``.
        layout: ONNX only: ``"nchw"`` input (N, C, H, W) or ``"nhwc"`` (N, H, W, C), see
            :mod:`npespcn.formats.onnx`.

    Returns:
        The format's name.

    Raises:
        ValueError: another suffix, or a model the format cannot express (the message says why).
        FileExistsError: ``path`` exists and not ``overwrite``.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        write_onnx(arch, params, path, overwrite=overwrite, layout=layout)
    elif suffix == ".pb":
        if layout != "nchw":
            raise ValueError("layout applies to ONNX files only; a .pb takes NHWC input as TF-ESPCN's do")
        write_graphdef(arch, params, path, overwrite=overwrite)
    else:
        raise ValueError(f"cannot export to {path}: expected a file ending in {' or '.join(EXPORTS)}")
    return EXPORTS[suffix]


def read_model_file(path) -> tuple[str, dict, dict]:
    """Read any accepted model file (see the table above), recognised by its content.

    Args:
        path: str or Path.

    Returns:
        ``(format name, arch, params)``: ``arch`` has the fields :data:`ARCH_FIELDS` (the arguments of
        :class:`npespcn.ESPCN`), ``params`` maps ``"conv1.weight"``... to arrays in npespcn's layout.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is none of the accepted formats, is truncated or corrupted, or holds
            something that is not an ESPCN (the message names the formats accepted or what was wrong).
            A ``.pth`` whose pickle names a global other than the few a tensor state dict needs raises
            :class:`~npespcn.formats.torch_pth.UnsafePickleError` (a ``ValueError``) without running
            anything.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if is_npespcn_npz(path):
        arch, params = read_npz(path)
        return "npespcn .npz", arch, params
    found = read_foreign(path)
    if found is not None:
        return found
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == b"\x80":
        raise ValueError(f"{path}: a bare pickle (legacy torch.save before PyTorch 1.6, or pickle.dump) is "
                         f"never unpickled here because it could run code; re-save it with a current "
                         f"torch.save (zip format). Accepted formats: {ACCEPTED}")
    raise ValueError(f"{path}: not a model file npespcn can read; accepted formats: {ACCEPTED}")


__all__ = ["read_model_file", "read_foreign", "save_npz", "export_model", "EXPORTS", "OPSET", "apply_overrides",
           "check_arch", "check_overrides", "ArchError", "ARCH_FIELDS", "ACCEPTED"]
