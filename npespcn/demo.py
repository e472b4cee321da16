"""``python -m npespcn.demo ...`` is ``npespcn demo ...`` (:mod:`npespcn.cli.demo`)."""
from .cli import door

door(__name__, "demo")
