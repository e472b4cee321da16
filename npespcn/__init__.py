"""npespcn: ESPCN super-resolution (Shi et al., CVPR 2016) from scratch in NumPy + numba.

Public API::

    npespcn.upscale(image, scale=3, model=None)     super-resolve an array or PIL image   (inference/)
    npespcn.upscale_files(inputs, out_dir, ...)    files, here or on a Dask cluster      (inference/batch.py)
    npespcn.upscale_frames, npespcn.upscale_video   streams of frames; video files (PyAV) (inference/video.py)
    npespcn.upscale_animation                      animated GIF, APNG, WebP (Pillow)     (inference/animation.py)
    npespcn.ESPCN, npespcn.load_model              the model and its files               (nn/, formats/)
    npespcn.SGD, Adam, EMA, StepLR, CosineLR       optimizers, weight average, schedules (nn/optim.py)
    npespcn.evaluate, npespcn.psnr, npespcn.ssim   scoring                               (evaluation/)
    npespcn.functional                             the kernels, forward and backward     (functional/)

The package, folder by folder (each imports only the ones above it in this list)::

    atomic.py, version.py    writing files atomically; the version
    extras.py                the one door to optional extras (PyAV, dask.distributed)
    formats/                 model files: npespcn .npz, PyTorch .pth, TensorFlow .pb, ONNX (a leaf)
    fast/                    the machinery behind the fast kernels (threads, chunks, BLAS)
    functional/              the maths: im2col, conv, activation, shuffle, loss (reference + fast)
    nn/                      layers, the ESPCN model, optimizers, the shipped models
    image/                   colour conversion, bicubic resampling, image files
    inference/               upscale: the colour pipeline, tiling, batches, video and animations
    evaluation/              metrics, the evaluation protocol, the HTML report
    training/                trainer, patches, datasets
    cli/                     every command line (``npespcn <command>``)

``python -m npespcn.<command>`` (upscale, train, evaluate, convert, demo) is ``npespcn <command>``.
"""
from __future__ import annotations

from . import functional
from .evaluation import evaluate, psnr, ssim
from .inference import (
    upscale,
    upscale_animation,
    upscale_files,
    upscale_frames,
    upscale_video,
)
from .nn import EMA, ESPCN, SGD, Adam, CosineLR, StepLR, load_model
from .version import __version__

__all__ = ["upscale", "upscale_files", "upscale_frames", "upscale_video", "upscale_animation", "ESPCN", "load_model",
           "SGD", "Adam", "EMA", "StepLR", "CosineLR", "evaluate", "psnr", "ssim", "functional", "__version__"]
