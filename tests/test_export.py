"""Export to ONNX and to a TF-ESPCN frozen graph, checked against what onnxruntime and OpenCV computed.

The fixtures ``tests/fixtures/export_{onnxruntime,opencv4,opencv5}.npz`` were made by
``tests/fixtures/make_export_fixtures.py`` (see it for the tool versions): those tools ran the files npespcn
exported from the six shipped models on one fixed input. Here npespcn's own forward of that input must
agree with them to 1e-5, and exporting again must give the very bytes the tools ran (their SHA-256 is in
the fixture), so the fixtures keep proving something. Neither onnxruntime nor OpenCV is needed.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import _formats_writers as W
import numpy as np
import pytest

from npespcn import ESPCN, load_model
from npespcn.cli.convert import main
from npespcn.formats import OPSET, export_model
from npespcn.formats.onnx import parse_onnx
from npespcn.formats.protobuf import LEN, iter_fields

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = tuple(f"{name}_x{r}" for name in ("espcn", "espcn7") for r in (2, 3, 4))
TOOLS = ("onnxruntime", "opencv4", "opencv5")


def fixture(tool: str) -> dict:
    with np.load(FIXTURES / f"export_{tool}.npz") as f:
        return {k: f[k] for k in f.files}


def shipped(name: str) -> ESPCN:
    return load_model(ROOT / "weights" / f"{name}.npz")


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", MODELS)
def test_exporting_again_gives_the_bytes_the_tools_ran(tmp_path, name):
    model = shipped(name)
    files = {"onnx": tmp_path / "a.onnx", "onnx_nhwc": tmp_path / "b.onnx", "pb": tmp_path / "c.pb"}
    for kind, path in files.items():
        export_model(model.arch, model.params, path, layout="nhwc" if kind == "onnx_nhwc" else "nchw")
    for tool in TOOLS:
        record = fixture(tool)
        for kind, path in files.items():
            assert sha256(path) == str(record[f"sha256_{name}_{kind}"]), (tool, kind)


@pytest.mark.parametrize("tool, key", [("onnxruntime", "onnx"), ("onnxruntime", "onnx_nhwc"), ("opencv4", "pb"),
                                       ("opencv5", "onnx")])
def test_npespcn_agrees_with_onnxruntime_and_opencv_on_every_shipped_model(tool, key):
    record = fixture(tool)
    for name in MODELS:
        model = shipped(name)
        theirs = record[f"{key}_{name}"]
        ours = model(record["input"])
        assert theirs.shape == ours.shape == (1, 1, 14 * model.scale, 18 * model.scale), (name, theirs.shape)
        assert np.abs(ours - theirs).max() <= 1e-5, (tool, key, name, np.abs(ours - theirs).max())


@pytest.mark.parametrize("tool", ["opencv4", "opencv5"])
def test_dnn_superres_upsample_is_npespcns_y_on_a_grey_image(tool):
    """``dnn_superres`` runs the network on Y only; for a grey image (Cr = Cb = 128) its BGR output is
    ``round(255 * network(Y / 255))`` in all three channels. Pixels whose value lies within 1e-3 of a
    rounding tie are left out (a 1e-6 difference may round them either way)."""
    record = fixture(tool)
    grey = record["grey"]
    x = (grey[..., 0].astype(np.float32) / np.float32(255))[None, None]
    for name in MODELS:
        out = record[f"upsample_{name}"]
        y = 255 * shipped(name)(x)[0, 0].astype(np.float64)
        expected = np.clip(np.rint(y), 0, 255)
        clear = np.abs(y - np.floor(y) - 0.5) > 1e-3
        assert out.shape == y.shape + (3,) and clear.mean() > 0.99
        for c in range(3):
            assert np.array_equal(out[..., c][clear], expected[clear]), (tool, name, c)


def test_the_onnx_graph_uses_standard_operators_at_the_stated_opset(tmp_path):
    export_model(shipped("espcn_x3").arch, shipped("espcn_x3").params, tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    opsets = [bytes(v) for f, w, v in iter_fields(data) if f == 8 and w == LEN]
    assert opsets == [bytes([0x10, OPSET])] and OPSET == 13           # domain "" (absent), version 13
    nodes, _inits, inputs, opset = parse_onnx(data)
    assert [n.op for n in nodes] == ["Conv", "Tanh", "Conv", "Tanh", "Conv", "DepthToSpace"]
    assert all(n.domain == "" for n in nodes) and nodes[-1].attrs == {"blocksize": 3, "mode": "CRD"}
    assert inputs == ["input"] and nodes[-1].outputs == ["output"] and opset == 13
    graph = next(v for f, w, v in iter_fields(data) if f == 7)
    shapes = {}
    for f, _, v in iter_fields(graph):
        if f in (11, 12):                                           # ValueInfoProto: 1 name, 2 TypeProto
            fields = {f2: v2 for f2, _, v2 in iter_fields(v)}
            tensor = {f3: v3 for f3, _, v3 in iter_fields(next(v2 for f2, _, v2 in iter_fields(fields[2])))}
            dims = [next(iter_fields(d))[2] for f4, _, d in iter_fields(tensor[2]) if f4 == 1]
            shapes[bytes(fields[1]).decode()] = (tensor[1], [x if isinstance(x, int) else bytes(x).decode() for x in dims])
    assert shapes == {"input": (1, ["N", 1, "H", "W"]), "output": (1, ["N", 1, "3H", "3W"])}   # float32


def test_a_tf2onnx_style_graph_in_dcr_order_loads_as_the_same_network(tmp_path):
    """OpenCV's newer ESPCN files come from TensorFlow graphs: NHWC input, Conv + Add, DepthToSpace in DCR
    mode (TensorFlow's channel order), Transposes around the output activation."""
    rng = np.random.default_rng(3)
    net = ESPCN(2, 1, activation="relu", output_activation="tanh", seed=4)
    p = net.params                          # one colour: DCR and CRD orders are the same
    weights = [p["conv1.weight"], p["conv2.weight"], p["conv3.weight"]]
    biases = [p["conv1.bias"], p["conv2.bias"], p["conv3.bias"]]
    (tmp_path / "tf.onnx").write_bytes(W.onnx_espcn_tf2onnx_style(weights, biases, 2))
    loaded = load_model(tmp_path / "tf.onnx")
    assert loaded.arch == net.arch
    x = rng.random((1, 1, 9, 11), dtype=np.float32)
    assert np.abs(loaded(x) - net(x)).max() <= 1e-6


def test_dcr_order_is_undone_for_three_colours(tmp_path):
    """A three-channel x2 graph in DCR mode: the last layer's channels are permuted into npespcn's order."""
    net = ESPCN(2, 3, activation="tanh", seed=5)
    p = net.params
    r, C = 2, 3
    perm = [c * r * r + s for s in range(r * r) for c in range(C)]        # DCR channel (s*C + c) <- CRD (c*r*r + s)
    weights = [p["conv1.weight"], p["conv2.weight"], p["conv3.weight"][perm]]
    biases = [p["conv1.bias"], p["conv2.bias"], p["conv3.bias"][perm]]
    (tmp_path / "c3.onnx").write_bytes(W.onnx_espcn_tf2onnx_style(weights, biases, 2, act="Tanh", out_act="Relu"))
    loaded = load_model(tmp_path / "c3.onnx", output_activation=None)
    x = np.random.default_rng(6).random((1, 3, 7, 8), dtype=np.float32)
    assert np.abs(loaded(x) - net(x)).max() <= 1e-6


@pytest.mark.parametrize("activation, output", [("prelu", None), ("relu", "tanh"), ("identity", "relu")])
def test_onnx_round_trip_keeps_every_exportable_architecture(tmp_path, activation, output):
    net = ESPCN(3, 1, layers=((3, 8), (3, 6)), activation=activation, output_activation=output, seed=1)
    export_model(net.arch, net.params, tmp_path / "m.onnx")
    back = load_model(tmp_path / "m.onnx")
    assert back.arch == net.arch
    assert all(np.array_equal(back.params[k], v) for k, v in net.params.items())


def test_pb_export_is_read_back_by_the_graphdef_reader_with_tf_espcns_node_names(tmp_path):
    net = shipped("espcn7_x4")
    export_model(net.arch, net.params, tmp_path / "m.pb")
    data = (tmp_path / "m.pb").read_bytes()
    for name in (b"IteratorGetNext", b"NCHW_output/perm", b"DepthToSpace", b"add_5", b"Relu_4", b"conv6"):
        assert name in data
    back = load_model(tmp_path / "m.pb")
    assert back.arch == net.arch and all(np.array_equal(back.params[k], v) for k, v in net.params.items())


@pytest.mark.parametrize("suffix, arch, match", [
    (".onnx", {"activation": "gelu"}, "gelu"),
    (".pb", {"activation": "prelu"}, "prelu"),
    (".pb", {"activation": "identity"}, "identity"),
    (".txt", {}, r"\.onnx or \.pb"),
])
def test_what_a_format_cannot_hold_is_refused_before_anything_is_written(tmp_path, suffix, arch, match):
    net = ESPCN(2, 1, layers=((3, 4),), **arch)
    with pytest.raises(ValueError, match=match):
        export_model(net.arch, net.params, tmp_path / f"m{suffix}")
    assert os.listdir(tmp_path) == []


def test_convert_from_a_shipped_name_never_overwrites_without_the_flag(tmp_path, capsys):
    dst = tmp_path / "x.onnx"
    assert main(["espcn7_x2", str(dst)]) == 0
    assert load_model(dst).arch == shipped("espcn7_x2").arch
    dst.write_bytes(b"mine")
    assert main(["espcn7_x2", str(dst)]) == 1
    assert dst.read_bytes() == b"mine" and "--overwrite" in capsys.readouterr().err
    assert main(["espcn7_x2", str(dst), "--overwrite"]) == 0
    assert sha256(dst) == str(fixture("onnxruntime")["sha256_espcn7_x2_onnx"])
    assert sorted(os.listdir(tmp_path)) == ["x.onnx"]                   # no temporary file left behind


def test_convert_pb_to_onnx_nhwc_and_back(tmp_path, capsys):
    assert main(["espcn_x3", str(tmp_path / "a.pb")]) == 0
    assert main([str(tmp_path / "a.pb"), str(tmp_path / "b.onnx"), "--layout", "nhwc"]) == 0
    assert sha256(tmp_path / "b.onnx") == str(fixture("onnxruntime")["sha256_espcn_x3_onnx_nhwc"])
    assert main([str(tmp_path / "b.onnx"), str(tmp_path / "c.npz")]) == 0
    x = np.random.default_rng(0).random((1, 1, 6, 5), dtype=np.float32)
    assert np.abs(load_model(tmp_path / "c.npz")(x) - shipped("espcn_x3")(x)).max() == 0
    assert main([str(tmp_path / "c.npz"), str(tmp_path / "d.npz"), "--layout", "nhwc"]) == 1
    assert "--layout applies to .onnx" in capsys.readouterr().err


@pytest.mark.parametrize("damage, match", [
    (lambda t: t[:-7], r"claims \d+ bytes but only"),                                  # truncated
    (lambda t: t.replace(b"Tanh", b"Gelu", 1), r"unsupported operator 'Gelu'"),
    (lambda t: t.replace(b"CRD", b"XYZ", 1), r"mode 'XYZ'"),
])
def test_damaged_onnx_files_are_one_value_error_naming_the_file(tmp_path, damage, match):
    net = shipped("espcn_x2")
    export_model(net.arch, net.params, tmp_path / "m.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(damage((tmp_path / "m.onnx").read_bytes()))
    with pytest.raises(ValueError, match=match) as e:
        load_model(bad)
    assert str(bad) in str(e.value)


def test_an_initializer_shorter_than_its_shape_or_kept_outside_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    w1 = rng.normal(0, 0.1, (4, 1, 3, 3)).astype(np.float32)
    for name, tensor, match in (("short", W.onnx_tensor("w1", w1.shape, raw=w1.tobytes()[:-4]), "raw_data holds 140"),
                                ("external", W.onnx_tensor("w1", w1.shape, external=True), "external file"),
                                ("int", W.onnx_tensor("w1", w1.shape, raw=w1.tobytes(), data_type=6), "data type 6")):
        inits = [tensor, W.onnx_array("b1", np.zeros(4, np.float32)),
                 W.onnx_array("w2", rng.normal(0, 0.1, (4, 4, 3, 3)).astype(np.float32)),
                 W.onnx_array("b2", np.zeros(4, np.float32))]
        nodes = [W.onnx_node("Conv", ["input", "w1", "b1"], "c1", kernel_shape=[3, 3], pads=[1] * 4),
                 W.onnx_node("Relu", ["c1"], "r1"),
                 W.onnx_node("Conv", ["r1", "w2", "b2"], "c2", kernel_shape=[3, 3], pads=[1] * 4),
                 W.onnx_node("DepthToSpace", ["c2"], "output", blocksize=2, mode="CRD")]
        (tmp_path / f"{name}.onnx").write_bytes(W.onnx_model(nodes, inits))
        with pytest.raises(ValueError, match=match):
            load_model(tmp_path / f"{name}.onnx")
