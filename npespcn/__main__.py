"""``python -m npespcn <command> ...``: the ``npespcn`` command (see :mod:`npespcn.cli`)."""
import sys

from .cli import main

sys.exit(main())
