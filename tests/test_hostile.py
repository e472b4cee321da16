"""Hostile and damaged files: every attack of the "hostile files" issue, each able to fail.

* Model files (.npz, .pb, .onnx, .pth): each attack is built here, byte by byte, and loaded by ``load_model`` in a
  subprocess under an address-space limit (``RLIMIT_AS``); the child reports its peak RSS, which must stay
  below ``baseline after imports + max(64 MiB, 8 x file size)``, and the load must end in a model or a
  ``ValueError`` with a message, never another exception or the kernel's OOM killer. The decompression bombs
  (GBs of zeros in a few MB) are made from one deflated block repeated (``Z_FULL_FLUSH`` makes each copy
  independent), so building them costs milliseconds.
* Images: a decompression-bomb PNG in a batch is one reported, skipped file (also when the limit is raised
  and the allocation fails); Pillow's limit is never changed; 16-bit, LA, P, PA and CMYK images are read
  correctly by the evaluation and training reader.
* Checkpoints: damaged ones are a one-line error naming the file and what to do.
* Outputs: nothing is replaced without ``--overwrite`` (concurrent runs, dangling symlinks, two inputs of the
  same name, convert onto its source); the batch skips its own earlier outputs; stale temporary files of
  killed runs are removed.
* The smaller points: the NaN-loss message, ``--resume`` with options it cannot change, out-of-range
  training settings, non-float weights, fractional layer sizes.
"""
from __future__ import annotations

import functools
import io
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import _formats_writers as W
import numpy as np
import pytest
from PIL import Image

from npespcn import ESPCN, load_model

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
AS_LIMIT = 2 << 30
"""Address space of the children: numba and OpenBLAS reserve a few hundred MB of it; a plain
``load_model`` of a shipped file needs about 0.4 GB (measured), so 2 GiB leaves room but not for any bomb."""


# ------------------------------------------------------------------------------------------ zip by hand
@functools.cache
def _crc_of(prefix: bytes, zeros: int) -> int:
    crc, chunk = zlib.crc32(prefix), bytes(16 * MiB)
    for _ in range(zeros // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return zlib.crc32(bytes(zeros % len(chunk)), crc)


@functools.cache
def _zero_block() -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(bytes(16 * MiB)) + c.flush(zlib.Z_FULL_FLUSH)


def deflated(prefix: bytes, zeros: int) -> bytes:
    """Raw deflate of ``prefix`` followed by ``zeros`` zero bytes, in about zeros / 1000 bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    k, rest = divmod(zeros, 16 * MiB)
    return head + _zero_block() * k + c.compress(bytes(rest)) + c.flush(zlib.Z_FINISH)


def stored(name: str, raw: bytes):
    return name, raw, 0, zlib.crc32(raw), len(raw)


def bomb(name: str, prefix: bytes, zeros: int, declared: int | None = None):
    """A deflated member of ``prefix`` + ``zeros`` zero bytes; ``declared`` lies about its size."""
    size = len(prefix) + zeros
    return name, deflated(prefix, zeros), 8, _crc_of(prefix, zeros), size if declared is None else declared


def raw_zip(path, entries) -> Path:
    """A zip archive of ``(name, bytes as stored, method, crc, uncompressed size)`` (sizes < 4 GiB)."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size in entries:
        n, offset = name.encode(), len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0)
        out += n + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(n), 0, 0, 0, 0, 0, offset) + n
    start = len(out)
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
                                 start, 0)
    Path(path).write_bytes(bytes(out))
    return Path(path)


def npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_header(dtype: str, shape) -> bytes:
    """The .npy header (magic, version 1.0, dict) of an array of ``shape`` and ``dtype``, without its data."""
    d = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    d += b" " * (63 - (10 + len(d)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d


def record(**changes) -> bytes:
    rec = {"format": "npespcn", "version": 1, "scale": 3, "channels": 1, "layers": [[5, 64], [3, 32]],
           "activation": "tanh", "output_activation": None, **changes}
    return npy(np.array(json.dumps(rec)))


# ------------------------------------------------------------------------------------------ the attacks
def npz_record_only(path, **changes):
    """An .npz of a few hundred bytes holding only an architecture record (the issue's 828-byte file)."""
    return raw_zip(path, [stored("__npespcn__.npy", record(**changes))])


def npz_member_bomb(path):
    """1.9 GB of zeros behind a .npy header of that size, deflated into ~2 MB, next to a valid record."""
    n = 475_000_000
    return raw_zip(path, [stored("__npespcn__.npy", record()),
                          bomb("conv1.weight.npy", npy_header("<f4", (n,)), 4 * n)])


def npz_trailing_bomb(path):
    """A member whose .npy header is the right shape, followed by 1 GB more zeros than it needs."""
    m = ESPCN.paper(3)
    entries = [stored("__npespcn__.npy", record())]
    for k, v in m.params.items():
        raw = npy(v)
        entries.append(bomb(f"{k}.npy", raw, 1 << 30) if k == "conv1.weight" else stored(f"{k}.npy", raw))
    return raw_zip(path, entries)


def _const(name: str, tensor: bytes) -> bytes:
    return W.f_len(1, W.f_str(1, name) + W.f_str(2, "Const") + W.attr("value", W.f_len(8, tensor)))


def _splat(dtype_enum: int, shape, value: bytes) -> bytes:
    """TensorProto of ``shape`` holding one value (TensorFlow fills the shape with it)."""
    dims = b"".join(W.f_len(2, W.f_varint(1, d)) for d in shape)
    field = {1: W.varint(5 << 3 | 5), 2: W.varint(6 << 3 | 1)}[dtype_enum]
    return W.f_varint(1, dtype_enum) + W.f_len(2, dims) + field + value


def _paper_graph(rng, scale=3) -> bytes:
    ws, bs, c = [], [], 1
    for k, f in ((5, 64), (3, 32), (3, scale * scale)):
        ws.append(rng.normal(0, 0.1, (k, k, c, f)).astype(np.float32))
        bs.append(np.zeros(f, np.float32))
        c = f
    return W.espcn_graphdef(ws, bs, scale)


def pb_unused_consts(path):
    """The paper's graph (~90 KB) plus eight unused float64 constants of shape [2**26], each one splatted
    double_val: 4 GB if decoded."""
    extra = b"".join(_const(f"junk{i}", _splat(2, [1 << 26], struct.pack("<d", 0.5))) for i in range(8))
    Path(path).write_bytes(_paper_graph(np.random.default_rng(0)) + extra)
    return Path(path)


def pb_splatted_weights(path):
    """An ESPCN graph whose kernels are splatted constants: five 3x3x1024x1024 layers (47 M parameters, under
    the architecture's limit) in a file of a few hundred bytes."""
    def conv(i, src, cin, cout, k=3):
        return (_const(f"f{i}", _splat(1, [k, k, cin, cout], struct.pack("<f", 0.01)))
                + _const(f"b{i}", _splat(1, [cout], struct.pack("<f", 0.0)))
                + W.node(f"conv{i}", "Conv2D", [src, f"f{i}"], padding="SAME", strides=[1, 1, 1, 1])
                + W.node(f"add{i}", "Add", [f"conv{i}", f"b{i}"]))
    parts, prev, cin = [W.node("input", "Placeholder", dtype=("type", 1))], "input", 1
    for i, cout in enumerate([1024, 1024, 1024, 1024, 1024], start=1):
        parts.append(conv(i, prev, cin, cout) + W.node(f"act{i}", "Relu", [f"add{i}"]))
        prev, cin = f"act{i}", cout
    parts.append(conv(6, prev, cin, 9))
    parts.append(W.node("d2s", "DepthToSpace", ["add6"], block_size=3, data_format="NHWC"))
    Path(path).write_bytes(b"".join(parts))
    return Path(path)


def _paper_onnx_parts(rng, scale=3):
    """Nodes and initializers of the paper's ESPCN as an ONNX graph (ONNX's (out, in, k, k) kernels)."""
    nodes, inits, prev, c = [], [], "input", 1
    for i, (k, f) in enumerate(((5, 64), (3, 32), (3, scale * scale)), start=1):
        inits += [W.onnx_array(f"w{i}", rng.normal(0, 0.1, (f, c, k, k)).astype(np.float32)),
                  W.onnx_array(f"b{i}", np.zeros(f, np.float32))]
        p = (k - 1) // 2
        nodes.append(W.onnx_node("Conv", [prev, f"w{i}", f"b{i}"], f"c{i}", kernel_shape=[k, k], pads=[p] * 4))
        prev, c = f"c{i}", f
        if i < 3:
            nodes.append(W.onnx_node("Tanh", [prev], f"t{i}"))
            prev = f"t{i}"
    nodes.append(W.onnx_node("DepthToSpace", [prev], "output", blocksize=scale, mode="CRD"))
    return nodes, inits


def onnx_unused_initializers(path):
    """The paper's graph (~90 KB) plus eight unused initializers declaring 2**28 floats each, with one value
    (1 GB each if decoded)."""
    nodes, inits = _paper_onnx_parts(np.random.default_rng(0))
    inits += [W.onnx_tensor(f"junk{i}", [1 << 28], float_data=[0.5]) for i in range(8)]
    Path(path).write_bytes(W.onnx_model(nodes, inits))
    return Path(path)


def onnx_unpacked_floats(path):
    """The paper's graph plus an unused initializer of 4 M float_data values written unpacked (one 5-byte
    field each, 20 MB): a reader that kept one Python object per value would need ~10x the file."""
    nodes, inits = _paper_onnx_parts(np.random.default_rng(0))
    junk = W.onnx_tensor("junk", [4_000_000]) + b"\x25\x00\x00\x00\x3f" * 4_000_000    # field 4, wire type 5
    Path(path).write_bytes(W.onnx_model(nodes, inits + [junk]))
    return Path(path)


def onnx_declared_kernels(path):
    """An ESPCN graph whose 3x3x1024x1024 kernels (47 M parameters, under the architecture's limit) declare
    their shapes but hold no data: a few hundred bytes."""
    nodes, inits, prev, c = [], [], "input", 1
    for i, f in enumerate([1024] * 5 + [9], start=1):
        inits += [W.onnx_tensor(f"w{i}", [f, c, 3, 3], raw=b""), W.onnx_tensor(f"b{i}", [f], raw=b"")]
        nodes.append(W.onnx_node("Conv", [prev, f"w{i}", f"b{i}"], f"c{i}", kernel_shape=[3, 3], pads=[1] * 4))
        prev, c = f"c{i}", f
        if i < 6:
            nodes.append(W.onnx_node("Relu", [prev], f"r{i}"))
            prev = f"r{i}"
    nodes.append(W.onnx_node("DepthToSpace", [prev], "output", blocksize=3))
    Path(path).write_bytes(W.onnx_model(nodes, inits))
    return Path(path)


def onnx_many_nodes(path):
    """200 000 Identity nodes (a few MB): more than any ESPCN graph has."""
    nodes = [W.onnx_node("Identity", [f"n{i}"], f"n{i + 1}") for i in range(200_000)]
    Path(path).write_bytes(W.onnx_model(nodes, [], input_name="n0"))
    return Path(path)


def _pth_entries(sd, numel_of=None):
    """Pickle entries of ``sd`` for ``W.state_dict_pickle``; ``numel_of(key, arr)`` may claim other storage sizes."""
    entries = []
    for n, (name, arr) in enumerate(sd.items()):
        numel = arr.size if numel_of is None else numel_of(n, arr)
        stride = tuple(int(s) // 4 for s in arr.strides)
        entries.append((name, str(n), numel, 0, arr.shape, stride))
    return entries


def pth_storage_bombs(path):
    """ESPCN-pytorch's paper model whose six storages are 700 MiB of deflated zeros each (4.4 MB file)."""
    sd = W.espcn_pytorch_state(np.random.default_rng(0), 1, 3)
    numel = 700 * MiB // 4
    entries = [stored("archive/data.pkl", W.state_dict_pickle(_pth_entries(sd, lambda n, a: numel))),
               stored("archive/byteorder", b"little")]
    entries += [bomb(f"archive/data/{n}", b"", 4 * numel) for n in range(len(sd))]
    return raw_zip(path, entries)


def pth_pickle_bomb(path, lie: bool = False):
    """A 2.1 GiB data.pkl deflated into ~2 MB; with ``lie`` its header declares 4 KB."""
    return raw_zip(path, [bomb("archive/data.pkl", b"\x80\x02", int(2.1 * (1 << 30)), 4096 if lie else None),
                          stored("archive/byteorder", b"little")])


ATTACKS = {
    "npz: record only, layers [[5, 30000000]]": lambda p: npz_record_only(p / "a.npz", layers=[[5, 30_000_000]]),
    "npz: record only, scale 3000": lambda p: npz_record_only(p / "a.npz", scale=3000),
    "npz: 1.9 GB member in 2 MB": lambda p: npz_member_bomb(p / "a.npz"),
    "npz: right header, 1 GB of trailing zeros": lambda p: npz_trailing_bomb(p / "a.npz"),
    "pb: eight unused 2**26 float64 splats": lambda p: pb_unused_consts(p / "a.pb"),
    "pb: splatted 47 M-parameter kernels": lambda p: pb_splatted_weights(p / "a.pb"),
    "onnx: eight unused 2**28-float initializers": lambda p: onnx_unused_initializers(p / "a.onnx"),
    "onnx: declared 47 M-parameter kernels without data": lambda p: onnx_declared_kernels(p / "a.onnx"),
    "onnx: 4 M unpacked floats in an unused initializer": lambda p: onnx_unpacked_floats(p / "a.onnx"),
    "onnx: 200 000 nodes": lambda p: onnx_many_nodes(p / "a.onnx"),
    "pth: six 700 MiB deflated storages": lambda p: pth_storage_bombs(p / "a.pth"),
    "pth: 2.1 GiB data.pkl": lambda p: pth_pickle_bomb(p / "a.pth"),
    "pth: 2.1 GiB data.pkl declared as 4 KB": lambda p: pth_pickle_bomb(p / "a.pth", lie=True),
}


# ------------------------------------------------------------------------------------------ memory, in a child
CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
import npespcn
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    npespcn.load_model(sys.argv[1])
    out = {"outcome": "model", "message": ""}
except ValueError as e:
    out = {"outcome": "ValueError", "message": str(e)}
except BaseException as e:
    out = {"outcome": type(e).__name__, "message": str(e)}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(out, extra=(peak - base) * 1024)))
"""


def load_in_child(path, limit=AS_LIMIT) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(limit)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip(), f"child died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


EXPECTED = {
    "npz: record only, layers [[5, 30000000]]": r"filters of layer 1 must be in 1\.\.1024",
    "npz: record only, scale 3000": r"scale must be in 1\.\.8",
    "npz: 1.9 GB member in 2 MB": r"implies other parameters|shape",
    "npz: right header, 1 GB of trailing zeros": r"the member holds 1073748224",
    "pb: eight unused 2**26 float64 splats": None,                      # the graph loads; its junk is never decoded
    "pb: splatted 47 M-parameter kernels": r"more than the \d+ left of what a file of this size may decode",
    "onnx: eight unused 2**28-float initializers": None,               # never decoded: the graph loads
    "onnx: declared 47 M-parameter kernels without data": r"more than the \d+ left of what a file of this size",
    "onnx: 200 000 nodes": r"more than 4096 nodes",
    "onnx: 4 M unpacked floats in an unused initializer": None,        # counted, never decoded: the graph loads
    "pth: six 700 MiB deflated storages": r"storages declare \d+ elements, more than a file of its size may hold",
    "pth: 2.1 GiB data.pkl": r"data\.pkl' declares \d+ bytes, more than the 1048576 accepted",
    "pth: 2.1 GiB data.pkl declared as 4 KB": r"Bad CRC-32|truncated|pickle",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_loader_stays_within_a_small_multiple_of_the_file(tmp_path, name):
    """Peak RSS over the interpreter's after imports: below max(64 MiB, 8 x file size); a ValueError naming
    the file (or, for the graph whose extra constants are unused, a model). Before the fix: 1.8 to 4.9 GB,
    MemoryError or the OOM killer."""
    import re
    path = ATTACKS[name](tmp_path)
    res = load_in_child(path)
    bound = max(64 * MiB, 8 * path.stat().st_size)
    assert res["extra"] < bound, f"{name}: {res['extra'] / MiB:.0f} MiB for a {path.stat().st_size} byte file: {res}"
    if EXPECTED[name] is None:
        assert res["outcome"] == "model", res
    else:
        assert res["outcome"] == "ValueError" and str(path) in res["message"], res
        assert re.search(EXPECTED[name], res["message"]), res


def test_real_model_files_load_under_the_same_limit(tmp_path):
    """The control: the memory limit and the bound leave room for honest files of every format."""
    rng = np.random.default_rng(1)
    W.write_pth(tmp_path / "m.pth", W.espcn_pytorch_state(rng, 1, 3))
    (tmp_path / "m.pb").write_bytes(_paper_graph(rng))
    (tmp_path / "m.onnx").write_bytes(W.onnx_model(*_paper_onnx_parts(rng)))
    for path in (ROOT / "weights" / "espcn7_x3.npz", tmp_path / "m.pth", tmp_path / "m.pb", tmp_path / "m.onnx"):
        res = load_in_child(path)
        assert res["outcome"] == "model" and res["extra"] < 64 * MiB, (path, res)


# ------------------------------------------------------------------------------------------ records and dtypes
def test_architecture_records_are_bounded_and_integral(tmp_path):
    from npespcn.formats.arch import ArchError, check_arch, param_shapes
    good = {"scale": 3, "channels": 1, "layers": [[5, 64], [3, 32]], "activation": "tanh", "output_activation": None}
    assert check_arch(good) == good
    for change, match in [({"scale": 9}, "scale must be in 1..8"), ({"scale": 2.0}, "scale must be an integer"),
                          ({"scale": True}, "scale must be an integer"), ({"channels": 5}, "channels"),
                          ({"layers": [[4, 8]]}, "must be odd"), ({"layers": [[5.5, 8]]}, "must be an integer"),
                          ({"layers": [[5, 8.0]]}, "must be an integer"), ({"layers": [[17, 8]]}, "1..15"),
                          ({"layers": []}, "1..16"), ({"layers": [[3, 8]] * 17}, "1..16"),
                          ({"layers": "5x64"}, "list of"), ({"layers": [[15, 1024]] * 16}, "parameters"),
                          ({"activation": 3}, "activation")]:
        with pytest.raises(ArchError, match=match):
            check_arch(dict(good, **change), "m.npz")
        if match != "parameters":            # (that one is loaded in a memory-limited child above)
            npz_record_only(tmp_path / "r.npz", **change)
            with pytest.raises(ValueError, match=match):
                load_model(tmp_path / "r.npz")
    for arch in (good, dict(good, activation="prelu", channels=3, scale=2)):
        m = ESPCN(**arch)
        assert param_shapes(check_arch(arch)) == {k: v.shape for k, v in m.params.items()}


def test_fractional_and_boolean_layer_sizes_are_refused_by_the_model():
    for layers in ([[5.5, 64]], [[5, 6.5]], [[True, 8]], [[5, 8, 1]]):
        with pytest.raises(ValueError):
            ESPCN(3, 1, layers)
    assert ESPCN(3, 1, [[5.0, 8.0]]).hidden == ((5, 8),)


def _npz_with(path, name, member: bytes):
    """The paper x3 model's .npz with member ``name`` replaced by ``member`` (raw .npy bytes)."""
    m = ESPCN.paper(3)
    entries = [stored("__npespcn__.npy", record())]
    entries += [stored(f"{k}.npy", member if k == name else npy(v)) for k, v in m.params.items()]
    return raw_zip(path, entries)


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, np.int32, np.uint8])
def test_non_float_weights_are_refused_in_every_format(tmp_path, dtype):
    w = np.ones((64, 1, 5, 5), dtype)
    with pytest.raises(ValueError, match="conv1.weight: weights must be float16, float32 or float64"):
        load_model(_npz_with(tmp_path / "m.npz", "conv1.weight", npy(w)))
    with pytest.raises(ValueError, match="must be floating-point"):
        ESPCN.paper(3).load_params({k: (v.astype(dtype) if k == "conv1.weight" else v)
                                    for k, v in ESPCN.paper(3).params.items()})
    # .pth: an integer storage under a weight
    sd = W.espcn_pytorch_state(np.random.default_rng(0), 1, 3)
    pkl = W.state_dict_pickle(_pth_entries(sd)).replace(b"ctorch\nFloatStorage\n", b"ctorch\nIntStorage\n", 1)
    W.write_pth(tmp_path / "m.pth", sd, pickle_bytes=pkl)
    with pytest.raises(ValueError, match="weights must be floating-point, the storage holds int32"):
        load_model(tmp_path / "m.pth")


def test_an_int32_kernel_in_a_graph_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    ws = [rng.normal(0, 0.1, s).astype(np.float32) for s in ((5, 5, 1, 8), (3, 3, 8, 9))]
    bs = [np.zeros(8, np.float32), np.zeros(9, np.float32)]
    good = W.espcn_graphdef(ws, bs, 3)
    bad = good.replace(W.node("f1", "Const", dtype=("type", 1), value=(ws[0], False)),
                       W.node("f1", "Const", dtype=("type", 3), value=ws[0].astype(np.int32)))
    assert bad != good
    (tmp_path / "m.pb").write_bytes(bad)
    with pytest.raises(ValueError, match="its filter is int32, not float32 or float64"):
        load_model(tmp_path / "m.pb")


@pytest.mark.parametrize("header,what", [
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (64, 1, 5, 5", "unterminated dict (tokenize.TokenError)"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", "a shape of 2**40 (MemoryError)"),
    (b"{'descr': 'O', 'fortran_order': False, 'shape': (64, 1, 5, 5), }", "object dtype"),
    (b"\xff\xfe garbage", "not text"),
])
def test_damaged_npy_headers_are_value_errors(tmp_path, header, what):
    d = header + b" " * (63 - (10 + len(header)) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d + bytes(6400)
    with pytest.raises(ValueError):
        load_model(_npz_with(tmp_path / "m.npz", "conv1.weight", member))


# ------------------------------------------------------------------------------------------ images
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path, w=60000, h=60000):
    """A 1 KB PNG declaring w x h grey pixels (3.6 GB decoded at the default size)."""
    idat = zlib.compress(bytes(w + 1) * 16, 9)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return Path(path)


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "x2.npz"
    ESPCN(2, 1, [[3, 8], [3, 4]], seed=1).save(path)
    return path


def _cli(args, cwd, limit=None, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    pre = (lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))) if limit else None
    return subprocess.Popen([sys.executable, "-m", "npespcn", *args], cwd=cwd, env=env, preexec_fn=pre,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_a_decompression_bomb_is_one_skipped_file_of_a_batch(tmp_path, small_model):
    """Under a 3 GiB address-space limit: the 60000 x 60000 PNG is refused from its header, and with the limit
    lifted (--max-pixels 0) the failed allocation is one reported file; the good file is written both times."""
    png_bomb(tmp_path / "bomb.png")
    Image.fromarray(_rand((20, 24))).save(tmp_path / "good.png")
    for extra, message in (([], "declares 60000x60000 = 3600.0 Mpx, more than the limit of 300.0 Mpx"),
                           (["--max-pixels", "0", "--overwrite"], "not enough memory")):
        p = _cli(["upscale", str(tmp_path), "--model", str(small_model), "-q", *extra], tmp_path, limit=3 << 30)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert "Traceback" not in err and "MemoryError\n" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 2 and "bomb.png: skipped:" in lines[0] and message in lines[0], err
        assert "1 of" in lines[1]
        assert (tmp_path / "good_x2.png").is_file() and not (tmp_path / "bomb_x2.png").exists()


def test_read_image_limits_pixels_per_call_and_never_changes_pillows_limit(tmp_path, monkeypatch):
    from PIL import ImageFile

    from npespcn.image.io import read_image
    Image.fromarray(_rand((20, 30))).save(tmp_path / "a.png")
    png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=r"declares 30x20 = 0.0 Mpx, more than the limit"):
        read_image(tmp_path / "a.png", max_pixels=599)
    assert read_image(tmp_path / "a.png", max_pixels=600)[0].shape == (20, 30)
    assert read_image(tmp_path / "a.png", max_pixels=None)[0].shape == (20, 30)
    with pytest.raises(ValueError, match="max_pixels must be"):
        read_image(tmp_path / "a.png", max_pixels=-1)
    original, seen = Image.MAX_IMAGE_PIXELS, []
    load = ImageFile.ImageFile.load

    def spy(self):
        seen.append(Image.MAX_IMAGE_PIXELS)           # the old reader switched the limit off right here
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    errors = []

    def work():
        for _ in range(5):
            read_image(tmp_path / "a.png")
            try:
                read_image(tmp_path / "bomb.png")
            except ValueError as e:
                errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen and set(seen) == {original} and Image.MAX_IMAGE_PIXELS == original
    assert len(errors) == 20


def test_16_bit_images_are_evaluated_and_trained_on_without_clipping(tmp_path):
    """A 16-bit copy (v * 257) of a grey image scores exactly as the image (the old reader clipped it to white:
    55.5 dB instead of 35.6 dB) and gives the same training patches."""
    from npespcn import evaluate
    from npespcn.evaluation.chart import test_chart as chart
    from npespcn.training.patches import build_patches
    grey = np.asarray(Image.fromarray(chart()).convert("L"))
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
    model = ESPCN.paper(3, seed=0)
    a, b = (evaluate(model, [tmp_path / n], 3)["per_image"][0] for n in ("g8.png", "g16.png"))
    assert a["psnr"] == b["psnr"] and a["bicubic_psnr"] == b["bicubic_psnr"] and a["ssim"] == b["ssim"]
    p8, p16 = (build_patches([tmp_path / n], 3, 17, 13) for n in ("g8.png", "g16.png"))
    np.testing.assert_array_equal(p8.lr, p16.lr)
    np.testing.assert_array_equal(p8.hr, p16.hr)


def test_16_bit_la_palette_and_cmyk_files_become_the_right_rgb(tmp_path):
    from npespcn.evaluation.protocol import load_rgb8
    rgb, grey, alpha = _rand((9, 11, 3), 1), _rand((9, 11), 2), _rand((9, 11), 3)
    v16 = np.random.default_rng(4).integers(0, 65536, (9, 11)).astype(np.uint16)
    Image.fromarray(v16).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "i16.png"),
                                  np.repeat(np.rint(v16 / 257.0).astype(np.uint8)[:, :, None], 3, axis=2))
    Image.merge("LA", (Image.fromarray(grey), Image.fromarray(alpha))).save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "la.png"), np.repeat(grey[:, :, None], 3, axis=2))
    pal = Image.fromarray(rgb).convert("P")
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    pal.save(tmp_path / "pt.png", transparency=0)
    np.testing.assert_array_equal(load_rgb8(tmp_path / "pt.png"), np.asarray(pal.convert("RGB")))
    pa = pal.convert("PA")
    np.testing.assert_array_equal(load_rgb8_of(pa), np.asarray(pal.convert("RGB")))
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(tmp_path / "c.tif")
    np.testing.assert_array_equal(load_rgb8(tmp_path / "c.tif"), np.asarray(cmyk.convert("RGB")))


def load_rgb8_of(im):
    from npespcn.evaluation.protocol import as_rgb8
    return as_rgb8(im)


# ------------------------------------------------------------------------------------------ checkpoints
def _train_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        small = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
        Image.fromarray(small).resize((48, 40), Image.BICUBIC).save(folder / f"t{k}.png")
    return folder


TINY_RUN = ["--no-val", "--quiet", "--layers", "3x8,3x4", "--patch-size", "6", "--stride", "4", "--batch-size", "8",
            "--epochs", "1", "--scale", "3", "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from npespcn.cli.train import main
    base = tmp_path_factory.mktemp("run")
    data = _train_images(base / "data")
    assert main(["--data", str(data), "--out", str(base / "run"), *TINY_RUN]) == 0
    assert (base / "run" / "checkpoint.npz").is_file() and (base / "run" / "last.npz").is_file()
    return base / "run"


def _rewrite_meta(src: Path, dst: Path, change) -> None:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)


def _flip_in_member(data: bytes, path: Path, member: str) -> bytes:
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    n, e = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    pos = info.header_offset + 30 + n + e + info.file_size - 5          # inside the array data
    return data[:pos] + bytes([data[pos] ^ 0x5A]) + data[pos + 1:]


DAMAGE = {
    "truncated to 100 bytes": lambda d, p: d[:100],
    "truncated to half": lambda d, p: d[:len(d) // 2],
    "one byte short": lambda d, p: d[:-1],
    "a flipped byte (bad CRC-32)": lambda d, p: _flip_in_member(d, p, "param/conv1.weight.npy"),
    "not a zip": lambda d, p: b"hello" * 100,
}


@pytest.mark.parametrize("damage", list(DAMAGE) + ["a record without config", "a config with lr NaN",
                                                   "a record that is a list"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_what_to_do(finished_run, tmp_path, capsys, damage):
    import shutil

    from npespcn.cli.train import main
    from npespcn.training.trainer import read_checkpoint_meta
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    ckpt = out / "checkpoint.npz"
    if damage in DAMAGE:
        ckpt.write_bytes(DAMAGE[damage](ckpt.read_bytes(), ckpt))
    elif damage == "a record without config":
        _rewrite_meta(ckpt, ckpt, lambda m: m.pop("config"))
    elif damage == "a config with lr NaN":
        _rewrite_meta(ckpt, ckpt, lambda m: m["config"].update(lr=float("nan")))
    else:
        with np.load(ckpt) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["meta"] = np.array("[1, 2]")
        np.savez(ckpt, **arrays)
    capsys.readouterr()
    assert main(["--out", str(out), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.strip().splitlines() if not line.endswith(f"output: {out}")]   # progress
    assert len(errors) == 1 and errors[0].startswith("error: ") and "Traceback" not in err, err
    assert f"{ckpt}: not a readable npespcn checkpoint" in err and "start the run over" in err
    assert str(out / "last.npz") in err                                   # it exists: say so
    if damage != "a flipped byte (bad CRC-32)":                           # the record itself is intact there
        with pytest.raises(ValueError, match="start the run over"):
            read_checkpoint_meta(ckpt)


def test_the_nan_loss_message_names_only_files_that_exist(tmp_path):
    from npespcn.training.patches import build_patches
    from npespcn.training.trainer import NonFiniteLoss, PatchSet, TrainConfig, Trainer
    ps = build_patches(sorted(_train_images(tmp_path / "data").iterdir()), 3, 6, 4)
    bad = PatchSet(ps.lr, np.full_like(ps.hr, np.nan), 3, ps.sources)
    cfg = TrainConfig(scale=3, epochs=1, layers=[[3, 8], [3, 4]], patch_size=6, stride=4, batch_size=8)
    with pytest.raises(NonFiniteLoss) as e:
        Trainer(cfg, bad, None, tmp_path / "run", quiet=True).run()
    msg = str(e.value)
    assert "best.npz" not in msg and "checkpoint.npz" not in msg and "nothing was saved yet" in msg.lower(), msg


# ------------------------------------------------------------------------------------------ training settings
@pytest.mark.parametrize("change,match", [
    ({"lr_gamma": float("nan")}, "lr_gamma"), ({"lr_gamma": 0.0}, "lr_gamma"), ({"lr_gamma": 2.0}, "lr_gamma"),
    ({"last_lr_mult": -5.0}, "last_lr_mult"), ({"last_lr_mult": float("inf")}, "last_lr_mult"),
    ({"momentum": 1.5}, "momentum"), ({"momentum": float("nan")}, "momentum"), ({"lr": float("inf")}, "lr"),
    ({"epochs": 2.5}, "epochs must be an integer"), ({"seed": -1}, "seed"), ({"lr_step": -2}, "lr_step"),
    ({"rescale": [0.0]}, "rescale"), ({"rescale": [float("nan")]}, "rescale"), ({"rescale": [1.5]}, "rescale"),
    ({"layers": [[3.5, 8]]}, "layers must be"), ({"batch_size": True}, "batch_size must be an integer"),
])
def test_training_settings_out_of_range_are_refused(change, match):
    from npespcn.training.trainer import TrainConfig
    with pytest.raises(ValueError, match=match):
        TrainConfig(**change)


def test_the_cli_refuses_nan_gamma_and_resume_with_fixed_options(tmp_path, capsys):
    from npespcn.cli.train import main
    for argv, what in ((["--lr-gamma", "nan", "--print-recipe"], "lr_gamma"),
                       (["--last-lr-mult", "-5", "--print-recipe"], "last_lr_mult"),
                       (["--resume", "--out", str(tmp_path), "--lr", "0.01"], "--lr"),
                       (["--resume", "--out", str(tmp_path), "--batch-size", "4", "--arch", "seven"], "--arch")):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and what in err, err


# ------------------------------------------------------------------------------------------ outputs
def test_exclusive_publish_never_replaces_what_appeared_meanwhile(tmp_path, monkeypatch):
    from npespcn.atomic import atomic_write
    dst = tmp_path / "out.bin"
    with pytest.raises(FileExistsError, match="already exists; not replaced"):
        with atomic_write(dst, overwrite=False) as f:
            f.write(b"mine")
            dst.write_bytes(b"theirs")                      # another process published first
    assert dst.read_bytes() == b"theirs" and sorted(os.listdir(tmp_path)) == ["out.bin"]
    (tmp_path / "link.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(FileExistsError):
        with atomic_write(tmp_path / "link.png", overwrite=False) as f:
            f.write(b"x")
    assert os.readlink(tmp_path / "link.png") == str(tmp_path / "nowhere.png")
    assert not (tmp_path / "nowhere.png").exists()
    # where hard links are refused, the name is reserved with O_EXCL instead
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(PermissionError(1, "no links")))
    with atomic_write(tmp_path / "new.bin", overwrite=False) as f:
        f.write(b"new")
    assert (tmp_path / "new.bin").read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        with atomic_write(tmp_path / "new2.bin", overwrite=False) as f:
            f.write(b"mine")
            (tmp_path / "new2.bin").write_bytes(b"theirs")
    assert (tmp_path / "new2.bin").read_bytes() == b"theirs"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".npespcn-tmp-")]


def test_upscale_never_replaces_an_output_that_appears_while_it_works(tmp_path, small_model, monkeypatch, capsys):
    import npespcn.cli.upscale as cli
    from npespcn.inference import batch  # where the batch writes each file

    Image.fromarray(_rand((16, 16))).save(tmp_path / "a.png")
    real = batch.write_png_rows

    def racing(path, *a, **k):
        Path(path).write_bytes(b"the other run's result")
        return real(path, *a, **k)

    monkeypatch.setattr(batch, "write_png_rows", racing)
    assert cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "same.png"), "--model", str(small_model)]) == 1
    assert (tmp_path / "same.png").read_bytes() == b"the other run's result"
    assert "appeared while it was being upscaled" in capsys.readouterr().err


def test_two_processes_writing_one_output_one_wins(tmp_path, small_model):
    Image.fromarray(_rand((300, 300, 3))).save(tmp_path / "in.png")
    procs = [_cli(["upscale", "in.png", "-o", "same.png", "--model", str(small_model), "-q"], tmp_path)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(rc for rc, _ in results) == [0, 1], results
    with Image.open(tmp_path / "same.png") as im:
        assert im.size == (600, 600)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".npespcn-tmp-")]


def test_a_dangling_symlink_at_the_output_is_not_replaced(tmp_path, small_model, capsys):
    from npespcn.cli.upscale import main
    Image.fromarray(_rand((10, 10))).save(tmp_path / "a.png")
    (tmp_path / "a_x2.png").symlink_to(tmp_path / "elsewhere.png")
    assert main([str(tmp_path / "a.png"), "--model", str(small_model)]) == 1
    assert "dangling symlink" in capsys.readouterr().err
    assert (tmp_path / "a_x2.png").is_symlink() and not (tmp_path / "elsewhere.png").exists()
    assert main([str(tmp_path / "a.png"), "--model", str(small_model), "--overwrite"]) == 0
    assert not (tmp_path / "a_x2.png").is_symlink() and not (tmp_path / "elsewhere.png").exists()


def test_two_inputs_with_one_name_do_not_overwrite_each_other(tmp_path, small_model, capsys):
    from npespcn.cli.upscale import main
    from npespcn.inference.pipeline import upscale
    first, second = _rand((10, 12), 1), _rand((10, 12), 2)
    for sub, arr in (("a", first), ("b", second)):
        (tmp_path / sub).mkdir()
        Image.fromarray(arr).save(tmp_path / sub / "x.png")
    for extra in ([], ["--overwrite"]):
        rc = main([str(tmp_path / "a"), str(tmp_path / "b"), "--out-dir", str(tmp_path / "out" / str(len(extra))),
                   "--model", str(small_model), "-q", *extra])
        assert rc == 1
        err = capsys.readouterr().err
        assert "b/x.png: skipped" in err and "written by this run for" in err
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / str(len(extra)) / "x.png")),
                                      upscale(first, 2, load_model(small_model)))


def test_rerunning_on_a_folder_leaves_the_earlier_outputs_alone(tmp_path, small_model, capsys):
    from npespcn.cli.upscale import main
    Image.fromarray(_rand((10, 10))).save(tmp_path / "a.png")
    assert main([str(tmp_path), "--model", str(small_model), "-q"]) == 0
    assert main([str(tmp_path), "--model", str(small_model), "--overwrite"]) == 0
    assert "a_x2.png: not upscaled: an earlier output of a.png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x2.png"]
    assert main([str(tmp_path / "*.png"), "--model", str(small_model), "-q", "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x2.png"]
    assert main([str(tmp_path / "a_x2.png"), "--model", str(small_model), "-q"]) == 0      # named: upscaled
    assert (tmp_path / "a_x2_x2.png").is_file()
    (tmp_path / ".npespcn-tmp-1-00000000-abcdefgh.b.png").write_bytes(b"half a png")     # another run's, in the making
    from npespcn.image.io import list_images
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "a_x2.png", "a_x2_x2.png"]


def test_an_input_is_never_its_own_output(tmp_path, small_model, capsys):
    from npespcn.cli.upscale import main
    Image.fromarray(_rand((10, 10))).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    assert main([str(tmp_path / "a.png"), "--out-dir", str(tmp_path), "--model", str(small_model),
                 "--overwrite"]) == 1
    assert "is the input itself" in capsys.readouterr().err and (tmp_path / "a.png").read_bytes() == before


def test_convert_never_destroys_its_source_or_replaces_without_overwrite(tmp_path, capsys):
    from npespcn.cli.convert import main
    rng = np.random.default_rng(0)
    (tmp_path / "m.pb").write_bytes(_paper_graph(rng))
    (tmp_path / "sub").mkdir()
    os.link(tmp_path / "m.pb", tmp_path / "hard.pb")
    before = (tmp_path / "m.pb").read_bytes()
    for dst in ("m.pb", "sub/../m.pb", "hard.pb"):
        assert main([str(tmp_path / "m.pb"), str(tmp_path / dst), "--overwrite"]) == 1
        assert "is the source file itself" in capsys.readouterr().err
    assert (tmp_path / "m.pb").read_bytes() == before
    (tmp_path / "taken.npz").write_bytes(b"precious")
    assert main([str(tmp_path / "m.pb"), str(tmp_path / "taken.npz")]) == 1
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "taken.npz").read_bytes() == b"precious"
    assert main([str(tmp_path / "m.pb"), str(tmp_path / "taken.npz"), "--overwrite"]) == 0
    assert load_model(tmp_path / "taken.npz").arch["layers"] == [[5, 64], [3, 32]]


@pytest.mark.parametrize("make", ["damaged header", "huge header", "record only", "member bomb"])
def test_convert_reports_damaged_and_hostile_files_in_one_line(tmp_path, make):
    """``npespcn convert`` in a child under the address-space limit: one line, exit 1, nothing written."""
    src = tmp_path / "bad.npz"
    if make in ("damaged header", "huge header"):
        d = (b"{'descr': '<f4', 'fortran_order': False, 'shape': (64, 1, 5, 5" if make == "damaged header" else
             b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }")
        d += b" " * (63 - (10 + len(d)) % 64) + b"\n"
        _npz_with(src, "conv1.weight", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d + bytes(6400))
    elif make == "record only":
        npz_record_only(src, layers=[[5, 30_000_000]])
    else:
        npz_member_bomb(src)
    p = _cli(["convert", str(src), str(tmp_path / "out.npz")], tmp_path, limit=AS_LIMIT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert err.startswith("npespcn convert: error:") and len(err.strip().splitlines()) == 1 and str(src) in err, err
    assert not (tmp_path / "out.npz").exists()


def test_stale_temporary_files_of_killed_runs_are_removed(tmp_path):
    """A process SIGKILLed inside atomic_write leaves its temporary file; the next write into the folder (by
    another process) removes it, but keeps those of live processes and of other hosts."""
    import signal
    import time

    from npespcn.atomic import HOST_TAG
    code = ("import sys, time\nfrom npespcn.atomic import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n    f.write(b'x' * 100000); f.flush(); print('in', flush=True)"
            "\n    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.png")], stdout=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True)
    assert p.stdout.readline().strip() == "in"
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    stale = [n for n in os.listdir(tmp_path) if n.startswith(".npespcn-tmp-")]
    assert len(stale) == 1 and f"-{p.pid}-{HOST_TAG}-" in stale[0]
    live = tmp_path / f".npespcn-tmp-{os.getppid()}-{HOST_TAG}-abcdefgh.x.png"
    other_host = tmp_path / f".npespcn-tmp-{p.pid}-{'0' * 8 if HOST_TAG != '0' * 8 else '1' * 8}-abcdefgh.x.png"
    for f in (live, other_host):
        f.write_bytes(b"keep")
    time.sleep(0.05)
    writer = subprocess.run([sys.executable, "-c", ("import sys\nfrom npespcn.atomic import atomic_write\n"
                                                    "with atomic_write(sys.argv[1]) as f: f.write(b'y')\n"),
                             str(tmp_path / "other.png")],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert writer.returncode == 0, writer.stderr
    left = sorted(os.listdir(tmp_path))
    assert stale[0] not in left and live.name in left and other_host.name in left and "other.png" in left
