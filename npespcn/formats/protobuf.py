"""A minimal reader and writer of the Protocol Buffers wire format (enough for TensorFlow's ``GraphDef`` and ONNX).

A serialised message is a flat sequence of *fields*; each starts with a varint *key*::

    key = (field_number << 3) | wire_type

    wire type  meaning              payload
    ---------  -------------------  ------------------------------------------------------------
    0          VARINT               base-128 integer, little-endian groups of 7 bits; the high bit of
                                    each byte says "more bytes follow" (at most 10 bytes)
    1          I64                  8 bytes (fixed64, sfixed64, double)
    2          LEN                  a varint length n, then n bytes: a string, bytes, a nested message
                                    or a packed repeated scalar field
    5          I32                  4 bytes (fixed32, sfixed32, float)
    3, 4       SGROUP / EGROUP      deprecated groups: not used by TensorFlow, rejected here

The reader knows nothing about any schema: :func:`iter_fields` yields ``(field_number, wire_type, value)``
and the caller decides what a field means (see :mod:`npespcn.formats.tf_graphdef`). Every length is checked
against the bytes actually present, so a truncated or corrupted buffer raises :class:`ProtobufError`
(a ``ValueError``) instead of reading past the end; every step consumes at least one byte, so the loop
always terminates.

Reference: https://protobuf.dev/programming-guides/encoding/
"""
from __future__ import annotations

import struct

import numpy as np

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


SNIFF_BYTES = 1 << 16
"""How much of a file the format sniffers (``looks_like_onnx``, ``looks_like_graphdef``) read."""


def file_head(path, n: int = SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of ``path``, or ``b""`` when it cannot be read (for content sniffing)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode the varint starting at ``buf[pos]``; return ``(value, next_pos)``.

    ``value = sum(b_k & 0x7f) << 7k`` over the bytes ``b_0, b_1, ...`` up to the first one below 0x80.
    """
    value, shift, n = 0, 0, len(buf)
    while True:
        if pos >= n:
            raise ProtobufError("truncated varint")
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def iter_fields(buf):
    """Yield ``(field_number, wire_type, value)`` for every field of the message in ``buf``.

    ``value`` is an ``int`` for VARINT, ``bytes`` (8 or 4 raw little-endian bytes) for I64/I32 and a
    ``memoryview`` slice (no copy) for LEN fields.
    """
    buf = memoryview(buf)
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ProtobufError("field number 0 is invalid")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == I64:
            if pos + 8 > n:
                raise ProtobufError(f"truncated 64-bit field {field}")
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == I32:
            if pos + 4 > n:
                raise ProtobufError(f"truncated 32-bit field {field}")
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wire == LEN:
            length, pos = read_varint(buf, pos)
            if length > n - pos:
                raise ProtobufError(f"field {field} claims {length} bytes but only {n - pos} remain")
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {field})")
        yield field, wire, value


def as_str(value, what: str = "string") -> str:
    """A LEN field as UTF-8 text."""
    if not isinstance(value, memoryview):
        raise ProtobufError(f"{what}: expected a length-delimited field")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError(f"{what}: not valid UTF-8") from None


def as_int64(value) -> int:
    """A VARINT as a signed 64-bit integer (two's complement, as ``int64`` fields are encoded)."""
    if not isinstance(value, int):
        raise ProtobufError("expected a varint")
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def as_float(value) -> float:
    """An I32 field as an IEEE-754 single."""
    if not isinstance(value, bytes) or len(value) != 4:
        raise ProtobufError("expected a 32-bit float")
    return struct.unpack("<f", value)[0]


def packed_floats(value) -> np.ndarray:
    """A packed ``repeated float`` (LEN field of 4-byte little-endian floats) as float32 array."""
    if not isinstance(value, memoryview) or len(value) % 4:
        raise ProtobufError("packed floats: length is not a multiple of 4")
    return np.frombuffer(bytes(value), dtype="<f4").astype(np.float32)


def packed_varints(value) -> list[int]:
    """A packed ``repeated int32/int64`` (LEN field of varints) as a list of signed ints."""
    out, pos = [], 0
    while pos < len(value):
        v, pos = read_varint(value, pos)
        out.append(as_int64(v))
    return out


# ------------------------------------------------------------------------------------------ writing
# The writer mirrors the reader: a message is the concatenation of its encoded fields, each a key
# ``(field_number << 3) | wire_type`` followed by its payload. Callers build nested messages inside out
# (encode the inner message, then wrap its bytes with :func:`len_field`). Fields are written in the order
# given, so the same call always gives the same bytes.
def encode_varint(value: int) -> bytes:
    """The varint of ``value``; a negative ``int64`` is written as its 64-bit two's complement (10 bytes)."""
    value = int(value)
    if value < 0:
        value += 1 << 64
    if not 0 <= value < 1 << 64:
        raise ProtobufError(f"varint out of the 64-bit range: {value}")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    """The encoded key of field ``field`` with wire type ``wire``."""
    if field < 1:
        raise ProtobufError(f"field numbers start at 1, got {field}")
    return encode_varint(field << 3 | wire)


def varint_field(field: int, value: int) -> bytes:
    """A VARINT field (int32, int64, enum, bool)."""
    return key(field, VARINT) + encode_varint(value)


def len_field(field: int, payload) -> bytes:
    """A LEN field: bytes, a UTF-8 string (``str`` is encoded), a nested message or a packed array."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    payload = bytes(payload)
    return key(field, LEN) + encode_varint(len(payload)) + payload


def float_field(field: int, value: float) -> bytes:
    """An I32 field holding an IEEE-754 single."""
    return key(field, I32) + struct.pack("<f", value)


def packed_varints_field(field: int, values) -> bytes:
    """A packed ``repeated int32/int64``: one LEN field of the values' varints."""
    return len_field(field, b"".join(encode_varint(v) for v in values))


def packed_floats_field(field: int, values) -> bytes:
    """A packed ``repeated float``: one LEN field of 4-byte little-endian floats."""
    return len_field(field, np.asarray(values, dtype="<f4").tobytes())
