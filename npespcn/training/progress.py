"""A small progress bar for training epochs, written to stderr.

On a terminal it redraws one line (``\\r``) at most ``refresh`` times a second::

    epoch 3/100 [#########...........]  45%  1216/2701  loss 0.00123  512 img/s  ETA 0:03  run ETA 1:02:05

The run's ETA counts the ``later`` passes still to come after this one (the remaining epochs), each of
``total`` items at the current rate plus ``later_extra`` seconds (a validation).

When the stream is not a terminal (a log file, a pipe, CI) it prints plain lines instead, one every
``log_every`` seconds and one at the end, so logs stay short.
"""
from __future__ import annotations

import math
import sys
import time


def format_seconds(s: float) -> str:
    """``75.2 -> '1:15'``, ``3725 -> '1:02:05'``; ``'?'`` when unknown."""
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Progress of ``total`` items (e.g. images of an epoch).

    Parameters
    ----------
    total : int
    desc : str, printed first
    stream : file, default ``sys.stderr``
    width : bar width in characters (terminal mode)
    refresh : redraws per second at most (terminal mode)
    log_every : seconds between plain lines (non-terminal mode)
    clock : callable returning seconds (tests pass a fake)
    disabled : count but never write (``--quiet``), so callers need no guards
    later : passes of ``total`` items still to come after this one (0: this is the last)
    later_extra : seconds each later pass takes beyond its items
    unit : what an item is called in the rate (``"img"``: ``512 img/s``; ``"frames"`` for a video)
    show_loss : show the running loss (training); False for work that has none (upscaling a video)
    """

    def __init__(self, total: int, desc: str = "", stream=None, width: int = 20, refresh: float = 10.0,
                 log_every: float = 30.0, start: int = 0, clock=time.monotonic,
                 disabled: bool = False, later: int = 0, later_extra: float = 0.0, unit: str = "img",
                 show_loss: bool = True):
        if total < 0 or start < 0:
            raise ValueError(f"total and start must be >= 0, got {total}, {start}")
        self.total, self.desc, self.width = int(total), desc, int(width)
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.refresh, self.log_every, self.clock = float(refresh), float(log_every), clock
        self.done = self.start = int(start)
        self.t0 = self._last = clock()
        self.loss = float("nan")
        self._closed = self.disabled = bool(disabled)
        if later < 0 or not later_extra >= 0:
            raise ValueError(f"later and later_extra must be >= 0, got {later}, {later_extra}")
        self.later, self.later_extra = int(later), float(later_extra)
        self.unit, self.show_loss = unit, bool(show_loss)

    @property
    def rate(self) -> float:
        """Items per second since the bar started (items before ``start`` are not counted)."""
        dt = self.clock() - self.t0
        return (self.done - self.start) / dt if dt > 0 else float("nan")

    def eta(self) -> float:
        r = self.rate
        return (self.total - self.done) / r if math.isfinite(r) and r > 0 else float("nan")

    def run_eta(self) -> float:
        """Seconds until this pass and the ``later`` ones are done, at the current rate."""
        r = self.rate
        if not (math.isfinite(r) and r > 0):
            return float("nan")
        return self.eta() + self.later * (self.total / r + self.later_extra)

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        parts = [self.desc] if self.desc else []
        if self.tty:
            fill = int(round(frac * self.width))
            parts.append("[" + "#" * fill + "." * (self.width - fill) + "]")
        parts += [f"{100 * frac:3.0f}%", f"{self.done}/{self.total}"]
        if self.show_loss:
            parts.append(f"loss {self.loss:.6f}")
        rate = self.rate
        parts += [f"{rate:.1f} {self.unit}/s" if rate < 10 else f"{rate:.0f} {self.unit}/s",
                  f"ETA {format_seconds(self.eta())}"]
        if self.later:
            parts.append(f"run ETA {format_seconds(self.run_eta())}")
        return "  ".join(parts)

    def update(self, n: int, loss: float | None = None) -> None:
        """Count ``n`` more items; ``loss`` is the running loss to show."""
        self.done = min(self.total, self.done + int(n))
        if loss is not None:
            self.loss = float(loss)
        if self.disabled:
            return
        now = self.clock()
        if self.tty and now - self._last >= 1.0 / self.refresh:
            self.stream.write("\r" + self.line())
            self.stream.flush()
            self._last = now
        elif not self.tty and now - self._last >= self.log_every:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last = now

    def close(self, suffix: str = "") -> None:
        """Print the final state (and ``suffix``, e.g. validation results) and end the line."""
        if self._closed:
            return
        self._closed = True
        text = self.line() + (f"  {suffix}" if suffix else "")
        self.stream.write(("\r" if self.tty else "") + text + "\n")
        self.stream.flush()
