"""What `convoy run` shows of its runs' progress, beside their output (on stderr: stdout carries
only what the runs print).

On a terminal, one status line kept under the output and rewritten in place: the submission's
bar, how many runs are done and running, an estimate of the time left, and each running run's
percent (its experiment's `progress:`, as the coordinator reports it). Anything else written to
the terminal clears it first, and it is drawn again after. Otherwise (stderr a file or a pipe),
a plain line each time a running run's percent enters another tenth: `convoy: e-1.03 50%`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TextIO

from convoy.client import Run
from convoy.states import RunState

from .render import human_duration

TERMINAL = {s.value for s in RunState if s.terminal}
BAR = 20
_CLEAR = "\r\x1b[K"  # back to the line's start, and erase it


def bar(fraction: float, width: int = BAR) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


@dataclass
class RunsProgress:
    """A submission's runs as its events tell them: how far along it is, and each running
    run's percent. No I/O: `seen` returns the plain lines to say, `text` the status line."""

    submission: str
    total: int
    running: dict[str, None] = field(default_factory=dict)  # the running runs, in start order
    percent: dict[str, float] = field(default_factory=dict)  # running run -> its percent
    ended: set[str] = field(default_factory=set)
    reused: set[str] = field(default_factory=set)  # already done: not run now
    first_start: float = 0.0  # when the first of its runs to run started (0: none yet)
    _tenths: dict[str, int] = field(default_factory=dict)  # run -> the tenth last said

    def seen(self, run: Run) -> list[str]:
        """Take in a run as an event has it; the plain lines it calls for (a running run's
        percent in another tenth than the last one said)."""
        if run.reused_from:
            self.reused.add(run.id)
        elif run.started_at and (not self.first_start or run.started_at < self.first_start):
            self.first_start = run.started_at
        if run.state in TERMINAL:
            self.ended.add(run.id)
        if run.state != "running":
            self.running.pop(run.id, None)
            self.percent.pop(run.id, None)
            return []
        self.running.setdefault(run.id, None)
        if run.progress is None:
            return []
        self.percent[run.id] = run.progress
        tenth = int(run.progress // 10)
        if self._tenths.get(run.id) == tenth:
            return []
        self._tenths[run.id] = tenth
        return [f"convoy: {run.id} {run.progress:.0f}%"]

    def fraction(self) -> float:
        """How much of the runs to run is done: ended runs whole, running ones by percent."""
        to_run = self.total - len(self.reused)
        if to_run <= 0:
            return 1.0
        done = len(self.ended - self.reused) + sum(self.percent.values()) / 100
        return min(1.0, done / to_run)

    def left_s(self, now: float) -> float | None:
        """The time left at the pace so far (since the first run started), or None before
        there is a pace to go by."""
        f = self.fraction()
        if not self.first_start or not 0 < f < 1:
            return None
        return (now - self.first_start) * (1 - f) / f

    def text(self, now: float, width: int) -> str:
        """The status line, cut to `width` characters."""
        f = self.fraction()
        left = self.left_s(now)
        eta = "" if left is None else f", about {human_duration(left)} left"
        runs = ", ".join(f"{run_id} {p:.0f}%" for run_id, p in self.percent.items())
        line = (f"convoy: {self.submission} {bar(f)} {len(self.ended)}/{self.total} done, "
                f"{len(self.running)} running{eta}" + (f": {runs}" if runs else ""))  # fmt: skip
        return line if len(line) <= width else line[: max(0, width - 1)] + "…"


class StatusLine:
    """One line at the bottom of a terminal, rewritten in place; `hide()` before writing
    anything else there, `show()` after."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.text = ""
        self._on_screen = False

    def width(self) -> int:
        """The terminal's width less one (a line as wide as the terminal would wrap); 79 when
        it says none (a pseudo-terminal whose size was never set says 0)."""
        try:
            columns = os.get_terminal_size(self.err.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return max(20, (columns or 80) - 1)

    def set(self, text: str) -> None:
        if text == self.text and self._on_screen:
            return
        self.text = text
        self.err.write(_CLEAR + text)
        self.err.flush()
        self._on_screen = bool(text)

    def hide(self) -> None:
        if self._on_screen:
            self.err.write(_CLEAR)
            self.err.flush()
            self._on_screen = False

    def show(self) -> None:
        if self.text and not self._on_screen:
            self.set(self.text)
