"""TensorFlow frozen ``GraphDef`` (``.pb``) of an ESPCN, read without TensorFlow.

The TF-ESPCN models that OpenCV's ``dnn_superres`` ships (``ESPCN_x2.pb``, ...) are frozen graphs: the weights
are ``Const`` nodes and the network is a chain of ops::

    Placeholder (N, H, W, C) ─ Conv2D(f1) ─ Add(b1) ─ Relu ─ Conv2D(f2) ─ Add(b2) ─ Relu
        ─ Conv2D(f3) ─ Add(b3) ─ DepthToSpace(r) ─ Tanh ─ Transpose(0, 3, 1, 2)

This module decodes the protobuf messages it needs (field numbers from TensorFlow's ``graph.proto``,
``node_def.proto``, ``attr_value.proto``, ``tensor.proto`` and ``tensor_shape.proto``)::

    GraphDef        1: repeated NodeDef node
    NodeDef         1: name   2: op   3: repeated input   5: map<string, AttrValue> attr (entries: 1 key, 2 value)
    AttrValue       1: list   2: s   3: i   4: f   5: b   6: type   8: tensor
    AttrValue.List  2: s   3: i (packed)   4: f (packed)
    TensorProto     1: dtype   2: tensor_shape   4: tensor_content   5: float_val   6: double_val
                    7: int_val   10: int64_val
    TensorShapeProto  2: repeated Dim dim      Dim  1: size

then walks the chain from the placeholder to infer the architecture (kernel sizes, filters, activations,
scale) and converts the weights into npespcn's layout:

* kernels: TensorFlow's HWIO ``(kH, kW, in, out)`` -> ``(out, in, kH, kW)``, i.e. ``transpose(3, 2, 0, 1)``;
  a stride-1 ``SAME`` convolution with an odd kernel pads ``(k - 1) / 2`` on every side, like npespcn's;
* the last layer's ``C*r*r`` output channels: ``depth_to_space`` reads sub-pixel ``(i, j)`` of colour ``c``
  from channel ``(i*r + j)*C + c`` but npespcn's shuffle from ``c*r*r + i*r + j``, so the rows of the last
  kernel and bias are permuted once (:func:`tf_to_torch_channel_order`) and one shuffle
  order then serves every model;
* an activation between the last convolution and ``DepthToSpace`` is moved after the shuffle (an
  element-wise function commutes with a permutation of the elements).

**Memory.** :func:`read_graphdef` parses the graph without decoding any constant's values (a constant is a
:class:`LazyTensor`: dtype and shape only), walks the chain, infers the architecture from the constants'
declared shapes and checks it (:func:`npespcn.formats.arch.check_arch`), and only then decodes the
constants the chain uses, all of them together within :func:`npespcn.formats.arch.element_budget` of the
file's size (so splatted values cannot expand a small file). Unused nodes are never decoded; graphs of more
than :data:`MAX_NODES` nodes or :data:`MAX_INPUTS` inputs are refused.

Accepted ops: ``Placeholder``, ``Const``, ``Identity`` (skipped), ``Conv2D`` (stride 1, ``SAME``, no dilation,
NHWC), ``Add``/``AddV2``/``BiasAdd`` with a constant bias, ``Relu``/``Tanh``, ``DepthToSpace`` (NHWC) and a final
``Transpose`` to NCHW. Anything else raises ``ValueError`` naming the op.
"""
from __future__ import annotations

import math
import struct
from array import array
from dataclasses import dataclass, field

import numpy as np

from .arch import ArchError, check_arch, element_budget
from .protobuf import (
    I32,
    I64,
    LEN,
    VARINT,
    ProtobufError,
    as_float,
    as_int64,
    as_str,
    file_head,
    iter_fields,
    packed_floats,
    packed_varints,
    read_varint,
)

# TensorFlow DataType enum (types.proto) -> NumPy dtype, for the constants an ESPCN graph holds.
TF_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 9: np.dtype("<i8")}
MAX_NODES = 4096                      # an ESPCN graph has a few dozen
MAX_INPUTS = 16384
MAX_LIST_ATTR_BYTES = 4096            # list attributes (strides, dilations, ...) are a few bytes
ACTIVATION_OPS = {"Relu": "relu", "Tanh": "tanh"}
BIAS_OPS = ("Add", "AddV2", "BiasAdd")


@dataclass
class Node:
    """One ``NodeDef``: ``inputs`` keep TensorFlow's spelling (``"name"``, ``"name:1"``, ``"^control"``)."""
    name: str
    op: str
    inputs: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ decoding
def decode_shape(buf) -> list[int]:
    """``TensorShapeProto`` -> list of dimension sizes."""
    dims = []
    for f, w, v in iter_fields(buf):
        if f == 2 and w == LEN:
            size = 0
            for f2, w2, v2 in iter_fields(v):
                if f2 == 1 and w2 == VARINT:
                    size = as_int64(v2)
            dims.append(size)
    return dims


class Budget:
    """Array elements left to decode (shared by every constant of a graph)."""

    def __init__(self, elements: int):
        self.left = int(elements)

    def take(self, n: int, what: str) -> None:
        if n > self.left:
            raise ValueError(f"{what} has {n} elements, more than the {self.left} left of what a file of this "
                             f"size may decode")
        self.left -= n


def _tensor_header(buf) -> tuple[int | None, list[int]]:
    """``(dtype enum, shape)`` of a ``TensorProto``, without touching its values."""
    dtype_enum, shape = None, []
    for f, w, v in iter_fields(buf):
        if f == 1 and w == VARINT:
            dtype_enum = v
        elif f == 2 and w == LEN:
            shape = decode_shape(v)
    return dtype_enum, shape


class LazyTensor:
    """A ``TensorProto`` not decoded yet: ``dtype`` and ``shape`` from its header; :meth:`decode` gives the
    array within a :class:`Budget`."""

    def __init__(self, buf):
        self.buf = buf
        dtype_enum, self.shape = _tensor_header(buf)
        self.dtype = TF_DTYPES.get(dtype_enum)
        self.ndim = len(self.shape)

    def decode(self, budget: Budget) -> np.ndarray:
        return decode_tensor(self.buf, budget)


def decode_tensor(buf, budget: Budget | None = None) -> np.ndarray:
    """``TensorProto`` -> ndarray (float32, float64, int32 or int64).

    Values come from ``tensor_content`` (raw little-endian bytes) or from the typed repeated fields; a single
    repeated value fills the whole shape (TensorFlow's convention for splatted constants). The declared
    shape is charged to ``budget`` (default: :func:`~npespcn.formats.arch.element_budget` of the buffer's
    size) before anything is allocated.
    """
    dtype_enum, shape = _tensor_header(buf)
    if dtype_enum not in TF_DTYPES:
        raise ValueError(f"unsupported tensor dtype enum {dtype_enum}; expected one of float32, float64, "
                         f"int32, int64 ({sorted(TF_DTYPES)})")
    dtype = TF_DTYPES[dtype_enum]
    if any(d < 0 for d in shape):
        raise ValueError(f"constant has an unknown or negative dimension: shape {shape}")
    size = math.prod(shape)
    (budget or Budget(element_budget(len(buf)))).take(size, f"constant of shape {shape}")
    content, parts, count = None, [], 0
    singles = array("d")                               # unpacked values, 8 bytes each (not Python floats)

    def add(values):
        nonlocal count
        count += len(values)
        if count > max(size, 1):
            raise ValueError(f"constant of shape {shape} lists more than {size} values")
        if len(singles):
            parts.append(np.frombuffer(singles, np.float64).copy())
            del singles[:]
        parts.append(values)

    def add_one(value):
        nonlocal count
        count += 1
        if count > max(size, 1):
            raise ValueError(f"constant of shape {shape} lists more than {size} values")
        singles.append(value)

    for f, w, v in iter_fields(buf):
        if f == 4 and w == LEN:
            content = v
        elif f == 5:                                   # float_val: packed (LEN) or one I32 per element
            if w == LEN:
                add(packed_floats(v))
            else:
                add_one(as_float(v))
        elif f == 6 and w == LEN:                      # double_val, packed
            if len(v) % 8:
                raise ProtobufError("packed doubles: length is not a multiple of 8")
            add(np.frombuffer(bytes(v), "<f8"))
        elif f == 6 and w == I64:                      # double_val, one I64 per element (unpacked)
            add_one(struct.unpack("<d", v)[0])
        elif f == 6:
            raise ProtobufError(f"double_val with wire type {w}; expected packed (2) or 64-bit (1)")
        elif f in (7, 10):                             # int_val / int64_val: packed or one varint each
            if w == LEN:
                if len(v) > max(size, 1) * 10:
                    raise ValueError(f"constant of shape {shape} lists more than {size} values")
                ints, pos = array("q"), 0
                while pos < len(v):
                    x, pos = read_varint(v, pos)
                    ints.append(as_int64(x))
                add(np.frombuffer(ints, np.int64))
            else:
                add_one(as_int64(v))
    if len(singles):
        parts.append(np.frombuffer(singles, np.float64))
    if content is not None:
        if len(content) != size * dtype.itemsize:
            raise ValueError(f"tensor_content holds {len(content)} bytes, shape {shape} of {dtype} needs "
                             f"{size * dtype.itemsize}")
        arr = np.frombuffer(content, dtype=dtype)
    elif count == size:
        arr = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    elif count == 1:
        arr = np.full(size, parts[0][0], dtype=dtype)
    elif count == 0:
        arr = np.zeros(size, dtype=dtype)
    else:
        raise ValueError(f"constant of shape {shape} lists {count} values")
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def _decode_attr(buf, lazy: bool = False, budget: Budget | None = None):
    """``AttrValue`` -> Python value: str, int, float, bool, ndarray (a :class:`LazyTensor` with ``lazy``),
    or a list for ``list`` attributes (``None`` for a list longer than :data:`MAX_LIST_ATTR_BYTES` with
    ``lazy``: nothing an ESPCN graph uses)."""
    value = None
    for f, w, v in iter_fields(buf):
        if f == 1 and w == LEN:                        # ListValue: s (2), i (3, packed), f (4, packed)
            if lazy and len(v) > MAX_LIST_ATTR_BYTES:
                value = None
                continue
            items = []
            for f2, w2, v2 in iter_fields(v):
                if f2 == 2 and w2 == LEN:
                    items.append(bytes(v2).decode("utf-8", "replace"))
                elif f2 == 3:
                    items.extend(packed_varints(v2) if w2 == LEN else [as_int64(v2)])
                elif f2 == 4:
                    items.extend(packed_floats(v2).tolist() if w2 == LEN else [as_float(v2)])
            value = items
        elif f == 2 and w == LEN:
            value = bytes(v).decode("utf-8", "replace")
        elif f == 3 and w == VARINT:
            value = as_int64(v)
        elif f == 4 and w == I32:
            value = as_float(v)
        elif f == 5 and w == VARINT:
            value = bool(v)
        elif f == 6 and w == VARINT:
            value = int(v)
        elif f == 8 and w == LEN:
            value = LazyTensor(v) if lazy else decode_tensor(v, budget)
    return value


def parse_graphdef(data, lazy: bool = False) -> list[Node]:
    """Decode a serialised ``GraphDef`` into its nodes (fields other than ``node`` are ignored).

    Constants are decoded (all within one :class:`Budget` of the data's size), or with ``lazy`` kept as
    :class:`LazyTensor` for :func:`espcn_from_graphdef` to decode those it uses.
    """
    nodes, inputs = [], 0
    budget = Budget(element_budget(len(data)))
    for f, w, v in iter_fields(data):
        if f != 1:
            continue
        if w != LEN:
            raise ProtobufError("GraphDef.node must be a length-delimited message")
        if len(nodes) >= MAX_NODES:
            raise ValueError(f"GraphDef has more than {MAX_NODES} nodes; an ESPCN graph has a few dozen")
        node = Node("", "")
        for f2, w2, v2 in iter_fields(v):
            if f2 == 1:
                node.name = as_str(v2, "NodeDef.name")
            elif f2 == 2:
                node.op = as_str(v2, "NodeDef.op")
            elif f2 == 3:
                inputs += 1
                if inputs > MAX_INPUTS:
                    raise ValueError(f"GraphDef has more than {MAX_INPUTS} inputs; an ESPCN graph has a few dozen")
                node.inputs.append(as_str(v2, "NodeDef.input"))
            elif f2 == 5 and w2 == LEN:
                key, raw = None, None
                for f3, w3, v3 in iter_fields(v2):
                    if f3 == 1:
                        key = as_str(v3, "attr key")
                    elif f3 == 2 and w3 == LEN:
                        raw = v3
                if key is not None and raw is not None:
                    node.attrs[key] = _decode_attr(raw, lazy, budget)
        if not node.name or not node.op:
            raise ValueError("GraphDef has a node without a name or an op")
        nodes.append(node)
    return nodes


def looks_like_graphdef(path) -> bool:
    """Cheap content sniff: a ``GraphDef`` starts with field 1 (``node``, length-delimited): byte 0x0A, and the
    first node decodes with a name and an op."""
    head = file_head(path)
    if not head or head[0] != 0x0A:
        return False
    try:
        for f, w, v in iter_fields(head):
            fields = {f2 for f2, _, _ in iter_fields(v)}
            return f == 1 and w == LEN and {1, 2} <= fields
    except ValueError:
        # The first node runs past the 64 KiB sniff window (a large constant) or is corrupt:
        # decide on the first field's tag alone and let the full parse report any damage.
        return True
    return False


# ------------------------------------------------------------------------------------------ the walk
def _src(name: str) -> str:
    """``"conv1:0"`` -> ``"conv1"``; control inputs (``"^x"``) are returned as they are."""
    return name.split(":")[0]


def _attr(node: Node, key: str, default, kind: type):
    """``node.attrs[key]`` (or ``default``), checked to be a ``kind``."""
    value = node.attrs.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValueError(f"{node.op} {node.name!r}: attribute {key!r} is {value!r}, expected a {kind.__name__}")
    return value


def espcn_from_graphdef(nodes: list[Node], budget: Budget | None = None, path=None) -> tuple[dict, dict]:
    """Infer ``(arch, params)`` of the ESPCN the graph computes; ``params`` in npespcn's layout.

    Constants may be arrays or :class:`LazyTensor` (decoded within ``budget`` once the architecture read
    off their shapes passed :func:`~npespcn.formats.arch.check_arch`). Raises ``ValueError`` naming the
    node when the graph is not a plain ESPCN chain.
    """
    by_name = {n.name: n for n in nodes}
    if len(by_name) != len(nodes):
        raise ValueError("GraphDef has duplicate node names")
    consumers: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            if not i.startswith("^"):
                consumers.setdefault(_src(i), []).append(n)

    def const(name):
        node = by_name.get(_src(name))
        for _ in range(len(nodes)):                    # bounded: a cycle of Identity nodes must not hang
            if node is None or node.op != "Identity" or not node.inputs:
                break
            node = by_name.get(_src(node.inputs[0]))
        if node is None or node.op != "Const" or not isinstance(node.attrs.get("value"), (np.ndarray, LazyTensor)):
            return None
        return node.attrs["value"]

    placeholders = [n for n in nodes if n.op == "Placeholder"]
    if len(placeholders) != 1:
        raise ValueError(f"expected exactly one Placeholder input, found {len(placeholders)}")

    # Follow the chain; `steps` becomes [("conv", W, b), ("act", name), ("d2s", r), ...].
    steps, node = [], placeholders[0]
    for _ in range(len(nodes)):
        nxt = consumers.get(node.name, [])
        if not nxt:
            break
        if len(nxt) > 1:
            raise ValueError(f"node {node.name!r} feeds {len(nxt)} nodes ({', '.join(c.name for c in nxt)}); "
                             f"an ESPCN graph is a single chain")
        node = nxt[0]
        op, attrs = node.op, node.attrs
        if op == "Identity":
            continue
        if op == "Conv2D":
            w = const(node.inputs[1]) if len(node.inputs) > 1 else None
            if w is None or w.ndim != 4:
                raise ValueError(f"Conv2D {node.name!r}: its filter is not a constant 4-D tensor")
            if _attr(node, "data_format", "NHWC", str) != "NHWC":
                raise ValueError(f"Conv2D {node.name!r}: data_format {attrs['data_format']!r}, expected NHWC")
            for key in ("strides", "dilations"):
                if _attr(node, key, [1, 1, 1, 1], list) != [1, 1, 1, 1]:
                    raise ValueError(f"Conv2D {node.name!r}: {key} {attrs[key]}, expected all 1")
            if _attr(node, "padding", "", str) != "SAME":
                raise ValueError(f"Conv2D {node.name!r}: padding {attrs.get('padding')!r}, expected SAME")
            steps.append(["conv", node.name, w, None])
        elif op in BIAS_OPS:
            if not steps or steps[-1][0] != "conv" or steps[-1][3] is not None:
                raise ValueError(f"{op} {node.name!r} does not follow a convolution")
            others = [i for i in node.inputs if _src(i) != steps[-1][1] and not i.startswith("^")]
            b = const(others[0]) if len(others) == 1 else None
            if b is None or b.ndim != 1:
                raise ValueError(f"{op} {node.name!r}: expected a constant 1-D bias")
            steps[-1][3] = b
        elif op in ACTIVATION_OPS:
            steps.append(["act", ACTIVATION_OPS[op]])
        elif op == "DepthToSpace":
            if _attr(node, "data_format", "NHWC", str) != "NHWC":
                raise ValueError(f"DepthToSpace {node.name!r}: data_format {attrs['data_format']!r}, "
                                 f"expected NHWC")
            steps.append(["d2s", _attr(node, "block_size", 0, int)])
        elif op == "Transpose":
            perm = const(node.inputs[1]) if len(node.inputs) > 1 else None
            if isinstance(perm, LazyTensor):
                perm = perm.decode(Budget(4)) if list(perm.shape) == [4] else None
            if perm is None or perm.tolist() != [0, 3, 1, 2]:
                raise ValueError(f"Transpose {node.name!r}: only the final NHWC -> NCHW (0, 3, 1, 2) is accepted")
            steps.append(["nchw"])
        else:
            raise ValueError(f"unsupported op {op!r} (node {node.name!r}) in an ESPCN graph; accepted: Conv2D, "
                             f"{', '.join(BIAS_OPS)}, Relu, Tanh, DepthToSpace, Identity, Transpose")
    return _assemble(steps, budget, path)


def _value(x, budget: Budget) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.decode(budget)


def _assemble(steps, budget: Budget | None = None, path=None) -> tuple[dict, dict]:
    kinds = [s[0] for s in steps]
    if kinds.count("d2s") != 1:
        raise ValueError(f"expected one DepthToSpace after the convolutions, found {kinds.count('d2s')}")
    d = kinds.index("d2s")
    r = steps[d][1]
    before, after = steps[:d], [s for s in steps[d + 1:] if s[0] != "nchw"]
    if "nchw" in kinds[:d]:
        raise ValueError("Transpose is only accepted at the very end of the graph")
    # Split the part before DepthToSpace into (conv, optional activation) groups.
    groups = []
    for s in before:
        if s[0] == "conv":
            groups.append([s, None])
        elif not groups or groups[-1][1] is not None:
            raise ValueError("an activation must follow a convolution (found two in a row, or one first)")
        else:
            groups[-1][1] = s[1]
    if len(groups) < 2:
        raise ValueError(f"an ESPCN needs at least one hidden convolution and the sub-pixel one, "
                         f"found {len(groups)} convolution(s)")
    hidden_acts = {act for _, act in groups[:-1]}
    if len(hidden_acts) != 1 or None in hidden_acts:
        raise ValueError(f"every hidden convolution must be followed by the same activation, got "
                         f"{[act for _, act in groups[:-1]]}")
    out_acts = [a for a in [groups[-1][1]] + [s[1] for s in after] if a is not None]
    if any(s[0] != "act" for s in after) or len(out_acts) > 1:
        raise ValueError(f"after DepthToSpace only one activation and the NCHW Transpose are accepted, got "
                         f"{[s[0] for s in after]}")

    # The architecture from the constants' declared shapes, checked before any value is decoded.
    layers, channels, c_in = [], None, None
    for i, ((_, name, w, b), _) in enumerate(groups, start=1):
        for what, t in (("filter", w), ("bias", b)):
            if t is not None and (t.dtype is None or np.dtype(t.dtype).kind != "f"):
                raise ValueError(f"Conv2D {name!r}: its {what} is {t.dtype}, not float32 or float64")
        k_h, k_w, cin, cout = w.shape
        if k_h != k_w or k_h % 2 == 0:
            raise ValueError(f"Conv2D {name!r}: kernel {k_h}x{k_w}; npespcn needs square odd kernels")
        if c_in is None:
            channels = cin
        elif cin != c_in:
            raise ValueError(f"Conv2D {name!r} takes {cin} channels but the previous layer gives {c_in}")
        if b is not None and tuple(b.shape) != (cout,):
            raise ValueError(f"Conv2D {name!r}: bias of shape {tuple(b.shape)}, expected ({cout},)")
        if i < len(groups):                            # hidden layer: [kernel size, filters]
            layers.append([int(k_h), int(cout)])
        c_in = cout
    if r < 1 or c_in != channels * r * r:
        raise ValueError(f"DepthToSpace with block size {r} needs {channels}*{r}*{r} = {channels * r * r} "
                         f"channels, the last convolution gives {c_in}")
    if groups[-1][0][2].shape[0] != 3:
        k = groups[-1][0][2].shape[0]
        raise ValueError(f"the last convolution has a {k}x{k} kernel; npespcn's ESPCN uses 3x3 there")
    arch = check_arch({"scale": int(r), "channels": int(channels), "layers": layers,
                       "activation": hidden_acts.pop(), "output_activation": out_acts[0] if out_acts else None},
                      path)

    budget = budget or Budget(element_budget(0))
    params = {}
    for i, ((_, name, w, b), _) in enumerate(groups, start=1):
        w = _value(w, budget)
        b = np.zeros(w.shape[3], np.float32) if b is None else _value(b, budget)
        params[f"conv{i}.weight"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1), dtype=np.float32)
        params[f"conv{i}.bias"] = np.asarray(b, dtype=np.float32)
    last = f"conv{len(groups)}"
    params[f"{last}.weight"] = np.ascontiguousarray(tf_to_torch_channel_order(params[f"{last}.weight"], r))
    params[f"{last}.bias"] = np.ascontiguousarray(tf_to_torch_channel_order(params[f"{last}.bias"], r))
    return arch, params


def tf_to_torch_channel_order(x, r):
    """Reorder channels from TensorFlow's depth_to_space order to PyTorch's (npespcn's).

    TensorFlow reads sub-pixel ``(i, j)`` of output channel ``c`` from input channel ``(i*r + j)*C + c``;
    PyTorch from ``c*r*r + i*r + j``. Works on any array whose axis 0 is that channel axis (e.g. conv
    weights (C*r*r, ...) or a bias (C*r*r,)).
    """
    Cr2 = x.shape[0]
    if r < 1 or Cr2 % (r * r):
        raise ValueError(f"tf_to_torch_channel_order: axis 0 must be divisible by r*r = {r * r}, got {Cr2}")
    C = Cr2 // (r * r)
    return x.reshape(r * r, C, *x.shape[1:]).swapaxes(0, 1).reshape(x.shape)


def read_graphdef(path) -> tuple[dict, dict]:
    """Read ``path`` and return ``(arch, params)`` (see :func:`espcn_from_graphdef`): the graph is parsed
    lazily and only the constants the chain uses are decoded, within the file's element budget."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        nodes = parse_graphdef(data, lazy=True)
    except ValueError as e:
        raise ValueError(f"{path}: not a readable TensorFlow GraphDef ({e})") from None
    try:
        return espcn_from_graphdef(nodes, Budget(element_budget(len(data))), path)
    except ArchError:
        raise
    except ValueError as e:
        raise ValueError(f"{path}: not an ESPCN graph: {e}") from None
