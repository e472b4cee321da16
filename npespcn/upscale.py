"""``python -m npespcn.upscale``: see :mod:`npespcn.cli_upscale` (``npespcn.upscale`` is the function)."""
import sys

from npespcn.cli_upscale import main

if __name__ == "__main__":
    sys.exit(main())
