"""``python -m npespcn.convert SRC DST.npz``: convert once, keep the .npz; and load_model's dispatch by content."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _formats_writers as W
import numpy as np
import pytest

from npespcn import ESPCN, load_model
from npespcn.cli.convert import main

ROOT = Path(__file__).resolve().parents[1]


def _pth(tmp_path, scale=3):
    sd = W.espcn_pytorch_state(np.random.default_rng(0), 1, scale, layers=((5, 8), (3, 4)))
    W.write_pth(tmp_path / "m.pth", sd)
    return tmp_path / "m.pth", sd


def test_convert_pth_keeps_weights_and_records_the_chosen_activation(tmp_path, capsys):
    src, sd = _pth(tmp_path)
    assert main([str(src), str(tmp_path / "out.npz"), "--activation", "relu", "--scale", "3"]) == 0
    assert "scale 3" in capsys.readouterr().out
    model = load_model(tmp_path / "out.npz")
    assert model.arch == {"scale": 3, "channels": 1, "layers": [[5, 8], [3, 4]], "activation": "relu",
                          "output_activation": None}
    np.testing.assert_array_equal(model.params["conv1.weight"], sd["first_part.0.weight"])
    np.testing.assert_array_equal(model.params["conv3.bias"], sd["last_part.0.bias"])


def test_convert_pb_then_npz_gives_the_same_forward(tmp_path):
    """Converted and directly loaded models agree bit for bit (the .npz stores the same float32 numbers)."""
    rng = np.random.default_rng(1)
    ws = [rng.normal(0, 0.3, s).astype(np.float32) for s in ((5, 5, 3, 4), (3, 3, 4, 12))]
    bs = [rng.normal(0, 0.1, n).astype(np.float32) for n in (4, 12)]
    (tmp_path / "g.pb").write_bytes(W.espcn_graphdef(ws, bs, 2))
    assert main([str(tmp_path / "g.pb"), str(tmp_path / "g.npz"), "--output-activation", "none"]) == 0
    direct, converted = load_model(tmp_path / "g.pb"), load_model(tmp_path / "g.npz")
    assert direct.output_activation == "tanh" and converted.output_activation is None
    x = rng.uniform(0, 1, (1, 3, 5, 6)).astype(np.float32)
    assert main([str(tmp_path / "g.pb"), str(tmp_path / "g2.npz")]) == 0
    np.testing.assert_array_equal(load_model(tmp_path / "g2.npz").infer(x), direct.infer(x))


@pytest.mark.parametrize("args,message", [
    (["missing.pb", "out.npz"], "model file not found"),
    (["m.pth", "out.npz", "--scale", "2"], "scale=3, but scale=2"),
    (["m.pth", "no/such/dir/out.npz"], "does not exist"),
    (["notes.txt", "out.npz"], "accepted formats"),
])
def test_cli_errors_are_one_line_on_stderr_with_nonzero_exit(tmp_path, monkeypatch, capsys, args, message):
    _pth(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    monkeypatch.chdir(tmp_path)
    assert main(args) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.npz").exists()


def test_cli_as_a_module_exits_nonzero_without_traceback(tmp_path):
    """The real ``python -m npespcn.convert`` process: exit status and stderr."""
    (tmp_path / "notes.txt").write_text("not a model")
    proc = subprocess.run([sys.executable, "-m", "npespcn.convert", "notes.txt", "out.npz"], cwd=tmp_path,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("npespcn convert: error:") and "accepted formats" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_format_is_recognised_by_content_not_by_name(tmp_path):
    """A .pth named .pb, a .pb named .npz and an .npz named .pth all load as what they are."""
    src, _ = _pth(tmp_path)
    rng = np.random.default_rng(2)
    ws = [rng.normal(0, 0.3, s).astype(np.float32) for s in ((3, 3, 1, 4), (3, 3, 4, 4))]
    bs = [rng.normal(0, 0.1, 4).astype(np.float32) for _ in range(2)]
    (tmp_path / "really_pth.pb").write_bytes(src.read_bytes())
    (tmp_path / "really_pb.npz").write_bytes(W.espcn_graphdef(ws, bs, 2))
    ESPCN(2, 1, [[3, 6]], activation="gelu").save(tmp_path / "really_npz.pth")
    assert load_model(tmp_path / "really_pth.pb").activation == "tanh"           # ESPCN-pytorch default
    assert load_model(tmp_path / "really_pb.npz").activation == "relu"           # from the graph's Relu
    assert load_model(tmp_path / "really_npz.pth").activation == "gelu"          # from the npz record


def _npz_without(path, field):
    """An npespcn .npz whose architecture record lacks ``field``."""
    import json
    model = ESPCN(3, 1, [[3, 4]], seed=0)
    record = {"format": "npespcn", "version": 1, **model.arch}
    del record[field]
    np.savez(path, __npespcn__=np.array(json.dumps(record)), **model.params)
    return path


def test_npz_override_of_a_field_the_file_holds_must_agree(tmp_path):
    """An .npz goes through the same override check as .pb and .pth: the message names the file's scale."""
    ESPCN(3, 1, [[3, 4]], seed=0).save(tmp_path / "x3.npz")
    with pytest.raises(ValueError, match=r"scale=3, but scale=4 was asked for"):
        load_model(tmp_path / "x3.npz", scale=4)
    with pytest.raises(ValueError, match=r"layers=\[\[3, 4\]\], but layers"):
        load_model(tmp_path / "x3.npz", layers=[(5, 4)])
    assert load_model(tmp_path / "x3.npz", scale=3, layers=[(3, 4)], activation="relu").activation == "relu"


@pytest.mark.parametrize("field", ["layers", "scale", "output_activation"])
def test_npz_record_missing_a_field_is_a_value_error(tmp_path, field):
    with pytest.raises(ValueError, match=rf"record lacks \['{field}'\]"):
        load_model(_npz_without(tmp_path / "bad.npz", field))


def test_cli_on_an_npz_record_missing_a_field_is_one_line(tmp_path, capsys):
    bad = _npz_without(tmp_path / "bad.npz", "layers")
    assert main([str(bad), str(tmp_path / "out.npz")]) != 0
    err = capsys.readouterr().err
    assert err.startswith("npespcn convert: error:") and "lacks ['layers']" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("args", [[], ["a.pth"], ["a.pth", "b.npz", "--activation", "nope"],
                                  ["a.pth", "b.npz", "--scale", "three"]])
def test_cli_bad_command_line_is_one_line_with_exit_2(capsys, args):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("npespcn convert: error:") and len(err.strip().splitlines()) == 1


def test_npz_of_a_newer_format_version_is_refused(tmp_path):
    import json

    import numpy as np

    from npespcn import ESPCN, load_model
    from npespcn.formats.npz import ARCH_KEY
    path = tmp_path / "m.npz"
    ESPCN.paper(2).save(path)
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files}
    record = json.loads(str(arrays[ARCH_KEY]))
    record["version"] = 2
    arrays[ARCH_KEY] = np.array(json.dumps(record))
    np.savez(tmp_path / "v2.npz", **arrays)
    with pytest.raises(ValueError, match="format version 2; this npespcn reads version 1"):
        load_model(tmp_path / "v2.npz")
