"""Untrusted model files: a crafted .pth cannot run code, and truncated or corrupted files of every accepted
format give a ValueError (or, when the damage only changes weights, a model), never another exception, a hang
or a crash."""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import _formats_writers as W
import numpy as np
import pytest

from npespcn import ESPCN, load_model
from npespcn.formats.torch_pth import UnsafePickleError


def _evil_pickles(marker):
    """Pickles that, loaded with pickle.load, would create ``marker`` through os.system / eval / exec."""
    cmd = f"touch {marker}"

    class Evil:
        def __reduce__(self):
            return (os.system, (cmd,))

    class EvalEvil:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w')",))

    yield "protocol 0 GLOBAL os.system", f"cos\nsystem\n(V{cmd}\ntR.".encode()
    yield "posix.system (what pickle.dumps writes on Linux)", pickle.dumps(Evil(), protocol=2)
    yield "STACK_GLOBAL, protocol 4", pickle.dumps(Evil(), protocol=4)
    yield "builtins.eval, protocol 5", pickle.dumps(EvalEvil(), protocol=5)
    yield "INST opcode", f"(ios\nsystem\nV{cmd}\n.".encode()
    # a legitimate-looking state dict with the evil call hidden in a tensor's arguments
    yield "nested in a state dict", (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w"
                                     + f"cos\nsystem\n(V{cmd}\ntR".encode() + b"u.")


def test_the_crafted_pickles_really_would_run_code(tmp_path):
    """Sanity check of the test itself: the plain pickle module executes the payload (so refusing it below
    means something). Only the first payload is run, in this controlled test."""
    marker = tmp_path / "ran"
    _, data = next(_evil_pickles(marker))
    pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize("index", range(6))
def test_a_pth_naming_a_forbidden_global_is_refused_without_side_effect(tmp_path, index):
    marker = tmp_path / "pwned"
    label, payload = list(_evil_pickles(marker))[index]
    W.write_pth(tmp_path / "evil.pth", {"first_part.0.weight": np.zeros((2, 1, 3, 3), np.float32)},
                pickle_bytes=payload)
    with pytest.raises(ValueError, match=r"refusing to load global|not accepted") as err:
        load_model(tmp_path / "evil.pth")
    assert not marker.exists(), label
    if index != 4:                                     # INST is refused as an opcode before its global is read
        assert err.type is UnsafePickleError and ("system" in str(err.value) or "eval" in str(err.value))


def test_a_bare_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    _, payload = next(_evil_pickles(marker))
    (tmp_path / "legacy.pth").write_bytes(b"\x80\x02" + payload)
    with pytest.raises(ValueError, match="never unpickled"):
        load_model(tmp_path / "legacy.pth")
    assert not marker.exists()


def test_unknown_files_name_the_accepted_formats(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"accepted formats: npespcn \.npz.*PyTorch.*TensorFlow"):
        load_model(tmp_path / "notes.txt")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "a zip, but no model")
    (tmp_path / "other.zip").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="accepted formats"):
        load_model(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pb")


# ------------------------------------------------------------------------------------------ corruption
def _files(tmp_path):
    """One small file of each accepted format (built here, so the test never depends on ../shared)."""
    rng = np.random.default_rng(0)
    sd = W.espcn_pytorch_state(rng, 1, 2, layers=((5, 8), (3, 4)))
    W.write_pth(tmp_path / "m.pth", sd)
    ws = [rng.normal(0, 0.3, s).astype(np.float32) for s in ((5, 5, 1, 8), (3, 3, 8, 4), (3, 3, 4, 4))]
    bs = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8, 4, 4)]
    (tmp_path / "m.pb").write_bytes(W.espcn_graphdef(ws, bs, 2))
    ESPCN(2, 1, [[5, 8], [3, 4]]).save(tmp_path / "m.npz")
    return {fmt: (tmp_path / f"m.{fmt}").read_bytes() for fmt in ("npz", "pth", "pb")}


@pytest.mark.parametrize("fmt", ["npz", "pth", "pb"])
def test_truncated_files_raise_value_error(tmp_path, fmt):
    """Every prefix length in a spread of offsets (start, inside headers, middle, just before the end)."""
    data = _files(tmp_path)[fmt]
    assert isinstance(load_model(tmp_path / f"m.{fmt}"), ESPCN)          # the intact file loads
    n = len(data)
    cuts = sorted({0, 1, 2, 5, 17, 40, 100, n // 4, n // 3, n // 2, 2 * n // 3, n - 100, n - 22, n - 5, n - 1})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.{fmt}"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            load_model(path)


@pytest.mark.parametrize("fmt", ["npz", "pth", "pb"])
def test_random_byte_corruption_gives_a_model_or_a_value_error(tmp_path, fmt):
    """150 files with 1 to 8 random bytes overwritten (seeded): each either loads (the damage hit only weight
    values) or raises ValueError; any other exception fails the test. A bounded loop: a hang would show."""
    data = _files(tmp_path)[fmt]
    rng = np.random.default_rng({"npz": 1, "pth": 2, "pb": 3}[fmt])
    outcomes = {"model": 0, "ValueError": 0}
    for trial in range(150):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), rng.integers(1, 9)):
            buf[pos] = rng.integers(0, 256)
        path = tmp_path / f"bad.{fmt}"
        path.write_bytes(bytes(buf))
        try:
            model = load_model(path)
        except ValueError:
            outcomes["ValueError"] += 1
        else:
            assert isinstance(model, ESPCN)
            outcomes["model"] += 1
    assert outcomes["ValueError"] > 0, outcomes                      # the corruption was noticed at times
