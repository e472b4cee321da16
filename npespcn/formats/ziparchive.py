"""Reading members of a zip archive (``.npz``, ``.pth``) within a budget, never more than they declare.

``zipfile`` trusts an archive more than an untrusted file deserves: ``ZipFile.read`` of a deflated member
decompresses up to 2 GiB in one call before it cuts the result to the declared size, and bzip2 / LZMA
members are decompressed without any bound. Here a member is only read

* when its compression is stored or deflate (what ``np.savez``, ``np.savez_compressed`` and ``torch.save``
  write); anything else is refused;
* after its *declared* size was checked against what the caller expects (the shape in a ``.npy`` header,
  a storage's element count) and against the caller's budget;
* in chunks of at most 1 MiB, so a member that decompresses to more than it declares costs one chunk.

Every error a damaged archive can make ``zipfile`` or ``zlib`` raise is in :data:`ZIP_ERRORS`; the
readers turn them into ``ValueError`` naming the file.
"""
from __future__ import annotations

import struct
import zipfile
import zlib

ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, struct.error, KeyError,
              IndexError, NotImplementedError, RuntimeError, OverflowError, ValueError, UnicodeDecodeError)
"""What ``zipfile`` raises on a truncated or corrupted archive (bad headers, CRC, encryption flag, ...)."""

ACCEPTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
CHUNK = 1 << 20


def members(z: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """``{name: ZipInfo}`` of the archive; ``ValueError`` when a name occurs twice (which one is read
    would depend on the reader)."""
    out = {}
    for info in z.infolist():
        if info.filename in out:
            raise ValueError(f"the archive holds {info.filename!r} twice")
        out[info.filename] = info
    return out


def open_member(z: zipfile.ZipFile, info: zipfile.ZipInfo):
    """``z.open(info)`` once its compression is one of :data:`ACCEPTED_COMPRESSION`."""
    if info.compress_type not in ACCEPTED_COMPRESSION:
        raise ValueError(f"{info.filename!r} uses zip compression method {info.compress_type}; only stored and "
                         f"deflate are accepted")
    return z.open(info)


def read_exactly(fh, n: int, what: str) -> bytearray:
    """The next ``n`` bytes of the member ``fh``, read in chunks; ``ValueError`` if it ends sooner."""
    buf = bytearray(n)
    view, pos = memoryview(buf), 0
    while pos < n:
        chunk = fh.read(min(n - pos, CHUNK))
        if not chunk:
            raise ValueError(f"{what} is truncated: {pos} of {n} bytes present")
        view[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
    return buf


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, n: int | None = None) -> bytearray:
    """The first ``n`` bytes (default: all it declares) of the member ``info``, refused before anything is
    decompressed when they are more than ``limit`` or than the member declares."""
    n = info.file_size if n is None else n
    if n > limit:
        raise ValueError(f"{info.filename!r} declares {info.file_size} bytes, more than the {limit} accepted here")
    if n > info.file_size:
        raise ValueError(f"{info.filename!r} holds {info.file_size} bytes, {n} are needed")
    with open_member(z, info) as fh:
        return read_exactly(fh, n, repr(info.filename))      # reading to the end also checks the CRC-32
