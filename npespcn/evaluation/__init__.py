"""Scoring super-resolution as the literature does.

=================  ==========================================================================
file               concept
=================  ==========================================================================
``metrics.py``     PSNR and SSIM
``protocol.py``    the evaluation protocol (bicubic degradation, Y channel, border) and
                   :func:`evaluate` over a set of images
``report.py``      an HTML page comparing models: tables and zoomed PNG crops
=================  ==========================================================================
"""
from .metrics import psnr, ssim
from .protocol import degrade, evaluate, score

__all__ = ["psnr", "ssim", "degrade", "evaluate", "score"]
