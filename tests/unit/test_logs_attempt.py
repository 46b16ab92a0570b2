"""`convoy logs --attempt N` (Logs._one_attempt), driven with a stand-in for the rest of the
coordinator: the attempts that reached running, and a log reader that says what it read."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from convoy.coordinator.runs.bus import EventBus
from convoy.coordinator.runs.logs import Logs
from convoy.coordinator.runs.records import RunRecord
from convoy.errors import NotFound
from convoy.spec import Resources
from convoy.states import RunState


def _run(**kw: Any) -> RunRecord:
    base: dict[str, Any] = dict(
        id="r.00", submission_id="r", experiment="e", index=0, params={}, command="true",
        env={}, image="i", resources=Resources(1, 1 << 20, 0), retries=0, timeout_seconds=0,
        network="none", outputs=(), revision="", results_path="/nonexistent", priority=0, seq=0,
    )  # fmt: skip
    base.update(kw)
    return RunRecord(**base)


def _coordinator(run: RunRecord, ran: dict[int, str]) -> SimpleNamespace:
    c = SimpleNamespace(bus=EventBus(), read=[])
    c.run = lambda _id: run
    c.store = SimpleNamespace(attempt_hosts=lambda _id: dict(ran), run=lambda _id: run)

    async def attempt_log(*args: Any, gone_ok: bool = True) -> Any:
        _, attempt, host, _, follow = args
        c.read.append((attempt, host, follow))
        yield 0, f"attempt {attempt}\n".encode()

    c._attempt_log = attempt_log
    c._started = lambda run_id, after: Logs._started(c, run_id, after)  # type: ignore[arg-type]
    return c


def _read(c: SimpleNamespace, run: RunRecord, attempt: int, follow: bool) -> bytes:
    async def main() -> bytes:
        gen = Logs._one_attempt(c, run, attempt, 0, follow)  # type: ignore[arg-type]
        return b"".join([d async for _, d in gen])

    return asyncio.run(asyncio.wait_for(main(), 5))


def test_an_attempt_after_a_placement_again_is_served() -> None:
    """retries 0, but attempt 1 was placed again before it ran (its host had lost the
    revision) and attempt 2 ran: --attempt 2 is that one, though beyond retries + 1."""
    run = _run(retries=0, attempt=2, state=RunState.FAILED, host="h")
    c = _coordinator(run, {2: "h"})
    assert _read(c, run, 2, follow=False) == b"attempt 2\n"
    with pytest.raises(NotFound, match="attempt 1 never reached running"):
        _read(c, run, 1, follow=False)
    with pytest.raises(NotFound, match="ended after 2 attempt"):
        _read(c, run, 3, follow=True)


def test_following_an_attempt_that_ended_prints_it_without_waiting_for_the_next() -> None:
    """Attempt 1 failed and its retry is queued (perhaps long, behind a hold): following
    attempt 1 prints it, not live, and returns."""
    run = _run(retries=1, attempt=1, state=RunState.QUEUED, host="h")
    c = _coordinator(run, {1: "h"})
    assert _read(c, run, 1, follow=True) == b"attempt 1\n"
    assert c.read == [(1, "h", False)]


def test_following_the_running_attempt_follows_it_and_a_later_one_is_not_there_yet() -> None:
    run = _run(retries=2, attempt=2, state=RunState.RUNNING, host="h")
    c = _coordinator(run, {1: "g", 2: "h"})
    assert _read(c, run, 2, follow=True) == b"attempt 2\n"
    assert c.read == [(2, "h", True)]
    with pytest.raises(NotFound, match="attempt 3 has not started yet"):
        _read(c, run, 3, follow=False)
