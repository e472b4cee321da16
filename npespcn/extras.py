"""Optional extras: the one door through which npespcn imports a package its core does not depend on.

The core needs numpy, scipy, numba and pillow only. A capability that needs a well-kept library of the
field (PyAV for video codecs, ``dask.distributed`` for clusters) asks for it here when it runs, so that
``import npespcn`` never imports it, and a missing extra is one line saying what to install::

    av = require("av", "video files")
    # without it: MissingExtra: PyAV is not installed (needed for video files); install it with:
    #             pip install "npespcn[video]"

Examples
--------
>>> require("json").__name__
'json'
"""
from __future__ import annotations

import importlib

EXTRAS = {
    # module: (what it is, the extra that installs it)
    "av": ("PyAV", "video"),
    "dask": ("Dask", "dask"),
    "distributed": ("dask.distributed", "dask"),
    "dask.distributed": ("dask.distributed", "dask"),
}
"""The optional modules npespcn may use, with the ``pip install "npespcn[extra]"`` that brings each."""


class MissingExtra(ImportError):
    """An optional extra a capability needs is not installed; the message says what to install."""


def require(module: str, purpose: str = ""):
    """The module ``module``, imported now; :class:`MissingExtra` (one line: what to install) if absent.

    Args:
        module: a module name, e.g. ``"av"``; the known extras are :data:`EXTRAS`.
        purpose: what needs it, for the message (e.g. ``"video files"``).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise                   # the extra is there but something it imports is not: its own error
        what, extra = EXTRAS.get(module, (module, None))
        how = f'pip install "npespcn[{extra}]"' if extra else f"pip install {module}"
        why = f" (needed for {purpose})" if purpose else ""
        raise MissingExtra(f"{what} is not installed{why}; install it with: {how}") from None
