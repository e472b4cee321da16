"""TensorFlow frozen GraphDef (.pb) reading: the wire format, the graph walk, the layout conversion, and
agreement with OpenCV's dnn on the published TF-ESPCN models."""
from __future__ import annotations

import struct
from pathlib import Path

import _formats_writers as W
import numpy as np
import pytest

from npespcn import ESPCN, load_model
from npespcn.formats.protobuf import ProtobufError, iter_fields, read_varint
from npespcn.formats.tf_graphdef import decode_tensor, parse_graphdef, read_graphdef

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "opencv_espcn.npz"


def _random_tf_espcn(rng, channels, scale, layers=((5, 8), (3, 6))):
    ws, bs, c = [], [], channels
    for k, f in list(layers) + [(3, channels * scale * scale)]:
        ws.append(rng.normal(0, 0.3, (k, k, c, f)).astype(np.float32))      # HWIO
        bs.append(rng.normal(0, 0.1, f).astype(np.float32))
        c = f
    return ws, bs


# ------------------------------------------------------------------------------------------ wire format
def test_varint_examples_from_the_protobuf_documentation():
    """150 is encoded 0x96 0x01 (protobuf.dev "Base 128 Varints"); 1 is 0x01; 300 is 0xAC 0x02."""
    assert read_varint(b"\x96\x01", 0) == (150, 2)
    assert read_varint(b"\x01", 0) == (1, 1)
    assert read_varint(b"\xac\x02", 0) == (300, 2)
    assert list(iter_fields(b"\x08\x96\x01")) == [(1, 0, 150)]


@pytest.mark.parametrize("bad", [b"\x96", b"\x0a\x05abc", b"\x0b", b"\xff" * 11, b"\x00\x01", b"\x0d\x00\x00"])
def test_malformed_wire_format_raises_protobuf_error(bad):
    """Truncated varint, a LEN field longer than the buffer, a group wire type, an 11-byte varint, field 0,
    a truncated I32."""
    with pytest.raises(ProtobufError):
        list(iter_fields(bad))


def test_parse_graphdef_decodes_names_ops_inputs_and_attributes():
    data = (W.node("x", "Placeholder", dtype=("type", 1))
            + W.node("k", "Const", value=np.arange(6, dtype=np.float32).reshape(1, 2, 3))
            + W.node("c", "Conv2D", ["x", "k:0"], padding="SAME", strides=[1, 2, 3, 4]))
    nodes = parse_graphdef(data)
    assert [(n.name, n.op, n.inputs) for n in nodes] == [("x", "Placeholder", []), ("k", "Const", []),
                                                         ("c", "Conv2D", ["x", "k:0"])]
    np.testing.assert_array_equal(nodes[1].attrs["value"], np.arange(6, dtype=np.float32).reshape(1, 2, 3))
    assert nodes[2].attrs == {"padding": "SAME", "strides": [1, 2, 3, 4]}


def _double_tensor(shape, payload: bytes) -> bytes:
    """TensorProto of dtype 2 (DT_DOUBLE), ``shape``, then ``payload`` (the value fields)."""
    dims = b"".join(W.f_len(2, W.f_varint(1, d)) for d in shape)
    return W.f_varint(1, 2) + W.f_len(2, dims) + payload


def _double_val_unpacked(x: float) -> bytes:
    """One ``double_val`` (field 6) as wire type I64: key (6 << 3) | 1, then 8 little-endian bytes."""
    return W.varint(6 << 3 | 1) + struct.pack("<d", x)


def test_double_val_is_read_packed_and_unpacked():
    """proto3 writes repeated doubles packed, but a parser must accept the unpacked I64 form too
    (protobuf.dev "Packed Repeated Fields"); it used to be skipped, leaving a constant of zeros."""
    values = [1.5, -2.25, 1e-300]
    unpacked = _double_tensor([3], b"".join(_double_val_unpacked(v) for v in values))
    packed = _double_tensor([3], W.f_len(6, struct.pack("<3d", *values)))
    splat = _double_tensor([2, 2], _double_val_unpacked(0.75))
    for data in (unpacked, packed):
        out = decode_tensor(data)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(decode_tensor(splat), np.full((2, 2), 0.75))
    with pytest.raises(ProtobufError, match="double_val with wire type 5"):
        decode_tensor(_double_tensor([1], W.varint(6 << 3 | 5) + b"\0\0\0\0"))


# ------------------------------------------------------------------------------------------ conversion
@pytest.mark.parametrize("channels,scale,act,out_act,bias_op,identity,packed", [
    (1, 3, "Relu", "Tanh", "Add", False, False),
    (3, 2, "Tanh", None, "BiasAdd", True, False),      # C = 3: the TF -> npespcn channel reorder matters
    (2, 3, "Relu", "Relu", "AddV2", False, True),      # float_val instead of tensor_content
])
def test_synthetic_graph_matches_an_independent_tf_reference(tmp_path, channels, scale, act, out_act, bias_op,
                                                             identity, packed):
    """npespcn's forward with the converted weights equals TensorFlow's op semantics (NHWC conv with HWIO
    kernels, DepthToSpace's (i*r + j)*C + c order) implemented independently in float64 in the test.
    Tolerance 1e-5 absolute (float32 model on values of order 1)."""
    rng = np.random.default_rng(channels * 10 + scale)
    ws, bs = _random_tf_espcn(rng, channels, scale)
    pb = tmp_path / "g.pb"
    pb.write_bytes(W.espcn_graphdef(ws, bs, scale, act=act, out_act=out_act, bias_op=bias_op,
                                    identity_reads=identity, packed_values=packed))
    model = load_model(pb)
    assert model.arch == {"scale": scale, "channels": channels, "layers": [[5, 8], [3, 6]],
                          "activation": act.lower(), "output_activation": out_act and out_act.lower()}
    x = rng.uniform(0, 1, (2, 7, 9, channels)).astype(np.float32)         # NHWC
    ref = W.tf_espcn_forward(x, ws, bs, scale, act=np.tanh if act == "Tanh" else (lambda v: np.maximum(v, 0)),
                             out_act={"Tanh": np.tanh, "Relu": lambda v: np.maximum(v, 0), None: None}[out_act])
    got = model.infer(x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(got, ref.transpose(0, 3, 1, 2), atol=1e-5, rtol=0)


def test_activation_between_last_conv_and_depth_to_space_becomes_the_output_activation(tmp_path):
    """tanh(PS(z)) == PS(tanh(z)): a graph with Tanh before DepthToSpace loads as output_activation tanh."""
    rng = np.random.default_rng(5)
    ws, bs = _random_tf_espcn(rng, 1, 2)
    data = W.espcn_graphdef(ws, bs, 2, out_act=None, transpose=False)
    data = data.replace(W.node("d2s", "DepthToSpace", ["add3"], block_size=2, data_format="NHWC"),
                        W.node("t", "Tanh", ["add3"])
                        + W.node("d2s", "DepthToSpace", ["t"], block_size=2, data_format="NHWC"))
    (tmp_path / "g.pb").write_bytes(data)
    model = load_model(tmp_path / "g.pb")
    assert model.output_activation == "tanh"
    x = rng.uniform(0, 1, (1, 6, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(model.infer(x.transpose(0, 3, 1, 2)),
                               W.tf_espcn_forward(x, ws, bs, 2, act=lambda v: np.maximum(v, 0))
                               .transpose(0, 3, 1, 2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.replace(b"SAME", b"VALI"), "padding"),
    (lambda d: d.replace(b"Relu", b"Selu"), "unsupported op 'Selu'"),
    (lambda d: d.replace(b"DepthToSpace", b"SpaceToDepth"), "unsupported op"),
    (lambda d: d + W.node("extra", "Relu", ["add1"]), "single chain"),
    (lambda d: d + W.node("input2", "Placeholder"), "exactly one Placeholder"),
])
def test_graphs_that_are_not_plain_espcn_chains_are_refused_with_the_reason(tmp_path, change, message):
    rng = np.random.default_rng(0)
    ws, bs = _random_tf_espcn(rng, 1, 2)
    (tmp_path / "g.pb").write_bytes(change(W.espcn_graphdef(ws, bs, 2)))
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "g.pb")


def test_mismatched_depth_to_space_block_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    ws, bs = _random_tf_espcn(rng, 1, 2)                       # 4 sub-pixel channels
    (tmp_path / "g.pb").write_bytes(W.espcn_graphdef(ws, bs, 3))
    with pytest.raises(ValueError, match="block size 3 needs"):
        load_model(tmp_path / "g.pb")


# ------------------------------------------------------------------------------------------ published
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_published_graphs_give_the_documented_architecture(published, scale):
    """/work/shared/README.md: conv1 5x5x64, Relu, conv2 3x3x32, Relu, conv3 3x3xr², DepthToSpace, Tanh."""
    model = load_model(published / f"ESPCN_x{scale}.pb", scale=scale)
    assert model.arch == {"scale": scale, "channels": 1, "layers": [[5, 64], [3, 32]], "activation": "relu",
                          "output_activation": "tanh"}
    assert model.params["conv3.weight"].shape == (scale * scale, 32, 3, 3)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_published_graphs_match_opencv_dnn(published, scale):
    """npespcn's forward with the converted ESPCN_x{r}.pb weights equals OpenCV 5.0's dnn forward, stored in
    tests/fixtures/opencv_espcn.npz (Y in [0, 1] as OpenCV's full-range YCrCb gives it, 24x24 crops of
    three Set5 images, made by tests/fixtures/make_opencv_fixtures.py). Tolerance 1e-5 absolute on [0, 1]
    data (measured: 4.0e-6, 5.1e-6, 6.5e-6 for x2, x3, x4: float32 summation order)."""
    import hashlib
    ref = np.load(FIXTURE, allow_pickle=False)
    pb = published / f"ESPCN_x{scale}.pb"
    if hashlib.sha256(pb.read_bytes()).hexdigest() != str(ref[f"sha256_x{scale}"]):
        pytest.skip(f"{pb} is not the file the OpenCV fixture was made from")
    x, expected = ref["input"], ref[f"output_x{scale}"]
    assert x.shape == (3, 1, 24, 24) and expected.shape == (3, 1, 24 * scale, 24 * scale)
    model = load_model(pb)
    np.testing.assert_allclose(model.infer(x), expected, atol=1e-5, rtol=0)


def test_published_graph_reading_agrees_with_an_independent_tf_forward(published):
    """The graph's raw constants (f1, b1, ... in HWIO), run through the test's own TF-semantics forward,
    give what the loaded model gives. Tolerance 1e-5 absolute."""
    nodes = {n.name: n for n in parse_graphdef((published / "ESPCN_x3.pb").read_bytes())}
    ws = [nodes[f"f{i}"].attrs["value"] for i in (1, 2, 3)]
    bs = [nodes[f"b{i}"].attrs["value"] for i in (1, 2, 3)]
    x = np.random.default_rng(2).uniform(0, 1, (1, 11, 13, 1)).astype(np.float32)
    ref = W.tf_espcn_forward(x, ws, bs, 3, act=lambda v: np.maximum(v, 0))
    arch, params = read_graphdef(published / "ESPCN_x3.pb")
    model = ESPCN(**arch).load_params(params)
    np.testing.assert_allclose(model.infer(x.transpose(0, 3, 1, 2)), ref.transpose(0, 3, 1, 2), atol=1e-5)


def test_opencv_fixture_records_its_provenance():
    ref = np.load(FIXTURE, allow_pickle=False)
    assert list(ref["images"]) == ["butterfly.png", "bird.png", "baby.png"]
    assert ref["crops"].shape == (3, 2)
    assert str(ref["opencv_version"]).startswith("5.")
    assert 0.0 <= ref["input"].min() and ref["input"].max() <= 1.0
