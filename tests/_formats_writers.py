"""Test helpers: write TensorFlow GraphDefs and torch.save zip archives from scratch (no TF, no torch),
and reference implementations of TensorFlow's NHWC ops, written independently of npespcn.

The encoders follow the protobuf and pickle specifications directly, so the readers in
``npespcn.formats`` are checked against the formats, not against themselves.
"""
from __future__ import annotations

import io
import struct
import zipfile

import numpy as np


# ---------------------------------------------------------------------------------------- protobuf
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field: int, n: int) -> bytes:
    return varint(field << 3 | 0) + varint(n)


def f_len(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def f_str(field: int, s: str) -> bytes:
    return f_len(field, s.encode())


def tensor_proto(arr: np.ndarray, packed_values: bool = False) -> bytes:
    """TensorProto: dtype 1 (float) or 3 (int32), shape, and tensor_content or packed float_val/int_val."""
    arr = np.asarray(arr)
    dtype = 1 if arr.dtype == np.float32 else 3
    shape = b"".join(f_len(2, f_varint(1, d)) for d in arr.shape)
    out = f_varint(1, dtype) + f_len(2, shape)
    if packed_values and dtype == 1:
        out += f_len(5, arr.astype("<f4").tobytes())
    elif packed_values:
        out += f_len(7, b"".join(varint(int(v)) for v in arr.ravel()))
    else:
        out += f_len(4, arr.astype("<f4" if dtype == 1 else "<i4").tobytes())
    return out


def attr(key: str, value_bytes: bytes) -> bytes:
    return f_len(5, f_str(1, key) + f_len(2, value_bytes))


def node(name: str, op: str, inputs=(), **attrs) -> bytes:
    """NodeDef; ``attrs`` values: str -> s, int -> i, list of int -> list.i, ndarray -> tensor."""
    out = f_str(1, name) + f_str(2, op) + b"".join(f_str(3, i) for i in inputs)
    for k, v in attrs.items():
        if isinstance(v, str):
            out += attr(k, f_len(2, v.encode()))
        elif isinstance(v, bool):
            out += attr(k, f_varint(5, int(v)))
        elif isinstance(v, int):
            out += attr(k, f_varint(3, v))
        elif isinstance(v, list):
            out += attr(k, f_len(1, f_len(3, b"".join(varint(i) for i in v))))
        elif isinstance(v, tuple) and isinstance(v[0], str) and v[0] == "type":
            out += attr(k, f_varint(6, v[1]))
        else:
            out += attr(k, f_len(8, tensor_proto(*v) if isinstance(v, tuple) else tensor_proto(v)))
    return f_len(1, out)


def espcn_graphdef(weights, biases, scale, act="Relu", out_act="Tanh", bias_op="Add", identity_reads=False,
                   packed_values=False, transpose=True) -> bytes:
    """A frozen graph in TF-ESPCN's shape: weights HWIO, Conv2D/``bias_op``/``act`` ..., DepthToSpace, ``out_act``."""
    parts = [node("input", "Placeholder", dtype=("type", 1))]
    prev = "input"
    n = len(weights)
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        parts.append(node(f"f{i}", "Const", dtype=("type", 1), value=(w.astype(np.float32), packed_values)))
        parts.append(node(f"b{i}", "Const", dtype=("type", 1), value=(b.astype(np.float32), packed_values)))
        fname = f"f{i}"
        if identity_reads:
            parts.append(node(f"f{i}/read", "Identity", [f"f{i}"]))
            fname = f"f{i}/read"
        parts.append(node(f"conv{i}", "Conv2D", [prev, fname], padding="SAME", strides=[1, 1, 1, 1],
                          data_format="NHWC", dilations=[1, 1, 1, 1]))
        parts.append(node(f"add{i}", bias_op, [f"conv{i}:0", f"b{i}"]))
        prev = f"add{i}"
        if i < n:
            parts.append(node(f"act{i}", act, [prev]))
            prev = f"act{i}"
    parts.append(node("d2s", "DepthToSpace", [prev], block_size=scale, data_format="NHWC"))
    prev = "d2s"
    if out_act:
        parts.append(node("NHWC_output", out_act, [prev]))
        prev = "NHWC_output"
    if transpose:
        parts.append(node("perm", "Const", dtype=("type", 3), value=np.array([0, 3, 1, 2], np.int32)))
        parts.append(node("NCHW_output", "Transpose", [prev, "perm"]))
    return b"".join(parts) + f_len(4, f_varint(1, 27))          # + GraphDef.versions {producer: 27}


# ---------------------------------------------------------------------------------------- TF semantics
def tf_conv2d_same(x, w):
    """TensorFlow Conv2D, NHWC input (N, H, W, Cin), HWIO filter (k, k, Cin, Cout), stride 1, SAME."""
    k = w.shape[0]
    p = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    N, H, W, _ = x.shape
    out = np.zeros((N, H, W, w.shape[3]), np.float64)
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,co->nhwo", xp[:, i:i + H, j:j + W, :], w[i, j].astype(np.float64))
    return out


def tf_depth_to_space(x, r):
    """TensorFlow DepthToSpace, NHWC: out[n, h*r + i, w*r + j, c] = x[n, h, w, (i*r + j)*C + c]."""
    N, H, W, D = x.shape
    C = D // (r * r)
    out = np.empty((N, H * r, W * r, C), x.dtype)
    for i in range(r):
        for j in range(r):
            for c in range(C):
                out[:, i::r, j::r, c] = x[:, :, :, (i * r + j) * C + c]
    return out


def tf_espcn_forward(x_nhwc, weights, biases, scale, act=np.tanh, out_act=np.tanh):
    h = x_nhwc.astype(np.float64)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = tf_conv2d_same(h, w) + b
        if i < len(weights) - 1:
            h = act(h)
    h = tf_depth_to_space(h, scale)
    return out_act(h) if out_act else h


# ---------------------------------------------------------------------------------------- torch.save zip
def _unicode(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def state_dict_pickle(entries) -> bytes:
    """Protocol-2 pickle of an OrderedDict of tensors, opcode by opcode as torch.save writes it.

    ``entries``: list of (name, storage_key, numel, offset, size, stride).
    """
    out = b"\x80\x02" + b"ccollections\nOrderedDict\n)R" + b"("
    for name, key, numel, offset, size, stride in entries:
        storage = _tuple([_unicode("storage"), b"ctorch\nFloatStorage\n", _unicode(key), _unicode("cpu"),
                          _int(numel)]) + b"Q"
        args = _tuple([storage, _int(offset), _tuple(map(_int, size)), _tuple(map(_int, stride)), b"\x89",
                       b"ccollections\nOrderedDict\n)R"])
        out += _unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R"
    out += b"u"
    # state_dict._metadata, set by BUILD as torch does
    out += b"}" + _unicode("_metadata") + b"ccollections\nOrderedDict\n)R" + b"s" + b"b" + b"."
    return out


def write_pth(path, state: dict, transpose_first: bool = False, pickle_bytes: bytes | None = None) -> None:
    """Write ``state`` ({name: float32 array}) as a torch.save zip archive.

    With ``transpose_first`` the first tensor is stored transposed (a non-contiguous stride) in a storage
    with 3 leading padding elements (a non-zero offset), to exercise the strided rebuild.
    """
    entries, blobs = [], {}
    for n, (name, arr) in enumerate(state.items()):
        arr = np.asarray(arr, np.float32)
        if transpose_first and n == 0 and arr.ndim >= 2:
            data = np.concatenate([np.full(3, 7.0, np.float32), np.ascontiguousarray(arr.T).ravel()])
            # element (i0, ..., ik) of arr sits at index 3 + sum(i_m * stride_m) of data
            # arr.T is C-contiguous, so axis m of arr strides by prod(arr.shape[:m]) elements
            stride = tuple(int(s) for s in np.cumprod((1,) + arr.shape[:-1]))
            entries.append((name, str(n), data.size, 3, arr.shape, stride))
        else:
            data = arr.ravel()
            stride = tuple(int(s) // 4 for s in np.ascontiguousarray(arr).strides)
            entries.append((name, str(n), data.size, 0, arr.shape, stride))
        blobs[str(n)] = data.astype("<f4").tobytes()
    pkl = state_dict_pickle(entries) if pickle_bytes is None else pickle_bytes
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, blob in blobs.items():
            z.writestr(f"archive/data/{key}", blob)
        z.writestr("archive/version", "3\n")
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def espcn_pytorch_state(rng, channels=1, scale=3, layers=((5, 64), (3, 32))) -> dict:
    """Random weights under ESPCN-pytorch's keys (first_part.0, first_part.2, ..., last_part.0)."""
    sd, c = {}, channels
    for i, (k, f) in enumerate(layers):
        sd[f"first_part.{2 * i}.weight"] = rng.normal(0, 0.1, (f, c, k, k)).astype(np.float32)
        sd[f"first_part.{2 * i}.bias"] = rng.normal(0, 0.1, f).astype(np.float32)
        c = f
    sd["last_part.0.weight"] = rng.normal(0, 0.1, (channels * scale * scale, c, 3, 3)).astype(np.float32)
    sd["last_part.0.bias"] = rng.normal(0, 0.1, channels * scale * scale).astype(np.float32)
    return sd


# ---------------------------------------------------------------------------------------- ONNX
# Field numbers from onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
# ValueInfoProto), encoded with the helpers above, independently of npespcn's writer.
def onnx_tensor(name: str, dims, raw: bytes | None = None, float_data=None, data_type: int = 1,
                external: bool = False) -> bytes:
    out = b"".join(f_varint(1, d) for d in dims) + f_varint(2, data_type) + f_str(8, name)
    if raw is not None:
        out += f_len(9, raw)
    if float_data is not None:
        out += f_len(4, np.asarray(float_data, "<f4").tobytes())
    if external:
        out += f_len(13, f_str(1, "location") + f_str(2, "weights.bin")) + f_varint(14, 1)
    return out


def onnx_array(name: str, arr: np.ndarray) -> bytes:
    return onnx_tensor(name, arr.shape, raw=np.ascontiguousarray(arr, "<f4").tobytes())


def onnx_node(op: str, inputs, output: str, **attrs) -> bytes:
    out = b"".join(f_str(1, i) for i in inputs) + f_str(2, output) + f_str(3, output) + f_str(4, op)
    for k, v in attrs.items():
        if isinstance(v, str):
            a = f_str(1, k) + f_len(4, v.encode()) + f_varint(20, 3)
        elif isinstance(v, list):
            a = f_str(1, k) + b"".join(f_varint(8, i) for i in v) + f_varint(20, 7)
        else:
            a = f_str(1, k) + f_varint(3, v) + f_varint(20, 2)
        out += f_len(5, a)
    return out


def onnx_model(nodes, initializers, input_name="input", opset=13) -> bytes:
    graph = (b"".join(f_len(1, n) for n in nodes) + f_str(2, "g") + b"".join(f_len(5, t) for t in initializers)
             + f_len(11, f_str(1, input_name)) + f_len(12, f_str(1, "output")))
    return f_varint(1, 7) + f_len(7, graph) + f_len(8, f_varint(2, opset))


def onnx_espcn_tf2onnx_style(weights, biases, scale, act="Relu", out_act="Tanh") -> bytes:
    """An ESPCN as a TensorFlow graph converted to ONNX comes out: NHWC input, ``Transpose(0, 3, 1, 2)``,
    ``Conv`` without bias + ``Add`` of a (1, C, 1, 1) constant, ``DepthToSpace`` in DCR mode (TensorFlow's
    channel order, which ``weights``/``biases`` of the last layer must already be in), the output
    activation between a pair of Transposes. ``weights``: ONNX (out, in, k, k)."""
    nodes = [onnx_node("Transpose", ["input"], "t0", perm=[0, 3, 1, 2])]
    inits, prev = [], "t0"
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        k = w.shape[2]
        inits += [onnx_array(f"W{i}", w), onnx_array(f"B{i}", b.reshape(1, -1, 1, 1))]
        nodes.append(onnx_node("Conv", [prev, f"W{i}"], f"c{i}", kernel_shape=[k, k], auto_pad="SAME_UPPER"))
        nodes.append(onnx_node("Add", [f"c{i}", f"B{i}"], f"a{i}"))
        prev = f"a{i}"
        if i < len(weights):
            nodes.append(onnx_node(act, [prev], f"r{i}"))
            prev = f"r{i}"
    nodes.append(onnx_node("DepthToSpace", [prev], "d2s", blocksize=scale))       # mode: the default, DCR
    nodes.append(onnx_node("Transpose", ["d2s"], "nhwc", perm=[0, 2, 3, 1]))
    nodes.append(onnx_node(out_act, ["nhwc"], "act_out"))
    nodes.append(onnx_node("Transpose", ["act_out"], "output", perm=[0, 3, 1, 2]))
    return onnx_model(nodes, inits)
