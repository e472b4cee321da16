"""``npespcn train``: train an ESPCN on a folder of images.

    npespcn train --scale 3                  # paper model on the built-in T91
    npespcn train --scale 3 --arch seven --data ~/T91 --val ~/Set5 --epochs 50 --out runs/x3
    npespcn train --out runs/x3 --resume     # continue a killed run where it stopped
    npespcn train --download                 # fetch T91, Set5, Set14 into the cache first

A thin layer over :mod:`npespcn.training.trainer`: every option maps to a field of
:class:`~npespcn.training.trainer.TrainConfig`. Errors are one line on stderr and a non-zero exit.
Threads: a run uses every core numba sees; to run several trainings side by side, give each
``NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

from ..training import datasets
from ..training.patches import build_patches
from ..training.recipes import recipe
from ..training.trainer import (
    CHECKPOINT,
    LOSS_NAMES,
    NonFiniteLoss,
    TrainConfig,
    Trainer,
    load_validation_set,
    read_checkpoint_meta,
)
from ..version import __version__, source_commit
from .common import HelpFormatter, OneLineParser


def _layers(text: str):
    """``"5x64,3x32"`` -> ``[[5, 64], [3, 32]]``."""
    try:
        return [[int(a) for a in part.lower().split("x")] for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers expects KxF pairs like 5x64,3x32, got {text!r}") from None


RESUMABLE = ("epochs", "data", "val", "checkpoint_every", "quiet")
"""The options ``--resume`` may be given again; the others are the checkpoint's."""


def build_parser() -> OneLineParser:
    """Every training option defaults to None: not given, so the recipe's value (:mod:`npespcn.training.recipes`)."""
    p = OneLineParser(prog="npespcn train", formatter_class=HelpFormatter,
                      description="Train an ESPCN. With no option but --scale and --arch this runs the default recipe "
                                  "(npespcn train --scale S --print-recipe shows it); every option given replaces "
                                  "its part of the recipe.")
    p.add_argument("--scale", type=int, default=None, help="upscale factor r (default: 3)")
    p.add_argument("--arch", choices=("paper", "seven"), default=None,
                   help="paper: 5x5x64, 3x3x32, tanh; seven: 5x5x64, 3x3x64, 3x(3x3x32), relu (default: paper)")
    p.add_argument("--layers", type=_layers, default=None,
                   help="explicit hidden layers, e.g. 5x64,3x32 (default: --arch's)")
    p.add_argument("--activation", choices=("tanh", "relu", "gelu", "prelu", "identity"), default=None,
                   help="activation of the hidden layers (default: --arch's: tanh for paper, relu for seven)")
    p.add_argument("--data", type=Path, default=None,
                   help="training images, searched recursively (default: $NPESPCN_DATASETS/T91, the cache's T91, "
                        "else the built-in T91)")
    p.add_argument("--val", type=Path, default=None,
                   help="validation images, for monitoring (default: Set5 next to the data, $NPESPCN_DATASETS/Set5, "
                        "the cache's, else the built-in Set5)")
    p.add_argument("--no-val", action="store_true", help="skip validation (best = lowest training loss)")
    recipe_default = "(default: the recipe's)"
    p.add_argument("--epochs", type=int, default=None,
                   help=f"number of epochs; with --resume, more than the checkpoint's extends the run {recipe_default}")
    p.add_argument("--batch-size", type=int, default=None, help=f"patches per step {recipe_default}")
    p.add_argument("--lr", type=float, default=None, help=f"base learning rate {recipe_default}")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default=None, help=f"optimizer {recipe_default}")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: 0.9)")
    p.add_argument("--last-lr-mult", type=float, default=None,
                   help=f"learning-rate multiplier of the last layer {recipe_default}")
    p.add_argument("--schedule", choices=("step", "cosine", "none"), default=None,
                   help="learning-rate schedule: step multiplies it by --lr-gamma at --lr-step; cosine decays it "
                        f"to 0 {recipe_default}")
    p.add_argument("--lr-step", type=int, default=None,
                   help="epoch of the step schedule's drop (default: 80%% of the run)")
    p.add_argument("--lr-gamma", type=float, default=None, help="the step schedule's factor (default: 0.1)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the initialisation and the batch order {recipe_default}")
    p.add_argument("--patch-size", type=int, default=None, help=f"LR patch size {recipe_default}")
    p.add_argument("--stride", type=int, default=None, help=f"LR patch stride {recipe_default}")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help=f"random flips and rotations of every batch {recipe_default}")
    p.add_argument("--rescale", type=str, default=None,
                   help="comma-separated HR rescale factors, e.g. 1,0.9,0.8,0.7,0.6 (default: 1)")
    p.add_argument("--subpixel-target", action=argparse.BooleanOptionalAction, default=None,
                   help="the paper's trick: train against the inverse-shuffled target, skip the shuffle "
                        f"{recipe_default}")
    p.add_argument("--loss-border", type=int, default=None,
                   help="LR pixels on each side of a patch left out of the loss (their outputs see the zero "
                        "padding; default: 0)")
    p.add_argument("--loss", choices=LOSS_NAMES, default=None,
                   help="training loss; l1-mse: L1 for the first half of the epochs, then MSE (default: mse)")
    p.add_argument("--reparam", action=argparse.BooleanOptionalAction, default=None,
                   help="train each hidden convolution as k x k + 1x1 (+ identity) branches, saved folded into "
                        f"the plain network {recipe_default}")
    p.add_argument("--ema", type=float, default=None,
                   help="decay of an exponential moving average of the weights, which is validated and saved "
                        f"(e.g. 0.999; 0: none) {recipe_default}")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help=f"also checkpoint every N steps (0: only at epoch ends) {recipe_default}")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/espcn[7]_x<scale>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz with its settings and folders (only --epochs, "
                        "--data, --val, --checkpoint-every and --quiet may be given again)")
    p.add_argument("--print-recipe", action="store_true",
                   help="print the full configuration this command would train with, as JSON, and exit")
    p.add_argument("--download", action="store_true",
                   help="download T91, Set5 and Set14 into the cache (verified by SHA-256) and exit")
    p.add_argument("--download-url", default=None,
                   help="mirror for --download, laid out as URL/T91/t1.png (default: $NPESPCN_DATASETS_URL)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


CONFIG_OPTIONS = ("scale", "arch", "layers", "activation", "epochs", "batch_size", "lr", "optimizer", "momentum",
                  "last_lr_mult", "schedule", "lr_step", "lr_gamma", "seed", "patch_size", "stride", "augment",
                  "rescale", "subpixel_target", "loss_border", "checkpoint_every", "loss", "reparam", "ema")
"""The options that are fields of :class:`~npespcn.training.trainer.TrainConfig` (same names)."""


def config_from_args(args) -> TrainConfig:
    """The recipe of ``--arch`` at ``--scale``, with every option given replacing its field."""
    given = {name: getattr(args, name) for name in CONFIG_OPTIONS if getattr(args, name) is not None}
    if "rescale" in given:
        try:
            given["rescale"] = [float(f) for f in given["rescale"].split(",") if f.strip()]
        except ValueError:
            raise ValueError(f"--rescale expects comma-separated numbers, got {given['rescale']!r}") from None
    return TrainConfig(**dict(recipe(given.get("arch", "paper"), given.get("scale", 3)), **given))


def default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / f"espcn{'7' if cfg.arch == 'seven' else ''}_x{cfg.scale}"


def _default_val(data: Path):
    """Set5 next to the training data, else the first Set5 of :func:`~npespcn.training.datasets.candidates`."""
    for cand in [data.parent / "Set5"] + datasets.candidates("Set5"):
        if cand.is_dir():
            return cand
    return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return _run(args, argv)
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 1


def _run(args, argv_given) -> int:
    if args.download:
        log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
        for name, folder in datasets.download_all(args.download_url, log=log).items():
            print(f"{name}: {folder}")
        return 0

    info = {}
    if args.resume:
        given = sorted(f"--{name.replace('_', '-')}" for name in CONFIG_OPTIONS + ("rescale",)
                       if getattr(args, name, None) is not None and name not in RESUMABLE)
        if given:
            raise ValueError(f"--resume continues with the checkpoint's settings; {', '.join(given)} cannot be "
                             f"changed (only --epochs, --data, --val, --checkpoint-every and --quiet can)")
        if args.out is None:
            raise ValueError("--resume needs --out, the folder of the run to continue")
        meta = read_checkpoint_meta(args.out / CHECKPOINT)        # FileNotFoundError if there is none
        # replace() runs TrainConfig's checks again on what the command line changes.
        cfg = dataclasses.replace(
            TrainConfig.from_dict(meta["config"]),
            **{name: value for name, value in (("epochs", args.epochs), ("checkpoint_every", args.checkpoint_every))
               if value is not None})
        info = meta.get("info") or {}
        args.data = args.data or (Path(info["data"]) if info.get("data") else None)
        args.val = args.val or (Path(info["val"]) if info.get("val") else None)
        args.no_val = args.no_val or info.get("val", "") is None
    else:
        cfg = config_from_args(args)
        if args.out is None:
            args.out = default_out(cfg)
    if args.print_recipe:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    data, images, looked = datasets.find_training_data(args.data, with_images=True)
    if data is None:
        raise FileNotFoundError(
            f"no training images found (looked in: {', '.join(looked)}). Get T91 with "
            f"'npespcn train --download' (into {datasets.cache_dir()}), or pass --data DIR or set "
            f"NPESPCN_DATASETS to a folder holding T91/")
    t0 = time.perf_counter()
    patches = build_patches(images, cfg.scale, cfg.patch_size, cfg.stride, cfg.rescale)
    val_images, val_name = None, "val"
    if not args.no_val:
        val = args.val or _default_val(data)
        if val is None:
            raise FileNotFoundError(f"no validation set: pass --val DIR (e.g. Set5) or --no-val; "
                                    f"'--download' puts Set5 into {datasets.cache_dir()}")
        val_images, val_name = load_validation_set(val), Path(val).name
    else:
        val = None
    if not args.resume:
        # What the shipped weights record (weights/README.md): how they were made, from exactly what.
        info = {"command": " ".join(["npespcn", "train", *map(shlex.quote, argv_given)]),
                "data": str(Path(data).resolve()), "data_sha256": datasets.digest(images, data),
                "val": None if val is None else str(Path(val).resolve()),
                "commit": source_commit(), "npespcn": __version__}
    print(f"{len(patches)} patches {cfg.patch_size}x{cfg.patch_size} from {len(patches.sources)} images in "
          f"{data} ({time.perf_counter() - t0:.1f} s); validation: {val_name if val_images else 'none'}; "
          f"output: {args.out}", file=sys.stderr)
    trainer = Trainer(cfg, patches, val_images, args.out, resume=args.resume, quiet=args.quiet, val_name=val_name,
                      info=info)
    try:
        best = trainer.run()
    except NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"best": best, "out": str(args.out), "train_seconds": round(trainer.elapsed, 1)}))
    return 0

