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
import sys
import time
from pathlib import Path

from ..training import datasets
from ..training.patches import build_patches
from ..training.trainer import (
    CHECKPOINT,
    NonFiniteLoss,
    TrainConfig,
    Trainer,
    load_validation_set,
    read_checkpoint_meta,
)
from .common import HelpFormatter, OneLineParser


def _layers(text: str):
    """``"5x64,3x32"`` -> ``[[5, 64], [3, 32]]``."""
    try:
        return [[int(a) for a in part.lower().split("x")] for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers expects KxF pairs like 5x64,3x32, got {text!r}") from None


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="npespcn train", description="Train an ESPCN on a folder of images.",
                      formatter_class=HelpFormatter)
    p.add_argument("--scale", type=int, default=3, help="upscale factor r")
    p.add_argument("--arch", choices=("paper", "seven"), default="paper",
                   help="paper: 5x5x64, 3x3x32, tanh; seven: 5x5x64, 3x3x64, 3x(3x3x32), relu")
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
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (default 100; with --resume: "
                   "the checkpoint's, or more to extend the run)")
    p.add_argument("--batch-size", type=int, default=16, help="patches per step")
    p.add_argument("--lr", type=float, default=1e-3, help="base learning rate")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--last-lr-mult", type=float, default=0.1, help="learning-rate multiplier of the last layer")
    p.add_argument("--schedule", choices=("step", "cosine", "none"), default="step",
                   help="learning-rate schedule: step multiplies it by --lr-gamma at --lr-step; cosine decays it to 0")
    p.add_argument("--lr-step", type=int, default=0,
                   help="epoch of the step schedule's drop (default: 0, meaning 80%% of the run)")
    p.add_argument("--lr-gamma", type=float, default=0.1, help="the step schedule's factor")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batch order")
    p.add_argument("--patch-size", type=int, default=17, help="LR patch size")
    p.add_argument("--stride", type=int, default=13, help="LR patch stride")
    p.add_argument("--no-augment", action="store_true", help="no flips/rotations")
    p.add_argument("--rescale", type=str, default="1.0",
                   help="comma-separated HR rescale factors, e.g. 1,0.9,0.8,0.7,0.6")
    p.add_argument("--subpixel-target", action="store_true",
                   help="the paper's trick: train against the inverse-shuffled target, skip the shuffle")
    p.add_argument("--loss-border", type=int, default=0,
                   help="LR pixels on each side of a patch left out of the loss (their outputs see the zero padding)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="also checkpoint every N steps (0: off; default 200; with --resume: the checkpoint's)")
    p.add_argument("--out", type=Path, default=Path("runs") / "espcn", help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz with its settings and folders (only --epochs, "
                        "--data, --val, --checkpoint-every and --quiet may be given again)")
    p.add_argument("--download", action="store_true",
                   help="download T91, Set5 and Set14 into the cache (verified by SHA-256) and exit")
    p.add_argument("--download-url", default=None,
                   help="mirror for --download, laid out as URL/T91/t1.png (default: $NPESPCN_DATASETS_URL)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _default_val(data: Path):
    """Set5 next to the training data, else the first Set5 of :func:`~npespcn.training.datasets.candidates`."""
    for cand in [data.parent / "Set5"] + datasets.candidates("Set5"):
        if cand.is_dir():
            return cand
    return None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(args) -> int:
    if args.download:
        log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
        for name, folder in datasets.download_all(args.download_url, log=log).items():
            print(f"{name}: {folder}")
        return 0

    info = {}
    if args.resume:
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
        cfg = TrainConfig(scale=args.scale, arch=args.arch, layers=args.layers, activation=args.activation,
                          epochs=100 if args.epochs is None else args.epochs, batch_size=args.batch_size, lr=args.lr,
                          optimizer=args.optimizer, momentum=args.momentum, last_lr_mult=args.last_lr_mult,
                          schedule=args.schedule, lr_step=args.lr_step, lr_gamma=args.lr_gamma, seed=args.seed,
                          patch_size=args.patch_size, stride=args.stride, augment=not args.no_augment,
                          rescale=[float(f) for f in args.rescale.split(",") if f.strip()],
                          subpixel_target=args.subpixel_target,
                          checkpoint_every=200 if args.checkpoint_every is None else args.checkpoint_every,
                          loss_border=args.loss_border)
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
        info = {"data": str(Path(data).resolve()), "val": str(Path(val).resolve())}
    else:
        info = {"data": str(Path(data).resolve()), "val": None}
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

