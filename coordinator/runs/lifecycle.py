"""The run lifecycle: every decision about runs, attempts and hosts, and nothing else.

`Lifecycle.handle(event) -> list[Action]` is the only way its state changes; it does no I/O,
reads no clock and imports no transport (grpc, docker, asyncssh, sqlite3, asyncio: a test checks).
The engine (coordinator/engine.py) is the shell around it: it carries the actions out against
the store, the agents and the disk, and turns what happens into events. The model is
dask/distributed's worker state machine; the fault semantics are Nomad's (disconnect and
reschedule), HTCondor's (the job lease) and Kubernetes' (the pod failure policy):

- Hosts are up, unreachable or lost. A host that misses its heartbeats is unreachable from that
  moment (HostSilent); its attempts are unknown and keep their allocations. One that answers
  again within the grace (default 60 s) reports what it still has (HostUp) and those attempts go
  on where they were. Past the grace (Tick) it is lost, and so are its unfinished attempts. A
  coordinator starts with every host unreachable: the grace applies to a restart too. Hosts
  come and go while it runs (HostAdded, HostRemoved): a removed host's attempts are forgotten
  and its runs in flight queued again, as a restart without it in the hosts file would.
- Two retry budgets: a run's `retries` for the application's failures (non-zero exit, out of
  memory, timeout), its `infra_retries` for the platform's (host lost, runtime or agent error,
  sync, image, disk full). A retry goes to another host when one fits. A run ends `lost` only
  when its host was lost and the infrastructure budget is spent.
- Fencing: every attempt has its id. An attempt given up (superseded) is never accepted; when its
  host answers again it is stopped and removed, and if it had finished by itself, its output and
  files are kept aside in the run's folder (superseded/aN/) and noted. Its allocation counts
  until its agent confirms its container is gone, so a host is never given more than it has.
- Every run that ends gets its folder and run.json: through the Collect of its last attempt, or
  a RecordEnded when its results cannot come (it never started, or its host was lost).
- An attempt's folder on its host is released whole once nothing there is wanted any more (its
  results are in, and its run has ended); earlier attempts' logs go into the run's folder first.

Attempt lifecycle (the coordinator's view)::

    LAUNCHING ──> RUNNING ──> COLLECTING ──> ENDED ──> (released whole: forgotten)
        │             │            │
        └─────────────┴────────────┴──> SUPERSEDED (host lost) ──> stopped / kept aside
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from convoy.coordinator.runs.events import (
    ON_REQUEST,
    AttemptEnded,
    AttemptPhase,
    AttemptRecord,
    AttemptStarted,
    CancelRequested,
    Collected,
    CollectFailed,
    Dispatch,
    Event,
    HostAdded,
    HostRemoved,
    HostSilent,
    HostStatus,
    HostUp,
    LaunchFailed,
    Outcome,
    Phase,
    Progressed,
    Released,
    Restored,
    Seen,
    Submitted,
    Tick,
)
from convoy.coordinator.runs.records import RunRecord, attempt_id, evolve, over_limits
from convoy.coordinator.runs.scheduler import (
    HostView,
    Pending,
    Policy,
    Units,
    place,
    units_for,
    why_unplaceable,
    why_waiting,
)
from convoy.spec import PlacementSpec
from convoy.states import TERMINAL, FailureKind, Reason, RunState, check_transition

from .actions import (
    Abandon,
    Action,
    Collect,
    CollectMode,
    Commit,
    ForgetAttempts,
    HostChanged,
    Launch,
    Progress,
    RecordEnded,
    Release,
    SaveAttempts,
    Stop,
)

# Failures of a run's own doing, which on_failure.stop_after counts: its application's (each
# after its retries), its build's, and its going past its limits; not the platform's.
OWN_FAILURES = frozenset({
    Reason.EXIT_CODE, Reason.OOM_KILLED, Reason.TIMEOUT, Reason.BUILD_FAILED,
    Reason.OUTPUT_LIMIT, Reason.DISK_LIMIT,
})  # fmt: skip

DEFAULT_GRACE_S = 60.0
FENCE_GRACE_S = 5.0  # a superseded attempt's container: SIGTERM, SIGKILL this much later
_LIVE = (AttemptPhase.LAUNCHING, AttemptPhase.RUNNING, AttemptPhase.COLLECTING)


class HostState(StrEnum):
    UP = "up"
    UNREACHABLE = "unreachable"
    LOST = "lost"


@dataclass
class HostInfo:
    """What the lifecycle knows of one host (read by the engine for `convoy hosts`)."""

    name: str
    labels: dict[str, str]
    state: HostState = HostState.UNREACHABLE
    since: float = 0.0  # unreachable: since when; lost: when it was declared lost
    capacity: Units = field(default_factory=Units)
    known: bool = False  # it has answered once: its capacity is known
    accepting: bool = True  # its agent has room (disk) for new runs
    why: str = ""  # why it is not up, or not accepting
    networks: tuple[str, ...] = ()  # the networks its agent's policy allows (empty: not said)

    def allows_network(self, network: str) -> bool:
        return not self.networks or network in self.networks


@dataclass
class _Pending:
    """A collection in flight for an ended attempt, and what follows once it is in."""

    final: RunRecord  # the run as this attempt leaves it (its run.json)
    after: RunRecord  # the run in the store afterwards: `final`, or queued again (a retry)


@dataclass
class Lifecycle:
    grace_s: float = DEFAULT_GRACE_S
    hosts: dict[str, HostInfo] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)  # every run that has not ended
    attempts: dict[str, AttemptRecord] = field(default_factory=dict)  # not yet forgotten
    now: float = 0.0
    # Runs asked to stop, with the grace for their container.
    cancels: dict[str, float] = field(default_factory=dict)
    _cancel_why: dict[str, str] = field(default_factory=dict)  # ... and why, if not on request
    _stop_after: dict[str, int] = field(default_factory=dict)  # submission -> on_failure's N
    _failed: Counter[str] = field(default_factory=Counter)  # submission -> its own failures
    _stopped: set[str] = field(default_factory=set)  # submissions stopped by on_failure
    # Each running run's percent, as its current attempt's agent last reported it (in memory
    # only: an agent reports it again on its snapshot); gone once the run leaves running.
    progress: dict[str, float] = field(default_factory=dict)
    _placement: dict[str, PlacementSpec] = field(default_factory=dict)  # by submission
    _avoid: dict[str, set[str]] = field(default_factory=dict)  # run -> hosts it failed on
    _holds: dict[str, str] = field(default_factory=dict)  # scheduler.place's, pass to pass
    _collecting: dict[str, _Pending] = field(default_factory=dict)  # by attempt id
    _stopping: set[str] = field(default_factory=set)  # attempts a Stop was sent for
    _queued: set[str] = field(default_factory=set)  # ids of the runs waiting for a host
    _order: list[tuple[int, int, str]] = field(default_factory=list)  # queue order (lazy: may
    # still name runs placed or ended since, skipped and dropped now and then)
    _by_sub: dict[str, set[str]] = field(default_factory=dict)  # submission -> its queued runs
    _asks: Counter[Units] = field(default_factory=Counter)  # the requests waiting, counted
    _rules: dict[str, tuple[frozenset[str] | None, Policy]] = field(default_factory=dict)
    _rules_stale: bool = True  # hosts or submissions changed: the rules are worked out again
    _wanted_dispatch: bool = False
    # Why queued runs wait, by (submission, request, the run when it holds a host), and the
    # hosts as seen for it: worked out when asked, forgotten at the next event.
    _waits: dict[tuple[str, Units, str], str] = field(default_factory=dict)
    _seen_views: list[HostView] | None = None

    # ---- reading ---------------------------------------------------------------------------

    @property
    def wants_dispatch(self) -> bool:
        """Something changed that may let a queued run start (the engine then Dispatches)."""
        return self._wanted_dispatch and bool(self._queued)

    def allocated(self, host: str) -> Units:
        """What the host has given out: every attempt there whose container may exist."""
        used = Units()
        for a in self.attempts.values():
            if a.host == host and a.held:
                used = used + a.units
        return used

    def holders(self, host: str) -> list[str]:
        """The runs (or attempts, for those no run owns now) holding part of the host."""
        return sorted(
            a.run_id if a.phase is not AttemptPhase.SUPERSEDED else a.id
            for a in self.attempts.values()
            if a.host == host and a.held
        )

    def view(self, host: str) -> HostView:
        h = self.hosts[host]
        return HostView(h.name, h.capacity, self.allocated(host), self._placeable(h))

    def host_views(self) -> list[HostView]:
        """Every host as the scheduler sees it: what it has given out, whether it takes runs
        and, when not, why."""
        alloc: dict[str, Units] = {}
        for a in self.attempts.values():
            if a.held:
                alloc[a.host] = alloc.get(a.host, Units()) + a.units
        return [HostView(h.name, h.capacity, alloc.get(h.name, Units()), self._placeable(h),
                         _why_not_placeable(h)) for h in self.hosts.values()]  # fmt: skip

    def waiting_for(self, run_id: str) -> str:
        """Why a queued run waits ("" for one that is not queued), as things stand since the
        last event: what it needs against each host it may use (scheduler.why_waiting). Worked
        out once per submission and request (and for each run that holds a host) until the
        next event, so that reading it for a queue of 10^5 runs costs its kinds, not its
        length."""
        run = self.runs.get(run_id)
        if run is None or run_id not in self._queued:
            return ""
        own = run_id if run_id in self._holds else ""
        key = (run.submission_id, units_for(run.resources), own)
        text = self._waits.get(key)
        if text is None:
            text = self._waits[key] = self._why_waiting(run)
        return text

    def _why_waiting(self, run: RunRecord) -> str:
        rule = self._rules.get(run.submission_id)
        if rule is None:  # not placed yet since it came, or since hosts changed
            rule, why = self._rule_of(run.submission_id, run)
            if rule is None:
                return f"nowhere to go: {why}"
        if self._seen_views is None:
            self._seen_views = self.host_views()
        held_for = {host: holder for holder, host in self._holds.items()}
        return why_waiting(units_for(run.resources), self._seen_views, rule[0], held_for, run.id)

    def current(self, run_id: str) -> AttemptRecord | None:
        """The run's current attempt (placed and not given up), if it has one."""
        run = self.runs.get(run_id)
        if run is None or not run.attempt:
            return None
        a = self.attempts.get(attempt_id(run_id, run.attempt))
        return a if a is not None and a.phase in _LIVE else None

    # ---- the one way in ---------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        out: list[Action] = []
        if self._waits or self._seen_views is not None:
            self._waits.clear()
            self._seen_views = None
        match event:
            case Tick(at) | Dispatch(at):
                self.now = max(self.now, at)
        match event:
            case HostAdded():
                self._host_added(event)
            case HostRemoved():
                self.now = max(self.now, event.at)
                self._host_removed(event, out)
            case Submitted():
                self._submitted(event)
            case Restored():
                self._restored(event, out)
            case Dispatch():
                self._dispatch(out)
            case Tick():
                self._tick(out)
            case CancelRequested():
                self.now = max(self.now, event.at)
                self._cancel(event, out)
            case HostUp():
                self.now = max(self.now, event.at)
                self._host_up(event, out)
            case HostSilent():
                self.now = max(self.now, event.at)
                self._host_silent(event, out)
            case HostStatus():
                self._host_status(event, out)
            case Phase():
                self._phase(event, out)
            case AttemptStarted():
                self._started(event.attempt_id, event.at, out)
            case Progressed():
                self._progressed(event, out)
            case LaunchFailed():
                self._launch_failed(event, out)
            case AttemptEnded():
                self._ended(event.attempt_id, event.outcome, out)
            case Collected():
                self._collected(event.attempt_id, out, event.over_limits)
            case CollectFailed():
                self._collect_failed(event, out)
            case Released():
                self._released(event, out)
        return _merged(out)

    # ---- hosts -----------------------------------------------------------------------------

    def _host_added(self, e: HostAdded) -> None:
        self._rules_stale = True
        if e.name not in self.hosts:
            self.hosts[e.name] = HostInfo(e.name, dict(e.labels), since=e.at,
                                          why="not connected yet")  # fmt: skip
        self.now = max(self.now, e.at)

    def in_flight_on(self, host: str) -> list[RunRecord]:
        """The runs whose current attempt is on `host` (placed there and not ended)."""
        return sorted((r for r in self.runs.values()
                       if r.host == host and r.state is not RunState.QUEUED),
                      key=_seq)  # fmt: skip

    def _host_removed(self, e: HostRemoved, out: list[Action]) -> None:
        """As a restart without the host would have it (_restored): its attempts forgotten,
        its runs in flight queued again (or ended, if they were being cancelled)."""
        h = self.hosts.pop(e.name, None)
        if h is None:
            return
        self._rules_stale = True
        busy = self.in_flight_on(e.name)
        for a in self.attempts_on(e.name):  # what the engine still does for them, cancelled
            out.append(Abandon(a.id))  # (a launch; a collection, of results or of a history)
            self._forget(a, out)
        for holder in [r for r, host in self._holds.items() if host == e.name]:
            del self._holds[holder]
        for run in busy:
            why = (f"its host {e.name} was removed while attempt {run.attempt} was in flight "
                   "there (its container goes on there, unseen)")  # fmt: skip
            if run.id in self.cancels:
                self._end(run, RunState.CANCELLED, Reason.CANCELLED,
                          f"{self._cancel_why.get(run.id, ON_REQUEST)}; {why}", out)  # fmt: skip
            else:
                self._requeue(run, why, out)
        out.append(HostChanged(e.name, "removed", f"{e.name} was removed"
                               + (f"; {len(busy)} run(s) in flight there queued again"
                                  if busy else "")))  # fmt: skip

    def _host_up(self, e: HostUp, out: list[Action]) -> None:
        h = self.hosts.get(e.name)
        if h is None:
            return
        was, since, was_known = h.state, h.since, h.known
        if (h.capacity, h.known, h.networks) != (e.capacity, True, e.networks):
            self._rules_stale = True  # what runs it may take, or can ever take, may differ
        h.state, h.capacity, h.known = HostState.UP, e.capacity, True
        h.accepting, h.why, h.networks = e.accepting, e.why, e.networks
        if was is HostState.LOST:
            msg = f"{h.name} answers again, {_ago(e.at - since)} after it was lost"
        elif was is HostState.UNREACHABLE and was_known:
            msg = f"{h.name} answers again after {_ago(e.at - since)}"
        elif was is not HostState.UP:
            msg = f"{h.name} is up"
        if was is not HostState.UP:
            out.append(HostChanged(h.name, HostState.UP, msg))
        self._reconcile(h.name, e.attempts, out)
        self._wanted_dispatch = True

    def attempts_on(self, host: str) -> list[AttemptRecord]:
        return [a for a in self.attempts.values() if a.host == host]

    def _host_silent(self, e: HostSilent, out: list[Action]) -> None:
        h = self.hosts.get(e.name)
        if h is None or h.state is not HostState.UP:
            return
        h.state, h.since, h.why = HostState.UNREACHABLE, e.at, e.why or "it stopped answering"
        # Stops sent there may not have arrived: sent again when it answers.
        self._stopping -= {a.id for a in self.attempts_on(h.name)}
        live = [a for a in self.attempts_on(h.name) if a.phase in _LIVE]
        waits = (f"; its {len(live)} unfinished attempt(s) wait for it up to {self.grace_s:g} s"
                 if live else "")  # fmt: skip
        out.append(HostChanged(h.name, HostState.UNREACHABLE, f"{h.name}: {h.why}{waits}"))

    def _host_status(self, e: HostStatus, out: list[Action]) -> None:
        h = self.hosts.get(e.name)
        if h is None or h.accepting == e.accepting:
            return
        h.accepting, h.why = e.accepting, e.why
        if e.accepting:
            out.append(HostChanged(h.name, "accepting", f"{h.name} takes new runs again"))
            self._wanted_dispatch = True
        else:
            out.append(HostChanged(h.name, "refusing", f"{h.name} takes no new runs: {e.why}"))

    def _refusing(self, host: str, why: str, out: list[Action]) -> None:
        """A full disk ended an attempt there: no new runs until its agent says it has room
        (its next heartbeat, HostStatus)."""
        self._host_status(HostStatus(host, accepting=False, why=f"its disk is full ({why})"), out)

    def _tick(self, out: list[Action]) -> None:
        for h in self.hosts.values():
            if h.state is HostState.UNREACHABLE and self.now - h.since >= self.grace_s:
                self._host_lost(h, out)

    def _host_lost(self, h: HostInfo, out: list[Action]) -> None:
        silent_for = self.now - h.since
        h.state, h.since = HostState.LOST, self.now
        h.why = f"it did not answer for {_ago(silent_for)}"
        live = [a for a in self.attempts_on(h.name) if a.phase in _LIVE]
        given_up = f"; {len(live)} attempt(s) given up" if live else ""
        out.append(HostChanged(h.name, HostState.LOST, f"{h.name} is lost: {h.why}{given_up}"))
        for a in live:
            out.append(Abandon(a.id))
            self._collecting.pop(a.id, None)
            self._set(a, out, phase=AttemptPhase.SUPERSEDED, orphan=False)
            why = (f"its host {h.name} stopped answering and did not come back within "
                   f"{self.grace_s:g} s")  # fmt: skip
            self._attempt_failed(a, Reason.HOST_LOST, why, None, out)

    def _reconcile(self, host: str, seen: tuple[Seen, ...], out: list[Action]) -> None:
        """The host reported what it holds: resume what goes on, learn what ended meanwhile,
        stop what was given up, forget what it no longer has."""
        reported = {s.id: s for s in seen}
        for a in self.attempts_on(host):
            s = reported.pop(a.id, None)
            if a.phase is AttemptPhase.LAUNCHING:
                if s is None:
                    if a.orphan:  # the launch died with the coordinator before it started
                        self._forget(a, out)
                        run = self.runs.get(a.run_id)
                        if run is not None and run.attempt == a.number:
                            self._requeue(run, f"the coordinator restarted before attempt "
                                               f"{a.number} started on {host}", out)  # fmt: skip
                    continue
                self._started(a.id, s.outcome.started_at if s.outcome else self.now, out)
                if s.state == "ended" and s.outcome is not None:
                    self._ended(a.id, s.outcome, out)
            elif a.phase is AttemptPhase.RUNNING:
                if s is None:
                    why = (f"the agent on {host} no longer knows attempt {a.number}: its "
                           "container is gone")  # fmt: skip
                    a = self._set(
                        a,
                        out,
                        phase=AttemptPhase.ENDED,
                        held=False,
                        outcome=Outcome(Reason.RUNTIME_ERROR, why, ended_at=self.now),
                    )
                    self._wanted_dispatch = True
                    self._attempt_failed(a, Reason.RUNTIME_ERROR, why, None, out)
                elif s.state == "ended" and s.outcome is not None:
                    self._ended(a.id, s.outcome, out)
                else:
                    self._stop_if_cancelled(a, out)
            elif a.phase is AttemptPhase.ENDED:
                if s is None:
                    self._forget(a, out)
                else:
                    self._release_if_done(a, out)
            elif a.phase is AttemptPhase.SUPERSEDED:
                if s is None:
                    self._forget(a, out)
                elif s.state == "ended":
                    self._superseded_ended(a, s.outcome, out)
                else:
                    self._fence(a, out)
            # COLLECTING: its collection goes on (or fails and says so).
        for s in reported.values():  # attempts of ours the ledger does not hold: fenced
            if s.state == "ended":
                out.append(Release(host, s.id, whole=True))
                continue
            a = AttemptRecord(s.id, s.run_id, _number(s.id), host, s.units,
                              AttemptPhase.SUPERSEDED)  # fmt: skip
            self.attempts[a.id] = a
            out.append(SaveAttempts((a,)))
            self._fence(a, out)

    def _fence(self, a: AttemptRecord, out: list[Action]) -> None:
        if a.id not in self._stopping:
            self._stopping.add(a.id)
            out.append(Stop(a.host, a.id, FENCE_GRACE_S, f"attempt {a.number} was superseded"))

    def _superseded_ended(
        self, a: AttemptRecord, outcome: Outcome | None, out: list[Action]
    ) -> None:
        """A superseded attempt's container is gone: its allocation is free. What it made is
        kept aside once its run has ended (its folder exists then)."""
        self._stopping.discard(a.id)
        a = self._set(a, out, held=False, outcome=outcome or a.outcome)
        self._wanted_dispatch = True
        if a.run_id not in self.runs:
            out.append(Collect(a.host, a.id, a.run_id, CollectMode.ASIDE))

    # ---- submissions and placement ---------------------------------------------------------

    def _submitted(self, e: Submitted) -> None:
        for run in e.runs:
            self.runs[run.id] = run
            self._placement[run.submission_id] = e.placement
            if e.stop_after:
                self._stop_after[run.submission_id] = e.stop_after
            self._enqueue(run)
        self._wanted_dispatch = True

    def _restored(self, e: Restored, out: list[Action]) -> None:
        for sub_id, placement in e.placements:
            self._placement[sub_id] = placement
        for sub_id, stop_after, failed in e.stop_after:
            self._stop_after[sub_id] = stop_after
            self._failed[sub_id] = failed
        for a in e.attempts:
            if a.host not in self.hosts:  # taken out of the hosts file: nothing to reconcile
                out.append(ForgetAttempts((a.id,)))
                continue
            orphan = a.phase is AttemptPhase.LAUNCHING
            # A collection in flight died with the coordinator: the attempt ran, and is
            # reported again (ended) by its host, which keeps its results until released.
            phase = AttemptPhase.RUNNING if a.phase is AttemptPhase.COLLECTING else a.phase
            self.attempts[a.id] = replace(a, orphan=orphan, phase=phase)
        for run in e.runs:
            if run.state.terminal:
                continue
            self.runs[run.id] = run
            if run.state is RunState.QUEUED:
                self._enqueue(run)
                continue
            aid = attempt_id(run.id, run.attempt)
            if run.host not in self.hosts:
                self._requeue(run, f"attempt {run.attempt}'s host {run.host} is not in the "
                                   "hosts file any more", out)  # fmt: skip
            elif aid not in self.attempts:  # a store from before the attempts ledger
                phase = (AttemptPhase.RUNNING if run.state is RunState.RUNNING
                         else AttemptPhase.LAUNCHING)  # fmt: skip
                a = AttemptRecord(aid, run.id, run.attempt, run.host, units_for(run.resources),
                                  phase, orphan=phase is AttemptPhase.LAUNCHING)  # fmt: skip
                self.attempts[aid] = a
                out.append(SaveAttempts((a,)))
            elif self.current(run.id) is None:  # its attempt ended, the run was not moved yet
                self._requeue(run, f"the coordinator restarted as attempt {run.attempt} ended",
                              out)  # fmt: skip
        for sub_id, _, _ in e.stop_after:  # one stopped as the coordinator went down
            self._stop_if_failing(sub_id, out)
        self._wanted_dispatch = True

    def _placeable(self, h: HostInfo) -> bool:
        return h.state is HostState.UP and h.known and h.accepting

    def _dispatch(self, out: list[Action]) -> None:
        """Place what fits. Its cost follows what can change: the rules of each submission
        (where it may run, and whether anywhere can) are worked out when hosts or submissions
        change, the queue is kept in order, and a pass reads it only while some host that is
        not held has room for one of the requests waiting."""
        self._wanted_dispatch = False
        if not self._queued:
            return
        if self._rules_stale:
            self._rules_stale = False
            self._check_rules(out)
        changes = []
        placed_ids = place(self._pending(), self.host_views(), holds=self._holds, ordered=True,
                           requests=self._asks)  # fmt: skip
        for p in placed_ids:
            run = self.runs[p.run_id]
            placed = run.moved(
                RunState.STARTING, f"placed on {p.host}", host=p.host, attempt=run.attempt + 1,
                exit_code=None, started_at=0.0, ended_at=0.0, image_id="", code=None,
            )  # fmt: skip
            self.runs[run.id] = placed
            self._unqueue(run)
            changes.append((run, placed))
            a = AttemptRecord(placed.attempt_id, run.id, placed.attempt, p.host,
                              units_for(run.resources), AttemptPhase.LAUNCHING)  # fmt: skip
            self.attempts[a.id] = a
            out.append(SaveAttempts((a,)))
            out.append(Launch(placed))
        if changes:
            out.append(Commit(tuple(changes)))

    def _pending(self) -> Iterator[Pending]:
        """The queued runs in queue order, as the scheduler wants them (read lazily)."""
        stale = 0
        for _, _, run_id in self._order:
            run = self.runs.get(run_id)
            if run is None or run_id not in self._queued:
                stale += 1
                continue
            rule = self._rules.get(run.submission_id)
            if rule is None:
                continue  # stranded, or its rules not known yet
            yield Pending(run.id, units_for(run.resources), run.priority, _seq(run), *rule,
                          avoid=frozenset(self._avoid.get(run.id, ())))  # fmt: skip
        if stale > len(self._queued) + 1000:  # read to the end: drop the placed and ended
            self._order = [k for k in self._order if k[2] in self._queued]

    def _check_rules(self, out: list[Action]) -> None:
        """Each waiting submission's rules: the hosts it may use (its placement, their labels
        and the networks they allow) and its policy; or, when no host it may use can ever take
        it, its queued runs end unplaceable, saying why. A submission's runs share their
        placement, network and resources, so this costs a look per submission."""
        self._rules.clear()
        for sub_id, ids in list(self._by_sub.items()):
            runs = [self.runs[i] for i in ids if i in self._queued]
            if not runs:
                continue
            rule, why = self._rule_of(sub_id, runs[0])
            if rule is not None:
                self._rules[sub_id] = rule
                continue
            for run in runs:
                self._end(run, RunState.FAILED, Reason.UNPLACEABLE, why, out)

    def _rule_of(
        self, sub_id: str, run: RunRecord
    ) -> tuple[tuple[frozenset[str] | None, Policy] | None, str]:
        placement = self._placement.get(sub_id, PlacementSpec())
        allowed = [h for h in self.hosts.values() if placement.allows(h.name, h.labels)]
        if not allowed:
            return None, (f"no host matches its placement ({placement}) any more; the hosts: "
                          f"{labelled(self.hosts.values()) or 'none'}")  # fmt: skip
        if not any(h.allows_network(run.network) for h in allowed):
            return None, (
                f"no host it may use allows network {run.network!r}: "
                + "; ".join(f"{h.name}: {', '.join(h.networks)}" for h in allowed)
            )
        wider = placement.restricts or any(not h.allows_network(run.network) for h in allowed)
        allowed = [h for h in allowed if h.allows_network(run.network)]
        if all(h.known for h in allowed):  # what every one of them offers is known
            problem = why_unplaceable(
                units_for(run.resources), [HostView(h.name, h.capacity) for h in allowed]
            )
            if problem:
                return None, f"no host it may use can ever run it: {problem}"
        only = frozenset(h.name for h in allowed) if wider else None
        return (only, Policy(placement.policy)), ""

    def _enqueue(self, run: RunRecord) -> None:
        if run.id in self._queued:
            return
        self._queued.add(run.id)
        key = (-run.priority, _seq(run), run.id)
        at = bisect.bisect_left(self._order, key)
        if at == len(self._order) or self._order[at] != key:  # still there from before: kept
            self._order.insert(at, key)
        self._by_sub.setdefault(run.submission_id, set()).add(run.id)
        self._asks[units_for(run.resources)] += 1
        if run.submission_id not in self._rules:
            self._rules_stale = True

    def _unqueue(self, run: RunRecord) -> None:
        if run.id not in self._queued:
            return
        self._queued.discard(run.id)
        ids = self._by_sub.get(run.submission_id)
        if ids is not None:
            ids.discard(run.id)
            if not ids:
                del self._by_sub[run.submission_id]
        need = units_for(run.resources)
        self._asks[need] -= 1
        if self._asks[need] <= 0:
            del self._asks[need]

    # ---- cancel ----------------------------------------------------------------------------

    def _cancel(self, e: CancelRequested, out: list[Action]) -> None:
        for run_id in e.run_ids:
            run = self.runs.get(run_id)
            if run is None:
                continue
            if run.state is RunState.QUEUED:
                why = "cancelled before it started" if e.why == ON_REQUEST else e.why
                self._end(run, RunState.CANCELLED, Reason.CANCELLED, why, out)
                continue
            self.cancels[run_id] = e.grace
            if e.why != ON_REQUEST:
                self._cancel_why[run_id] = e.why
            a = self.current(run_id)
            if a is not None:
                self._stop_if_cancelled(a, out)

    def _stop_if_failing(self, sub_id: str, out: list[Action]) -> None:
        """on_failure: a submission with stop_after of its runs failed by their own doing
        (OWN_FAILURES) has the others cancelled, queued ones at once, running ones stopped."""
        limit = self._stop_after.get(sub_id, 0)
        failed = self._failed[sub_id]
        if not limit or failed < limit or sub_id in self._stopped:
            return
        self._stopped.add(sub_id)
        why = (f"cancelled: {failed} runs of {sub_id} failed (on_failure: stop_after: "
               f"{limit})")  # fmt: skip
        rest = sorted((r for r in self.runs.values() if r.submission_id == sub_id),
                      key=lambda r: r.state is not RunState.QUEUED)  # queued first  # fmt: skip
        self._cancel(CancelRequested(tuple(r.id for r in rest), self.grace_s, self.now, why), out)

    def _stop_if_cancelled(self, a: AttemptRecord, out: list[Action]) -> None:
        grace = self.cancels.get(a.run_id)
        host = self.hosts.get(a.host)
        if (grace is None or a.phase is not AttemptPhase.RUNNING or a.id in self._stopping
                or host is None or host.state is not HostState.UP):  # fmt: skip
            return
        self._stopping.add(a.id)
        out.append(Stop(a.host, a.id, grace, self._cancel_why.get(a.run_id, ON_REQUEST)))

    # ---- attempts --------------------------------------------------------------------------

    def _mine(self, attempt: str, phases: Iterable[AttemptPhase]) -> AttemptRecord | None:
        """The attempt, if it is in one of these phases and still its run's current one."""
        a = self.attempts.get(attempt)
        if a is None or a.phase not in phases:
            return None
        run = self.runs.get(a.run_id)
        return a if run is not None and run.attempt == a.number else None

    def _phase(self, e: Phase, out: list[Action]) -> None:
        a = self._mine(e.attempt_id, (AttemptPhase.LAUNCHING,))
        if a is None:
            return
        run = self.runs[a.run_id]
        if run.state is not e.state and e.state in (
            RunState.SYNCING,
            RunState.BUILDING,
            RunState.STARTING,
        ):
            what = {RunState.SYNCING: "syncing to", RunState.BUILDING: "building on",
                    RunState.STARTING: "starting on"}[e.state]  # fmt: skip
            self._move(run, e.state, f"{what} {a.host}", out)

    def _started(self, attempt: str, at: float, out: list[Action]) -> None:
        a = self._mine(attempt, (AttemptPhase.LAUNCHING,))
        if a is None:
            return
        a = self._set(a, out, phase=AttemptPhase.RUNNING, orphan=False)
        run = self.runs[a.run_id]
        self._move(run, RunState.RUNNING, f"running on {a.host}", out,
                   started_at=at or self.now)  # fmt: skip
        self._stop_if_cancelled(a, out)

    def _progressed(self, e: Progressed, out: list[Action]) -> None:
        """A percent counts for the run only from its current attempt while it runs: not from
        one given up (its host lost) that goes on printing."""
        a = self._mine(e.attempt_id, (AttemptPhase.RUNNING,))
        if a is None or self.progress.get(a.run_id) == e.percent:
            return
        self.progress[a.run_id] = e.percent
        out.append(Progress(self.runs[a.run_id], e.percent))

    def _launch_failed(self, e: LaunchFailed, out: list[Action]) -> None:
        a = self._mine(e.attempt_id, (AttemptPhase.LAUNCHING,))
        if a is None:
            return
        a = self._set(a, out, phase=AttemptPhase.ENDED, held=False, orphan=False,
                      outcome=Outcome(e.code, e.message, e.exit_code, ended_at=e.at))  # fmt: skip
        out.append(Release(a.host, a.id, whole=True))  # nothing ran: nothing there to keep
        self._wanted_dispatch = True
        if e.code is Reason.DISK_FULL:
            self._refusing(a.host, e.message, out)
        self._attempt_failed(a, e.code, e.message, e.exit_code, out)

    def _ended(self, attempt: str, outcome: Outcome, out: list[Action]) -> None:
        seen = self.attempts.get(attempt)
        if seen is not None and seen.phase is AttemptPhase.SUPERSEDED:
            self._superseded_ended(seen, outcome, out)
            return
        if self._mine(attempt, (AttemptPhase.LAUNCHING,)) is not None:
            if not outcome.started_at:  # it never ran: its start failed (told by its agent)
                self._launch_failed(LaunchFailed(attempt, outcome.code, outcome.message,
                                                 outcome.ended_at or self.now,
                                                 outcome.exit_code), out)  # fmt: skip
                return
            self._started(attempt, outcome.started_at, out)  # ended before we saw it start
        a = self._mine(attempt, (AttemptPhase.RUNNING,))
        if a is None:
            return
        self._stopping.discard(a.id)
        if outcome.code is Reason.DISK_FULL:
            self._refusing(a.host, outcome.message, out)
        a = self._set(a, out, phase=AttemptPhase.COLLECTING, held=False, outcome=outcome)
        self._wanted_dispatch = True  # the container is gone: its room is free
        run = _with_outcome(self.runs[a.run_id], outcome, self.now)
        if outcome.succeeded:
            final = after = evolve(run, state=RunState.SUCCEEDED, code=outcome.code,
                                    reason=outcome.message)  # fmt: skip
        else:
            after = self._after_failure(run, a, outcome.code, outcome.message)
            # Its folder shows how this attempt ended, whether or not the run goes on.
            final = after if after.state.terminal else evolve(
                run, state=RunState.FAILED, code=outcome.code,
                reason=f"attempt {a.number} on {a.host}: {outcome.message}",
            )  # fmt: skip
        self._collecting[a.id] = _Pending(final, after)
        out.append(Collect(a.host, a.id, a.run_id, CollectMode.ACCEPT, final))

    def _collected(self, attempt: str, out: list[Action], over: str = "") -> None:
        a = self.attempts.get(attempt)
        if a is None:
            return
        pending = self._collecting.pop(attempt, None)
        if a.phase is AttemptPhase.COLLECTING and pending is not None:
            # Its log stays in the run's folder only if no later attempt's replaces it.
            a = self._set(a, out, phase=AttemptPhase.ENDED)
            if over and pending.final.state is RunState.SUCCEEDED:  # as its run.json says
                final = over_limits(pending.final, over)
                pending = _Pending(final, final)
            self._apply(pending, a, out)
        elif a.phase in (AttemptPhase.ENDED, AttemptPhase.SUPERSEDED) and a.run_id not in self.runs:
            a = self._set(a, out, kept=True)  # a history log or what was kept aside
            out.append(Release(a.host, a.id, whole=True))

    def _collect_failed(self, e: CollectFailed, out: list[Action]) -> None:
        a = self.attempts.get(e.attempt_id)
        pending = self._collecting.pop(e.attempt_id, None)
        if a is None:
            return
        if a.phase is AttemptPhase.COLLECTING and pending is not None:
            a = self._set(a, out, phase=AttemptPhase.ENDED, kept=True)
            why = f"; its results could not be brought in: {e.message}"
            final = evolve(pending.final, reason=pending.final.reason + why)
            after = final if pending.after.state.terminal else pending.after
            out.append(RecordEnded(final))
            self._apply(_Pending(final, after), a, out, recorded=True)
        elif a.run_id not in self.runs:  # history or aside: what could not come stays out
            a = self._set(a, out, kept=True)
            out.append(Release(a.host, a.id, whole=True))

    def _apply(
        self, pending: _Pending, a: AttemptRecord, out: list[Action], recorded: bool = False
    ) -> None:
        """An ended attempt's results are in: the run goes on as decided when it ended."""
        run = self.runs.get(a.run_id)
        if run is None:
            return
        after = pending.after
        if after.state is RunState.QUEUED and run.id in self.cancels:  # asked to stop meanwhile
            why = self._cancel_why.get(run.id, ON_REQUEST)
            after = evolve(pending.final, state=RunState.CANCELLED, code=Reason.CANCELLED,
                            reason=f"{why} ({pending.final.reason})")  # fmt: skip
            if not recorded:
                out.append(RecordEnded(after))
        if after.state.terminal:
            self._set(a, out, kept=True)
            self._finish(run, after, out, accepted=a)
        else:
            self._commit(run, after, out)
            out.append(Release(a.host, a.id, whole=False))  # its log stays for `logs --attempt`

    def _released(self, e: Released, out: list[Action]) -> None:
        a = self.attempts.get(e.attempt_id)
        if a is None or not e.whole:
            return
        if a.phase is AttemptPhase.ENDED or (a.phase is AttemptPhase.SUPERSEDED and not a.held):
            self._forget(a, out)

    # ---- outcomes --------------------------------------------------------------------------

    def _attempt_failed(
        self, a: AttemptRecord, code: Reason, why: str, exit_code: int | None,
        out: list[Action],
    ) -> None:  # fmt: skip
        """An attempt failed before its results could come (lost, never started): the run is
        retried or ends, with a folder that says why."""
        run = self.runs.get(a.run_id)
        if run is None or run.attempt != a.number:
            return
        failed = evolve(run, exit_code=exit_code, ended_at=self.now)
        after = self._after_failure(failed, a, code, why)
        if after.state.terminal:
            out.append(RecordEnded(after))
            self._finish(run, after, out)
        else:
            self._commit(run, after, out)

    def _after_failure(self, run: RunRecord, a: AttemptRecord, code: Reason, why: str) -> RunRecord:
        """The run after attempt `a` failed with `code`: queued again while its budget for that
        kind of failure lasts, else ended."""
        where = f"attempt {a.number} on {a.host}"
        if run.id in self.cancels:
            said = self._cancel_why.get(run.id, ON_REQUEST)
            return evolve(run, state=RunState.CANCELLED, code=Reason.CANCELLED,
                           reason=f"{said}; {where}: {why}")  # fmt: skip
        app, infra = run.app_failures, run.infra_failures
        if code.kind is FailureKind.APPLICATION:
            app += 1
            budget, used, what = run.retries, app, "retries"
        elif code.kind is FailureKind.INFRASTRUCTURE:
            infra += 1
            budget, used, what = run.infra_retries, infra, "infra_retries"
        else:
            budget, used, what = 0, 1, ""
        counted = evolve(run, app_failures=app, infra_failures=infra, code=code)
        if used <= budget:
            self._avoid.setdefault(run.id, set()).add(a.host)
            return evolve(
                counted,
                state=RunState.QUEUED,
                reason=f"{where}: {why}; retrying ({budget - used} of {what} left)",
            )
        state = RunState.LOST if code is Reason.HOST_LOST else RunState.FAILED
        spent = f" ({what} spent: {budget})" if what and budget else ""
        return evolve(counted, state=state, reason=f"{why}{spent}")

    def _finish(
        self, run: RunRecord, final: RunRecord, out: list[Action],
        accepted: AttemptRecord | None = None,
    ) -> None:  # fmt: skip
        """The run ends as `final`. What its attempts keep on their hosts is released (their
        logs kept in its folder first); superseded ones that finished are kept aside."""
        self._commit(run, final, out)
        del self.runs[run.id]
        self.cancels.pop(run.id, None)
        self._cancel_why.pop(run.id, None)
        self._avoid.pop(run.id, None)
        self._holds.pop(run.id, None)
        for a in self.attempts_on_run(run.id):
            if not self._up(a.host):
                continue  # when it answers again (_reconcile)
            if accepted is not None and a.id == accepted.id:
                out.append(Release(a.host, a.id, whole=True))
            elif a.phase is AttemptPhase.ENDED:
                self._release_if_done(a, out)
            elif a.phase is AttemptPhase.SUPERSEDED and not a.held:
                out.append(Collect(a.host, a.id, a.run_id, CollectMode.ASIDE))
        if final.state is RunState.FAILED and final.code in OWN_FAILURES:
            self._failed[final.submission_id] += 1
            self._stop_if_failing(final.submission_id, out)

    def _up(self, host: str) -> bool:
        h = self.hosts.get(host)
        return h is not None and h.state is HostState.UP

    def attempts_on_run(self, run_id: str) -> list[AttemptRecord]:
        return sorted((a for a in self.attempts.values() if a.run_id == run_id),
                      key=lambda a: a.number)  # fmt: skip

    def _end(
        self, run: RunRecord, state: RunState, code: Reason, why: str, out: list[Action]
    ) -> None:
        """End a run that has no attempt going (queued): its folder says why."""
        final = evolve(run, state=state, code=code, reason=why, ended_at=self.now)
        out.append(RecordEnded(final))
        self._finish(run, final, out)

    def _requeue(self, run: RunRecord, why: str, out: list[Action]) -> None:
        self._move(run, RunState.QUEUED, why, out)
        self._wanted_dispatch = True

    # ---- bookkeeping -----------------------------------------------------------------------

    def _move(
        self, run: RunRecord, to: RunState, why: str, out: list[Action], **changes: object
    ) -> RunRecord:
        after = run.moved(to, why, **changes)
        self._commit(run, after, out)
        return after

    def _commit(self, before: RunRecord, after: RunRecord, out: list[Action]) -> None:
        if before.state is not after.state:
            check_transition(before.id, before.state, after.state)
        if after.id in self.runs:
            self.runs[after.id] = after
        if after.state is RunState.QUEUED:
            self._wanted_dispatch = True
            if after.id in self.runs:
                self._enqueue(after)
        else:
            self._unqueue(after)
        if after.state is not RunState.RUNNING:
            self.progress.pop(after.id, None)  # a retry's attempt starts without
        out.append(Commit(((before, after),)))

    def _set(self, a: AttemptRecord, out: list[Action], **changes: object) -> AttemptRecord:
        a = replace(a, **changes)  # type: ignore[arg-type]
        self.attempts[a.id] = a
        out.append(SaveAttempts((a,)))
        return a

    def _forget(self, a: AttemptRecord, out: list[Action]) -> None:
        self.attempts.pop(a.id, None)
        self._stopping.discard(a.id)
        self._collecting.pop(a.id, None)
        out.append(ForgetAttempts((a.id,)))
        self._wanted_dispatch = True

    def _release_if_done(self, a: AttemptRecord, out: list[Action]) -> None:
        """An ended attempt its host still holds: once its run has ended, its log goes into
        the run's folder (unless it is there already), then its folder on the host goes."""
        if a.run_id in self.runs:
            return
        if a.kept or a.outcome is None or not a.outcome.started_at:  # nothing ran: no log
            out.append(Release(a.host, a.id, whole=True))
        else:
            out.append(Collect(a.host, a.id, a.run_id, CollectMode.HISTORY))


def _merged(actions: list[Action]) -> list[Action]:
    """Consecutive Commits and SaveAttempts of one handle() joined (one transaction each),
    keeping every other action's order: a Launch follows the Commit of its placement."""
    merged: list[Action] = []
    for act in actions:
        last = merged[-1] if merged else None
        if isinstance(act, Commit) and isinstance(last, Commit):
            merged[-1] = Commit(last.changes + act.changes)
        elif isinstance(act, SaveAttempts) and isinstance(last, SaveAttempts):
            merged[-1] = SaveAttempts(last.attempts + act.attempts)
        else:
            merged.append(act)
    return merged


def _why_not_placeable(h: HostInfo) -> str:
    """Why a host takes no runs now, said after its name ("" when it takes them)."""
    if h.state is HostState.LOST:
        return "is lost"
    if h.state is HostState.UNREACHABLE:
        return "is unreachable" if h.known else "is not connected yet"
    if not h.accepting:
        return f"takes no new runs ({h.why})" if h.why else "takes no new runs"
    return ""


def _seq(run: RunRecord) -> int:
    """A run's place among equal priorities: its submission's, then its index."""
    return run.seq * 1_000_000 + run.index


def _with_outcome(run: RunRecord, outcome: Outcome, now: float) -> RunRecord:
    """The run with the facts of how its attempt ended."""
    return evolve(
        run, exit_code=outcome.exit_code, image_id=outcome.image_id,
        ended_at=outcome.ended_at or now, started_at=outcome.started_at or run.started_at,
    )  # fmt: skip


def _number(attempt: str) -> int:
    tail = attempt.rsplit("-a", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def labelled(hosts: Iterable[HostInfo]) -> str:
    """The hosts with their labels, for messages: `h1 (no labels); h2 (rack=b)`."""
    return "; ".join(
        f"{h.name} ({', '.join(f'{k}={v}' for k, v in h.labels.items()) or 'no labels'})"
        for h in hosts
    )


__all__ = ["DEFAULT_GRACE_S", "TERMINAL", "HostInfo", "HostState", "Lifecycle", "labelled"]
