"""Datasets: the built-in sets, the user cache folder, finding a set, and downloading T91, Set5 and Set14.

Built-in: T91, Set5 and Set14 ship with npespcn (the package ``npespcn.data``, ``data/`` in the
repository; provenance and licensing in its README). A set named ``T91`` is looked for in
``$NPESPCN_DATASETS/T91``, then in the cache, then among the built-in sets (:func:`find_dataset`).

Cache folder: ``$NPESPCN_CACHE``, else ``$XDG_CACHE_HOME/npespcn``, else ``~/.cache/npespcn``; a
downloaded dataset lands in ``<cache>/<name>/`` (``T91``, ``Set5``, ``Set14``).

Download format: one HTTP(S) GET per image from a mirror laid out as ``<url>/<dataset>/<file>``
(``<url>/T91/t1.png``, ``<url>/Set5/baby.png``, ...). Every file is streamed into a temporary file in
the cache, checked against the size and SHA-256 in :data:`npespcn.training.manifest.MANIFEST`, and
only then renamed into place, so a cache folder never holds a partial or wrong file. A short read
(the server closed early) is reported as *truncated*, a full-length file with the wrong hash as
*corrupted*; both raise :class:`DownloadError` and leave nothing behind. Files already present with the
right hash are not fetched again.

Sources. The images are the standard SR benchmarks as released with SRCNN (Dong et al., ECCV 2014):
T91 (Yang et al. 2010), Set5 (Bevilacqua et al. 2012) and Set14 (Zeyde et al. 2010), from the SRCNN
project page http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html (``SRCNN_train.zip``: T91 as BMP;
``Test/Set5``, ``Test/Set14``); Set5 and Set14 as PNG are also on Hugging Face
(https://huggingface.co/datasets/eugenesiow/Set5, .../Set14). The SHA-256 sums in the manifest are
those of the PNG copies this project was developed with; they have not been checked against any
public mirror. Point ``$NPESPCN_DATASETS_URL`` (or ``url=``) at a mirror with the layout above (e.g. a folder
served by ``python -m http.server`` over a copy of the three datasets).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from ..atomic import atomic_write
from ..image.io import list_images
from .manifest import MANIFEST

DATASETS = tuple(MANIFEST)
DEFAULT_URL = None
"""No built-in mirror: no public mirror is known to hold exactly the manifest's files, and a guessed
URL would only fail later. Set ``$NPESPCN_DATASETS_URL``."""


class DownloadError(RuntimeError):
    """A file could not be fetched, or arrived truncated or corrupted."""


def cache_dir() -> Path:
    """``$NPESPCN_CACHE``, else ``$XDG_CACHE_HOME/npespcn``, else ``~/.cache/npespcn``."""
    if os.environ.get("NPESPCN_CACHE"):
        return Path(os.environ["NPESPCN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "npespcn"


def builtin_dir() -> Path:
    """The folder of the built-in sets (``site-packages/npespcn/data`` or ``<repo>/data``).

    Installed (wheel or editable), ``data/`` is the package ``npespcn.data``; in a bare source checkout
    (the repository root on ``sys.path``) the folder next to ``npespcn/`` is used."""
    try:
        return Path(str(resources.files("npespcn.data")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "data"


def candidates(name: str) -> list[Path]:
    """Where a set called ``name`` is looked for, in order: ``$NPESPCN_DATASETS/<name>`` (when set),
    ``<cache>/<name>``, the built-in ``<builtin_dir()>/<name>``."""
    env = [Path(os.environ["NPESPCN_DATASETS"]) / name] if os.environ.get("NPESPCN_DATASETS") else []
    return env + [cache_dir() / name, builtin_dir() / name]


def find_dataset(name: str = "T91", folder=None, with_images: bool = False):
    """Where the images of a set are: ``(folder or None, [places looked])``.

    ``folder`` if given, else the first of :func:`candidates` holding at least one image (PNG, JPEG,
    BMP, TIFF, searched recursively). With ``with_images``, returns ``(folder or None, [its images] or
    None, [places looked])``, so the caller need not walk it again.
    """
    cands = [Path(folder)] if folder is not None else candidates(name)
    looked = []
    for c in cands:
        looked.append(str(c))
        images = list_images(c, recursive=True) if c.is_dir() else []
        if images:
            return (c, images, looked) if with_images else (c, looked)
    return (None, None, looked) if with_images else (None, looked)


def find_training_data(data=None, with_images: bool = False):
    """:func:`find_dataset` of T91: ``data`` if given, else ``$NPESPCN_DATASETS/T91``, the cache's,
    the built-in T91."""
    return find_dataset("T91", data, with_images)


def digest(paths, root) -> str:
    """One SHA-256 over the files ``paths`` (their paths relative to ``root`` and their contents' SHA-256,
    sorted by path): it names a training set exactly."""
    h = hashlib.sha256()
    for rel, path in sorted((Path(p).relative_to(root).as_posix(), Path(p)) for p in paths):
        h.update(f"{rel}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, sha256: str, size: int, timeout: float) -> None:
    """GET ``url`` into ``dest`` (atomically), verifying ``size`` and ``sha256``.

    Every check raises inside :func:`~npespcn.atomic.atomic_write`, so a failed download keeps nothing."""
    h, got = hashlib.sha256(), 0
    with atomic_write(dest) as f:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    f.write(block)
                    h.update(block)
                    got += len(block)
        except http.client.IncompleteRead as e:
            got += len(e.partial)
            raise DownloadError(f"{url}: truncated download ({got} of {size} bytes)") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise DownloadError(f"{url}: download failed ({e})") from None
        if got != size:
            kind = "truncated" if got < size else "corrupted (too long)"
            raise DownloadError(f"{url}: {kind} download: {got} bytes, expected {size}")
        digest = h.hexdigest()
        if digest != sha256:
            raise DownloadError(f"{url}: corrupted download: SHA-256 {digest}, expected {sha256}")


def _is_good(path: Path, sha256: str, size: int) -> bool:
    """``path`` is a file of the manifest's size and SHA-256."""
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


def download(name: str, url: str | None = None, root=None, timeout: float = 60.0, log=None) -> Path:
    """Download dataset ``name`` (``"T91"``, ``"Set5"`` or ``"Set14"``) into ``<root>/<name>``, verified.

    Parameters
    ----------
    name : dataset name (a key of the manifest)
    url : mirror base URL (default ``$NPESPCN_DATASETS_URL``, else :data:`DEFAULT_URL`)
    root : destination root (default :func:`cache_dir`)
    log : callable taking a line of text (progress), or None

    Returns the dataset folder. Raises ``ValueError`` for an unknown name and :class:`DownloadError`
    when a file cannot be fetched or fails verification (nothing wrong is left in the folder).
    """
    if name not in MANIFEST:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    url = url or os.environ.get("NPESPCN_DATASETS_URL") or DEFAULT_URL
    if not url:
        raise DownloadError(
            "no download mirror configured: set NPESPCN_DATASETS_URL to a URL laid out as <url>/T91/t1.png, "
            "<url>/Set5/baby.png, ... The original sources are the SRCNN release "
            "(http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html: T91, Set5, Set14) and "
            "https://huggingface.co/datasets/eugenesiow/Set5 (and /Set14); or pass --data DIR")
    url = url.rstrip("/")
    folder = Path(root if root is not None else cache_dir()) / name
    folder.mkdir(parents=True, exist_ok=True)
    files = MANIFEST[name]
    for i, (fname, (sha, size)) in enumerate(sorted(files.items()), start=1):
        dest = folder / fname
        if _is_good(dest, sha, size):
            continue
        _fetch(f"{url}/{name}/{fname}", dest, sha, size, timeout)
        if log:
            log(f"{name}: {i}/{len(files)} {fname}")
    return folder


def verify(name: str, root=None) -> list[str]:
    """Names of the files of dataset ``name`` missing from or differing in ``<root>/<name>`` ([] = all good)."""
    folder = Path(root if root is not None else cache_dir()) / name
    bad = []
    for fname, (sha, size) in sorted(MANIFEST[name].items()):
        if not _is_good(folder / fname, sha, size):
            bad.append(fname)
    return bad


def download_all(url: str | None = None, root=None, log=None) -> dict:
    """:func:`download` T91, Set5 and Set14; returns ``{name: folder}``."""
    return {name: download(name, url, root, log=log) for name in DATASETS}
