"""Write an ESPCN as a TensorFlow frozen ``GraphDef`` (``.pb``) laid out like the published TF-ESPCN files.

The published ``ESPCN_x2/3/4.pb`` (which OpenCV's ``dnn_superres`` reads) hold, in this order, the
constants and then the chain (:mod:`npespcn.formats.tf_graphdef` reads both)::

    NCHW_output/perm  Const int32 [0, 3, 1, 2]
    b3, b2, b1        Const float (filters,)           f3, f2, f1   Const float HWIO (k, k, in, out)
    IteratorGetNext   Placeholder float, NHWC (N, H, W, 1): Y in [0, 1]
    conv1             Conv2D(IteratorGetNext, f1)  SAME, strides and dilations 1, NHWC
    add               Add(conv1, b1)
    Relu              Relu(add)
    conv2 ... add_1 ... Relu_1 ... conv3 ... add_2
    DepthToSpace      DepthToSpace(add_2) block_size r, NHWC
    NHWC_output       Tanh(DepthToSpace)                      (the output activation; absent for none)
    NCHW_output       Transpose(NHWC_output, NCHW_output/perm) (N, 1, r*H, r*W)

A model of more layers continues the numbering (``conv4``, ``add_3``, ``Relu_3``, ...; TensorFlow's own
naming), and a tanh model writes ``Tanh``, ``Tanh_1``, ... Kernels are stored as TensorFlow's HWIO
(``weight.transpose(2, 3, 1, 0)``), and the last layer's output channels are permuted from npespcn's
shuffle order ``c*r*r + i*r + j`` to ``depth_to_space``'s ``(i*r + j)*C + c`` (the same for one channel).
Hidden activations: relu or tanh (the reader, OpenCV and TensorFlow's ESPCN layout know no other);
output activation: none, relu or tanh. Map attributes are written sorted by key and nothing records a
date or a version, so the same weights always give the same bytes.
"""
from __future__ import annotations

import numpy as np

from ..atomic import atomic_write
from .arch import check_exportable
from .protobuf import len_field, packed_varints_field, varint_field

TF_FLOAT, TF_INT32 = 1, 3
TF_OPS = {"relu": "Relu", "tanh": "Tanh"}
INPUT, OUTPUT = "IteratorGetNext", "NCHW_output"


def torch_to_tf_channel_order(x: np.ndarray, r: int) -> np.ndarray:
    """The inverse of :func:`npespcn.formats.tf_graphdef.tf_to_torch_channel_order`: axis 0 from npespcn's
    ``c*r*r + i*r + j`` to TensorFlow's ``(i*r + j)*C + c``."""
    c = x.shape[0] // (r * r)
    return x.reshape(c, r * r, *x.shape[1:]).swapaxes(0, 1).reshape(x.shape)


def _tensor(array: np.ndarray, dtype: int) -> bytes:
    """``TensorProto``: 1 dtype, 2 tensor_shape (2: dim, 1: size), 4 tensor_content (little-endian bytes)."""
    shape = b"".join(len_field(2, varint_field(1, d)) for d in array.shape)
    raw = np.ascontiguousarray(array, dtype="<f4" if dtype == TF_FLOAT else "<i4").tobytes()
    return varint_field(1, dtype) + len_field(2, shape) + len_field(4, raw)


def _attr_value(value) -> bytes:
    """``AttrValue``: ('type', n) -> 6 type, str -> 2 s, bool -> 5 b, int -> 3 i, list -> 1 list (3: i packed),
    ('tensor', bytes) -> 8 tensor."""
    if isinstance(value, tuple) and value[0] == "type":
        return varint_field(6, value[1])
    if isinstance(value, tuple) and value[0] == "tensor":
        return len_field(8, value[1])
    if isinstance(value, str):
        return len_field(2, value)
    if isinstance(value, bool):
        return varint_field(5, int(value))
    if isinstance(value, list):
        return len_field(1, packed_varints_field(3, value))
    return varint_field(3, value)


def _node(name: str, op: str, inputs=(), **attrs) -> bytes:
    """``NodeDef``: 1 name, 2 op, 3 inputs, 5 attr map entries (1 key, 2 AttrValue), sorted by key."""
    out = len_field(1, name) + len_field(2, op) + b"".join(len_field(3, i) for i in inputs)
    for k in sorted(attrs):
        out += len_field(5, len_field(1, k) + len_field(2, _attr_value(attrs[k])))
    return len_field(1, out)


def _numbered(base: str, i: int) -> str:
    """TensorFlow's default names: ``add``, ``add_1``, ``add_2``, ..."""
    return base if i == 0 else f"{base}_{i}"


def graphdef_bytes(arch: dict, params: dict) -> bytes:
    """The serialised frozen ``GraphDef`` of the ESPCN ``(arch, params)`` (npespcn's names and layout).

    Raises:
        ValueError: an activation this layout cannot hold (prelu, gelu, identity between layers), or
            parameters that do not fit ``arch``.
    """
    arch = check_exportable(arch, params, ("relu", "tanh"), (None, "relu", "tanh"), "TensorFlow GraphDef")
    r, n = arch["scale"], len(arch["layers"]) + 1
    float_t, conv_attrs = ("type", TF_FLOAT), {"data_format": "NHWC", "dilations": [1, 1, 1, 1],
                                               "padding": "SAME", "strides": [1, 1, 1, 1],
                                               "use_cudnn_on_gpu": True}
    consts, chain = [], [_node(INPUT, "Placeholder", dtype=float_t)]
    perm = _tensor(np.array([0, 3, 1, 2]), TF_INT32)
    consts.append(_node(f"{OUTPUT}/perm", "Const", dtype=("type", TF_INT32), value=("tensor", perm)))
    weights, biases = [], []
    for i in range(1, n + 1):
        w = params[f"conv{i}.weight"].transpose(2, 3, 1, 0)                # (out, in, k, k) -> HWIO
        b = params[f"conv{i}.bias"]
        if i == n:
            w = torch_to_tf_channel_order(w.transpose(3, 0, 1, 2), r).transpose(1, 2, 3, 0)
            b = torch_to_tf_channel_order(np.asarray(b), r)
        weights.append(_node(f"f{i}", "Const", dtype=float_t, value=("tensor", _tensor(w, TF_FLOAT))))
        biases.append(_node(f"b{i}", "Const", dtype=float_t, value=("tensor", _tensor(b, TF_FLOAT))))
    consts += biases[::-1] + weights[::-1]
    prev, act = INPUT, TF_OPS[arch["activation"]]
    for i in range(1, n + 1):
        chain.append(_node(f"conv{i}", "Conv2D", [prev, f"f{i}"], T=float_t, **conv_attrs))
        chain.append(_node(_numbered("add", i - 1), "Add", [f"conv{i}", f"b{i}"], T=float_t))
        prev = _numbered("add", i - 1)
        if i < n:
            chain.append(_node(_numbered(act, i - 1), act, [prev], T=float_t))
            prev = _numbered(act, i - 1)
    chain.append(_node("DepthToSpace", "DepthToSpace", [prev], T=float_t, block_size=r, data_format="NHWC"))
    prev = "DepthToSpace"
    if arch["output_activation"] is not None:
        chain.append(_node("NHWC_output", TF_OPS[arch["output_activation"]], [prev], T=float_t))
        prev = "NHWC_output"
    chain.append(_node(OUTPUT, "Transpose", [prev, f"{OUTPUT}/perm"], T=float_t, Tperm=("type", TF_INT32)))
    return b"".join(consts + chain) + len_field(2, b"")               # + an empty function library


def write_graphdef(arch: dict, params: dict, path, overwrite: bool = False) -> None:
    """Write :func:`graphdef_bytes` to ``path`` atomically; never replaces an existing file unless
    ``overwrite`` (``FileExistsError``, see :func:`npespcn.atomic.atomic_write`)."""
    data = graphdef_bytes(arch, params)
    with atomic_write(path, overwrite=overwrite) as f:
        f.write(data)
