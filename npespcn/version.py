"""npespcn's version (one home: the package, ``setup.cfg`` and ``npespcn --version`` read it here), and the
source commit training records name."""
from __future__ import annotations

import subprocess
from pathlib import Path

__version__ = "0.2.0"


def source_commit() -> str | None:
    """The git commit of the source npespcn runs from (``"<sha>"``, ``"<sha>+dirty"`` with uncommitted
    changes to tracked files), or None when it is not a git checkout (an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
