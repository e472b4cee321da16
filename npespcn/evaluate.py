"""``python -m npespcn.evaluate ...`` is ``npespcn evaluate ...`` (:mod:`npespcn.cli.evaluate`)."""
from .cli import door
from .evaluation import evaluate as function

door(__name__, "evaluate", function)
