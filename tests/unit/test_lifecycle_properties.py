"""The lifecycle against a simulated world, driven by random event sequences (hypothesis): hosts
go silent and come back, agents restart, the coordinator restarts, containers end in their own
time, runs are cancelled. After every step and at the end, the invariants of the design hold:

- every run reaches exactly one terminal state, and has its folder (results or run.json);
- a run ends `lost` only with its infrastructure budget spent;
- at most one accepted result per run, never from a superseded attempt;
- no host ever runs more than its capacity, counting containers not yet confirmed gone;
- once every host answers again and the work drains, no container of ours still runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from convoy.coordinator.runs.actions import (
    Abandon,
    Collect,
    CollectMode,
    Launch,
    RecordEnded,
    Release,
    Stop,
)
from convoy.coordinator.runs.events import (
    AttemptEnded,
    AttemptStarted,
    CancelRequested,
    Collected,
    CollectFailed,
    Dispatch,
    Event,
    HostSilent,
    HostStatus,
    LaunchFailed,
    Outcome,
    Released,
    Restored,
    Seen,
    Submitted,
    Tick,
)
from convoy.coordinator.runs.lifecycle import Lifecycle
from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.runs.scheduler import Units
from convoy.states import Reason, RunState

from .lifecycle_world import Driver, make_run

HOSTS = ("h1", "h2", "h3")
CPUS = 2  # per host; every run asks for 1
ENDINGS = {
    "ok": Outcome(Reason.EXIT_CODE, "exited with code 0", 0),
    "exit1": Outcome(Reason.EXIT_CODE, "exited with code 1", 1),
    "oom": Outcome(Reason.OOM_KILLED, "ran out of memory", 137),
    "disk": Outcome(Reason.DISK_FULL, "its host's disk is full", 1),
}


@dataclass
class Container:
    run_id: str
    ending: Outcome  # how it will end by itself
    running: bool = True
    outcome: Outcome | None = None
    stopping: bool = False  # a Stop reached it: it ends (cancelled) soon, not at once


class World(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.d = Driver()
        self.now = 0.0
        self.reachable = dict.fromkeys(HOSTS, True)
        self.agents: dict[str, dict[str, Container]] = {h: {} for h in HOSTS}
        self.launches: dict[str, RunRecord] = {}  # attempt id -> run as placed (in flight)
        self.collects: dict[str, Collect] = {}
        self.folders: dict[str, RunState] = {}  # run -> the state its run.json says
        self.accepted: dict[str, int] = {}  # run -> results accepted as its final ones
        # More runs than the hosts have room for: some wait in the queue for a slot.
        self.runs = [make_run(i, retries=i % 2, infra_retries=i % 3) for i in range(9)]
        self.d.add_hosts(*HOSTS)
        for h in HOSTS:
            self.feed(self._up_event(h))
        self.d.store.update({r.id: r for r in self.runs})  # the shell stores them first
        self.feed(Submitted(tuple(self.runs)))
        self.feed(Dispatch(self.now))

    # ---- the shell ---------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        for act in self.d.feed(event):
            self.carry_out(act)

    def carry_out(self, act: object) -> None:
        if isinstance(act, Launch):
            self.launches[act.run.attempt_id] = act.run
        elif isinstance(act, Abandon):
            self.launches.pop(act.attempt_id, None)
            self.collects.pop(act.attempt_id, None)
        elif isinstance(act, Stop):
            c = self.agents[act.host].get(act.attempt_id)
            if self.reachable[act.host] and c is not None and c.running:
                c.stopping = True  # it ends in a_container_ends, a while later
        elif isinstance(act, Collect):
            if act.mode is CollectMode.ACCEPT:
                assert not self.d.store[act.run_id].state.terminal, f"{act} after the run ended"
            self.collects[act.attempt_id] = act
        elif isinstance(act, Release):
            if self.reachable[act.host] and act.attempt_id in self.agents[act.host]:
                c = self.agents[act.host][act.attempt_id]
                assert not c.running, f"released {act.attempt_id} while its container runs"
                if act.whole:
                    del self.agents[act.host][act.attempt_id]
                self.feed(Released(act.attempt_id, act.whole))
        elif isinstance(act, RecordEnded):
            assert act.run.state.terminal
            self.folders[act.run.id] = act.run.state

    def _up_event(self, host: str) -> Event:
        from convoy.coordinator.runs.events import HostUp

        seen = tuple(
            Seen(aid, c.run_id, "running" if c.running else "ended", Units(1000, 1 << 20, 0),
                 None if c.running else c.outcome)
            for aid, c in self.agents[host].items()
        )  # fmt: skip
        return HostUp(host, self.now, Units(CPUS * 1000, 1 << 30, 0), seen)

    # ---- what happens ------------------------------------------------------------------------

    @rule(data=st.data())
    def a_launch_reaches_its_host(self, data: st.DataObject) -> None:
        ready = [a for a, r in self.launches.items() if self.reachable[r.host]]
        if not ready:
            return
        aid = data.draw(st.sampled_from(sorted(ready)))
        run = self.launches.pop(aid)
        if data.draw(st.integers(0, 9)) == 0:
            self.feed(LaunchFailed(aid, Reason.SYNC_FAILED, "could not sync", self.now))
            return
        ending = ENDINGS[data.draw(st.sampled_from(sorted(ENDINGS)))]
        self.agents[run.host][aid] = Container(run.id, replace(ending, started_at=self.now))
        self.feed(AttemptStarted(aid, self.now))

    @rule(data=st.data())
    def a_container_ends(self, data: st.DataObject) -> None:
        live = [(h, a) for h in HOSTS for a, c in self.agents[h].items() if c.running]
        if not live:
            return
        host, aid = data.draw(st.sampled_from(sorted(live)))
        self.end(host, aid)

    def end(self, host: str, aid: str) -> None:
        c = self.agents[host][aid]
        c.running = False
        c.outcome = (Outcome(Reason.CANCELLED, "stopped", 143, 1.0, self.now) if c.stopping
                     else replace(c.ending, ended_at=self.now))  # fmt: skip
        if self.reachable[host]:
            self.feed(AttemptEnded(aid, c.outcome))

    @rule(data=st.data())
    def a_collection_completes(self, data: st.DataObject) -> None:
        ready = [a for a, c in self.collects.items() if self.reachable[c.host]]
        if not ready:
            return
        aid = data.draw(st.sampled_from(sorted(ready)))
        act = self.collects.pop(aid)
        self.complete(act)

    def complete(self, act: Collect) -> None:
        """The collection is in: an ACCEPT writes the run's folder; the run's final result is
        accepted when that is what ends it."""
        if act.attempt_id not in self.agents[act.host]:
            self.feed(CollectFailed(act.attempt_id, "the agent no longer has it"))
            return
        if act.mode is CollectMode.ACCEPT:
            assert act.final is not None
            assert not self.d.store[act.run_id].state.terminal, "a folder rewritten after the end"
            # Accepted only from the attempt the store says is the run's current one.
            assert self.d.store[act.run_id].attempt_id == act.attempt_id
            self.folders[act.run_id] = act.final.state
        self.feed(Collected(act.attempt_id))
        if act.mode is CollectMode.ACCEPT and self.d.store[act.run_id].state.terminal:
            self.accepted[act.run_id] = self.accepted.get(act.run_id, 0) + 1

    @rule(host=st.sampled_from(HOSTS))
    def a_host_goes_silent(self, host: str) -> None:
        if self.reachable[host]:
            self.reachable[host] = False
            self.feed(HostSilent(host, self.now))

    @rule(host=st.sampled_from(HOSTS))
    def a_host_answers_again(self, host: str) -> None:
        if not self.reachable[host]:
            self.reachable[host] = True
            self.feed(self._up_event(host))

    @rule(host=st.sampled_from(HOSTS))
    def an_agent_restarts(self, host: str) -> None:
        """Its connection breaks and a new agent answers at once; containers go on."""
        if self.reachable[host]:
            self.feed(HostSilent(host, self.now))
            self.feed(self._up_event(host))

    @rule(host=st.sampled_from(HOSTS))
    def a_heartbeat_says_the_host_has_room(self, host: str) -> None:
        if self.reachable[host]:
            self.feed(HostStatus(host, accepting=True))

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.feed(Tick(self.now))

    @rule()
    def dispatch(self) -> None:
        self.feed(Dispatch(self.now))

    @rule(n=st.integers(0, 8))
    def a_run_is_cancelled(self, n: int) -> None:
        self.feed(CancelRequested((self.runs[n].id,), 3.0, self.now))

    @rule()
    def the_coordinator_restarts(self) -> None:
        """Its tasks die (launches, collections in flight); a new one reads the store."""
        self.launches.clear()
        self.collects.clear()
        self.d.life = Lifecycle()
        self.d.add_hosts(*HOSTS, at=self.now)
        unfinished = tuple(r for r in self.d.store.values() if not r.state.terminal)
        self.feed(Restored(unfinished, tuple(self.d.ledger.values())))
        for h in HOSTS:
            if self.reachable[h]:
                self.feed(self._up_event(h))

    # ---- always ------------------------------------------------------------------------------

    @invariant()
    def no_host_runs_more_than_it_has(self) -> None:
        for h in HOSTS:
            running = sum(1 for c in self.agents[h].values() if c.running)
            assert running <= CPUS, f"{h} runs {running} containers on {CPUS} cpus"

    @invariant()
    def results_accepted_at_most_once_and_lost_only_with_the_budget_spent(self) -> None:
        assert all(n <= 1 for n in self.accepted.values()), self.accepted
        for r in self.d.store.values():
            if r.state is RunState.LOST:
                assert r.code is Reason.HOST_LOST
                assert r.infra_failures == r.infra_retries + 1, r

    def teardown(self) -> None:
        """Heal every host, let the work drain: every run has ended, exactly once, with its
        folder, and no container of ours runs."""
        for h in HOSTS:
            self.a_host_answers_again(h)
        for _ in range(200):
            if all(r.state.terminal for r in self.d.store.values()) and not any(
                c.running for h in HOSTS for c in self.agents[h].values()
            ) and not self.collects:  # fmt: skip
                break
            for aid in sorted(self.launches):
                run = self.launches.pop(aid)
                self.agents[run.host][aid] = Container(run.id, ENDINGS["ok"])
                self.feed(AttemptStarted(aid, self.now))
            for h in HOSTS:
                for aid, c in list(self.agents[h].items()):
                    # A container ends by itself only if it is its run's current attempt and
                    # the run goes on (it may take as long as it likes otherwise): others end
                    # because the coordinator stopped them (fencing, cancel).
                    run = self.d.store[c.run_id]
                    current = run.attempt_id == aid and not run.state.terminal
                    if c.running and (current or c.stopping):
                        self.end(h, aid)
            for aid in sorted(self.collects):
                if aid in self.collects:
                    self.complete(self.collects.pop(aid))
            self.now += 1.0
            self.feed(Tick(self.now))
            for h in HOSTS:
                self.a_heartbeat_says_the_host_has_room(h)
            self.feed(Dispatch(self.now))
        ended = {r.id: r.state for r in self.d.store.values()}
        assert all(s.terminal for s in ended.values()), ended
        assert set(ended) == {r.id for r in self.runs}
        assert self.folders == ended, "run.json and the store disagree"
        assert not [a for h in HOSTS for a, c in self.agents[h].items() if c.running]
        for run_id, states in self.d.transitions.items():
            assert sum(s.terminal for s in states) == 1, (run_id, states)
        self.results_accepted_at_most_once_and_lost_only_with_the_budget_spent()


TestLifecycleInAWorld = World.TestCase
TestLifecycleInAWorld.settings = settings(
    max_examples=1000, stateful_step_count=80, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
