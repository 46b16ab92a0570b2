"""What the runs screen shows, kept apart from Textual: runs by id, updates coalesced.

Events arrive one run at a time, thousands a second in a large sweep. The model records each
(replacing the run's row) and remembers which rows changed; the screen takes the changed set
a few times a second and updates just those cells, so a burst costs its own size, not the
table's. Filtering and sorting are pure functions of the rows, recomputed only when asked.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from convoy.cli.render import human_duration, params_text
from convoy.client import Run
from convoy.states import ACTIVE, TERMINAL

COLUMNS = ("run", "state", "host", "duration", "progress", "ended", "params")
# The columns whose own order is from the top down (newest, longest, furthest first): ▼.
# The others go from A to Z: ▲. Reversed, each goes the other way.
DESCENDING = frozenset({"run", "duration", "progress"})


@dataclass
class Row:
    id: str
    submission: str
    experiment: str
    index: int
    state: str
    host: str
    params: str
    started_at: float
    ended_at: float
    exit_code: int | None
    reason: str
    results_path: str
    progress: float | None = None  # 0-100, while it runs: its `progress:`, as its host read it
    code: str = ""  # why it ended (or its last attempt did): convoy.states.Reason
    waiting_for: str = ""  # while it is queued: why it waits (as of the message)
    created_at: float = 0.0  # when its submission was made (all its runs have the same)
    has_progress: bool = False  # its experiment has a `progress:` pattern: bar it when done

    @classmethod
    def of(cls, run: Run) -> Row:
        """A Row from a run (an event's or a listing's)."""
        params = params_text(run)
        return cls(
            id=run.id, submission=run.submission_id, experiment=run.experiment, index=run.index,
            state=run.state, host=run.host, params=params, started_at=run.started_at,
            ended_at=run.ended_at, exit_code=run.exit_code,
            reason=run.reason, results_path=run.results_path, code=run.code,
            progress=run.progress,
            waiting_for=run.waiting_for if run.state == "queued" else "",
            created_at=run.created_at,
            has_progress=run.progress is not None,
        )  # fmt: skip

    def duration(self, now: float) -> float | None:
        if not self.started_at:
            return None
        return (self.ended_at or now) - self.started_at

    def cells(self, now: float) -> tuple[str, ...]:
        d = self.duration(now)
        progress = (
            "" if self.progress is None else f"{bar(self.progress, 10)} {self.progress:3.0f}%"
        )
        if self.state == "succeeded" and self.has_progress:  # done: full, whatever was read
            progress = f"{bar(100, 10)} 100%"
        return (
            self.id, self.state, self.host, "" if d is None else human(d), progress,
            self.ended(), self.params,
        )  # fmt: skip

    def ended(self) -> str:
        """How it ended: its exit code, or the reason code when that says more (host_lost,
        oom_killed, timeout, ...); blank while it has not."""
        if self.code and self.code != "exit_code":
            return self.code
        return "" if self.exit_code is None else str(self.exit_code)

    def why(self) -> str:
        """One line on the run for the status bar: its state, reason code and sentence, and
        what it waits for while it is queued."""
        code = f" [{self.code}]" if self.code else ""
        said = "; ".join(
            [*([self.reason] if self.reason else []),
             *([f"it waits: {self.waiting_for}"] if self.waiting_for else [])]
        )  # fmt: skip
        return f"{self.id} {self.state}{code}: {said}" if said else self.id


def bar(percent: float, width: int) -> str:
    filled = max(0, min(width, round(percent / 100 * width)))
    return "█" * filled + "░" * (width - filled)


def human(seconds: float) -> str:
    return human_duration(max(0.0, seconds))


@dataclass
class SubmissionStats:
    total: int = 0
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    eta_s: float | None = None  # from finished runs' durations and the runs still to go

    def line(self, sub: str) -> str:
        eta = "" if self.eta_s is None else f", about {human(self.eta_s)} left"
        bad = f", {self.failed} failed" if self.failed else ""
        return (f"{sub}: {bar(100 * self.done / max(self.total, 1), 20)} {self.done}/{self.total} "
                f"done ({self.running} running{bad}){eta}")  # fmt: skip


@dataclass
class RunsModel:
    rows: dict[str, Row] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # ids changed since the last take_dirty()
    added: list[str] = field(default_factory=list)  # ids new since the last take_dirty()
    # submission -> its run ids, both in the order first seen: the status line reads these
    # on every flush, and a pass over all rows each time cost 4n steps per flush
    by_submission: dict[str, dict[str, None]] = field(default_factory=dict)
    # submission -> whether its experiment has a `progress:` pattern (ListSubmissions says)
    with_progress: dict[str, bool] = field(default_factory=dict)

    def set_pattern(self, submission: str, pattern: str) -> None:
        """Whether the submission's runs read progress (its `progress:` pattern, "" for none):
        its runs' cells redrawn to match."""
        has = bool(pattern)
        self.with_progress[submission] = has
        for run_id in self.by_submission.get(submission, ()):
            row = self.rows[run_id]
            if row.has_progress != has:
                row.has_progress = has
                self.dirty.add(run_id)

    def apply(self, run: Run) -> None:
        """Record a run (an event's or a listing's)."""
        row = Row.of(run)
        old = self.rows.get(row.id)
        if old is None:
            self.added.append(row.id)
            self.by_submission.setdefault(row.submission, {})[row.id] = None
        row.has_progress = (row.has_progress or self.with_progress.get(row.submission, False)
                            or (old is not None and old.has_progress))  # fmt: skip
        self.rows[row.id] = row
        self.dirty.add(row.id)

    def apply_many(self, runs: Iterable[Run]) -> None:
        for r in runs:
            self.apply(r)

    def set_waiting(self, run: Run) -> None:
        """A queued run's reason to wait, as a GetRun answered it (it changes with no event):
        taken only while the row is queued still, so that an answer overtaken by an event
        does not undo that event."""
        row = self.rows.get(run.id)
        if row is None or row.state != "queued" or run.state != "queued":
            return
        if row.waiting_for != run.waiting_for:
            row.waiting_for = run.waiting_for
            self.dirty.add(row.id)

    def take_dirty(self) -> tuple[list[str], list[str]]:
        """(ids added, ids changed but not added) since the last call."""
        added, self.added = self.added, []
        new = set(added)  # once: built per id, it made a load of n new runs cost n² steps
        changed = [i for i in self.dirty if i not in new]
        self.dirty = set()
        return added, changed

    def visible(
        self, text: str = "", state: str = "", sort: str = "run", reverse: bool = False
    ) -> list[Row]:
        """The rows matching a filter (text in id, experiment, params, host or state; a state
        name or "active"), in a column's order: by "run", the newest submission's runs first
        (each submission's in index order); by duration or progress, the largest first; by the
        others, A to Z. `reverse` turns the column's order round; runs equal in it stay in
        run order."""
        text = text.lower()
        rows = [
            r for r in self.rows.values()
            if (not state or r.state == state or (state == "active" and r.state in ACTIVE))
            and (not text or text in f"{r.id} {r.experiment} {r.params} {r.host} {r.state}".lower())
        ]  # fmt: skip
        # The newer submission: made later; made at the same time (or not said), seen later.
        seen = {s: n for n, s in enumerate(self.by_submission)}
        rows.sort(key=lambda r: (-r.created_at, -seen[r.submission], r.index))
        now = time.time()
        columns: dict[str, Callable[[Row], Any]] = {
            "state": lambda r: r.state,
            "host": lambda r: r.host,
            "duration": lambda r: -(r.duration(now) or 0.0),
            "progress": lambda r: -(r.progress or 0.0),
            "ended": lambda r: (r.exit_code is None and not r.code, r.ended()),
            "params": lambda r: r.params,
        }
        if sort in columns:
            rows.sort(key=columns[sort], reverse=reverse)  # stable, reversed too: ties stay
        elif reverse:  # by run, oldest first; each submission's runs still in index order
            rows.sort(key=lambda r: (r.created_at, seen[r.submission]))
        return rows

    def stats(self, submission: str, now: float | None = None) -> SubmissionStats:
        now = time.time() if now is None else now
        s = SubmissionStats()
        durations = []
        for run_id in self.by_submission.get(submission, ()):
            r = self.rows[run_id]
            s.total += 1
            if r.state in TERMINAL:
                s.done += 1
                s.succeeded += r.state == "succeeded"
                s.failed += r.state in ("failed", "lost")
                if r.started_at and r.ended_at:
                    durations.append(r.ended_at - r.started_at)
            elif r.state in ACTIVE:
                s.running += 1
        if durations and s.done < s.total:
            # Runs left, at the pace of those running now: each slot finishes one run in a
            # median finished run's time.
            slots = max(s.running, 1)
            s.eta_s = statistics.median(durations) * (s.total - s.done) / slots
        return s

    def submissions(self) -> list[str]:
        return list(self.by_submission)
