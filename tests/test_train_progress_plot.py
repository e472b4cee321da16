"""The progress bar (terminal and plain-line modes) and the Pillow curve plot."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from npespcn.training.plot import plot_curves, render_curves
from npespcn.training.progress import Progress, format_seconds


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_format_seconds():
    assert format_seconds(0) == "0:00"
    assert format_seconds(75.2) == "1:15"
    assert format_seconds(3725) == "1:02:05"
    assert format_seconds(float("nan")) == "?" and format_seconds(float("inf")) == "?"


def test_plain_lines_when_not_a_terminal():
    clock, out = _Clock(), io.StringIO()
    bar = Progress(1000, "epoch 1/3", stream=out, log_every=10, clock=clock)
    for _ in range(10):                       # 100 images a second for 10 s
        clock.t += 1
        bar.update(100, loss=0.5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in out.getvalue()
    assert lines[0].startswith("epoch 1/3") and "100%" in lines[0] and "1000/1000" in lines[0]
    assert "loss 0.500000" in lines[0] and "100 img/s" in lines[0] and "ETA 0:00" in lines[0]
    bar.close("Set5 PSNR 30.000 dB")
    bar.close("twice")                        # a second close prints nothing
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].endswith("Set5 PSNR 30.000 dB")


def test_disabled_bar_counts_but_writes_nothing():
    clock, out = _Clock(), _TTY()
    bar = Progress(100, "epoch 1/1", stream=out, log_every=0, refresh=1e9, clock=clock, disabled=True)
    clock.t += 1
    bar.update(40, loss=0.5)
    bar.close("suffix")
    assert out.getvalue() == "" and bar.done == 40


def test_eta_from_rate_and_resumed_start():
    clock = _Clock()
    bar = Progress(1000, stream=io.StringIO(), start=400, clock=clock)
    clock.t = 2.0
    bar.update(200)                           # 200 images in 2 s since the (resumed) start
    assert bar.rate == pytest.approx(100.0)
    assert bar.eta() == pytest.approx(4.0)    # 400 left
    assert "ETA 0:04" in bar.line() and "60%" in bar.line()


def test_the_run_eta_counts_the_epochs_still_to_come():
    clock = _Clock()
    bar = Progress(1000, "epoch 2/5", stream=io.StringIO(), clock=clock, later=3, later_extra=5.0)
    clock.t = 2.0
    bar.update(200)                           # 100 images a second: 8 s left of this epoch
    assert bar.run_eta() == pytest.approx(8.0 + 3 * (10.0 + 5.0))
    assert "ETA 0:08" in bar.line() and "run ETA 0:53" in bar.line()
    last = Progress(10, stream=io.StringIO(), clock=clock)
    assert "run ETA" not in last.line()       # the last epoch: its ETA is the run's
    with pytest.raises(ValueError):
        Progress(10, later=-1)


def test_terminal_mode_redraws_one_line():
    clock, out = _Clock(), _TTY()
    bar = Progress(100, "e", stream=out, refresh=10, width=10, clock=clock)
    for _ in range(10):
        clock.t += 0.2
        bar.update(10, loss=0.25)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 11 and text.endswith("\n") and text.count("\n") == 1
    assert "[##########]" in text and "[#.........]" in text


def test_progress_rejects_negative_total():
    with pytest.raises(ValueError, match="total and start"):
        Progress(-1)


def test_plot_draws_each_series_in_its_panel(tmp_path):
    series = {"loss": [(1, 0.5), (2, 0.2), (3, float("nan")), (4, 0.1)], "psnr": [(1, 28.0), (2, 30.5)]}
    img = render_curves(series, width=400, panel_height=150)
    assert img.size == (400, 300)
    a = np.asarray(img)
    blue, red = np.array([31, 119, 180]), np.array([214, 39, 40])
    is_blue = (a == blue).all(axis=2)
    is_red = (a == red).all(axis=2)
    assert is_blue[:150].sum() > 50 and is_blue[150:].sum() == 0     # first series in the first panel
    assert is_red[150:].sum() > 50 and is_red[:150].sum() == 0
    # the loss falls: its curve starts high on the left and ends low on the right
    rows, cols = np.nonzero(is_blue[:150, 64:388])
    assert rows[cols < 20].mean() < rows[cols > 300].mean()
    plot_curves(series, tmp_path / "c.png", width=400, panel_height=150)
    plot_curves(series, tmp_path / "d.png", width=400, panel_height=150)
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "d.png").read_bytes()
    with Image.open(tmp_path / "c.png") as im:
        assert im.format == "PNG"


def test_plot_needs_a_series():
    with pytest.raises(ValueError, match="at least one series"):
        render_curves({})
