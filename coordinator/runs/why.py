"""What `convoy why RUN` says: why a run ran, or did not, as decided when it was submitted; and,
while it is queued, what it waits for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from convoy.coordinator.runs.records import RunRecord
from convoy.states import RunState

FILES_SHOWN = 10


@dataclass(frozen=True)
class Why:
    run_id: str
    key: str
    key_parts: dict[str, str]
    reused_from: str
    compared: str
    changed: tuple[str, ...]
    changed_files: tuple[str, ...]
    forced: bool
    text: str


def why_of(run: RunRecord, changed_files: Sequence[str] = (), waiting_for: str = "") -> Why:
    """The answer for `run`; `changed_files`: what differs between the compared run's sources
    and its own, when its sources changed (empty when not known); `waiting_for`: why it
    waits, while it is queued (a line of its own)."""
    w = _why_of(run, changed_files)
    if not waiting_for:
        return w
    return replace(w, text=f"{w.text}\n  it waits: {waiting_for}")


def _why_of(run: RunRecord, changed_files: Sequence[str]) -> Why:
    memo = run.memo
    files = tuple(changed_files)
    if memo is None:
        text = f"{run.id} was submitted before convoy kept run keys: it ran as every run did"
        return Why(run.id, run.key, dict(run.key_parts), "", "", (), (), False, text)
    if memo.reuse:
        text = f"{run.id} did not run: {memo.text}; its results are linked from {memo.reuse}'s"
    else:
        runs = "is to run" if run.state is RunState.QUEUED and not run.attempt else "ran"
        text = f"{run.id} {runs}: {memo.text}"
        if files:
            more = len(files) - FILES_SHOWN
            shown = ", ".join(files[:FILES_SHOWN]) + (f" and {more} more" if more > 0 else "")
            text += f"\n  the sources changed: {shown}"
    return Why(run.id, run.key, dict(run.key_parts), memo.reuse, memo.compared, memo.changed,
               files, memo.forced, text)  # fmt: skip
