"""``python -m npespcn.upscale ...`` is ``npespcn upscale ...`` (:mod:`npespcn.cli.upscale`).

Imported (``import npespcn.upscale``), this module is callable as :func:`npespcn.inference.upscale`, the function
``npespcn.upscale`` it then stands in for."""
from .cli import door
from .inference import upscale as function

door(__name__, "upscale", function)
