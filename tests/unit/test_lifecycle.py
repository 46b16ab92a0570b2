"""The run lifecycle, case by case, with no I/O: each fault of the catalogue as events in, the
exact decisions out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from convoy.coordinator.runs.events import (
    AttemptEnded,
    AttemptPhase,
    AttemptRecord,
    AttemptStarted,
    CancelRequested,
    Collected,
    Dispatch,
    HostAdded,
    HostSilent,
    HostStatus,
    LaunchFailed,
    Outcome,
    Phase,
    Released,
    Restored,
    Seen,
    Submitted,
    Tick,
)
from convoy.coordinator.runs.lifecycle import HostState, Lifecycle
from convoy.coordinator.runs.scheduler import Units
from convoy.states import Reason, RunState

from .lifecycle_world import (
    CPU,
    Abandon,
    Collect,
    CollectMode,
    Driver,
    HostChanged,
    Launch,
    RecordEnded,
    Release,
    Stop,
    aid,
    make_run,
)

OK = Outcome(Reason.EXIT_CODE, "exited with code 0", 0, started_at=10.0, ended_at=90.0)
EXIT3 = Outcome(Reason.EXIT_CODE, "exited with code 3", 3, started_at=10.0, ended_at=20.0)
OOM = Outcome(Reason.OOM_KILLED, "ran out of memory", 137, started_at=10.0, ended_at=20.0)


def running(d: Driver, *runs: object, host: str = "h1", at: float = 10.0) -> list[str]:
    """Submit the runs, place them, start their first attempts; their attempt ids."""
    d.feed(Submitted(tuple(runs)))  # type: ignore[arg-type]
    acts = d.feed(Dispatch(at))
    ids = [la.run.attempt_id for la in d.of(Launch, acts)]
    for i in ids:
        d.feed(AttemptStarted(i, at))
    return ids


def finish_collect(d: Driver, attempt: str) -> list[object]:
    return d.feed(Collected(attempt))


def two_hosts() -> Driver:
    d = Driver()
    d.add_hosts("h1", "h2")
    d.up("h1", 0.0)
    d.up("h2", 0.0)
    return d


def test_a_run_that_exits_0_is_collected_then_succeeds_and_its_folder_released() -> None:
    """Placed, started, ended: the results come in first, then succeeded is committed."""
    d = two_hosts()
    run = make_run(0)
    (a1,) = running(d, run)
    acts = d.feed(AttemptEnded(a1, OK))
    (collect,) = d.of(Collect, acts)
    assert collect.mode is CollectMode.ACCEPT and collect.final.state is RunState.SUCCEEDED
    assert d.state(run.id) is RunState.RUNNING  # not before its results are in
    acts = finish_collect(d, a1)
    assert d.state(run.id) is RunState.SUCCEEDED and d.store[run.id].code is Reason.EXIT_CODE
    assert d.of(Release, acts) == [Release("h1", a1, whole=True)]
    d.feed(Released(a1, whole=True))
    assert d.life.attempts == {} and d.ledger == {}


def test_a_run_over_its_limits_fails_output_limit_and_is_not_retried() -> None:
    """Its results went over a cap: failed with output_limit, as its run.json says, though
    retries are left (it would leave as much again); a failed run keeps its own code."""
    d = two_hosts()
    run, other = make_run(0, retries=2), make_run(1, retries=2)
    a1, b1 = running(d, run, other)
    d.feed(AttemptEnded(a1, OK))
    d.feed(AttemptEnded(b1, EXIT3))
    d.feed(Collected(a1, "its output files went over limits.output_files (10 files)"))
    d.feed(Collected(b1, "its output files went over limits.output_files (10 files)"))
    ended = d.store[run.id]
    assert (ended.state, ended.code, ended.attempt) == (RunState.FAILED, Reason.OUTPUT_LIMIT, 1)
    assert ended.reason == (
        "exited with code 0, but its output files went over "
        "limits.output_files (10 files) (see run.json's not_collected)"
    )
    assert d.store[other.id].code is Reason.EXIT_CODE  # retried as before
    assert d.state(other.id) is RunState.QUEUED


def test_a_host_silent_briefly_mid_run_resumes_its_attempt_D1() -> None:
    """D1: the agent dies 75 s into a run and is back 2 s later: one attempt, succeeded."""
    d = two_hosts()
    run = make_run(0)
    (a1,) = running(d, run, at=0.0)
    d.feed(HostSilent("h1", 75.0, "the agent's connection broke"))
    d.feed(Tick(76.0))
    acts = d.up("h1", 77.0, seen=(Seen(a1, run.id, "running", CPU),))
    assert not d.of(Launch, acts) and not d.of(Stop, acts)
    d.feed(AttemptEnded(a1, OK))
    d.feed(Collected(a1))
    assert d.state(run.id) is RunState.SUCCEEDED and d.store[run.id].attempt == 1


def test_the_grace_runs_from_when_the_host_stopped_answering_not_from_the_call() -> None:
    """Silent at 100: still unreachable at 159.9, lost at 160 (grace 60 s)."""
    d = two_hosts()
    run = make_run(0, infra_retries=0)
    running(d, run, at=0.0)
    d.feed(HostSilent("h1", 100.0))
    d.feed(Tick(159.9))
    assert d.life.hosts["h1"].state is HostState.UNREACHABLE
    assert d.state(run.id) is RunState.RUNNING
    d.feed(Tick(160.0))
    assert d.life.hosts["h1"].state is HostState.LOST
    assert d.state(run.id) is RunState.LOST


def test_a_lost_run_is_retried_on_another_host_D2() -> None:
    """D2: its host lost, the run goes to the other (idle) host, counted as infrastructure."""
    d = two_hosts()
    run = make_run(0)  # retries 0: the application's budget is not what pays for this
    (a1,) = running(d, run, at=0.0)
    d.feed(HostSilent("h1", 5.0))
    acts = d.feed(Tick(65.0))
    assert Abandon(a1) in acts
    assert d.store[run.id].state is RunState.QUEUED
    assert (d.store[run.id].infra_failures, d.store[run.id].app_failures) == (1, 0)
    assert d.store[run.id].code is Reason.HOST_LOST
    acts = d.feed(Dispatch(66.0))
    (launch,) = d.of(Launch, acts)
    assert launch.run.host == "h2" and launch.run.attempt == 2


def test_a_lost_run_with_its_budget_spent_ends_lost_with_a_folder_D3() -> None:
    """D3: lost for good: run.json is written (host_lost), with a sentence, no gRPC text."""
    d = two_hosts()
    run = make_run(0, infra_retries=0)
    running(d, run, at=0.0)
    d.feed(HostSilent("h1", 5.0))
    acts = d.feed(Tick(70.0))
    (rec,) = d.of(RecordEnded, acts)
    assert rec.run.state is RunState.LOST and rec.run.code is Reason.HOST_LOST
    assert "h1 stopped answering" in rec.run.reason and "60 s" in rec.run.reason
    assert d.state(run.id) is RunState.LOST


def test_a_lost_host_back_has_its_old_container_stopped_and_counted_until_gone_D4() -> None:
    """D4: the superseded attempt still runs there: stopped at once, its cpus held until the
    agent says it is gone, so nothing is placed over it."""
    d = Driver()
    d.add_hosts("h1", "h2")
    d.up("h1", 0.0, cpus=1)
    d.up("h2", 0.0, cpus=1)
    r0, r1 = make_run(0), make_run(1)
    a1 = running(d, r0, at=0.0)[0]
    assert d.life.runs[r0.id].host == "h1"
    d.feed(HostSilent("h1", 5.0))
    d.feed(Tick(70.0))  # lost: r0 retried on h2
    d.feed(Dispatch(70.0))
    assert d.life.runs[r0.id].host == "h2"
    d.feed(Submitted((r1,)))
    acts = d.up("h1", 80.0, cpus=1, seen=(Seen(a1, r0.id, "running", CPU),))
    assert d.of(Stop, acts) == [Stop("h1", a1, 5.0, "attempt 1 was superseded")]
    assert d.life.allocated("h1") == CPU
    assert not d.of(Launch, d.feed(Dispatch(81.0)))  # h1 is full until the old one is gone
    killed = Outcome(Reason.CANCELLED, "stopped", 143, started_at=1.0, ended_at=82.0)
    d.feed(AttemptEnded(a1, killed))
    assert d.life.allocated("h1") == Units()
    (launch,) = d.of(Launch, d.feed(Dispatch(83.0)))
    assert (launch.run.id, launch.run.host) == (r1.id, "h1")


def test_a_superseded_attempt_that_finished_is_kept_aside_once_its_run_ends() -> None:
    """Never accepted: its results are collected aside (superseded/aN/) after the run ends."""
    d = two_hosts()
    run = make_run(0)
    a1 = running(d, run, at=0.0)[0]
    d.feed(HostSilent("h1", 5.0))
    d.feed(Tick(70.0))
    a2 = d.of(Launch, d.feed(Dispatch(70.0)))[0].run.attempt_id
    d.feed(AttemptStarted(a2, 71.0))
    acts = d.up("h1", 80.0, seen=(Seen(a1, run.id, "ended", CPU, OK),))
    assert not d.of(Collect, acts)  # its run is still going: nothing to put it beside yet
    acts = d.feed(AttemptEnded(a2, OK))
    assert [c.attempt_id for c in d.of(Collect, acts)] == [a2]  # only a2 is accepted
    acts = d.feed(Collected(a2))
    assert Collect("h1", a1, run.id, CollectMode.ASIDE) in acts
    assert d.store[run.id].attempt == 2 and d.state(run.id) is RunState.SUCCEEDED
    accepted = [c for c in d.of(Collect) if c.mode is CollectMode.ACCEPT]
    assert [c.attempt_id for c in accepted] == [a2]


def test_application_failures_use_retries_and_move_to_another_host() -> None:
    """A non-zero exit is retried while `retries` lasts, preferably elsewhere; then failed."""
    d = two_hosts()
    run = make_run(0, retries=1)
    a1 = running(d, run)[0]
    d.feed(AttemptEnded(a1, EXIT3))
    d.feed(Collected(a1))
    assert d.state(run.id) is RunState.QUEUED and d.store[run.id].app_failures == 1
    assert Release("h1", a1, whole=False) in d.actions  # its log stays for logs --attempt
    (launch,) = d.of(Launch, d.feed(Dispatch(30.0)))
    assert launch.run.host == "h2"
    d.feed(AttemptStarted(launch.run.attempt_id, 31.0))
    acts = d.feed(AttemptEnded(launch.run.attempt_id, EXIT3))
    assert d.of(Collect, acts)[0].final.state is RunState.FAILED
    acts = d.feed(Collected(launch.run.attempt_id))
    assert d.state(run.id) is RunState.FAILED and d.store[run.id].code is Reason.EXIT_CODE
    assert "retries spent" in d.store[run.id].reason
    # The first attempt's log joins the run's folder before its host lets it go.
    assert Collect("h1", a1, run.id, CollectMode.HISTORY) in acts


@pytest.mark.parametrize("outcome", [EXIT3, OOM])
def test_application_failures_do_not_spend_the_infrastructure_budget(outcome: Outcome) -> None:
    """retries 0, infra_retries 3: an exit code or OOM ends the run at once."""
    d = two_hosts()
    run = make_run(0, retries=0, infra_retries=3)
    a1 = running(d, run)[0]
    d.feed(AttemptEnded(a1, outcome))
    d.feed(Collected(a1))
    assert d.state(run.id) is RunState.FAILED and d.store[run.id].code is outcome.code


def test_a_full_disk_fails_the_attempt_as_infrastructure_and_the_host_refuses_runs_D5() -> None:
    """D5: disk_full ends the attempt, the run is retried elsewhere, the host takes no runs
    until it has room again."""
    d = two_hosts()
    run = make_run(0)
    a1 = running(d, run)[0]
    d.feed(HostStatus("h1", accepting=False, why="its disk is full (12 MiB free)"))
    full = Outcome(Reason.DISK_FULL, "its host's disk is full", 1, started_at=10, ended_at=20)
    d.feed(AttemptEnded(a1, full))
    d.feed(Collected(a1))
    assert d.state(run.id) is RunState.QUEUED and d.store[run.id].infra_failures == 1
    (launch,) = d.of(Launch, d.feed(Dispatch(30.0)))
    assert launch.run.host == "h2"
    d.feed(Submitted((make_run(1), make_run(2))))
    placed = {la.run.host for la in d.of(Launch, d.feed(Dispatch(31.0)))}
    assert placed == {"h2"}
    d.feed(HostStatus("h1", accepting=True))
    assert d.life.wants_dispatch


def test_a_launch_that_fails_for_the_platform_is_retried_and_one_that_fails_its_build_not() -> None:
    d = two_hosts()
    r0, r1 = make_run(0), make_run(1)
    d.feed(Submitted((r0, r1)))
    launches = d.of(Launch, d.feed(Dispatch(1.0)))
    ids = {la.run.id: la.run.attempt_id for la in launches}
    d.feed(Phase(ids[r0.id], RunState.SYNCING))
    assert d.state(r0.id) is RunState.SYNCING
    d.feed(LaunchFailed(ids[r0.id], Reason.SYNC_FAILED, "could not send the sources", 2.0))
    assert d.state(r0.id) is RunState.QUEUED and d.store[r0.id].code is Reason.SYNC_FAILED
    acts = d.feed(LaunchFailed(ids[r1.id], Reason.BUILD_FAILED, "make exited with 2", 2.0, 2))
    (rec,) = d.of(RecordEnded, acts)
    assert rec.run.state is RunState.FAILED and rec.run.code is Reason.BUILD_FAILED
    assert rec.run.exit_code == 2


def test_cancel_reaches_queued_running_and_unreachable_runs() -> None:
    """Queued: cancelled now. Running: stopped with the grace. On an unreachable host: stopped
    when it answers; if it is lost instead, the run ends cancelled, not retried."""
    d = Driver()
    d.add_hosts("h1", "h2")
    d.up("h1", 0.0, cpus=1)
    d.up("h2", 0.0, cpus=1)
    runs = [make_run(i) for i in range(4)]
    d.feed(Submitted(tuple(runs)))
    placed = {la.run.id: la.run for la in d.of(Launch, d.feed(Dispatch(1.0)))}
    for r in placed.values():
        d.feed(AttemptStarted(r.attempt_id, 2.0))
    on_h1 = next(r for r in placed.values() if r.host == "h1")
    on_h2 = next(r for r in placed.values() if r.host == "h2")
    d.feed(HostSilent("h1", 3.0))
    acts = d.feed(CancelRequested(tuple(r.id for r in runs), 7.0, 4.0))
    assert d.of(Stop, acts) == [Stop("h2", on_h2.attempt_id, 7.0, "cancelled on request")]
    queued = [r.id for r in runs if r.id not in placed]
    assert {d.state(i) for i in queued} == {RunState.CANCELLED}
    assert {rec.run.id for rec in d.of(RecordEnded, acts)} == set(queued)
    acts = d.up("h1", 10.0, cpus=1, seen=(Seen(on_h1.attempt_id, on_h1.id, "running", CPU),))
    assert d.of(Stop, acts) == [Stop("h1", on_h1.attempt_id, 7.0, "cancelled on request")]
    d.feed(HostSilent("h1", 11.0))
    d.feed(Tick(80.0))
    assert d.state(on_h1.id) is RunState.CANCELLED and d.store[on_h1.id].code is Reason.CANCELLED


def test_a_restarted_coordinator_adopts_running_attempts_and_requeues_orphan_launches() -> None:
    """After a restart: the agent still runs attempt 1 (adopted, not replaced); a launch that
    died with the coordinator before its container started is queued again."""
    r0, r1 = make_run(0), make_run(1)
    r0 = r0.moved(RunState.STARTING, "placed", host="h1", attempt=1).moved(
        RunState.RUNNING, "running", started_at=5.0)  # fmt: skip
    r1 = r1.moved(RunState.STARTING, "placed", host="h1", attempt=1).moved(
        RunState.SYNCING, "syncing")  # fmt: skip
    ledger = (
        AttemptRecord(aid(r0, 1), r0.id, 1, "h1", CPU, AttemptPhase.RUNNING),
        AttemptRecord(aid(r1, 1), r1.id, 1, "h1", CPU, AttemptPhase.LAUNCHING),
    )
    d = Driver()
    d.add_hosts("h1", at=100.0)
    d.feed(Restored((r0, r1), ledger))
    d.feed(Tick(150.0))  # within the failover grace: nothing is lost
    assert d.life.runs[r0.id].state is RunState.RUNNING
    acts = d.up("h1", 155.0, seen=(Seen(aid(r0, 1), r0.id, "running", CPU),))
    assert not d.of(Stop, acts)
    assert d.life.runs[r0.id].state is RunState.RUNNING
    assert d.state(r1.id) is RunState.QUEUED
    assert "restarted before attempt 1 started" in d.store[r1.id].reason
    assert d.store[r1.id].infra_failures == 0  # not the run's fault, nor the platform's


def test_a_restarted_coordinator_gives_unreachable_hosts_the_grace_then_retries() -> None:
    r0 = make_run(0).moved(RunState.STARTING, "placed", host="h1", attempt=1).moved(
        RunState.RUNNING, "running", started_at=5.0)  # fmt: skip
    d = Driver()
    d.add_hosts("h1", "h2", at=100.0)
    d.feed(Restored((r0,), (AttemptRecord(aid(r0, 1), r0.id, 1, "h1", CPU,
                                           AttemptPhase.RUNNING),)))  # fmt: skip
    d.up("h2", 101.0)
    d.feed(Tick(159.0))
    assert d.life.runs[r0.id].state is RunState.RUNNING
    d.feed(Tick(160.0))
    assert d.state(r0.id) is RunState.QUEUED and d.store[r0.id].code is Reason.HOST_LOST


def test_an_attempt_its_agent_no_longer_knows_is_a_runtime_error() -> None:
    d = two_hosts()
    run = make_run(0)
    a1 = running(d, run)[0]
    d.feed(HostSilent("h1", 20.0))
    d.up("h1", 25.0, seen=())  # the agent came back without it
    assert d.state(run.id) is RunState.QUEUED
    assert d.store[run.id].code is Reason.RUNTIME_ERROR
    assert "no longer knows attempt 1" in d.store[run.id].reason
    assert d.life.allocated("h1") == Units()
    assert d.life.attempts[a1].phase is AttemptPhase.ENDED


def test_an_attempt_the_ledger_does_not_hold_is_fenced_and_counted() -> None:
    """A running container of ours the coordinator has no record of (its store lost) is
    stopped, and its cpus count until it is gone."""
    d = Driver()
    d.add_hosts("h1")
    acts = d.up("h1", 1.0, cpus=1, seen=(Seen("x-1.00-a3", "x-1.00", "running", CPU),))
    assert d.of(Stop, acts) == [Stop("h1", "x-1.00-a3", 5.0, "attempt 3 was superseded")]
    assert d.life.allocated("h1") == CPU
    d.feed(Submitted((make_run(0),)))
    assert not d.of(Launch, d.feed(Dispatch(2.0)))


def test_a_run_no_host_can_take_fails_unplaceable() -> None:
    d = two_hosts()
    big = make_run(0, cpus=8)
    d.feed(Submitted((big,)))
    acts = d.feed(Dispatch(1.0))
    (rec,) = d.of(RecordEnded, acts)
    assert rec.run.code is Reason.UNPLACEABLE and "largest host" in rec.run.reason


def test_host_state_changes_are_said_once_each() -> None:
    """An unreachable host is reported when it goes and when it comes back, not per retry."""
    d = two_hosts()
    d.feed(HostSilent("h1", 5.0))
    for t in range(6, 30):
        d.feed(HostSilent("h1", float(t)))
        d.feed(Tick(float(t)))
    d.up("h1", 31.0)
    said = [(c.host, c.state) for c in d.of(HostChanged) if c.host == "h1"]
    assert said == [("h1", "up"), ("h1", "unreachable"), ("h1", "up")]
    assert "answers again after 26 s" in d.of(HostChanged)[-1].message


def test_the_lifecycle_imports_no_transport() -> None:
    """coordinator/runs/lifecycle.py (and what it imports) loads none of grpc, docker,
    asyncssh, sqlite3 or asyncio."""
    code = ("import json, sys\nimport convoy.coordinator.runs.lifecycle\n"
            "print(json.dumps(sorted(sys.modules)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    loaded = set(json.loads(out.stdout))
    assert "convoy.coordinator.runs.lifecycle" in loaded
    forbidden = ("grpc", "docker", "asyncssh", "sqlite3", "_sqlite3", "asyncio")
    assert sorted(m for m in loaded if m.split(".")[0] in forbidden) == []


def test_a_fresh_lifecycle_has_no_hosts_until_added() -> None:
    life = Lifecycle()
    assert life.handle(Dispatch(0.0)) == [] and life.hosts == {}
    life.handle(HostAdded("h1", 0.0))
    assert life.hosts["h1"].state is HostState.UNREACHABLE


def test_an_attempt_its_agent_says_never_started_is_a_launch_failure_not_a_run() -> None:
    """The agent reports the attempt ended before it ever ran (its start failed): no running
    state, nothing to collect; the run is retried as for any failed launch."""
    d = two_hosts()
    run = make_run(0)
    d.feed(Submitted((run,)))
    (launch,) = d.of(Launch, d.feed(Dispatch(1.0)))
    failed = Outcome(Reason.SYNC_FAILED, "no such revision on this host", None, 0.0, 2.0)
    acts = d.feed(AttemptEnded(launch.run.attempt_id, failed))
    assert not d.of(Collect, acts)
    assert RunState.RUNNING not in d.transitions[run.id]
    assert d.state(run.id) is RunState.QUEUED and d.store[run.id].code is Reason.SYNC_FAILED
    assert Release("h1", launch.run.attempt_id, whole=True) in acts
