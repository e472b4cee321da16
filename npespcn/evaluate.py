"""``python -m npespcn.evaluate ...`` is ``npespcn evaluate ...`` (:mod:`npespcn.cli.evaluate`).

Imported (``import npespcn.evaluate``), this module is callable as :func:`npespcn.evaluation.evaluate`, the function
``npespcn.evaluate`` it then stands in for."""
from .cli import door
from .evaluation import evaluate as function

door(__name__, "evaluate", function)
