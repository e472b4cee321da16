"""ONNX graphs of an ESPCN, written and read without the ``onnx`` package.

**Writing** (:func:`write_onnx`). The graph uses standard operators of the default domain only, at
opset :data:`OPSET` (IR version :data:`IR_VERSION`)::

    input (N, 1, H, W) float32 ─ Conv(conv1.weight, conv1.bias) ─ Tanh ─ ... ─ Conv(convL.weight, convL.bias)
        ─ DepthToSpace(blocksize=r, mode="CRD") ─ [output activation] ─ output (N, 1, r*H, r*W) float32

``N``, ``H`` and ``W`` are symbolic (``dim_param``): one file serves every batch and image size. The input is
the BT.601 luma Y scaled to [0, 1], as :func:`npespcn.upscale` feeds the network (``channels`` is 1 for the
shipped models). Convolutions are stride 1 with ``pads = (k - 1) / 2`` on every side, like npespcn's;
hidden activations are ``Relu``, ``Tanh`` or ``PRelu`` (slopes of shape ``(f, 1, 1)``); identity writes no
node. ``DepthToSpace`` in ``CRD`` mode reads sub-pixel ``(i, j)`` of colour ``c`` from channel
``c*r*r + i*r + j``, npespcn's (and PyTorch's) periodic shuffle, so the weights are written as they are.
GELU has no operator before opset 20 and is refused. ``layout="nhwc"`` instead takes an input of shape
``(N, H, W, 1)`` and starts with a ``Transpose(perm=[0, 3, 1, 2])``: the layout OpenCV 5's
``dnn_superres`` feeds its ONNX models (it reshapes Y to ``[1, H, W, 1]``); the output stays NCHW.

The message is built with :mod:`npespcn.formats.protobuf`'s writer, field numbers from ``onnx.proto``::

    ModelProto        1: ir_version  2: producer_name  6: doc_string  7: graph  8: repeated opset_import
    OperatorSetIdProto  1: domain  2: version
    GraphProto        1: repeated node  2: name  5: repeated initializer  10: doc_string  11: input  12: output
    NodeProto         1: repeated input  2: repeated output  3: name  4: op_type  5: repeated attribute
    AttributeProto    1: name  2: f  3: i  4: s  8: repeated ints  20: type (1 FLOAT, 2 INT, 3 STRING, 7 INTS)
    TensorProto       1: repeated dims  2: data_type (1 FLOAT)  4: float_data  8: name  9: raw_data
                      13: external_data  14: data_location
    ValueInfoProto    1: name  2: type      TypeProto  1: tensor_type      Tensor  1: elem_type  2: shape
    TensorShapeProto  1: repeated dim       Dimension  1: dim_value  2: dim_param

Fields are written in a fixed order and carry no date or version, so the same weights always give the
same bytes.

**Reading** (:func:`read_onnx`) accepts the ESPCN chains this writer produces and those of other
exporters: an NCHW input, or an NHWC one followed by ``Transpose(0, 3, 1, 2)`` (a TensorFlow graph
converted by tf2onnx, OpenCV 5's layout); ``Conv`` with its bias as an input or as a following ``Add`` of a
constant; ``Relu``, ``Tanh``, ``PRelu``, ``Identity``; ``DepthToSpace`` in either mode (``DCR``, ONNX's default
and TensorFlow's order, has its last layer's channels permuted into npespcn's); after it one ``Relu`` or
``Tanh`` and ``Transpose`` nodes between NCHW and NHWC. A pixel shuffle spelled as Reshape-Transpose-Reshape
(older PyTorch exports) is not accepted. Like the other readers it treats the file as hostile: the graph is
parsed without decoding any initializer, the architecture is read off the initializers' declared shapes
and checked (:func:`npespcn.formats.arch.check_arch`), and only then are the initializers the chain uses
decoded, within :func:`npespcn.formats.arch.element_budget` of the file's size; external data, other
element types and anything not listed raise ``ValueError``.
"""
from __future__ import annotations

import math

import numpy as np

from ..atomic import atomic_write
from .arch import ArchError, check_arch, check_exportable, element_budget
from .protobuf import (
    I32,
    LEN,
    VARINT,
    ProtobufError,
    as_float,
    as_int64,
    as_str,
    file_head,
    iter_fields,
    len_field,
    packed_floats,
    packed_varints,
    varint_field,
)
from .tf_graphdef import Budget, tf_to_torch_channel_order

OPSET = 13
"""The opset of the default domain the written graphs declare (DepthToSpace's ``mode`` exists from 11)."""
IR_VERSION = 7
"""The ONNX IR version that goes with opset 13."""
INPUT, OUTPUT = "input", "output"
MAX_NODES = 4096
MAX_ATTR_INTS = 64
ONNX_FLOAT = 1
ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh"}
EXPORTABLE = ("identity", "relu", "tanh", "prelu")
"""Hidden activations :func:`write_onnx` can express with opset-13 operators."""

# AttributeProto.type values.
A_FLOAT, A_INT, A_STRING, A_INTS = 1, 2, 3, 7


# ------------------------------------------------------------------------------------------ writing
def _attribute(name: str, value) -> bytes:
    """An ``AttributeProto``: an int, a list of ints or a string."""
    out = len_field(1, name)
    if isinstance(value, str):
        return out + len_field(4, value) + varint_field(20, A_STRING)
    if isinstance(value, (list, tuple)):
        return out + b"".join(varint_field(8, v) for v in value) + varint_field(20, A_INTS)
    return out + varint_field(3, value) + varint_field(20, A_INT)


def _node(op: str, inputs, output: str, **attrs) -> bytes:
    out = b"".join(len_field(1, i) for i in inputs) + len_field(2, output) + len_field(3, output)
    out += len_field(4, op)
    for name in sorted(attrs):
        out += len_field(5, _attribute(name, attrs[name]))
    return out


def _initializer(name: str, array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype="<f4")
    dims = b"".join(varint_field(1, d) for d in array.shape)
    return dims + varint_field(2, ONNX_FLOAT) + len_field(8, name) + len_field(9, array.tobytes())


def _value_info(name: str, dims) -> bytes:
    """A float32 tensor ``name`` whose dims are ints (``dim_value``) or strings (``dim_param``)."""
    shape = b"".join(len_field(1, varint_field(1, d) if isinstance(d, int) else len_field(2, d)) for d in dims)
    tensor = varint_field(1, ONNX_FLOAT) + len_field(2, shape)
    return len_field(1, name) + len_field(2, len_field(1, tensor))


def onnx_bytes(arch: dict, params: dict, layout: str = "nchw") -> bytes:
    """The serialised ``ModelProto`` of the ESPCN ``(arch, params)`` (npespcn's names and layout, as
    :attr:`npespcn.ESPCN.arch` and :attr:`~npespcn.ESPCN.params` give them); see the module docstring.

    Args:
        arch: the architecture record.
        params: ``{"conv1.weight": (f1, C, k, k), ...}`` float arrays.
        layout: ``"nchw"`` (input ``(N, C, H, W)``) or ``"nhwc"`` (input ``(N, H, W, C)``, then a Transpose).

    Raises:
        ValueError: an activation opset 13 cannot express (GELU), parameters that do not fit ``arch``, or
            an unknown ``layout``.
    """
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
    arch = check_exportable(arch, params, EXPORTABLE, (None, "relu", "tanh"), "ONNX")
    r, c = arch["scale"], arch["channels"]
    nodes, inits, prev = [], [], INPUT
    if layout == "nhwc":
        nodes.append(_node("Transpose", [INPUT], "nchw_input", perm=[0, 3, 1, 2]))
        prev = "nchw_input"
    kernels = [k for k, _ in arch["layers"]] + [3]
    for i, k in enumerate(kernels, start=1):
        w, b = f"conv{i}.weight", f"conv{i}.bias"
        inits += [_initializer(w, params[w]), _initializer(b, params[b])]
        p = (k - 1) // 2
        nodes.append(_node("Conv", [prev, w, b], f"conv{i}", dilations=[1, 1], group=1, kernel_shape=[k, k],
                           pads=[p, p, p, p], strides=[1, 1]))
        prev = f"conv{i}"
        if i == len(kernels) or arch["activation"] == "identity":
            continue
        if arch["activation"] == "prelu":
            slope = f"prelu{i}.weight"
            inits.append(_initializer(slope, np.reshape(params[slope], (-1, 1, 1))))
            nodes.append(_node("PRelu", [prev, slope], f"act{i}"))
        else:
            nodes.append(_node(ONNX_ACTIVATIONS[arch["activation"]], [prev], f"act{i}"))
        prev = f"act{i}"
    out_act = arch["output_activation"]
    nodes.append(_node("DepthToSpace", [prev], OUTPUT if out_act is None else "shuffle", blocksize=r, mode="CRD"))
    if out_act is not None:
        nodes.append(_node(ONNX_ACTIVATIONS[out_act], ["shuffle"], OUTPUT))
    in_dims = ["N", c, "H", "W"] if layout == "nchw" else ["N", "H", "W", c]
    doc = (f"ESPCN x{r} (npespcn): {INPUT} {tuple(in_dims)} float32, Y in [0, 1]; {OUTPUT} (N, {c}, {r}*H, "
           f"{r}*W) float32. Layers {arch['layers']}, activation {arch['activation']}, output activation "
           f"{out_act}.")
    graph = (b"".join(len_field(1, n) for n in nodes) + len_field(2, f"espcn_x{r}")
             + b"".join(len_field(5, t) for t in inits) + len_field(10, doc)
             + len_field(11, _value_info(INPUT, in_dims))
             + len_field(12, _value_info(OUTPUT, ["N", c, f"{r}H", f"{r}W"])))
    return (varint_field(1, IR_VERSION) + len_field(2, "npespcn") + len_field(6, doc) + len_field(7, graph)
            + len_field(8, varint_field(2, OPSET)))


def write_onnx(arch: dict, params: dict, path, overwrite: bool = False, layout: str = "nchw") -> None:
    """Write :func:`onnx_bytes` to ``path`` atomically; never replaces an existing file unless
    ``overwrite`` (``FileExistsError``, see :func:`npespcn.atomic.atomic_write`)."""
    data = onnx_bytes(arch, params, layout)
    with atomic_write(path, overwrite=overwrite) as f:
        f.write(data)


# ------------------------------------------------------------------------------------------ reading
class LazyInitializer:
    """A ``TensorProto`` not decoded yet: ``name``, ``dims``, ``data_type``; :meth:`decode` gives the array.

    Parsing keeps only the buffer and counts the ``float_data`` values, so an initializer of a million
    unpacked values costs no more memory than its bytes until it is decoded (within a budget)."""

    def __init__(self, buf):
        self.buf, self.name, self.dims, self.data_type, self.external = buf, "", [], None, False
        self.raw, self.count = None, 0
        for f, w, v in iter_fields(buf):
            if f == 1:
                self.dims.extend(packed_varints(v) if w == LEN else [as_int64(v)])
                if len(self.dims) > 8:
                    raise ValueError("an initializer has more than 8 dimensions")
            elif f == 2 and w == VARINT:
                self.data_type = v
            elif f == 8:
                self.name = as_str(v, "TensorProto.name")
            elif f == 9 and w == LEN:
                self.raw = v
            elif f == 4:                                # float_data: packed, or one I32 per value
                if w == LEN and len(v) % 4 == 0:
                    self.count += len(v) // 4
                elif w == I32:
                    self.count += 1
                else:
                    raise ProtobufError(f"float_data with wire type {w} and {len(v)} bytes")
            elif f in (13, 14) and (w == LEN or v):    # external_data / data_location EXTERNAL
                self.external = True

    @property
    def shape(self) -> tuple:
        return tuple(self.dims)

    def decode(self, budget: Budget) -> np.ndarray:
        """The float32 array, its size charged to ``budget`` before anything is allocated."""
        if self.external:
            raise ValueError(f"initializer {self.name!r} keeps its data in an external file; only "
                             f"self-contained .onnx files are read")
        if self.data_type != ONNX_FLOAT:
            raise ValueError(f"initializer {self.name!r} has ONNX data type {self.data_type}; expected 1 (float)")
        if any(d < 0 for d in self.dims):
            raise ValueError(f"initializer {self.name!r} has a negative dimension: {self.dims}")
        size = math.prod(self.dims)
        budget.take(size, f"initializer {self.name!r} of shape {self.shape}")
        if self.raw is not None:
            if len(self.raw) != 4 * size:
                raise ValueError(f"initializer {self.name!r}: raw_data holds {len(self.raw)} bytes, shape "
                                 f"{self.shape} of float32 needs {4 * size}")
            return np.frombuffer(bytes(self.raw), "<f4").astype(np.float32).reshape(self.shape)
        if self.count != size:
            raise ValueError(f"initializer {self.name!r} lists {self.count} values, shape {self.shape} needs {size}")
        out, pos = np.empty(size, np.float32), 0
        for f, w, v in iter_fields(self.buf):
            if f == 4 and w == LEN:
                out[pos:pos + len(v) // 4] = packed_floats(v)
                pos += len(v) // 4
            elif f == 4:
                out[pos] = as_float(v)
                pos += 1
        return out.reshape(self.shape)


class Node:
    """One ``NodeProto``: ``inputs``, ``outputs``, ``op``, ``name`` and decoded ``attrs``."""

    def __init__(self, buf):
        self.inputs, self.outputs, self.op, self.name, self.domain, self.attrs = [], [], "", "", "", {}
        for f, w, v in iter_fields(buf):
            if f == 1:
                self.inputs.append(as_str(v, "NodeProto.input"))
            elif f == 2:
                self.outputs.append(as_str(v, "NodeProto.output"))
            elif f == 3:
                self.name = as_str(v, "NodeProto.name")
            elif f == 4:
                self.op = as_str(v, "NodeProto.op_type")
            elif f == 7:
                self.domain = as_str(v, "NodeProto.domain")
            elif f == 5 and w == LEN:
                name, value = _attribute_value(v)
                self.attrs[name] = value
        if len(self.inputs) > 16 or len(self.outputs) > 16:
            raise ValueError(f"node {self.name!r} ({self.op}) has more than 16 inputs or outputs")

    def attr(self, key: str, default, kind: type):
        value = self.attrs.get(key, default)
        if not isinstance(value, kind):
            raise ValueError(  # noqa: TRY004 - a damaged file is a ValueError
                f"{self.op} {self.name!r}: attribute {key!r} is {value!r}, expected a {kind.__name__}")
        return value


def _attribute_value(buf):
    """``(name, value)`` of an ``AttributeProto``: an int, a float, a string or a list of ints; other kinds
    (tensors, graphs) are kept as ``None`` (no ESPCN operator takes them)."""
    name, value, ints = "", None, []
    for f, w, v in iter_fields(buf):
        if f == 1:
            name = as_str(v, "AttributeProto.name")
        elif f == 2 and w == I32:
            value = as_float(v)
        elif f == 3 and w == VARINT:
            value = as_int64(v)
        elif f == 4 and w == LEN:
            value = bytes(v[:64]).decode("utf-8", "replace")
        elif f == 8:
            ints.extend(packed_varints(v[:MAX_ATTR_INTS * 10]) if w == LEN else [as_int64(v)])
            if len(ints) > MAX_ATTR_INTS:
                raise ValueError(f"attribute {name!r} lists more than {MAX_ATTR_INTS} integers")
            value = ints
    return name, value


def parse_onnx(data) -> tuple[list[Node], dict, list[str], int | None]:
    """``(nodes, initializers by name, graph input names, default-domain opset)`` of a ``ModelProto``;
    initializers are :class:`LazyInitializer` (nothing decoded)."""
    graph, opset = None, None
    for f, w, v in iter_fields(data):
        if f == 7 and w == LEN:
            graph = v
        elif f == 8 and w == LEN:
            domain, version = "", None
            for f2, w2, v2 in iter_fields(v):
                if f2 == 1:
                    domain = as_str(v2, "opset domain")
                elif f2 == 2 and w2 == VARINT:
                    version = as_int64(v2)
            if domain in ("", "ai.onnx"):
                opset = version
    if graph is None:
        raise ValueError("no graph in the ModelProto")
    nodes, inits, inputs = [], {}, []
    for f, w, v in iter_fields(graph):
        if w != LEN:
            continue
        if f == 1:
            if len(nodes) >= MAX_NODES:
                raise ValueError(f"the graph has more than {MAX_NODES} nodes; an ESPCN graph has a few dozen")
            nodes.append(Node(v))
        elif f == 5:
            if len(inits) >= MAX_NODES:
                raise ValueError(f"the graph has more than {MAX_NODES} initializers")
            t = LazyInitializer(v)
            inits[t.name] = t
        elif f == 11:
            if len(inputs) >= MAX_NODES:
                raise ValueError(f"the graph has more than {MAX_NODES} inputs")
            inputs.append(next((as_str(v2, "ValueInfoProto.name") for f2, _, v2 in iter_fields(v) if f2 == 1), ""))
    return nodes, inits, inputs, opset


def looks_like_onnx(path) -> bool:
    """Cheap content sniff: a ``ModelProto`` starts with ``ir_version`` (field 1, varint: byte 0x08) and
    holds a graph (field 7) among its first fields."""
    head = file_head(path)
    if not head or head[0] != 0x08:
        return False
    try:
        for f, w, _ in iter_fields(head):
            if f == 7:
                return w == LEN
            if f not in (1, 2, 3, 4, 5, 6, 8, 14, 20, 25):
                return False
    except ValueError:
        return True                                    # the graph runs past the sniff window
    return False


def _same_padding(node: Node, k: int) -> bool:
    auto = node.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return True                                    # odd kernels: the same (k - 1) / 2 on both sides
    p = (k - 1) // 2
    return auto == "NOTSET" and node.attr("pads", [0, 0, 0, 0], list) == [p, p, p, p]


def espcn_from_onnx(nodes, inits, inputs, budget: Budget, path=None) -> tuple[dict, dict]:
    """Infer ``(arch, params)`` of the ESPCN chain of an ONNX graph (see the module docstring)."""
    data_inputs = [i for i in inputs if i not in inits]
    if len(data_inputs) != 1:
        raise ValueError(f"expected one graph input besides the initializers, found {len(data_inputs)}")
    consumers: dict[str, list[Node]] = {}
    for n in nodes:
        if n.domain not in ("", "ai.onnx"):
            raise ValueError(f"node {n.name!r} uses the custom domain {n.domain!r}; only standard operators")
        for i in n.inputs:
            if i not in inits:
                consumers.setdefault(i, []).append(n)

    def init(node, index, what):
        name = node.inputs[index] if len(node.inputs) > index else ""
        if name not in inits:
            raise ValueError(f"{node.op} {node.name!r}: its {what} is not an initializer")
        return inits[name]

    convs, d2s, after, nhwc, tensor = [], None, [], False, data_inputs[0]
    for _ in range(len(nodes) + 1):
        nxt = consumers.get(tensor, [])
        if not nxt:
            break
        if len(nxt) > 1:
            raise ValueError(f"tensor {tensor!r} feeds {len(nxt)} nodes; an ESPCN graph is a single chain")
        node = nxt[0]
        if len(node.outputs) != 1:
            raise ValueError(f"{node.op} {node.name!r} has {len(node.outputs)} outputs, expected 1")
        tensor, op = node.outputs[0], node.op
        if op == "Identity":
            continue
        if op == "Transpose":
            perm = node.attr("perm", None, list)
            if not convs and perm == [0, 3, 1, 2] and not nhwc:
                nhwc = True
            elif d2s is None or perm not in ([0, 2, 3, 1], [0, 3, 1, 2]):
                raise ValueError(f"Transpose {node.name!r} (perm {perm}): only NHWC -> NCHW at the input "
                                 f"and NCHW <-> NHWC after DepthToSpace are accepted")
        elif d2s is not None:
            if op not in ("Relu", "Tanh") or after:
                raise ValueError(f"after DepthToSpace only one Relu or Tanh (and Transposes) are accepted, got "
                                 f"{op} {node.name!r}")
            after.append(op.lower())
        elif op == "Conv":
            w = init(node, 1, "weight")
            b = init(node, 2, "bias") if len(node.inputs) > 2 else None
            if len(w.shape) != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
                raise ValueError(f"Conv {node.name!r}: weight of shape {w.shape}; expected (out, in, k, k), k odd")
            k = w.shape[2]
            if node.attr("kernel_shape", [k, k], list) != [k, k] or node.attr("group", 1, int) != 1:
                raise ValueError(f"Conv {node.name!r}: kernel_shape or group do not fit a plain {k}x{k} conv")
            for key in ("strides", "dilations"):
                if node.attr(key, [1, 1], list) != [1, 1]:
                    raise ValueError(f"Conv {node.name!r}: {key} {node.attrs[key]}, expected all 1")
            if not _same_padding(node, k):
                raise ValueError(f"Conv {node.name!r}: padding {node.attrs.get('pads')} is not (k - 1) / 2 "
                                 f"on every side")
            convs.append({"name": node.name, "w": w, "b": b, "act": None, "slope": None})
        elif op == "Add" and convs and convs[-1]["b"] is None and convs[-1]["act"] is None:
            others = [i for i in node.inputs if i in inits]
            if len(others) != 1:
                raise ValueError(f"Add {node.name!r}: expected a constant bias")
            convs[-1]["b"] = inits[others[0]]
        elif op in ("Relu", "Tanh", "PRelu"):
            if not convs or convs[-1]["act"] is not None:
                raise ValueError(f"{op} {node.name!r} does not follow a convolution")
            convs[-1]["act"] = op.lower()
            if op == "PRelu":
                convs[-1]["slope"] = init(node, 1, "slope")
        elif op == "DepthToSpace":
            mode = node.attr("mode", "DCR", str)
            if mode not in ("DCR", "CRD"):
                raise ValueError(f"DepthToSpace {node.name!r}: mode {mode!r}, expected DCR or CRD")
            d2s = (node.attr("blocksize", 0, int), mode)
        else:
            raise ValueError(f"unsupported operator {op!r} (node {node.name!r}) in an ESPCN graph; accepted: "
                             f"Conv, Add, Relu, Tanh, PRelu, Identity, DepthToSpace, Transpose")
    else:
        raise ValueError("the graph's chain does not end")
    if d2s is None:
        raise ValueError("no DepthToSpace: not an ESPCN graph")
    return _assemble(convs, d2s, after, budget, path)


def _assemble(convs, d2s, after, budget, path):
    r, mode = d2s
    if len(convs) < 2:
        raise ValueError(f"an ESPCN needs at least one hidden convolution and the sub-pixel one, found {len(convs)}")
    hidden = {c["act"] or "identity" for c in convs[:-1]}
    if len(hidden) != 1:
        raise ValueError(f"every hidden convolution must be followed by the same activation, got "
                         f"{[c['act'] for c in convs[:-1]]}")
    last_act = convs[-1]["act"]
    if last_act == "prelu" or (last_act and after):
        raise ValueError("the sub-pixel convolution may be followed by at most one Relu or Tanh")
    out_acts = [a for a in [last_act] + after if a]
    layers, channels, c_in = [], convs[0]["w"].shape[1], convs[0]["w"].shape[1]
    for i, c in enumerate(convs, start=1):
        out, cin, k, _ = c["w"].shape
        if cin != c_in:
            raise ValueError(f"Conv {c['name']!r} takes {cin} channels but the previous layer gives {c_in}")
        for what, t in (("bias", c["b"]), ("slope", c["slope"])):
            if t is not None and t.shape not in ((out,), (out, 1, 1), (1, out, 1, 1)):
                raise ValueError(f"Conv {c['name']!r}: {what} of shape {t.shape} does not fit {out} channels")
        if i < len(convs):
            layers.append([int(k), int(out)])
        c_in = out
    if r < 1 or c_in != channels * r * r:
        raise ValueError(f"DepthToSpace with blocksize {r} needs {channels}*{r}*{r} = {channels * r * r} "
                         f"channels, the last convolution gives {c_in}")
    if convs[-1]["w"].shape[2] != 3:
        raise ValueError(f"the last convolution has a {convs[-1]['w'].shape[2]}x{convs[-1]['w'].shape[2]} kernel; "
                         f"npespcn's ESPCN uses 3x3 there")
    arch = check_arch({"scale": int(r), "channels": int(channels), "layers": layers, "activation": hidden.pop(),
                       "output_activation": out_acts[0] if out_acts else None}, path)
    used = [t for c in convs for t in (c["w"], c["b"], c["slope"]) if t is not None]
    declared = sum(math.prod(t.shape) for t in used)
    if declared > budget.left:                         # all of them, before the first is decoded
        raise ValueError(f"the initializers declare {declared} elements, more than the {budget.left} left of "
                         f"what a file of this size may decode")
    params = {}
    for i, c in enumerate(convs, start=1):
        w = c["w"].decode(budget)
        b = np.zeros(w.shape[0], np.float32) if c["b"] is None else c["b"].decode(budget).reshape(-1)
        if i == len(convs) and mode == "DCR":        # DCR reads channel (i*r + j)*C + c: npespcn's is CRD
            w, b = tf_to_torch_channel_order(w, r), tf_to_torch_channel_order(b, r)
        params[f"conv{i}.weight"], params[f"conv{i}.bias"] = np.ascontiguousarray(w), np.ascontiguousarray(b)
        if c["slope"] is not None:
            params[f"prelu{i}.weight"] = np.ascontiguousarray(c["slope"].decode(budget).reshape(-1))
    return arch, params


def read_onnx(path) -> tuple[dict, dict]:
    """Read the ESPCN ONNX graph ``path``: ``(arch, params)`` in npespcn's layout (module docstring)."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        nodes, inits, inputs, _ = parse_onnx(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from None
    try:
        return espcn_from_onnx(nodes, inits, inputs, Budget(element_budget(len(data))), path)
    except ArchError:
        raise
    except ValueError as e:
        raise ValueError(f"{path}: not an ESPCN graph: {e}") from None
