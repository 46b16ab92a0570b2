"""A running run's percent in the lifecycle: taken from its current attempt only, said once per
change, and gone once the run leaves running."""

from __future__ import annotations

from convoy.coordinator.runs.actions import Progress
from convoy.coordinator.runs.events import (
    AttemptEnded,
    AttemptStarted,
    Collected,
    Dispatch,
    HostSilent,
    Progressed,
    Submitted,
    Tick,
)
from convoy.states import RunState

from .lifecycle_world import Launch, make_run
from .test_lifecycle import EXIT3, OK, running, two_hosts


def test_a_percent_of_the_running_attempt_is_kept_and_said_once_per_change() -> None:
    d = two_hosts()
    run = make_run(0)
    (a1,) = running(d, run)
    acts = d.feed(Progressed(a1, 40.0))
    assert [(p.run.id, p.percent) for p in d.of(Progress, acts)] == [(run.id, 40.0)]
    assert d.life.progress == {run.id: 40.0}
    assert d.feed(Progressed(a1, 40.0)) == []  # the same again: nothing to say
    assert d.of(Progress, d.feed(Progressed(a1, 55.0)))[0].percent == 55.0


def test_a_percent_before_the_attempt_started_or_of_an_unknown_attempt_is_not_taken() -> None:
    d = two_hosts()
    run = make_run(0)
    d.feed(Submitted((run,)))
    (launch,) = d.of(Launch, d.feed(Dispatch(1.0)))
    assert d.feed(Progressed(launch.run.attempt_id, 10.0)) == []
    assert d.feed(Progressed("nobody-a1", 10.0)) == []
    assert d.life.progress == {}


def test_a_run_that_ends_has_no_percent_any_more() -> None:
    """Still running while its results come in (the percent stays); ended: gone."""
    d = two_hosts()
    run = make_run(0)
    (a1,) = running(d, run)
    d.feed(Progressed(a1, 90.0))
    d.feed(AttemptEnded(a1, OK))
    assert d.life.progress == {run.id: 90.0}
    d.feed(Collected(a1))
    assert d.state(run.id) is RunState.SUCCEEDED and d.life.progress == {}


def test_a_retry_starts_without_the_last_attempt_s_percent() -> None:
    d = two_hosts()
    run = make_run(0, retries=1)
    (a1,) = running(d, run)
    d.feed(Progressed(a1, 70.0))
    d.feed(AttemptEnded(a1, EXIT3))
    d.feed(Collected(a1))
    assert d.state(run.id) is RunState.QUEUED and d.life.progress == {}


def test_a_superseded_attempt_that_goes_on_printing_does_not_count() -> None:
    """Its host lost, the run is retried elsewhere; the old attempt's percent, arriving when
    its host answers again, is not the run's."""
    d = two_hosts()
    run = make_run(0)
    (a1,) = running(d, run, at=0.0)
    d.feed(Progressed(a1, 30.0))
    d.feed(HostSilent("h1", 5.0))
    d.feed(Tick(70.0))  # lost: queued again, then placed on h2
    assert d.life.progress == {}
    (launch,) = d.of(Launch, d.feed(Dispatch(71.0)))
    assert d.feed(Progressed(a1, 35.0)) == []
    a2 = launch.run.attempt_id
    d.feed(AttemptStarted(a2, 72.0))
    assert d.of(Progress, d.feed(Progressed(a2, 5.0)))[0].percent == 5.0
    assert d.life.progress == {run.id: 5.0}
