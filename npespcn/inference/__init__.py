"""Super-resolve images: ``upscale(image, scale=3, model=None, tile=None)``.

=================  ==========================================================================
file               concept
=================  ==========================================================================
``pipeline.py``    checks, colour (Y through the network, chroma bicubic), one tile's pipeline,
                   :func:`upscale` and the banded :func:`upscale_bands`
``tiling.py``      cutting an image into tiles with a halo, and choosing the tile size
``video.py``       streams of frames (:func:`upscale_frames`) and video files (:func:`upscale_video`,
                   PyAV): decoder, network and encoder on three threads, sound copied
``animation.py``   animated GIF, APNG and WebP (Pillow): every frame, its duration, the loop count
``batch.py``       many files: :func:`upscale_files`, here or one task per file on a Dask cluster
                   (images; videos and animations routed to the two above, in this process)
=================  ==========================================================================
"""
from .animation import is_animated, upscale_animation
from .batch import upscale_files
from .pipeline import check_image, upscale, upscale_bands
from .video import is_video_path, upscale_frames, upscale_video

__all__ = ["upscale", "upscale_bands", "check_image", "upscale_files", "upscale_frames", "upscale_video",
           "is_video_path", "upscale_animation", "is_animated"]
