"""Convert a published ESPCN (TensorFlow ``.pb``, PyTorch ``.pth``, or npespcn ``.npz``) to npespcn's ``.npz``.

Usage::

    npespcn convert ../shared/published/ESPCN_x3.pb espcn_x3_tf.npz
    npespcn convert espcn_x3.pth espcn_x3.npz --activation tanh --scale 3

The source format is recognised by content (:func:`npespcn.load_model`). ``--activation`` and
``--output-activation`` set what a ``.pth`` does not record (defaults: ESPCN-pytorch's tanh and none);
``--scale`` is a check: conversion fails if the file holds another scale. The output is written atomically
and never replaces an existing file without ``--overwrite`` (nor, even with it, the source itself).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..functional import ACTIVATIONS
from ..nn import load_model
from .common import HelpFormatter, OneLineParser


def convert(src, dst, overwrite: bool = False, **overrides):
    """Load ``src`` (any accepted format, ``overrides`` as in :func:`load_model`) and save it to ``dst``.

    ``dst`` must not be ``src`` (also through another path or a link: ``ValueError``) and, unless
    ``overwrite``, must not exist (``FileExistsError``, also when it appears while converting).
    Returns the model.
    """
    if os.path.lexists(dst) and os.path.exists(src) and (os.path.realpath(dst) == os.path.realpath(src)
                                                         or os.path.samefile(src, dst)):
        raise ValueError(f"{dst} is the source file itself; give another destination")
    if os.path.lexists(dst) and not overwrite:
        raise FileExistsError(f"{dst} exists (pass --overwrite to replace it)")
    model = load_model(src, **overrides)
    model.save(dst, overwrite=overwrite)
    return model


def _none_or(name):
    return None if name in ("none", "None") else name


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="npespcn convert", description=__doc__.split("\n\n")[0],
                      formatter_class=HelpFormatter)
    p.add_argument("src", help="model file: .pb (TensorFlow frozen graph), .pth (PyTorch state_dict) or .npz")
    p.add_argument("dst", help="output npespcn .npz")
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
        model = convert(args.src, args.dst, overwrite=args.overwrite, **overrides)
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

