"""``python -m npespcn.evaluate``: see :mod:`npespcn.cli_evaluate` (the library is :mod:`npespcn.evaluation`)."""
import sys

from npespcn.cli_evaluate import main

if __name__ == "__main__":
    sys.exit(main())
