"""on_failure.stop_after in the lifecycle: after N failures of the runs' own doing, the
submission's other runs are cancelled (queued ones at once, running ones stopped)."""

from __future__ import annotations

from convoy.coordinator.runs.events import (
    AttemptEnded,
    AttemptStarted,
    Collected,
    Dispatch,
    Outcome,
    Restored,
    Submitted,
)
from convoy.states import Reason, RunState

from .lifecycle_world import Driver, Launch, Stop, make_run

EXIT3 = Outcome(Reason.EXIT_CODE, "exited with code 3", 3, started_at=10.0, ended_at=20.0)
LOST = Outcome(Reason.HOST_LOST, "its host was lost", None, started_at=10.0, ended_at=20.0)
WHY = "cancelled: 2 runs of s-1 failed (on_failure: stop_after: 2)"


def state(d: Driver, run_id: str) -> RunState:
    """As committed, or as submitted (a queued run is committed only once it moves)."""
    return (d.store.get(run_id) or d.life.runs[run_id]).state


def started(d: Driver, at: float) -> list[str]:
    ids = [la.run.attempt_id for la in d.of(Launch, d.feed(Dispatch(at)))]
    for i in ids:
        d.feed(AttemptStarted(i, at))
    return ids


def fail(d: Driver, attempt: str, outcome: Outcome = EXIT3) -> list[object]:
    d.feed(AttemptEnded(attempt, outcome))
    return d.feed(Collected(attempt))  # type: ignore[return-value]


def test_the_second_failure_cancels_the_queued_runs_and_stops_the_running_one() -> None:
    d = Driver()
    d.add_hosts("h1")
    d.up("h1", 0.0, cpus=3)
    runs = [make_run(i) for i in range(6)]
    d.feed(Submitted(tuple(runs), stop_after=2))
    a0, a1, a2 = started(d, 1.0)
    fail(d, a0)
    assert {state(d, r.id) for r in runs[3:]} == {RunState.QUEUED}  # one failure: goes on
    acts = fail(d, a1)
    assert d.of(Stop, acts) == [Stop("h1", a2, d.life.grace_s, WHY)]
    for r in runs[3:]:
        assert d.state(r.id) is RunState.CANCELLED and d.store[r.id].reason == WHY
    d.feed(AttemptEnded(a2, Outcome(Reason.EXIT_CODE, "killed", 137, 10.0, 30.0)))
    d.feed(Collected(a2))
    assert d.state(runs[2].id) is RunState.CANCELLED
    assert d.store[runs[2].id].reason.startswith(WHY)
    assert not d.of(Launch, d.feed(Dispatch(40.0)))


def test_without_stop_after_or_for_the_platform_s_failures_the_sweep_goes_on() -> None:
    for stop_after, outcome in [(0, EXIT3), (1, LOST)]:
        d = Driver()
        d.add_hosts("h1")
        d.up("h1", 0.0, cpus=1)
        runs = [make_run(i, infra_retries=0) for i in range(3)]
        d.feed(Submitted(tuple(runs), stop_after=stop_after))
        (a0,) = started(d, 1.0)
        fail(d, a0, outcome)
        assert d.state(runs[0].id) in (RunState.FAILED, RunState.LOST)
        assert state(d, runs[1].id) is not RunState.CANCELLED, (stop_after, outcome)
        assert len(started(d, 2.0)) == 1


def test_a_submission_over_its_limit_when_the_coordinator_restarts_is_stopped() -> None:
    d = Driver()
    d.add_hosts("h1", at=100.0)
    queued = make_run(3)
    d.feed(Restored((queued,), (), (), stop_after=(("s-1", 2, 2),)))
    assert d.state(queued.id) is RunState.CANCELLED and d.store[queued.id].reason == WHY
