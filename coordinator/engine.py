"""The coordinator's shell around the run lifecycle (runs/lifecycle.py): it feeds the lifecycle
events and carries out the actions it returns, against the store, the agents and the disk.

Every decision (placement, retries, lost, cancel, fencing) is the lifecycle's; this module only
does what it is told, in this order for each batch: the folders of runs that end without
results, then one SQLite transaction with every run and attempt change, then the changes
published to clients, then the rest (launches, stops, collections, releases), each a task of
its own whose outcome comes back as an event. A client is never told of a state the store does
not hold, and a run the store says ended has its folder.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from convoy.coordinator.hosts.agents import AgentClient
from convoy.coordinator.hosts.session import TRANSIENT, HostSession
from convoy.coordinator.launch import Launcher
from convoy.coordinator.results.collect import Collector
from convoy.coordinator.results.diskroom import DiskRoom
from convoy.coordinator.results.folders import record_unstarted, write_runs_csv
from convoy.coordinator.results.table import Selection, select
from convoy.coordinator.runs.actions import (
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
from convoy.coordinator.runs.bus import EventBus, RunChanged
from convoy.coordinator.runs.events import (
    CancelRequested,
    Collected,
    CollectFailed,
    Dispatch,
    Event,
    HostAdded,
    HostRemoved,
    Released,
    Restored,
    Tick,
)
from convoy.coordinator.runs.lifecycle import DEFAULT_GRACE_S, OWN_FAILURES, HostInfo, Lifecycle
from convoy.coordinator.runs.logs import Logs
from convoy.coordinator.runs.records import RunRecord, SubmissionRecord
from convoy.coordinator.runs.scheduler import HostView
from convoy.coordinator.runs.store import Store, stored_runs
from convoy.coordinator.runs.submissions import Submissions, Unchanged, Uploaded
from convoy.coordinator.runs.why import Why, why_of
from convoy.coordinator.sources.builds import BuildKeeper
from convoy.coordinator.sources.images import ImageShipper
from convoy.coordinator.sources.sync import Syncer
from convoy.coordinator.sources.uploads import Uploads
from convoy.errors import ConvoyError, HostBusy, HostExists, NotFound
from convoy.metrics import declared_in
from convoy.spec import MetricSpec
from convoy.states import RunState

log = logging.getLogger("convoy.coordinator")

DEFAULT_CANCEL_GRACE_S = 10.0
TICK_S = 1.0
FIRST_CONTACT_S = 120.0  # start() waits this long at most for each host's first answer
CSV_EVERY_S = 2.0
CSV_ROWS_PER_S = 10_000  # a large runs.csv is rewritten no more often than its rows / this
INLINE_FOLDERS = 100  # run folders written before their runs' end is stored; more: meanwhile
INLINE_CSV_ROWS = 2000  # a larger submission's runs.csv is written by a worker thread
CANCEL_CHUNK = 500  # runs cancelled at once; the event loop runs between chunks
FOLDER_CHUNK = 500
__all__ = ["Coordinator", "HostSpec", "Unchanged"]


@dataclass
class HostSpec:
    """A host as the server configures it: how to reach its agent, and bring it back."""

    name: str
    client: AgentClient
    revive: Callable[[], Awaitable[None]] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    address: str = ""
    # The hosts file's capacity overrides (None: what the agent measures). Applied here, so a
    # change takes effect at the next `convoy up` without replacing a running agent.
    cpus: float | None = None
    memory: int | None = None
    # Stops its agent and says what it stopped (None: the host's agent is not ours to stop).
    stop_agent: Callable[[], Awaitable[str]] | None = None
    # Ends what reaches it (an SSH connection) once the coordinator is done with the host.
    close: Callable[[], Awaitable[None]] | None = None


def coordinator_id(home: Path) -> str:
    """This coordinator's id, made once per home: the agents report only its attempts."""
    path = home / "coordinator.id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = secrets.token_hex(8)
        tmp = path.with_name(f".coordinator.id.{os.getpid()}")
        tmp.write_text(ident + "\n")
        os.replace(tmp, path)
        return ident


class Coordinator:
    def __init__(
        self, home: Path, store: Store, hosts: Iterable[HostSpec],
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:  # fmt: skip
        self.home = home
        self.store = store
        self.owner = coordinator_id(home)
        self.life = Lifecycle(grace_s=grace_s)
        self.bus = EventBus()
        self.syncer = Syncer(home)
        self.uploads = Uploads(self.syncer)  # trees from clients on other machines
        self.images = ImageShipper()
        self.builds = BuildKeeper(store, self.images)
        self.room = DiskRoom()  # on the results' disks, for collections in flight
        self.collector = Collector(self.room, lambda sub_id: self.submissions.metrics_of(sub_id))
        self.specs = {h.name: h for h in hosts}
        self.sessions = {h.name: self._session(h) for h in self.specs.values()}
        self._session_tasks: dict[str, asyncio.Task[Any]] = {}
        self.launcher = Launcher(self.syncer, self.images, self.builds, self.owner, self.feed,
                                 lambda sub_id: self.submissions.progress_of(sub_id))  # fmt: skip
        self.submissions = Submissions(home, store, self.syncer, self.builds, self.bus,
                                       self.life, self.feed)  # fmt: skip
        self.logs = Logs(store, self.bus, self.builds, lambda: self.sessions)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._of_attempt: dict[str, set[asyncio.Task[Any]]] = {}
        self._dispatch_pending = False
        self._feeding = False
        self._later: list[Event] = []
        self._csv_due: dict[str, asyncio.TimerHandle] = {}  # submission -> its runs.csv write
        self._folders_todo: collections.deque[RunRecord] = collections.deque()
        self._folder_writer: asyncio.Task[Any] | None = None
        self._cancelling = 0  # cancels being fed; the writers' threads wait (interpreter lock)
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._csv_writing: dict[str, bool] = {}  # being written -> to be written once more
        self._csv_tasks: set[asyncio.Task[None]] = set()

    def _session(self, h: HostSpec) -> HostSession:
        return HostSession(h.name, h.client, self.owner, self.feed, h.revive, h.address,
                           cpus=h.cpus, memory=h.memory)  # fmt: skip

    # ---- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        now = time.time()
        for spec in self.specs.values():
            self.feed(HostAdded(spec.name, now, tuple(spec.labels.items())))
        unfinished = tuple(self.store.runs(states=[s for s in RunState if not s.terminal]))
        placements = tuple(
            (sub_id, self.submissions.placement_of(sub_id))
            for sub_id in sorted({r.submission_id for r in unfinished})
        )
        stopping = tuple(
            (sub_id, n, self.store.count_failed(sub_id, OWN_FAILURES))
            for sub_id, _ in placements
            if (n := self.submissions.stop_after_of(sub_id))
        )  # fmt: skip
        self.feed(Restored(unfinished, tuple(self.store.attempts()), placements, stopping))
        due = [r for i in self.store.folders_due() if (r := self.store.run(i)) is not None]
        if due:  # noted before a stop, not written yet
            self._folders_later(due)
        for name, session in self.sessions.items():
            self._session_tasks[name] = self._spawn(session.run())
        self._spawn(self._clock())
        # Serve once every host answered or its first try failed: a submission made at once
        # sees the hosts there are (the ones still trying are said to be unreachable).
        tries = [asyncio.ensure_future(s.tried.wait()) for s in self.sessions.values()]
        if tries:  # none: a coordinator started with no hosts, for AddHost to give it some
            _, pending = await asyncio.wait(tries, timeout=FIRST_CONTACT_S)
            for t in pending:
                t.cancel()
        for name, session in self.sessions.items():
            if not session.up:
                log.warning("host %s is unreachable (%s); it gets no runs until it answers",
                            name, session.why)  # fmt: skip

    async def close(self) -> None:
        """Stop: the hosts' sessions and every task first (a session left going while the
        last runs.csv files are written could start another local agent, that nothing would
        stop), then those writes. Folders still to be written are written at the next start."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._quiet.set()  # a cancel cut short leaves the writers waiting otherwise
        await asyncio.gather(*self._csv_tasks, return_exceptions=True)  # a few seconds at most
        for sub_id, handle in list(self._csv_due.items()):  # what a later write was to say
            handle.cancel()
            if (sub := self.store.submission(sub_id)) is not None:
                await asyncio.to_thread(self._update_csv, sub, True)
        self._csv_due.clear()
        for spec in self.specs.values():
            await _closed(spec)
        self.syncer.close()

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.feed(Tick(time.time()))

    # ---- the loop: events in, actions out ----------------------------------------------------

    def feed(self, event: Event) -> None:
        """Hand the lifecycle an event and carry out what it decides. Called from the event
        loop only; an event raised while one is being carried out waits its turn."""
        if self._feeding:
            self._later.append(event)
            return
        self._feeding = True
        try:
            todo = [event]
            while todo:
                self._carry_out(self.life.handle(todo.pop(0)))
                todo += self._later
                self._later.clear()
        finally:
            self._feeding = False
        if self.life.wants_dispatch and not self._dispatch_pending:
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        self.feed(Dispatch(time.time()))

    def _carry_out(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        ended_here = [act.run for act in actions if isinstance(act, RecordEnded)]
        later: list[str] = []
        if len(ended_here) <= INLINE_FOLDERS:  # run.json first: ended means it has its folder
            for run in ended_here:
                self._write_folder(run, self.submissions.metrics_of(run.submission_id))
        else:  # a sweep cancelled: written meanwhile, noted in the same transaction (restarts)
            later = [r.id for r in ended_here]
        now = time.time()
        changes = [(b, a, now) for act in actions if isinstance(act, Commit)
                   for b, a in act.changes]  # fmt: skip
        saved = [a for act in actions if isinstance(act, SaveAttempts) for a in act.attempts]
        forgotten = [i for act in actions if isinstance(act, ForgetAttempts)
                     for i in act.attempt_ids]  # fmt: skip
        if changes or saved or forgotten or later:
            self.store.apply(changes, saved, forgotten, later)
        if later:
            self._folders_later(ended_here)
        ended: set[str] = set()
        progress = self.life.progress
        for before, after, at in changes:
            self.bus.publish(RunChanged(after, before.state.value, at, progress.get(after.id)))
            if after.state.terminal:
                ended.add(after.submission_id)
        for sub_id in ended:
            self._csv_soon(sub_id)
        for act in actions:
            match act:
                case Launch(run=run):
                    self._for_attempt(run.attempt_id, self.launcher.launch(
                        run, self.sessions[run.host]))  # fmt: skip
                case Abandon(attempt_id=aid):
                    for t in self._of_attempt.pop(aid, set()):
                        t.cancel()
                case Stop():
                    self._spawn(self._stop(act))
                case Collect():
                    self._for_attempt(act.attempt_id, self._collect(act))
                case Release():
                    self._spawn(self._release(act))
                case Progress(run=run, percent=percent):
                    self.bus.publish(RunChanged(run, run.state.value, now, percent))
                case HostChanged(state=state, message=message):
                    level = (logging.INFO if state in ("up", "accepting", "removed")
                             else logging.WARNING)  # fmt: skip
                    log.log(level, "host %s", message)

    # ---- carrying out ----------------------------------------------------------------------

    def _write_folder(self, run: RunRecord, metrics: Sequence[MetricSpec]) -> None:
        try:
            record_unstarted(run, metrics)
        except OSError as e:
            log.error("run %s: cannot write its run.json: %s", run.id, e)

    def _folders_later(self, runs: Sequence[RunRecord]) -> None:
        """Queue folders for the one writer task (many threads at once would starve the event
        loop of the interpreter lock)."""
        self._folders_todo.extend(runs)
        if self._folder_writer is None or self._folder_writer.done():
            self._folder_writer = self._spawn(self._write_folders())

    async def _write_folders(self) -> None:
        """The folders of runs that ended without starting, a chunk at a time off the event
        loop; each cleared from the store's list once written."""
        while self._folders_todo:
            await self._quiet.wait()
            chunk = [self._folders_todo.popleft()
                     for _ in range(min(FOLDER_CHUNK, len(self._folders_todo)))]  # fmt: skip
            # looked up here: the store is the event loop's to read
            declared = {r.submission_id: self.submissions.metrics_of(r.submission_id)
                        for r in chunk}  # fmt: skip

            def write(
                todo: Sequence[RunRecord] = chunk,
                metrics: dict[str, tuple[MetricSpec, ...]] = declared,
            ) -> None:
                for run in todo:
                    self._write_folder(run, metrics[run.submission_id])

            await asyncio.to_thread(write)
            self.store.folders_written([r.id for r in chunk])

    async def _stop(self, act: Stop) -> None:
        session = self.sessions.get(act.host)
        if session is None or not session.up:
            return  # the lifecycle asks again when the host answers
        try:
            await session.client.cancel(act.attempt_id, act.grace)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return
            log.info("stopping %s on %s: %s (asked again when it answers)", act.attempt_id,
                     act.host, e.details())  # fmt: skip

    async def _release(self, act: Release) -> None:
        session = self.sessions.get(act.host)
        if session is None or not session.up:
            return
        try:
            await session.client.release(act.attempt_id, whole=act.whole)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                log.info("releasing %s on %s: %s", act.attempt_id, act.host, e.details())
                return
        self.feed(Released(act.attempt_id, act.whole))

    async def _collect(self, act: Collect) -> None:
        session = self.sessions.get(act.host)
        if session is None:  # removed meanwhile: its attempts are forgotten
            return
        over = ""
        try:
            if act.mode is CollectMode.ACCEPT:
                assert act.final is not None
                final = act.final
                over = await session.call(lambda: self.collector.accept(final, session.client))
            else:
                run = self.store.run(act.run_id)
                attempt = self.life.attempts.get(act.attempt_id)
                if run is None or attempt is None:
                    return
                if act.mode is CollectMode.HISTORY:
                    await session.call(
                        lambda: self.collector.history(run, attempt.number, session.client)
                    )
                else:
                    await session.call(lambda: self.collector.aside(run, attempt, session.client))
        except (ConvoyError, OSError, grpc.aio.AioRpcError) as e:
            why = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
            log.warning("collecting %s from %s (%s): %s", act.attempt_id, act.host,
                        act.mode.value, why)  # fmt: skip
            self.feed(CollectFailed(act.attempt_id, why or type(e).__name__))
            return
        self.feed(Collected(act.attempt_id, over))

    def _csv_soon(self, submission_id: str) -> None:
        """runs.csv again. A small submission's is written now (before its runs' end reaches
        any client: what a user reads once `convoy run` returns). A large one's is written off
        the event loop, at once when no run of it is left going, else at most every
        CSV_EVERY_S (a sweep's runs end one by one: rewriting a hundred thousand rows for
        each would cost more than the runs)."""
        sub = self.store.submission(submission_id)
        if sub is None:
            return
        if sub.total <= INLINE_CSV_ROWS:
            self._update_csv(sub)
        elif submission_id in self._csv_writing:
            self._csv_writing[submission_id] = True  # once more when the one going is done
        elif not self.store.any_unfinished(submission_id):
            self._csv_cancel(submission_id)
            self._csv_writing[submission_id] = False
            self._spawn_csv(sub)
        elif submission_id not in self._csv_due:
            every = max(CSV_EVERY_S, sub.total / CSV_ROWS_PER_S)  # 10^5 runs: every 5 s
            self._csv_due[submission_id] = asyncio.get_running_loop().call_later(
                every, self._csv_later, sub
            )

    def _csv_cancel(self, submission_id: str) -> None:
        if (handle := self._csv_due.pop(submission_id, None)) is not None:
            handle.cancel()

    def _csv_later(self, sub: SubmissionRecord) -> None:
        self._csv_due.pop(sub.id, None)
        if sub.id in self._csv_writing:
            self._csv_writing[sub.id] = True
        else:
            self._csv_writing[sub.id] = False
            self._spawn_csv(sub)

    def _spawn_csv(self, sub: SubmissionRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._write_csv(sub))
        self._csv_tasks.add(task)  # close() waits for these rather than cancel them
        task.add_done_callback(self._csv_tasks.discard)
        task.add_done_callback(_log_failure)

    async def _write_csv(self, sub: SubmissionRecord) -> None:
        """A large submission's runs.csv from a worker thread, again while runs ended meanwhile."""
        try:
            while True:
                await self._quiet.wait()
                self._csv_writing[sub.id] = False
                await asyncio.to_thread(self._update_csv, sub, True)
                if not self._csv_writing[sub.id]:
                    return
        finally:
            self._csv_writing.pop(sub.id, None)

    def _update_csv(self, sub: SubmissionRecord, apart: bool = False) -> None:
        runs = self.store.runs_apart(sub.id) if apart else self.store.runs(sub.id)
        try:
            write_runs_csv(Path(sub.results_dir) / "runs.csv", runs)
        except OSError as e:
            log.error("%s: cannot write runs.csv: %s", sub.id, e)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    def _for_attempt(self, attempt_id: str, coro: Coroutine[Any, Any, Any]) -> None:
        task = self._spawn(coro)
        tasks = self._of_attempt.setdefault(attempt_id, set())
        tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            tasks.discard(t)
            if not tasks and self._of_attempt.get(attempt_id) is tasks:
                del self._of_attempt[attempt_id]

        task.add_done_callback(done)

    # ---- what clients ask ------------------------------------------------------------------

    async def submit(
        self, spec_path: str, spec_yaml: str, results_dir: str = "", priority: int = 0,
        indexes: Sequence[int] = (), same_as: str = "", unless_revision: str = "",
        force: bool = False, upload: Uploaded | None = None,
    ) -> tuple[SubmissionRecord, list[RunRecord]]:  # fmt: skip
        return await self.submissions.submit(
            spec_path, spec_yaml, results_dir, priority, indexes=indexes, same_as=same_as,
            unless_revision=unless_revision, force=force, upload=upload,
        )  # fmt: skip

    async def why(self, run_id: str) -> Why:
        """Why the run ran or did not (decided when it was submitted), and what it waits for
        while it is queued."""
        run = self.run(run_id)
        compared = self.store.run(run.memo.compared) if run.memo and run.memo.compared else None
        files: list[str] = []
        if compared is not None and run.memo and "sources" in run.memo.changed:
            files = await asyncio.to_thread(self.changed_paths, compared.revision, run.revision)
        waiting = self.life.waiting_for(run.id) if run.state is RunState.QUEUED else ""
        return why_of(run, files, waiting)

    async def rerun(
        self, sub_id: str, states: Iterable[RunState] = ()
    ) -> tuple[SubmissionRecord, list[RunRecord]]:
        return await self.submissions.rerun(sub_id, states)

    def warnings(self, sub: SubmissionRecord) -> list[str]:
        return self.submissions.warnings(sub)

    def changed_paths(self, old_revision: str, new_revision: str) -> list[str]:
        return self.submissions.changed_paths(old_revision, new_revision)

    def progress_pattern(self, sub: SubmissionRecord) -> str:
        return self.submissions.progress_pattern(sub)

    async def results(self, experiment: str, latest: bool, where: Sequence[str]) -> Selection:
        """The runs and columns of an experiment's results table (their rows: table.rows).
        Its runs are read, and the experiment files not parsed yet parsed, in a worker thread:
        a sweep's hundred thousand runs take seconds."""
        subs = self.store.submissions()
        known = {s.id: m for s in subs if (m := self.submissions.known_metrics(s.id)) is not None}

        def choose() -> Selection:
            runs = stored_runs(self.store.path, experiment=experiment)
            of = {s.id: known[s.id] if s.id in known else declared_in(s.spec_yaml, s.spec_path)
                  for s in subs if s.experiment == experiment}  # fmt: skip
            return select(experiment, runs, subs, of.__getitem__, latest, where)

        return await asyncio.to_thread(choose)

    def run(self, run_id: str) -> RunRecord:
        return self.logs.run(run_id)

    async def cancel(self, target: str, grace: float = 0.0) -> list[str]:
        """Cancel a run, or every unfinished run of a submission; the runs reached. A large
        submission is cancelled in chunks, the event loop running between them, queued runs
        first (so that no run of it starts in a place its cancelled neighbour left)."""
        grace = grace if grace > 0 else DEFAULT_CANCEL_GRACE_S
        run = self.store.run(target)
        if run is not None:
            reached = [] if run.state.terminal else [run.id]
        elif self.store.submission(target) is not None:
            await self.submissions.queued(target)
            reached = self.store.unfinished(target)
        else:
            raise NotFound(f"no run or submission {target!r}")
        known = self.life.runs

        def waiting(run_id: str) -> bool:
            return (r := known.get(run_id)) is not None and r.state is RunState.QUEUED

        ordered = [i for i in reached if waiting(i)] + [i for i in reached if not waiting(i)]
        if len(ordered) <= CANCEL_CHUNK:
            self.feed(CancelRequested(tuple(ordered), grace, time.time()))
            return reached
        self._cancelling += 1  # the folder and runs.csv writers wait: their threads would
        self._quiet.clear()  # contend for the interpreter lock with these chunks
        try:
            for i in range(0, len(ordered), CANCEL_CHUNK):
                chunk = tuple(ordered[i : i + CANCEL_CHUNK])
                self.feed(CancelRequested(chunk, grace, time.time()))
                await asyncio.sleep(0)
        finally:
            self._cancelling -= 1
            if not self._cancelling:
                self._quiet.set()
        return reached

    def read_logs(
        self, run_id: str, offset: int, follow: bool, attempt: int = 0
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        return self.logs.read(run_id, offset, follow, attempt)

    async def stop_agents(self) -> list[tuple[str, bool, str]]:
        """(host, stopped, what happened) for each host whose agent this coordinator may
        stop: stopped unless a run is in flight there; its session no longer revives it."""
        busy = {r.host for r in self.life.runs.values()
                if r.host and r.state is not RunState.QUEUED}  # fmt: skip
        out = []
        for spec in self.specs.values():
            if spec.stop_agent is None:
                continue
            if spec.name in busy:
                out.append((spec.name, False, "not stopped: runs are in flight there"))
                continue
            session = self.sessions.get(spec.name)
            if session is not None:
                session.revive = None  # it would start the agent again
            try:
                out.append((spec.name, True, await spec.stop_agent()))
            except Exception as e:  # a host that does not answer: said, the others go on
                out.append((spec.name, False, f"not stopped: {e}"))
        return out

    def add_host(self, spec: HostSpec) -> None:
        """Take a host while running (AddHost): its session starts as at start(); it gets runs
        once it answers. HostExists for a name this coordinator already has."""
        if spec.name in self.specs:
            raise HostExists(f"this coordinator already has a host named {spec.name!r}")
        self.specs[spec.name] = spec
        session = self.sessions[spec.name] = self._session(spec)
        self.feed(HostAdded(spec.name, time.time(), tuple(spec.labels.items())))
        self._session_tasks[spec.name] = self._spawn(session.run())

    def in_flight_on(self, name: str) -> list[RunRecord]:
        """The runs with an attempt in flight on the host, in queue order."""
        return self.life.in_flight_on(name)

    async def remove_host(self, name: str, force: bool = False) -> list[RunRecord]:
        """Stop using a host (RemoveHost): nothing more is placed there, its session ends and
        what reaches it is closed (its agent keeps running there). Refused (HostBusy) while
        runs are in flight there, unless `force`: those are then queued again elsewhere while
        their containers go on there, unseen. Returns the runs that were in flight."""
        if name not in self.specs:
            raise NotFound(f"this coordinator has no host named {name!r}")
        busy = self.in_flight_on(name)
        if busy and not force:
            raise HostBusy(name, [(r.id, r.state.value) for r in busy])
        spec = self.specs.pop(name)
        self.sessions.pop(name)
        task = self._session_tasks.pop(name, None)
        self.feed(HostRemoved(name, time.time()))  # before any await: no event of it after
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await _closed(spec)
        return busy

    def retry_host(self, name: str) -> None:
        """Try to reach the host again now rather than at its next retry (a key trusted)."""
        session = self.sessions.get(name)
        if session is not None:
            session.retry_now()

    def build_reused(self, entry: str) -> bool:
        return self.logs.build_reused(entry)

    def host_views(self) -> list[tuple[HostInfo, HostView, list[str], HostSession]]:
        out = []
        for name, session in self.sessions.items():
            info = self.life.hosts[name]
            out.append((info, self.life.view(name), self.life.holders(name), session))
        return out


async def _closed(spec: HostSpec) -> None:
    """Close what reaches the host: its agent's channel, then its SSH connection, if any."""
    await spec.client.close()
    if spec.close is not None:
        try:
            await spec.close()
        except Exception as e:  # a connection that fails as it closes is closed all the same
            log.info("host %s: closing its connection: %s", spec.name, e)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        if isinstance(e, grpc.aio.AioRpcError) and e.code() in TRANSIENT:
            log.info("a task of the coordinator ended: %s", e.details())
        else:
            log.error("a task of the coordinator failed", exc_info=e)
