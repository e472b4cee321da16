"""Atomic file writes: write to a temporary file in the destination folder, fsync, then publish it.

A reader (or a crash, or SIGKILL) sees either the old file or the complete new one, never half of one.

Publishing is a rename over the destination (``overwrite=True``, the default), or, with
``overwrite=False``, *exclusive*: a hard link of the finished temporary file to the destination, which the
kernel refuses when the destination exists in any form (a file, a folder, a dangling symlink, or a file
another process published a moment earlier), so nothing is ever replaced. Where hard links are not
supported (some network and FAT file systems) the destination is created with ``O_CREAT | O_EXCL`` first
and the temporary file renamed over that placeholder.

Temporary files are named ``.npespcn-tmp-<pid>-<host>-<random>.<name>`` (``<host>`` 8 hex digits of the
host name). A process killed before it could remove its own leaves one behind; the first write of a
process into a folder removes those of this host whose process no longer exists (:func:`clean_stale_temp`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import threading
import zlib
from pathlib import Path

# Read once at import: os.umask can only be read by setting it, which would race with other threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

TMP_PREFIX = ".npespcn-tmp-"
HOST_TAG = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF:08x}"
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-([0-9a-f]{8})-")
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
                  errno.EACCES}
_cleaned: set = set()
_cleaned_lock = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                          # EPERM: it exists, owned by someone else
        return True
    return True


def clean_stale_temp(folder) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` in ``folder`` left by processes of this host that
    no longer exist, and the temporary folders named like them (the segments of a video split across a
    cluster, :mod:`npespcn.inference.batch`); returns what was removed. Files of other hosts (a shared
    folder), of live processes and anything not named like them are left alone; symlinks are removed,
    never followed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if not m or m.group(2) != HOST_TAG:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _clean_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    clean_stale_temp(folder)


def publish_exclusive(tmp, path) -> None:
    """Give the finished file ``tmp`` the name ``path`` unless ``path`` exists in any form
    (``FileExistsError``, ``tmp`` left for the caller to remove); ``tmp`` is gone on success."""
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; not replaced") from None
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        try:                                      # no hard links here: reserve the name, then rename onto it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
        except FileExistsError:
            raise FileExistsError(f"{path} already exists; not replaced") from None
        os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", overwrite: bool = True):
    """Context manager yielding a file object; on success it publishes ``path`` atomically.

    With ``overwrite=True`` an existing ``path`` is replaced; with ``overwrite=False`` it never is:
    ``FileExistsError`` when ``path`` exists (a dangling symlink included) before the block runs or when
    it appeared while the block ran. Raises ``FileNotFoundError`` naming the folder when the destination
    folder does not exist. On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path} already exists; not replaced")
    _clean_once(folder)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{HOST_TAG}-", suffix=f".{path.name[-100:]}",
                               dir=folder)
    try:
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            publish_exclusive(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
