"""``python -m npespcn.convert ...`` is ``npespcn convert ...`` (:mod:`npespcn.cli.convert`)."""
from .cli import door

door(__name__, "convert")
