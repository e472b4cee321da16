"""The shipped weights, trained by npespcn's own trainer (slow: full-set evaluations and a short real run).

Run with ``python -m pytest tests/test_train_weights.py -m slow``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from npespcn import load_model
from npespcn.evaluation.protocol import evaluate

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
pytestmark = pytest.mark.slow


def _recorded():
    """``{(name, scale): (set5_psnr, set14_psnr)}`` from the table in weights/README.md."""
    rows = {}
    for line in (WEIGHTS / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*`(espcn7?)_x(\d)\.npz`\s*\|.*?\|\s*([\d.]+)\s*/\s*[\d.]+\s*\|\s*([\d.]+)\s*/\s*[\d.]+\s*\|", line)
        if m:
            rows[(m.group(1), int(m.group(2)))] = (float(m.group(3)), float(m.group(4)))
    return rows


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_reach_their_record_and_seven_beats_paper(scale, set5_dir, set14_dir):
    rec = _recorded()
    scores = {}
    for name in ("espcn", "espcn7"):
        path = WEIGHTS / f"{name}_x{scale}.npz"
        assert path.is_file(), f"{path} missing"
        model = load_model(path)
        assert model.scale == scale
        s5 = evaluate(model, set5_dir, scale)
        s14 = evaluate(model, set14_dir, scale)
        assert s5["psnr"] > s5["bicubic_psnr"] + 0.5 and s14["psnr"] > s14["bicubic_psnr"] + 0.3
        # the README's numbers are what the evaluation protocol gives (rounded to 2 decimals)
        assert (round(s5["psnr"], 2), round(s14["psnr"], 2)) == rec[(name, scale)]
        scores[name] = (s5["psnr"], s14["psnr"])
    assert scores["espcn7"][0] > scores["espcn"][0] and scores["espcn7"][1] > scores["espcn"][1]
    # issue 4's requirement for the paper model, at the two decimals it is written with
    required = {2: (36.5, 32.2), 3: (32.55, 29.08), 4: (30.3, 27.3)}[scale]
    assert round(scores["espcn"][0], 2) >= required[0] and round(scores["espcn"][1], 2) >= required[1]


def test_a_short_real_run_beats_bicubic(tmp_path, t91_dir, set5_dir):
    """Three epochs of the paper model at x3 on T91 already beat bicubic on Set5."""
    from npespcn.cli.train import main
    rc = main(["--scale", "3", "--data", str(t91_dir), "--val", str(set5_dir), "--epochs", "3",
               "--stride", "7", "--schedule", "none", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    best = load_model(tmp_path / "best.npz")
    res = evaluate(best, set5_dir, 3)
    assert res["psnr"] == max(r["psnr"] for r in rows)
    assert res["psnr"] > res["bicubic_psnr"]
