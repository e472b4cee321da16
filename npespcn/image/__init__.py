"""Images as arrays: colour conversion, Pillow-exact bicubic resampling, and image files.

=============  ==========================================================================
file           concept
=============  ==========================================================================
``color.py``   RGB <-> YCbCr (ITU-R BT.601 studio range, the SR literature's convention)
``bicubic.py`` Pillow's bicubic kernel in float64, for whole planes and for regions of tiles
``io.py``      reading, writing and listing image files; PNG written in streamed bands
=============  ==========================================================================
"""
