"""The trainer: the paper's inverse-shuffle trick, resume (in process and after SIGKILL), logs, plots,
non-finite losses and the CLI's errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npespcn
from npespcn import functional as F
from npespcn import load_model
from npespcn.image.io import list_images
from npespcn.nn.model import ESPCN
from npespcn.nn.optim import EMA
from npespcn.training import datasets
from npespcn.training.patches import PatchSet, augment_batch, build_patches
from npespcn.training.trainer import (
    BEST,
    CHECKPOINT,
    LAST,
    LOG,
    PLOT,
    NonFiniteLoss,
    TrainConfig,
    Trainer,
    forward_backward,
    load_checkpoint,
    load_validation_set,
    loss_at,
    read_checkpoint_meta,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(layers=[[3, 8], [3, 4]], patch_size=6, stride=4, batch_size=8)


def _images(folder: Path, n=4, size=(40, 48), seed=0):
    """A few smooth random RGB images (smooth so that super-resolution can learn something)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size[1], size[0]), Image.BICUBIC)
        img.save(folder / f"img{k}.png")
    return folder


@pytest.fixture
def data_dir(tmp_path):
    return _images(tmp_path / "train")


@pytest.fixture
def val_dir(tmp_path):
    return _images(tmp_path / "val", n=2, size=(36, 36), seed=1)


def _patches(folder, scale=3):
    return build_patches(list_images(folder, recursive=True), scale, TINY["patch_size"], TINY["stride"])


def _params(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if not k.startswith("__")}


def _assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------------------------------ the paper's trick
@pytest.mark.parametrize("arch,scale", [("paper", 3), ("seven", 2), ("paper", 4)])
def test_inverse_shuffled_target_gives_the_same_loss_and_gradients(arch, scale):
    rng = np.random.default_rng(scale)
    model = ESPCN.paper(scale, seed=1) if arch == "paper" else ESPCN.seven(scale, seed=1)
    x = rng.random((4, 1, 7, 7)).astype(np.float32)
    y = rng.random((4, 1, 7 * scale, 7 * scale)).astype(np.float32)
    ops = np.array([0, 3, 5, 6])
    xa, ya = augment_batch(x, y, ops)
    loss = forward_backward(model, xa, ya)
    grads = {k: v.copy() for k, v in model.grads.items()}
    xb, zb = augment_batch(x, F.pixel_unshuffle(y, scale), ops, subpixel_scale=scale)
    np.testing.assert_array_equal(xa, xb)
    loss_sub = forward_backward(model, xb, zb, subpixel_target=True)
    assert loss_sub == pytest.approx(loss, rel=1e-12)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, grads[k], err_msg=k)     # the very same numbers
    # and the loss really is the MSE of the model's output against y
    ref = np.mean((model.infer(xa).astype(np.float64) - ya) ** 2)
    assert loss == pytest.approx(ref, rel=1e-6)


def test_trick_trains_to_the_same_weights(tmp_path, data_dir):
    ps = _patches(data_dir)
    outs = []
    for sub in (False, True):
        cfg = TrainConfig(scale=3, epochs=1, subpixel_target=sub, **TINY)
        Trainer(cfg, ps, None, tmp_path / f"sub{sub}", quiet=True).run()
        outs.append(_params(tmp_path / f"sub{sub}" / LAST))
    _assert_same_params(*outs)


# ------------------------------------------------------------------------------------------ a run's files
def test_run_writes_weights_log_plot_and_validation_matches_evaluate(tmp_path, data_dir, val_dir):
    from npespcn.evaluation.protocol import evaluate
    ps = _patches(data_dir)
    val = load_validation_set(val_dir)
    cfg = TrainConfig(scale=3, epochs=3, lr=3e-3, **TINY)
    best = Trainer(cfg, ps, val, tmp_path / "run", quiet=True).run()
    out = tmp_path / "run"
    rows = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert best["psnr"] == max(r["psnr"] for r in rows)
    model = load_model(out / BEST)
    res = evaluate(model, val_dir, 3, bicubic=False)
    assert res["psnr"] == best["psnr"] and res["ssim"] == best["ssim"]
    assert validate(model, val)["psnr"] == best["psnr"]
    with Image.open(out / PLOT) as im:
        assert im.format == "PNG" and im.size[0] == 640 and im.size[1] == 2 * 180
    assert load_model(out / LAST).arch["layers"] == [[3, 8], [3, 4]]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]    # no temporary files left


@pytest.mark.parametrize("loss,reparam,ema", [("mse", False, 0.0), ("l1-mse", True, 0.0), ("charbonnier", False, 0.0),
                                              ("mse", False, 0.9), ("mse", True, 0.99)])
def test_resume_in_process_is_bitwise(tmp_path, data_dir, loss, reparam, ema):
    ps = _patches(data_dir)
    cfg = TrainConfig(scale=3, epochs=3, checkpoint_every=3, loss=loss, reparam=reparam, ema=ema, **TINY)
    steps = -(-len(ps) // cfg.batch_size)
    Trainer(cfg, ps, None, tmp_path / "straight", quiet=True).run()
    # stop at awkward places (mid-epoch, after a checkpoint, just before an epoch end), then resume
    t = Trainer(cfg, ps, None, tmp_path / "resumed", quiet=True, stop_after_steps=steps + 4)
    t.run()
    for stop in (2, steps - 1):
        Trainer(cfg, ps, None, tmp_path / "resumed", resume=True, quiet=True, stop_after_steps=stop).run()
    Trainer(cfg, ps, None, tmp_path / "resumed", resume=True, quiet=True).run()
    _assert_same_params(_params(tmp_path / "straight" / LAST), _params(tmp_path / "resumed" / LAST))
    _assert_same_params(_params(tmp_path / "straight" / BEST), _params(tmp_path / "resumed" / BEST))
    a = [json.loads(x) for x in (tmp_path / "straight" / LOG).read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "resumed" / LOG).read_text().splitlines()]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_the_loss_option_picks_the_loss_of_each_epoch(tmp_path, data_dir):
    assert [loss_at(TrainConfig(epochs=5, loss="l1-mse"), e) for e in range(5)] == ["l1", "l1", "mse", "mse", "mse"]
    assert {loss_at(TrainConfig(epochs=4, loss="charbonnier"), e) for e in range(4)} == {"charbonnier"}
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="l2")
    ps = _patches(data_dir)
    for loss in ("mse", "l1"):
        Trainer(TrainConfig(scale=3, epochs=1, loss=loss, **TINY), ps, None, tmp_path / loss, quiet=True).run()
    a, b = _params(tmp_path / "mse" / LAST), _params(tmp_path / "l1" / LAST)
    assert any(not np.array_equal(a[k], b[k]) for k in a)                    # another loss, other weights
    rows = [json.loads(x) for x in (tmp_path / "l1" / LOG).read_text().splitlines()]
    assert rows[0]["loss"] > 0.01          # an L1 of Y/255 is far larger than its MSE would be


def test_the_moving_average_is_what_gets_validated_and_saved(tmp_path, data_dir, val_dir):
    ps = _patches(data_dir)
    t = Trainer(TrainConfig(scale=3, epochs=2, ema=0.9, **TINY), ps, load_validation_set(val_dir), tmp_path / "run",
                quiet=True)
    t.run()
    saved = load_model(tmp_path / "run" / LAST).params
    assert t.ema.updates == t.opt.steps > 0
    for k, v in saved.items():
        np.testing.assert_array_equal(v, t.ema.average[k])
    assert any(not np.array_equal(saved[k], t.model.params[k]) for k in saved)        # not the raw weights
    rows = [json.loads(x) for x in (tmp_path / "run" / LOG).read_text().splitlines()]
    assert rows[-1]["psnr"] == validate(load_model(tmp_path / "run" / LAST), load_validation_set(val_dir))["psnr"]
    with pytest.raises(ValueError, match="ema must be"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="ema must be"):
        TrainConfig(ema=-0.5)


def test_ema_follows_its_formula():

    p = {"w": np.zeros(3, np.float64)}
    ema = EMA(p, 0.95)
    p["w"][...] = 1.0
    keep = 1.0
    for t in range(40):                          # a constant target: avg = 1 - prod(d_t)
        ema.update(p)
        keep *= min(0.95, (1 + t) / (10 + t))
        np.testing.assert_allclose(ema.average["w"], 1 - keep, rtol=1e-12)
    assert not np.shares_memory(ema.average["w"], p["w"])
    with pytest.raises(ValueError, match="decay"):
        EMA(p, 1.0)


def test_a_reparameterised_run_writes_the_plain_network(tmp_path, data_dir):
    ps = _patches(data_dir)
    cfg = TrainConfig(scale=3, epochs=2, reparam=True, **TINY)
    t = Trainer(cfg, ps, None, tmp_path / "run", quiet=True)
    t.run()
    assert any(k.endswith("weight1") for k in t.model.params)                 # trained with branches
    saved = load_model(tmp_path / "run" / LAST)
    assert set(saved.params) == set(ESPCN(**saved.arch).params)               # saved without them
    x = ps.lr[:4]
    np.testing.assert_allclose(saved.infer(x), t.model.infer(x), rtol=1e-5, atol=1e-6)


def test_checkpoint_restores_optimizer_state(tmp_path, data_dir):
    ps = _patches(data_dir)
    cfg = TrainConfig(scale=3, epochs=1, **TINY)
    t = Trainer(cfg, ps, None, tmp_path / "run", quiet=True)
    t.run()
    model = cfg.build_model()
    other = Trainer(cfg, ps, None, tmp_path / "other", quiet=True)
    meta = load_checkpoint(tmp_path / "run" / CHECKPOINT, model, other.opt)
    assert meta["epoch"] == 1 and meta["step"] == 0
    assert other.opt.steps == t.opt.steps > 0
    for k, st in t.opt.state.items():
        for buf, v in st.items():
            np.testing.assert_array_equal(other.opt.state[k][buf], v)


def test_resume_refuses_other_settings(tmp_path, data_dir):
    ps = _patches(data_dir)
    Trainer(TrainConfig(scale=3, epochs=1, **TINY), ps, None, tmp_path / "run", quiet=True).run()
    with pytest.raises(ValueError, match="other settings.*lr"):
        Trainer(TrainConfig(scale=3, epochs=2, lr=0.5, **TINY), ps, None, tmp_path / "run", resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(TrainConfig(scale=3, **TINY), ps, None, tmp_path / "empty", resume=True)


def test_checkpoint_readers_share_their_errors(tmp_path):

    model = TrainConfig(scale=3, **TINY).build_model()
    from npespcn.nn.optim import Adam
    opt = Adam(model.params, 1e-3)
    for read in (read_checkpoint_meta, lambda p: load_checkpoint(p, model, opt)):
        with pytest.raises(FileNotFoundError, match="no checkpoint at"):
            read(tmp_path / "missing.npz")
        (tmp_path / "bad.npz").write_bytes(b"not a zip")
        with pytest.raises(ValueError, match="not a readable npespcn checkpoint"):
            read(tmp_path / "bad.npz")


def test_non_finite_loss_stops_and_keeps_the_best(tmp_path, data_dir):
    ps = _patches(data_dir)
    t = Trainer(TrainConfig(scale=3, epochs=1, **TINY), ps, None, tmp_path / "run", quiet=True)
    t.run()
    before = _params(tmp_path / "run" / BEST)
    ckpt = (tmp_path / "run" / CHECKPOINT).read_bytes()
    bad = PatchSet(ps.lr, ps.hr.copy(), 3, ps.sources)
    bad.hr[:] = np.nan
    t2 = Trainer(TrainConfig(scale=3, epochs=2, **TINY), bad, None, tmp_path / "run", resume=True, quiet=True)
    with pytest.raises(NonFiniteLoss, match="non-finite training loss.*epoch 2.*best weights"):
        t2.run()
    _assert_same_params(before, _params(tmp_path / "run" / BEST))
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == ckpt


def test_quiet_non_finite_loss_writes_no_progress(tmp_path, data_dir):
    import io
    ps = _patches(data_dir)
    bad = PatchSet(ps.lr, ps.hr.copy(), 3, ps.sources)
    bad.hr[:] = np.nan
    stream = io.StringIO()
    t = Trainer(TrainConfig(scale=3, epochs=1, **TINY), bad, None, tmp_path / "run", stream=stream, quiet=True)
    with pytest.raises(NonFiniteLoss):
        t.run()
    assert stream.getvalue() == ""                  # the bar is not closed onto the stream in quiet mode


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="arch"):
        TrainConfig(arch="huge")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=float("nan"))


def test_trainer_rejects_patches_of_another_scale(tmp_path, data_dir):
    with pytest.raises(ValueError, match="x3.*x2"):
        Trainer(TrainConfig(scale=2, **TINY), _patches(data_dir, 3), None, tmp_path)


# ------------------------------------------------------------------------------------------ CLI
def _cli(args, env_extra=None, **kw):
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "npespcn.train", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_with_a_missing_data_folder_says_where_it_looked(tmp_path):
    p = _cli(["--scale", "3", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(tmp_path / "nothing") in err and "--download" in err
    assert not (tmp_path / "out").exists()


def test_cli_on_a_fresh_machine_trains_on_the_built_in_sets(tmp_path):
    """No --data, no --val, no NPESPCN_DATASETS, an empty cache: the built-in T91 and Set5 are used."""
    env = {k: v for k, v in os.environ.items() if k != "NPESPCN_DATASETS"}
    env["NPESPCN_CACHE"] = str(tmp_path / "cache")
    p = subprocess.Popen([sys.executable, "-m", "npespcn", "train", "--scale", "3", "--epochs", "1", "--stride", "60",
                          "--out", str(tmp_path / "run"), "--quiet"], env=dict(env, PYTHONPATH=str(ROOT)), cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    builtin = datasets.builtin_dir()
    assert f"images in {builtin / 'T91'}" in err and "validation: Set5" in err
    meta = json.loads((tmp_path / "run" / LOG).read_text().splitlines()[-1])
    assert meta["epoch"] == 1 and 5 < meta["psnr"] < 60              # scored on the 5 built-in Set5 images
    info = read_checkpoint_meta(tmp_path / "run" / CHECKPOINT)["info"]
    assert info["command"] == f"npespcn train --scale 3 --epochs 1 --stride 60 --out {tmp_path / 'run'} --quiet"
    t91 = builtin / "T91"
    assert info["data"] == str(t91) and info["data_sha256"] == datasets.digest(list_images(t91), t91)
    assert info["val"] == str(builtin / "Set5") and "commit" in info and info["npespcn"] == npespcn.__version__
def test_cli_bad_option_is_one_line(capsys):
    from npespcn.cli.train import main
    with pytest.raises(SystemExit) as e:
        main(["--layers", "5y64"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--layers expects KxF pairs" in err and "usage" not in err


def test_cli_epochs_and_checkpoint_every_are_validated_and_kept_on_resume(tmp_path, data_dir, capsys):
    from npespcn.cli.train import main

    common = ["--data", str(data_dir), "--no-val", "--quiet", "--layers", "3x8,3x4", "--patch-size", "6",
              "--stride", "4", "--batch-size", "8"]
    out = tmp_path / "run"
    assert main(common + ["--epochs", "0", "--out", str(out)]) == 1          # not silently 100 epochs
    assert "epochs must be >= 1, got 0" in capsys.readouterr().err
    assert main(common + ["--epochs", "1", "--checkpoint-every", "0", "--out", str(out)]) == 0
    for bad, what in ((["--epochs", "-1"], "epochs"), (["--checkpoint-every", "-3"], "checkpoint_every")):
        assert main(["--out", str(out), "--resume", *bad]) == 1
        assert f"{what} must be >= " in capsys.readouterr().err
    assert main(["--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    cfg = read_checkpoint_meta(out / CHECKPOINT)["config"]
    assert (cfg["epochs"], cfg["checkpoint_every"]) == (2, 0)                # the run's 0, not the CLI's 200


def test_cli_sigkill_then_resume_ends_with_the_same_weights(tmp_path, data_dir):
    """A run killed with SIGKILL in the middle and resumed ends bitwise equal to an uninterrupted one."""
    common = ["--scale", "3", "--data", str(data_dir), "--no-val", "--layers", "3x8,3x4",
              "--patch-size", "6", "--stride", "1", "--batch-size", "8", "--epochs", "6",
              "--checkpoint-every", "5", "--subpixel-target", "--seed", "3"]
    straight = _cli(common + ["--out", str(tmp_path / "a")])
    out, err = straight.communicate(timeout=240)
    assert straight.returncode == 0, err
    summary = json.loads(out)                                      # the CLI prints its summary as JSON
    assert summary["best"]["epoch"] in range(1, 7)

    run = _cli(common + ["--out", str(tmp_path / "b")])
    ckpt = tmp_path / "b" / CHECKPOINT
    deadline = time.monotonic() + 120
    while not ckpt.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(np.random.default_rng().uniform(0.0, 0.15))         # some moment after the first checkpoint
    assert run.poll() is None, "the run ended before it could be killed; make it longer"
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    with np.load(ckpt) as z:
        meta = json.loads(str(z["meta"]))
    assert (meta["epoch"], meta["step"]) < (6, 0)                   # really interrupted

    resumed = _cli(["--out", str(tmp_path / "b"), "--resume"])     # settings and folders from the checkpoint
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    for name in (LAST, BEST):
        _assert_same_params(_params(tmp_path / "a" / name), _params(tmp_path / "b" / name))
    la = [json.loads(x) for x in (tmp_path / "a" / LOG).read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / LOG).read_text().splitlines()]
    assert [(r["epoch"], r["loss"]) for r in la] == [(r["epoch"], r["loss"]) for r in lb]


def test_extending_a_finished_run_continues_the_schedule(tmp_path, data_dir):
    ps = _patches(data_dir)
    cfg = TrainConfig(scale=3, epochs=2, schedule="cosine", **TINY)
    Trainer(cfg, ps, None, tmp_path / "run", quiet=True).run()
    longer = TrainConfig(scale=3, epochs=4, schedule="cosine", **TINY)
    t = Trainer(longer, ps, None, tmp_path / "run", resume=True, quiet=True)
    assert t.epoch == 2
    assert t.opt.lr == pytest.approx(1e-3 * (1 + np.cos(np.pi * 2 / 4)) / 2)    # cosine over 4 epochs, at 2
    t.run()
    rows = [json.loads(x) for x in (tmp_path / "run" / LOG).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["lr"] == pytest.approx(5e-4) and rows[3]["lr"] == pytest.approx(1e-3 * (1 + np.cos(np.pi * 3 / 4)) / 2)


def test_shortening_an_unfinished_run_restretches_the_schedule(tmp_path, data_dir):
    """``--resume --epochs N`` with N below the run's length (but past where it stopped) ends the run
    at N, the cosine re-stretched from where it is to 0 at N."""
    ps = _patches(data_dir)
    cfg = TrainConfig(scale=3, epochs=8, schedule="cosine", **TINY)
    steps = -(-len(ps) // cfg.batch_size)
    Trainer(cfg, ps, None, tmp_path / "run", quiet=True, stop_after_steps=2 * steps + 1).run()   # in epoch 3
    shorter = TrainConfig(scale=3, epochs=4, schedule="cosine", **TINY)
    t = Trainer(shorter, ps, None, tmp_path / "run", resume=True, quiet=True)
    assert t.epoch == 2 and t.opt.lr == pytest.approx(1e-3 * (1 + np.cos(np.pi * 2 / 4)) / 2)
    t.run()
    rows = [json.loads(x) for x in (tmp_path / "run" / LOG).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["lr"] == pytest.approx(1e-3 * (1 + np.cos(np.pi * 1 / 8)) / 2)     # before: over 8
    assert rows[3]["lr"] == pytest.approx(1e-3 * (1 + np.cos(np.pi * 3 / 4)) / 2)     # after: over 4


@pytest.mark.parametrize("sub", [False, True])
def test_loss_border_leaves_the_frame_out(sub):
    """With ``border`` the loss is the MSE of the inner part only, and the gradient is that of the MSE
    of the inner part: the same as a finite-difference-free check through a model whose output frame
    is replaced by the target (so that it cannot contribute)."""
    rng = np.random.default_rng(5)
    r, b = 3, 2
    model = ESPCN.paper(r, seed=2)
    x = rng.random((2, 1, 8, 8)).astype(np.float32)
    y = rng.random((2, 1, 8 * r, 8 * r)).astype(np.float32)
    target = F.pixel_unshuffle(y, r) if sub else y
    loss = forward_backward(model, x, target, subpixel_target=sub, border=b)
    grads = {k: v.copy() for k, v in model.grads.items()}
    pred = model.infer(x).astype(np.float64)
    inner = (..., slice(b * r, -b * r), slice(b * r, -b * r))
    assert loss == pytest.approx(np.mean((pred[inner] - y[inner]) ** 2), rel=1e-5)
    # reference gradient: full-image loss against a target equal to the prediction on the frame,
    # rescaled from the full mean to the inner mean
    y2 = model.forward(x).copy()
    y2[inner] = y[inner]
    _, d = F.mse_loss(model.forward(x), y2)
    full, innr = y2[0, 0].size, y2[0, 0][b * r:-b * r, b * r:-b * r].size
    model.backward(d * np.float32(full / innr))
    for k in grads:
        np.testing.assert_allclose(grads[k], model.grads[k], rtol=1e-4, atol=1e-7, err_msg=k)
    assert any(np.abs(g).max() > 0 for g in grads.values())
    with pytest.raises(ValueError, match="loss_border"):
        TrainConfig(patch_size=8, loss_border=4)
