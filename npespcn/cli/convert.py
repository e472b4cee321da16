"""Convert an ESPCN between model files: npespcn ``.npz``, ONNX ``.onnx``, TensorFlow ``.pb``, PyTorch ``.pth``.

Usage::

    npespcn convert ../shared/published/ESPCN_x3.pb espcn_x3_tf.npz
    npespcn convert espcn_x3.pth espcn_x3.npz --activation tanh --scale 3
    npespcn convert espcn7_x2 espcn7_x2.onnx          # a shipped model, for onnxruntime / OpenCV 5
    npespcn convert my_model.npz my_model.pb          # TF-ESPCN's layout, for OpenCV's dnn_superres

The source is a file, recognised by content (:func:`npespcn.load_model`), or a shipped model's name
(``espcn_x3``, ``espcn7_x2``, ...). The destination's suffix chooses what is written: ``.onnx``
(:mod:`npespcn.formats.onnx`; ``--layout nhwc`` for OpenCV 5's ``dnn_superres``), ``.pb``
(:mod:`npespcn.formats.tf_graphdef_writer`), anything else npespcn's ``.npz``. ``--activation`` and
``--output-activation`` set what a ``.pth`` does not record (defaults: ESPCN-pytorch's tanh and none);
``--scale`` is a check: conversion fails if the file holds another scale. The output is written atomically
and never replaces an existing file without ``--overwrite`` (nor, even with it, the source itself).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ..formats import EXPORTS, OPSET, export_model
from ..functional import ACTIVATIONS
from ..nn import load_model
from ..nn.pretrained import NAMES, shipped_path
from .common import HelpFormatter, OneLineParser

SHIPPED = re.compile(rf"^({'|'.join(NAMES)})_x(\d+)$", re.IGNORECASE)
"""A shipped model's name, ``espcn_x3`` or ``espcn7_x2``."""


def source_path(src) -> str:
    """``src`` itself when it is a file (or is not a shipped name), else the shipped file it names."""
    m = SHIPPED.match(os.fspath(src))
    if m is None or os.path.lexists(src):
        return os.fspath(src)
    return os.fspath(shipped_path(m.group(1).lower(), int(m.group(2))))


def convert(src, dst, overwrite: bool = False, layout: str = "nchw", **overrides):
    """Load ``src`` (any accepted format or a shipped name, ``overrides`` as in :func:`load_model`) and
    write it to ``dst``: ONNX for ``*.onnx``, a TensorFlow frozen graph for ``*.pb``
    (:func:`npespcn.formats.export_model`, ``layout`` for ONNX), npespcn's ``.npz`` otherwise.

    ``dst`` must not be ``src`` (also through another path or a link: ``ValueError``) and, unless
    ``overwrite``, must not exist (``FileExistsError``, also when it appears while converting).
    Returns the model.

    Examples:
        >>> convert("espcn_x3", "espcn_x3.onnx")          # doctest: +SKIP
    """
    src = source_path(src)
    if os.path.lexists(dst) and os.path.exists(src) and (os.path.realpath(dst) == os.path.realpath(src)
                                                         or os.path.samefile(src, dst)):
        raise ValueError(f"{dst} is the source file itself; give another destination")
    if os.path.lexists(dst) and not overwrite:
        raise FileExistsError(f"{dst} exists (pass --overwrite to replace it)")
    suffix = Path(dst).suffix.lower()
    if layout != "nchw" and suffix != ".onnx":
        raise ValueError(f"--layout applies to .onnx outputs only, not {dst}")
    model = load_model(src, **overrides)
    if suffix in EXPORTS:
        plain = model.folded()
        export_model(plain.arch, plain.params, dst, overwrite=overwrite, layout=layout)
    else:
        model.save(dst, overwrite=overwrite)
    return model


def _none_or(name):
    return None if name in ("none", "None") else name


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="npespcn convert", description=__doc__.split("\n\n")[0],
                      formatter_class=HelpFormatter)
    p.add_argument("src", help="model file (.npz, .onnx, .pb, .pth) or a shipped name such as espcn_x3, espcn7_x2")
    p.add_argument("dst", help=f"output: .onnx (ONNX opset {OPSET}), .pb (TensorFlow frozen graph) or npespcn .npz")
    p.add_argument("--layout", choices=("nchw", "nhwc"), default="nchw",
                   help="ONNX input layout: nchw (N, 1, H, W) for onnxruntime and cv2.dnn, nhwc (N, H, W, 1) for "
                        "OpenCV 5's dnn_superres")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS),
                   help="hidden activation (for a .pth, which does not record it; default tanh)")
    p.add_argument("--output-activation", type=_none_or, default=argparse.SUPPRESS,
                   choices=[None] + sorted(a for a in ACTIVATIONS if a != "prelu"),
                   help="activation after the shuffle ('none' for none; default: the file's, none for a .pth)")
    p.add_argument("--scale", type=int, help="expected upscale factor (checked against the file)")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists (never SRC itself)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in (("activation", args.activation), ("scale", args.scale)) if v is not None}
    if hasattr(args, "output_activation"):              # given on the command line (None for 'none')
        overrides["output_activation"] = args.output_activation
    try:
        model = convert(args.src, args.dst, overwrite=args.overwrite, layout=args.layout, **overrides)
    except (ValueError, TypeError, OSError) as e:
        print(f"npespcn convert: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"npespcn convert: error: not enough memory to load {args.src}", file=sys.stderr)
        return 1
    arch = model.arch
    print(f"{args.src} -> {args.dst}: scale {arch['scale']}, channels {arch['channels']}, layers "
          f"{arch['layers']}, activation {arch['activation']}, output activation {arch['output_activation']}, "
          f"{model.num_params()} parameters")
    return 0

