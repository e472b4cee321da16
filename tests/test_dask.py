"""``upscale_files(..., client=)`` and ``npespcn upscale --dask``: a real ``LocalCluster`` of two worker
processes gives the local batch's guarantees: bitwise the local result, a bad file reported and the rest
written, nothing replaced without ``--overwrite``, a killed worker changes nothing, a re-run finishes only
what is missing. The images are tiny so that the whole file runs in seconds."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

import npespcn
from npespcn import extras
from npespcn.atomic import HOST_TAG, TMP_PREFIX
from npespcn.cli.upscale import main

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (the dask extra)")

N_IMAGES = 16


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """``N_IMAGES`` small images, one corrupt file, a small model, and the local batch's results."""
    root = tmp_path_factory.mktemp("batch")
    (root / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8)).save(root / "in" / f"im{i:02d}.png")
    (root / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    npespcn.ESPCN.paper(2, seed=3).save(root / "model.npz")
    local = npespcn.upscale_files([root / "in"], root / "local", scale=2, model=root / "model.npz")
    return {"root": root, "model": root / "model.npz", "local": root / "local", "records": local}


def _pixels(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def _no_temp_files(folder):
    return not [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]


def test_the_local_batch_reports_the_bad_file_and_writes_the_rest(batch):
    status = {r["src"].name: r["status"] for r in batch["records"]}
    assert status.pop("broken.png") == "failed" and set(status.values()) == {"written"}
    assert len(_pixels(batch["local"])) == N_IMAGES


def test_a_cluster_writes_the_same_bits_and_reports_the_bad_file(client, batch, tmp_path):
    seen = []
    records = npespcn.upscale_files([batch["root"] / "in"], tmp_path, scale=2, model=batch["model"],
                                    client=client, progress=seen.append)
    assert len(seen) == len(records) == N_IMAGES + 1
    bad = [r for r in records if r["status"] != "written"]
    assert [r["src"].name for r in bad] == ["broken.png"] and bad[0]["status"] == "failed"
    assert "broken.png" in bad[0]["message"]
    want, got = _pixels(batch["local"]), _pixels(tmp_path)
    assert want.keys() == got.keys()
    for name in want:
        assert np.array_equal(want[name], got[name]), name
    # the workers ran the tasks, in other processes, without Dask's memory-trimming default
    assert set(client.run(os.getpid).values()).isdisjoint({os.getpid()})
    assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
    assert _no_temp_files(tmp_path)


def test_nothing_is_replaced_without_overwrite_and_skip_existing_finishes_the_rest(client, batch, tmp_path):
    (tmp_path / "im03.png").write_bytes(b"someone else's file")
    records = npespcn.upscale_files([batch["root"] / "in"], tmp_path, scale=2, model=batch["model"], client=client)
    by_name = {r["src"].name: r for r in records}
    assert by_name["im03.png"]["status"] == "failed" and "--overwrite" in by_name["im03.png"]["message"]
    assert (tmp_path / "im03.png").read_bytes() == b"someone else's file"
    assert sum(r["status"] == "written" for r in records) == N_IMAGES - 1
    again = npespcn.upscale_files([batch["root"] / "in"], tmp_path, scale=2, model=batch["model"], client=client,
                                  skip_existing=True)
    assert {r["status"] for r in again if r["src"].name != "broken.png"} == {"done"}
    npespcn.upscale_files([batch["root"] / "in" / "im03.png"], tmp_path, scale=2, model=batch["model"],
                          client=client, overwrite=True)
    assert np.array_equal(_pixels(tmp_path)["im03.png"], _pixels(batch["local"])["im03.png"])


def test_a_worker_killed_mid_batch_changes_nothing(client, batch, tmp_path):
    pids = client.run(os.getpid)
    victim = min(pids.values())
    killed = []

    def kill_after_the_first(rec):
        if not killed and rec["status"] == "written":
            os.kill(victim, signal.SIGKILL)            # a worker process of this test's own cluster
            killed.append(rec["index"])

    records = npespcn.upscale_files([batch["root"] / "in"], tmp_path, scale=2, model=batch["model"],
                                    client=client, progress=kill_after_the_first)
    assert killed, "no file was written before the kill"
    failed = [r for r in records if r["status"] != "written"]
    assert [r["src"].name for r in failed] == ["broken.png"], [r["message"] for r in failed]
    want, got = _pixels(batch["local"]), _pixels(tmp_path)
    assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
    assert _no_temp_files(tmp_path)
    assert victim not in client.run(os.getpid).values() or not _alive(victim)
    client.wait_for_workers(2, timeout=60)            # the nanny brings a fresh one for the next test


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_rerun_after_the_client_died_finishes_only_what_is_missing(client, batch, tmp_path):
    """The state a dead client leaves: some outputs complete, a dead process's temporary file."""
    first = sorted((batch["root"] / "in").glob("im*.png"))[:5]
    npespcn.upscale_files(first, tmp_path, scale=2, model=batch["model"])
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png")}
    dead = 2 ** 22 + 12345                                         # above the usual pid_max: no such process
    stale = tmp_path / f"{TMP_PREFIX}{dead}-{HOST_TAG}-abcdefgh.im07.png"
    stale.write_bytes(b"half a png")
    time.sleep(0.01)
    records = npespcn.upscale_files([batch["root"] / "in"], tmp_path, scale=2, model=batch["model"],
                                    client=client, skip_existing=True)
    status = {r["src"].name: r["status"] for r in records}
    assert [n for n, s in status.items() if s == "done"] == [p.name for p in first]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png") if p.name in before} == before
    want, got = _pixels(batch["local"]), _pixels(tmp_path)
    assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
    assert not stale.exists()


def test_the_command_line_on_a_scheduler_address(client, batch, tmp_path, capsys):
    address = client.scheduler.address
    argv = [str(batch["root"] / "in"), "--out-dir", str(tmp_path), "--model", str(batch["model"]),
            "--dask", address]
    assert main(argv) == 1                                          # the broken file
    err = capsys.readouterr().err
    assert "broken.png: skipped" in err and f"1 of {N_IMAGES + 1} file(s) failed" in err
    assert sum(line.endswith(" s)") for line in err.splitlines()) == N_IMAGES
    got, want = _pixels(tmp_path), _pixels(batch["local"])
    assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
    assert main([*argv, "--skip-existing", "-q"]) == 1              # nothing left to do but the broken file
    assert "broken.png" in capsys.readouterr().err


def test_bad_dask_arguments_are_one_line(batch, tmp_path, capsys, monkeypatch):
    base = [str(batch["root"] / "in" / "im00.png"), "--out-dir", str(tmp_path), "--model", str(batch["model"])]
    assert main([*base, "--dask", "local:0"]) == 2
    assert "local:N" in capsys.readouterr().err
    assert main([*base, "--overwrite", "--skip-existing"]) == 2
    assert "contradict" in capsys.readouterr().err

    def missing(module, purpose=""):
        raise extras.MissingExtra(f"dask.distributed is not installed (needed for {purpose}); install it with: "
                                  f'pip install "npespcn[dask]"')

    monkeypatch.setattr("npespcn.inference.batch.require", missing)
    assert main([*base, "--dask", "local:2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'npespcn[dask]' in err
    assert not list(tmp_path.iterdir())


def test_animations_are_refused_on_a_cluster_a_bad_video_reported_and_the_images_written(client, batch, tmp_path,
                                                                                         capsys):
    frames = [np.full((8, 10, 3), 40 * i, np.uint8) for i in range(3)]
    gif = tmp_path / "spin.gif"
    Image.fromarray(frames[0]).save(gif, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]],
                                    duration=[50, 50, 50])
    clip = tmp_path / "clip.mp4"                  # a video by its suffix, split on the cluster: unreadable
    clip.write_bytes(b"not a video")
    image = batch["root"] / "in" / "im00.png"
    out = tmp_path / "out"
    records = npespcn.upscale_files([gif, clip, image], out, scale=2, model=batch["model"], client=client)
    assert [r["status"] for r in records] == ["failed", "failed", "written"]
    assert "animations are upscaled in this process only" in records[0]["message"]
    assert "clip.mp4: not a readable video" in records[1]["message"]
    assert all("\n" not in r["message"] for r in records[:2])
    assert sorted(p.name for p in out.iterdir()) == ["im00.png"]
    assert np.array_equal(_pixels(out)["im00.png"], _pixels(batch["local"])["im00.png"])
    assert main([str(gif), "--out-dir", str(tmp_path / "cli"), "--model", str(batch["model"]), "--dask",
                 client.scheduler.address]) == 1
    err = capsys.readouterr().err
    assert "spin.gif: skipped: animations are upscaled in this process only" in err
    assert not (tmp_path / "cli" / "spin.gif").exists()
