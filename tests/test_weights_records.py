"""The shipped weights, their records (weights/<name>.json) and the table of weights/README.md agree."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from npespcn.cli import train as cli_train
from npespcn.image.io import list_images
from npespcn.training import datasets
from npespcn.training.recipes import recipe
from npespcn.training.trainer import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import weights_records as W  # noqa: E402

FIELDS = {"file", "sha256", "model", "scale", "commands", "default_recipe", "data", "data_sha256", "commit",
          "npespcn", "threads", "machine", "date", "epochs", "steps", "minutes", "scores"}


def test_every_shipped_file_has_its_record():
    shipped = sorted(p.stem for p in W.WEIGHTS.glob("*.npz"))
    assert shipped and sorted(W.records()) == shipped


@pytest.mark.parametrize("name", sorted(W.records()))
def test_a_record_names_its_file_exactly(name):
    r = W.records()[name]
    assert FIELDS <= set(r), FIELDS - set(r)
    assert r["file"] == f"{name}.npz" and r["sha256"] == W.sha256(W.WEIGHTS / r["file"])
    assert set(r["scores"]) == set(W.TEST_SETS)
    t91 = datasets.builtin_dir() / "T91"
    assert r["data"] == "T91" and r["data_sha256"] == datasets.digest(list_images(t91, recursive=True), t91)


@pytest.mark.parametrize("name", [n for n, r in sorted(W.records().items()) if r["default_recipe"]])
def test_a_recipe_record_is_one_command_of_the_default_recipe(name):
    r = W.records()[name]
    assert len(r["commands"]) == 1 and r["commit"] and not r["commit"].endswith("+dirty")
    argv = shlex.split(r["commands"][0])
    assert argv[:2] == ["npespcn", "train"]
    cfg = cli_train.config_from_args(cli_train.build_parser().parse_args(argv[2:]))
    assert cfg == TrainConfig(**recipe(r["model"], r["scale"]))


def test_the_readme_table_is_generated_from_the_records():
    assert W.table() in W.README.read_text(), "weights/README.md is stale: python scripts/weights_records.py table"


def test_the_runs_table_is_generated_from_the_records():
    text = W.README.read_text()
    assert W.RUNS_BEGIN in text and W.runs_table() in text, \
        "weights/README.md is stale: python scripts/weights_records.py table"


def test_first_minute_and_milestones_read_the_log():
    log = [{"epoch": e, "elapsed": 60.0 * e, "psnr": 30.0 + 0.1 * e} for e in range(1, 21)]
    assert W.first_minute(log, 31.0) == 10.0          # epoch 10 is the first at or above 31.0 dB
    assert W.first_minute(log, 40.0) is None
    assert [m[0] for m in W.milestones(log)] == [2, 5, 10, 15, 20]
    assert W.milestones(log)[-1] == [20, 20.0, 32.0]


def test_the_table_check_can_fail(monkeypatch):
    records = W.records()
    name = sorted(records)[0]
    records[name]["scores"]["Set5"][0] += 0.5
    monkeypatch.setattr(W, "records", lambda: records)
    assert W.table() not in W.README.read_text()
