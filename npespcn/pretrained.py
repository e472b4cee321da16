"""The shipped weights: ``weights/<name>_x<scale>.npz`` in the repository, installed as ``npespcn.weights``.

=========  ============================================  ==========================
name       model                                         files
=========  ============================================  ==========================
espcn      the paper's model (5x5x64, 3x3x32, tanh)      ``espcn_x2/3/4.npz``
espcn7     the seven-layer variant (relu)                ``espcn7_x2/3/4.npz``
=========  ============================================  ==========================

Files are found with :func:`importlib.resources.files`, so this works from a source checkout, an
editable install and an installed wheel alike.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

NAMES = ("espcn", "espcn7")
DEFAULT = "espcn"
SCALES = (2, 3, 4)


class MissingWeightsError(FileNotFoundError, ValueError):
    """A shipped model file is not installed. Both a ``FileNotFoundError`` and a ``ValueError``."""


def weights_dir() -> Path:
    """The folder of the shipped weights (``site-packages/npespcn/weights`` or ``<repo>/weights``).

    Installed (wheel or editable), ``weights/`` is the package ``npespcn.weights``; in a bare source
    checkout (the repository root on ``sys.path``) that package does not exist and the folder next to
    ``npespcn/`` is used.
    """
    try:
        return Path(str(resources.files("npespcn.weights")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "weights"


def filename(name: str = DEFAULT, scale: int = 3) -> str:
    """``"espcn_x3.npz"`` for ``("espcn", 3)``."""
    return f"{name}_x{int(scale)}.npz"


def check_name(name) -> str:
    if not isinstance(name, str) or name.lower() not in NAMES:
        raise ValueError(f"unknown shipped model {name!r}; expected one of {', '.join(NAMES)}")
    return name.lower()


def shipped_path(name: str = DEFAULT, scale: int = 3) -> Path:
    """Path of a shipped model file; raises :class:`MissingWeightsError` naming it when it is absent."""
    name = check_name(name)
    path = weights_dir() / filename(name, scale)
    if not path.is_file():
        have = ", ".join(available()) or "none"
        raise MissingWeightsError(f"shipped model {name!r} at x{scale} is not installed: expected the file "
                                  f"{path} (installed models: {have})")
    return path


def available() -> list[str]:
    """Names of the installed shipped files, e.g. ``["espcn_x2.npz", "espcn_x3.npz"]``."""
    try:
        return sorted(p.name for p in weights_dir().glob("*.npz")
                      if any(p.name == filename(n, s) for n in NAMES for s in SCALES))
    except OSError:                                            # pragma: no cover - unreadable folder
        return []
