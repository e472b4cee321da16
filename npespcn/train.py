"""``python -m npespcn.train ...`` is ``npespcn train ...`` (:mod:`npespcn.cli.train`)."""
from .cli import door

door(__name__, "train")
