"""What the command-line tools share: an argparse parser whose errors are one line."""
from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """``ArgumentParser`` that reports a bad command line in one line (``prog: error: ...``), exit status 2,
    without the usage block (``--help`` still shows it)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)
