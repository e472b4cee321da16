"""``python -m npespcn.upscale ...`` is ``npespcn upscale ...`` (:mod:`npespcn.cli.upscale`)."""
from .cli import door
from .inference import upscale as function

door(__name__, "upscale", function)
