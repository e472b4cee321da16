"""What the command lines share: an argparse parser whose errors are one line, and a help formatter
that states every option's default once."""
from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """``ArgumentParser`` that reports a bad command line in one line (``prog: error: ...``), exit status 2,
    without the usage block (``--help`` still shows it)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already speaks of its default, or the
    default is None or False (nothing to say)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"
