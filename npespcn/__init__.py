"""npespcn: ESPCN super-resolution (Shi et al., CVPR 2016) from scratch in NumPy + numba.

Public API::

    npespcn.ESPCN, npespcn.load_model          the model and its files      (model.py, formats/)
    npespcn.SGD, npespcn.Adam, StepLR, CosineLR optimizers and schedules     (optim.py)
    npespcn.functional                          the kernels, forward/backward (functional/)
    npespcn.upscale, npespcn.psnr, npespcn.ssim inference and metrics        (inference.py, metrics.py)

Inference and the metrics load on first use; ``import npespcn`` itself loads the
model and its numba kernels (about 0.3 s on the development machine).
"""
from __future__ import annotations

import importlib

from .formats import load_model
from .model import ESPCN
from .optim import SGD, Adam, CosineLR, StepLR

__version__ = "0.1.0"

# name -> (module, attribute): resolved lazily by __getattr__ below.
_LAZY = {
    "upscale": ("npespcn.inference", "upscale"),
    "psnr": ("npespcn.metrics", "psnr"),
    "ssim": ("npespcn.metrics", "ssim"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'npespcn' has no attribute {name!r}")


__all__ = ["ESPCN", "load_model", "SGD", "Adam", "StepLR", "CosineLR", "upscale", "psnr", "ssim",
           "__version__"]
