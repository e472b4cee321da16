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

import os
from importlib import resources
from pathlib import Path

from .model import ESPCN, check_scale, load_model

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
        return Path(__file__).resolve().parents[2] / "weights"


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


_CACHE: dict = {}
"""The last model file loaded by :func:`resolve_model`, keyed by its real path, mtime and size."""


def _load_cached(path):
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_model(path)
    return _CACHE[key]


def resolve_model(model, scale: int | None) -> ESPCN:
    """Turn ``model`` (None, a shipped name, a path or an ESPCN) into an ESPCN of scale ``scale``.

    ``scale=None`` accepts a file's or object's own scale (and means 3 for the shipped models). Raises
    ``ValueError`` naming what was expected (a missing shipped file:
    :class:`~npespcn.nn.MissingWeightsError`, also a ``FileNotFoundError``), ``TypeError`` for
    other objects.
    """
    scale = None if scale is None else check_scale(scale)
    if model is None:
        model = DEFAULT
    if isinstance(model, ESPCN):
        net = model
    elif isinstance(model, (str, os.PathLike)):
        if isinstance(model, str) and model.lower() in NAMES:
            scale = 3 if scale is None else scale
            if scale not in SCALES:
                raise ValueError(f"there is no shipped {model} model at scale {scale}; shipped scales are "
                                 f"{', '.join(map(str, SCALES))} (pass your own model for others)")
            path = shipped_path(model, scale)
        else:
            path = os.fspath(model)
            if not os.path.isfile(path):
                raise ValueError(f"model {str(model)!r} is neither a shipped model name "
                                 f"({', '.join(NAMES)}) nor an existing model file")
        try:
            net = _load_cached(path)
        except ValueError:
            raise
        except Exception as e:                       # a corrupt archive can raise nearly anything
            raise ValueError(f"{path}: not a readable model file ({type(e).__name__}: {e})") from None
    else:
        raise TypeError(f"model must be None, a shipped name ({', '.join(NAMES)}), a path or "
                        f"an ESPCN, got {type(model).__name__}")
    if scale is not None and net.scale != scale:
        raise ValueError(f"the model upscales x{net.scale} but scale={scale} was requested")
    return net
