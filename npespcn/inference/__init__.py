"""Super-resolve images: ``upscale(image, scale=3, model=None, tile=None)``.

=================  ==========================================================================
file               concept
=================  ==========================================================================
``pipeline.py``    checks, colour (Y through the network, chroma bicubic), one tile's pipeline,
                   :func:`upscale` and the banded :func:`upscale_bands`
``tiling.py``      cutting an image into tiles with a halo, and choosing the tile size
``batch.py``       many files: :func:`upscale_files`, here or one task per file on a Dask cluster
=================  ==========================================================================
"""
from .batch import upscale_files
from .pipeline import check_image, upscale, upscale_bands

__all__ = ["upscale", "upscale_bands", "check_image", "upscale_files"]
