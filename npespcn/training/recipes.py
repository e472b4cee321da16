"""The default training recipes: what ``npespcn train --scale S --arch A`` runs when no other option is given.

A recipe is a set of :class:`~npespcn.training.trainer.TrainConfig` fields; every option given on the
command line replaces its field. One run, one fixed schedule, no restarts: the shipped weights
``weights/espcn{,7}_x{2,3,4}.npz`` are meant to be the final weights of these runs on the built-in T91
(``weights/README.md`` says which files were made by which command).

The x3 paper recipe: 280 epochs of 17x17 LR patches at stride 7, Adam at 1e-3 with a cosine decay, the
last layer at 0.1x the rate, flips and rotations, the paper's sub-pixel target (the loss is taken
against the inverse-shuffled HR patch, so the shuffle is skipped in training), and re-parameterised
training (``reparam``: every hidden convolution trained with a parallel 1x1 branch, saved folded into the
plain network). The options were chosen one at a time on the tuning set Urban16 (``scripts/ablations.py``,
table in ``weights/README.md``): of EMA, L1/Charbonnier/L1-then-MSE, 25x25 patches, rescaled data and
re-parameterisation, only the last raised the tuning-set PSNR clearly (+0.24 dB in the shortened recipe).
That was measured on the paper network; the seven-layer recipes keep the plain training until it is
measured there. The other scales keep the
same number of optimizer steps (the patch count grows as ``1 / r**2``), so every paper recipe takes about
as long; the seven-layer recipes run the same schedule.
"""
from __future__ import annotations

ARCHS = ("paper", "seven")
SCALES = (2, 3, 4)

_BASE = {"stride": 7, "patch_size": 17, "schedule": "cosine", "subpixel_target": True, "lr": 1e-3,
         "batch_size": 16, "optimizer": "adam", "last_lr_mult": 0.1, "augment": True, "seed": 0,
         "checkpoint_every": 200}
_EPOCHS = {2: 125, 3: 280, 4: 500}
_ARCH = {"paper": {"reparam": True}, "seven": {}}


def recipe(arch: str = "paper", scale: int = 3) -> dict:
    """The :class:`~npespcn.training.trainer.TrainConfig` fields of the default recipe for ``arch`` at
    ``scale``; a scale without a recipe of its own takes the x3 recipe's."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    return dict(_BASE, **_ARCH[arch], arch=arch, scale=int(scale), epochs=_EPOCHS.get(int(scale), _EPOCHS[3]))
