"""Training an ESPCN.

=================  ==========================================================================
file               concept
=================  ==========================================================================
``trainer.py``     TrainConfig, Trainer (epochs, validation, checkpoints, resume)
``patches.py``     training pairs: degradation, patch extraction, augmentation, epoch plans
``datasets.py``    where the training images are, and downloading the standard sets
``manifest.py``    the checksums of the standard sets
``progress.py``    the progress line
``plot.py``        the training curves as a PNG
=================  ==========================================================================
"""
from .trainer import NonFiniteLoss, TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer", "NonFiniteLoss"]
