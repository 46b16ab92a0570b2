"""Hosts added and removed while the coordinator runs (AddHost, RemoveHost): a host added
takes runs once it answers; one removed takes no more, and what it held is forgotten, its runs
in flight queued again (or ended, when they were being cancelled)."""

from __future__ import annotations

from convoy.coordinator.runs.actions import ForgetAttempts
from convoy.coordinator.runs.events import (
    CancelRequested,
    Dispatch,
    HostRemoved,
    Submitted,
)
from convoy.states import RunState

from .lifecycle_world import Abandon, Driver, HostChanged, Launch, aid, make_run
from .test_lifecycle import running


def test_a_host_added_later_takes_the_queued_runs_once_it_answers() -> None:
    """A run waiting (its one host never answered) goes to a host added afterwards, once it
    is up."""
    d = Driver()
    d.add_hosts("h1")
    r = make_run(0)
    d.feed(Submitted((r,)))
    assert not d.of(Launch, d.feed(Dispatch(1.0)))
    d.add_hosts("h9", at=2.0)
    assert not d.of(Launch, d.feed(Dispatch(3.0)))  # not connected yet
    d.up("h9", 4.0)
    [launch] = d.of(Launch, d.feed(Dispatch(5.0)))
    assert launch.run.host == "h9"


def test_a_removed_host_forgets_its_attempts_and_its_runs_are_queued_again_elsewhere() -> None:
    """Removing a host with a run on it: its attempt abandoned and forgotten, the run queued
    again without spending a retry, and placed on the host left."""
    d = Driver()
    d.add_hosts("h1")
    d.up("h1", 0.0)
    r = make_run(0)
    [a1] = running(d, r)
    assert [x.id for x in d.life.in_flight_on("h1")] == [r.id]
    acts = d.feed(HostRemoved("h1", 20.0))
    assert Abandon(a1) in acts
    assert any(isinstance(x, ForgetAttempts) and a1 in x.attempt_ids for x in acts)
    assert "h1" not in d.life.hosts and a1 not in d.life.attempts
    assert d.state(r.id) is RunState.QUEUED
    assert "h1 was removed" in d.store[r.id].reason
    assert d.store[r.id].infra_failures == 0
    assert [c.state for c in d.of(HostChanged, acts)] == ["removed"]
    d.add_hosts("h2", at=21.0)
    d.up("h2", 21.0)
    [launch] = d.of(Launch, d.feed(Dispatch(22.0)))
    assert launch.run.host == "h2" and launch.run.attempt_id == aid(r, 2)


def test_a_run_being_cancelled_on_a_removed_host_ends_cancelled() -> None:
    """A run asked to stop whose host is removed before it stopped is not queued again."""
    d = Driver()
    d.add_hosts("h1")
    d.up("h1", 0.0)
    r = make_run(0)
    running(d, r)
    d.feed(CancelRequested((r.id,), 10.0, 15.0))
    d.feed(HostRemoved("h1", 20.0))
    assert d.state(r.id) is RunState.CANCELLED
    assert r.id not in d.life.runs


def test_removing_an_unknown_host_does_nothing() -> None:
    """HostRemoved of a host the lifecycle does not know changes nothing."""
    d = Driver()
    d.add_hosts("h1")
    assert d.feed(HostRemoved("nope", 1.0)) == []
    assert list(d.life.hosts) == ["h1"]
