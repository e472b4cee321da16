"""``npespcn.upscale_files`` in this process: the library behind ``npespcn upscale`` (the command line's
own tests are in test_cli_upscale.py and test_hostile.py; the Dask cluster's in test_dask.py)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import npespcn
from npespcn.inference.batch import BatchError, upscale_file


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (14, 18, 3), dtype=np.uint8)).save(tmp_path / "in" / name)
    return tmp_path


def test_records_say_what_happened_and_the_pixels_are_upscale_s(files):
    net = npespcn.ESPCN.paper(2, seed=1)
    records = npespcn.upscale_files([files / "in"], files / "out", scale=2, model=net)
    assert [(r["src"].name, r["status"], r["shape"][:2]) for r in records] == [("a.png", "written", (28, 36)),
                                                                              ("b.jpg", "written", (28, 36))]
    src = np.asarray(Image.open(files / "in" / "a.png"))
    assert np.array_equal(np.asarray(Image.open(files / "out" / "a.png")), npespcn.upscale(src, 2, net))
    again = npespcn.upscale_files([files / "in"], files / "out", scale=2, model=net)
    assert {r["status"] for r in again} == {"failed"} and all("--overwrite" in r["message"] for r in again)
    done = npespcn.upscale_files([files / "in"], files / "out", scale=2, model=net, skip_existing=True)
    assert {r["status"] for r in done} == {"done"}


def test_a_retried_task_finding_its_own_finished_output_counts_as_written(files):
    """What a cluster's task re-run after its worker died meets: its first attempt's complete output."""
    net = npespcn.ESPCN.paper(2, seed=1)
    for name in ("a.png", "b.jpg"):
        dst = files / f"x_{name}"
        assert upscale_file(files / "in" / name, dst, net)["status"] == "written"
        before = dst.read_bytes()
        again = upscale_file(files / "in" / name, dst, net)               # a second run: never two winners
        assert again["status"] == "failed" and "appeared while it was being upscaled" in again["message"]
        assert upscale_file(files / "in" / name, dst, net, accept_identical=True)["status"] == "written"
        other = upscale_file(files / "in" / name, dst, npespcn.ESPCN.paper(2, seed=2), accept_identical=True)
        assert other["status"] == "failed" and "appeared while it was being upscaled" in other["message"]
        assert dst.read_bytes() == before
    assert sorted(p.name for p in files.iterdir()) == ["in", "x_a.png", "x_b.jpg"]    # no probe left


def test_batch_errors(files):
    with pytest.raises(BatchError, match="no file matches"):
        npespcn.upscale_files([str(files / "none*.png")], files / "out", scale=2)
    with pytest.raises(BatchError, match="takes one input"):
        npespcn.upscale_files([files / "in"], out=files / "one.png", scale=2)
    (files / "file").write_bytes(b"")
    with pytest.raises(BatchError, match="not a folder"):
        npespcn.upscale_files([files / "in"], files / "file", scale=2, model=npespcn.ESPCN.paper(2))
