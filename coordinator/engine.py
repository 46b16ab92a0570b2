"""The coordinator's core loop: accept submissions, place runs, drive attempts, collect results.

The decisions are made by pure pieces (convoy.spec, convoy.states, coordinator.scheduler); this
module is the async shell that carries them out against the store, the agents and the disk.
Every state change goes through `_commit`, which validates it, persists it (with a transition
row) and publishes it, in that order: a client is never told of a state the store does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import IO, Any

import grpc

from convoy.coordinator.hosts.agents import AttemptOutcome
from convoy.coordinator.hosts.liveness import LOST_GRACE_S, TRANSIENT, Host, HostLiveness, labelled
from convoy.coordinator.results.diskroom import DiskRoom, Grant
from convoy.coordinator.results.folders import (
    FilePiece,
    RunResult,
    output_attempt,
    record_unstarted,
    write_runs_csv,
)
from convoy.coordinator.runs.bus import EventBus, RunChanged
from convoy.coordinator.runs.records import RunRecord, attempt_id
from convoy.coordinator.runs.scheduler import (
    HostView,
    Pending,
    Policy,
    Units,
    place,
    why_unplaceable,
)
from convoy.coordinator.runs.store import Store
from convoy.coordinator.runs.submissions import Submissions
from convoy.coordinator.sources.builds import BuildKeeper, failure_reason
from convoy.coordinator.sources.images import ImageShipper
from convoy.coordinator.sources.sync import Syncer
from convoy.errors import ConvoyError, NotFound, UsageError
from convoy.footprint import BLOCK, PER_FILE, disk_footprint
from convoy.spec import PlacementSpec
from convoy.states import ACTIVE, RunState, check_transition

log = logging.getLogger("convoy.coordinator")

DEFAULT_GRACE_S = 10.0
BUILD_ENTRY = re.compile(r"(.+)\.build(?:@([^@/]+))?")


class Coordinator(Submissions, HostLiveness):
    def __init__(self, home: Path, store: Store, hosts: Iterable[Host]) -> None:
        self.home = home
        self.store = store
        self.hosts = {h.name: h for h in hosts}
        self.bus = EventBus()
        self.syncer = Syncer(home)
        self.images = ImageShipper()
        self.builds = BuildKeeper(store, self.images)
        self.room = DiskRoom()  # on the results' disks, for collections in flight
        self._queue: dict[str, RunRecord] = {}
        # run id -> (host, units, attempt): what the run's current attempt holds
        self._allocations: dict[str, tuple[str, Units, int]] = {}
        self._cancelling: dict[str, tuple[float, int]] = {}  # run id -> (grace s, attempt)
        self._holds: dict[str, str] = {}  # run id -> the host held for it (scheduler.place)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._progress: dict[str, str] = {}  # submission -> its progress regex
        self._placement: dict[str, PlacementSpec] = {}  # submission -> where its runs may go

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(self._reconnect(h) for h in self.hosts.values()))
        for h in self.hosts.values():
            if not h.up:
                log.warning("host %s is unreachable; it gets no runs until it answers", h.name)
        for run in self.store.runs(states=[RunState.QUEUED]):
            self._queue[run.id] = run
        for run in self.store.runs(states=list(ACTIVE)):
            self._spawn(self._resume(run))
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_loop())
        self._spawn(self._heartbeat())
        self._wake.set()

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._dispatcher] if self._dispatcher else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for h in self.hosts.values():
            await h.client.close()
        self.syncer.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- state changes ---------------------------------------------------------------------

    def _commit(self, changes: list[tuple[RunRecord, RunRecord]]) -> None:
        now = time.time()
        self.store.update_runs((b, a, now) for b, a in changes)
        for before, after in changes:
            self.bus.publish(RunChanged(after, before.state.value, now))

    def _move(self, run: RunRecord, to: RunState, reason: str, **changes: object) -> RunRecord:
        after = run.moved(to, reason, **changes)
        self._commit([(run, after)])
        return after

    # ---- submit ----------------------------------------------------------------------------

    # ---- placement -------------------------------------------------------------------------

    def _view(self, h: Host) -> HostView:
        used = Units()
        for host, units, _ in self._allocations.values():
            if host == h.name:
                used = used + units
        return HostView(h.name, h.capacity, used, h.up)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._dispatch()
            except Exception:
                log.exception("dispatch failed")

    def _strand(self, runs: list[tuple[RunRecord, str]]) -> None:
        """Fail queued runs no host of this coordinator can ever take, each with why: their
        placement matches none any more, or every host it allows is too small for them (a
        host was taken out of the hosts file, or its labels or capacity changed, and the
        coordinator restarted). Submit refuses such runs; these were accepted before."""
        for run, why in runs:
            del self._queue[run.id]
            log.warning("run %s: %s", run.id, why)
        finals = self._end_all([(run, RunState.FAILED, why) for run, why in runs])
        if finals:  # run.json says why, also where an attempt began on a host now out of reach
            self._spawn(self._record_unstarted(*finals))

    def _dispatch(self) -> None:
        if not self._queue:
            return
        views = {name: self._view(h) for name, h in self.hosts.items()}  # once per dispatch
        queued: dict[str, list[RunRecord]] = {}
        for r in self._queue.values():
            queued.setdefault(r.submission_id, []).append(r)
        # Per submission: the hosts its runs may use (None: any) and how to spread them.
        rules: dict[str, tuple[frozenset[str] | None, Policy]] = {}
        stranded: list[tuple[RunRecord, str]] = []
        for sub_id, runs in queued.items():
            placement = self.placement_of(sub_id)
            allowed = [h for h in self.hosts.values() if placement.allows(h.name, h.labels)]
            if not allowed:
                why = (f"no host matches its placement ({placement}) any more; the hosts: "
                       f"{labelled(self.hosts.values()) or 'none'}")  # fmt: skip
                stranded += [(r, why) for r in runs]
                continue
            only = frozenset(h.name for h in allowed) if placement.restricts else None
            rules[sub_id] = (only, Policy(placement.policy))
            if all(h.info for h in allowed):  # what every one of them offers is known
                problems: dict[Units, str | None] = {}  # a sweep's runs mostly ask alike
                for r in runs:
                    need = Units.of(r.resources)
                    if need not in problems:
                        problems[need] = why_unplaceable(need, [views[h.name] for h in allowed])
                    if problems[need]:
                        stranded.append((r, f"no host it may use can ever run it: "
                                            f"{problems[need]}"))  # fmt: skip
        self._strand(stranded)
        pending = [
            Pending(r.id, Units.of(r.resources), r.priority, r.seq * 1_000_000 + r.index,
                    *rules[r.submission_id])
            for r in self._queue.values()
        ]  # fmt: skip
        placements = place(pending, list(views.values()), holds=self._holds)
        changes = []
        for p in placements:
            run = self._queue.pop(p.run_id)
            # A host that just got this revision and image (a sweep's runs, one after another)
            # goes straight to starting; otherwise the run syncs first.
            ready = self.syncer.fresh(p.host, (run.revision, *run.inputs.values()))
            ready = ready and self.images.fresh(p.host, run.image)
            ready = ready and self.builds.ready(p.host, run)
            placed = run.moved(
                RunState.STARTING if ready else RunState.SYNCING, f"placed on {p.host}",
                host=p.host, attempt=run.attempt + 1, exit_code=None, started_at=0.0,
                ended_at=0.0, image_id="",
            )  # fmt: skip
            self._allocations[run.id] = (p.host, Units.of(run.resources), placed.attempt)
            changes.append((run, placed))
        if changes:
            self._commit(changes)
            for _, placed in changes:
                self._spawn(self._execute(placed))

    def _release(self, run: RunRecord, cancel_too: bool = True) -> None:
        """Free what this attempt of the run held (with `cancel_too`, forget a cancel asked
        of it too). A retry of it may have been placed already (_finish requeues it, then
        awaits the host): what that attempt holds stays."""
        for held in (self._allocations, self._cancelling) if cancel_too else (self._allocations,):
            if run.id in held and held[run.id][-1] == run.attempt:
                del held[run.id]
        self._wake.set()

    # ---- one attempt -----------------------------------------------------------------------

    async def _execute(self, run: RunRecord) -> None:
        host = self.hosts[run.host]
        try:
            synced_now = run.state is RunState.SYNCING
            if synced_now:
                for rev_id in (run.revision, *run.inputs.values()):
                    await self._resilient(host, partial(self._sync, host, rev_id))
                await self._resilient(
                    host, lambda: self.images.ensure(host.name, host.client, run.image)
                )
                await self.builds.prepare(run)
                build = self.builds.spec(run)
                if build is not None:
                    if build.image:
                        image = build.image
                        await self._resilient(
                            host, lambda: self.images.ensure(host.name, host.client, image)
                        )
                    run = self._move(run, RunState.BUILDING, f"building on {host.name}")
                    built = await self._resilient(
                        host, lambda: self.builds.ensure(host.name, host.client, run)
                    )
                    if built is not None and not built.succeeded:
                        await self._end_unstarted(run, RunState.FAILED,
                                                  failure_reason(host.name, built),
                                                  exit_code=built.exit_code)  # fmt: skip
                        return
                run = self._move(run, RunState.STARTING, f"starting on {host.name}")
            build_key = self.builds.key(run)
            outcome = await self._resilient(
                host, lambda: host.client.start(run, revision=run.revision, build_key=build_key)
            )
            if outcome.state == "error" and outcome.lacks_revision and not synced_now:
                self.syncer.forget(host.name)  # collected since it was confirmed: sync again
                self._requeue(run, f"host {host.name} no longer had the revision")
                return
            if outcome.state == "error":
                await self._finish(run, host, outcome)
                return
            run = self._move(run, RunState.RUNNING, f"running on {host.name}",
                             started_at=outcome.started_at or time.time())  # fmt: skip
            if run.id in self._cancelling:
                await host.client.cancel(run.attempt_id, self._cancelling[run.id][0])
            attempt_id = run.attempt_id
            outcome = await self._resilient(host, lambda: host.client.wait(attempt_id))
            await self._finish(run, host, outcome)
        except grpc.aio.AioRpcError as e:
            log.warning("run %s: host %s failed: %s", run.id, host.name, e.details())
            reason = f"host {host.name} stopped answering: {e.details()}"
            await self._end_unstarted(run, RunState.LOST, reason)
        except ConvoyError as e:
            await self._end_unstarted(run, RunState.FAILED, e.render())
        except Exception as e:
            log.exception("run %s failed in the coordinator", run.id)
            await self._end_unstarted(run, RunState.FAILED, f"coordinator error: {e}")
        finally:
            self._release(run)

    async def _end_unstarted(
        self, run: RunRecord, state: RunState, reason: str, **changes: object
    ) -> None:
        """End a run; one whose attempt never started gets a results folder whose run.json
        says why, as every run has (one that started has its attempt's results instead)."""
        final = self._end(run, state, reason, **changes)
        if final is not None and not final.started_at:
            await self._record_unstarted(final)

    async def _record_unstarted(self, *runs: RunRecord) -> None:
        def record() -> None:
            for run in runs:
                try:
                    record_unstarted(run)
                except OSError as e:
                    log.error("run %s: cannot write its run.json: %s", run.id, e)

        await asyncio.to_thread(record)

    async def _sync(self, host: Host, revision: str) -> None:
        await self.syncer.ensure_on_host(host.name, host.client, self.syncer.revision(revision))

    async def _resume(self, run: RunRecord) -> None:
        """After a coordinator restart: adopt an attempt its host's agent still knows, or
        requeue one it does not know. A host that does not answer (down, or slow to connect)
        is waited for as a running attempt's host is, for LOST_GRACE_S, the run holding its
        share of it meanwhile: the attempt's container may be running there, and placing the
        run again would run it twice. One that never answers leaves the run lost."""
        host = self.hosts.get(run.host)
        if host is None:
            self._requeue(run, f"attempt {run.attempt}'s host {run.host} is not in the hosts "
                               "file any more")  # fmt: skip
            return
        if not host.up and run.state in (RunState.SYNCING, RunState.BUILDING):
            self._requeue(run, f"host {host.name} is unreachable; attempt {run.attempt} had not "
                               "started")  # fmt: skip
            return
        self._allocations[run.id] = (host.name, Units.of(run.resources), run.attempt)
        try:
            attempt_id = run.attempt_id
            outcome = await self._resilient(host, lambda: host.client.get(attempt_id))
            if outcome is None:
                self._requeue(run, f"attempt {run.attempt} was not found after a coordinator "
                                   "restart")  # fmt: skip
                return
            # Started (maybe ended too) while the coordinator was away: running first, the
            # way its end is recorded.
            if run.state is not RunState.RUNNING and (not outcome.ended or outcome.started_at):
                run = self._move(run, RunState.RUNNING, f"adopted on {host.name}",
                                 started_at=outcome.started_at or time.time())  # fmt: skip
            outcome = await self._resilient(host, lambda: host.client.wait(attempt_id))
            await self._finish(run, host, outcome)
        except grpc.aio.AioRpcError as e:
            self._end(run, RunState.LOST, f"host {host.name} stopped answering: {e.details()}")
        except Exception as e:
            log.exception("run %s: resuming it failed in the coordinator", run.id)
            await self._end_unstarted(run, RunState.FAILED, f"coordinator error: {e}")
        finally:
            self._release(run)

    def _requeue(self, run: RunRecord, reason: str) -> None:
        run = self._move(run, RunState.QUEUED, reason)
        self._queue[run.id] = run
        self._wake.set()

    def _end(
        self, run: RunRecord, state: RunState, reason: str, **changes: object
    ) -> RunRecord | None:
        finals = self._end_all([(run, state, reason)], **changes)
        return finals[0] if finals else None

    def _end_all(
        self, ends: list[tuple[RunRecord, RunState, str]], **changes: object
    ) -> list[RunRecord]:
        """End these runs (those not ended already) in one commit, runs.csv written once per
        submission however many runs there are; the runs as ended."""
        now = time.time()
        moves = []
        for run, state, reason in ends:
            current = self.store.run(run.id) or run
            if not current.state.terminal:
                moves.append((current, current.moved(state, reason, ended_at=now, **changes)))
        if moves:
            self._commit(moves)
            for sub_id in {after.submission_id for _, after in moves}:
                self._update_csv(sub_id)
        return [after for _, after in moves]

    async def _finish(self, run: RunRecord, host: Host, outcome: AttemptOutcome) -> None:
        """Collect the attempt's results, then record how it ended (or queue a retry)."""
        # The container has ended: its cpus and memory can take the next run while we collect.
        self._release(run, cancel_too=False)
        cancelled = outcome.state == "cancelled" or (
            run.id in self._cancelling and outcome.state != "exited"
        )
        if cancelled:
            state, reason = RunState.CANCELLED, "cancelled on request"
        elif outcome.state == "exited" and outcome.exit_code == 0:
            state, reason = RunState.SUCCEEDED, "exited with code 0"
        else:
            state, reason = RunState.FAILED, outcome.reason or f"attempt {outcome.state}"
        final = replace(
            run, state=state, reason=reason, ended_at=outcome.ended_at or time.time(),
            started_at=outcome.started_at or run.started_at, image_id=outcome.image_id,
            exit_code=outcome.exit_code if outcome.state in ("exited", "timed_out", "cancelled")
            else None,
        )  # fmt: skip
        if outcome.state != "error":
            await self._resilient(host, lambda: self._collect(final, host))
        retry = state is RunState.FAILED and run.attempt <= run.retries
        retry = retry and run.id not in self._cancelling  # asked to stop: no next attempt
        if retry:
            left = run.retries - run.attempt + 1
            self._requeue(
                replace(run, exit_code=final.exit_code, ended_at=final.ended_at),
                f"attempt {run.attempt} failed ({reason}); retrying ({left} left)",
            )
        else:
            check_transition(run.id, run.state, state)
            self._commit([(run, final)])
            self._update_csv(run.submission_id)
        try:
            await host.client.release(run.attempt_id)
        except grpc.aio.AioRpcError as e:
            log.warning("releasing %s on %s: %s", run.attempt_id, host.name, e.details())

    async def _collect(self, run: RunRecord, host: Host) -> None:
        """Bring the attempt's output and results to the results folder: as much as the
        coordinator's disk has room for (diskroom.py), the output first."""
        try:
            await self._collect_within_room(run, host)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # Another process took the room granted: once more, within what is free now
            # (when nothing is, the error stands, and the agent keeps the results).
            log.warning("run %s: the disk filled while its results came (%s); collecting "
                        "them again within the room left", run.id, e.strerror)  # fmt: skip
            await self._collect_within_room(run, host, full=e)

    async def _collect_within_room(
        self, run: RunRecord, host: Host, full: OSError | None = None
    ) -> None:
        """_collect within one grant; with `full` (the error of a first try), that error
        again rather than a collection granted no room at all."""
        size, log_size = await host.client.results_size(run.attempt_id)
        wanted = size + log_size
        result = RunResult(run)
        with self.room.grant(result.final.parent, wanted) as grant:
            if full is not None and grant.size == 0 and wanted:
                raise full
            await asyncio.to_thread(result.open)
            try:
                with result.log_file() as f:
                    written = await self._collect_log(run, host, result, f, grant)
                limit = None
                if grant.size < wanted:  # room for less than all: the rest, in files
                    limit = max(0, grant.size - disk_footprint(written))  # the log's file too
                pieces = _counted(host.client.fetch_results(run.attempt_id, limit), grant)
                async with contextlib.aclosing(pieces):
                    await result.receive(pieces)
                await asyncio.to_thread(result.commit, run)
            except BaseException:
                result.discard()
                raise

    async def _collect_log(
        self, run: RunRecord, host: Host, result: RunResult, f: IO[bytes], grant: Grant
    ) -> int:
        """Write the attempt's output to `f`, as much as the grant has room for; the bytes
        written."""
        room = max(0, grant.size - PER_FILE) // BLOCK * BLOCK  # whole blocks
        written = 0
        try:
            async with contextlib.aclosing(
                host.client.read_log(run.attempt_id, 0, follow=False)
            ) as chunks:
                async for _, data in chunks:
                    if written + len(data) > room:
                        f.write(data[: room - written])
                        grant.wrote(room - written)
                        written = room
                        result.output_missing = (
                            f"cut short after {room:,} bytes: the coordinator's disk had no "
                            "room for more"
                        )
                        log.warning("run %s: output %s", run.id, result.output_missing)
                        break
                    f.write(data)
                    grant.wrote(len(data))
                    written += len(data)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            # The run put a link or a FIFO in place of its log: its results still come.
            log.warning("run %s: output not collected: %s", run.id, e.details())
            result.output_missing = e.details() or "the run's output cannot be read"
        return written

    def _update_csv(self, submission_id: str) -> None:
        sub = self.store.submission(submission_id)
        if sub is not None:
            write_runs_csv(Path(sub.results_dir) / "runs.csv", self.store.runs(submission_id))

    # ---- cancel ----------------------------------------------------------------------------

    async def cancel(self, target: str, grace: float = 0.0) -> list[str]:
        grace = grace if grace > 0 else DEFAULT_GRACE_S
        run = self.store.run(target)
        if run is not None:
            runs = [run]
        elif self.store.submission(target) is not None:
            runs = self.store.runs(target)
        else:
            raise NotFound(f"no run or submission {target!r}")
        reached: list[str] = []
        unstarted: list[RunRecord] = []
        for r in runs:  # without yielding: no queued run of these is placed meanwhile
            r = self.store.run(r.id) or r
            if r.state.terminal:
                continue
            reached.append(r.id)
            if r.state is RunState.QUEUED:
                self._queue.pop(r.id, None)
                unstarted.append(
                    self._move(
                        r, RunState.CANCELLED, "cancelled before it started", ended_at=time.time()
                    )
                )
                self._update_csv(r.submission_id)
                continue
            self._cancelling[r.id] = (grace, r.attempt)
            if r.state is RunState.RUNNING:
                host = self.hosts[r.host]
                self._spawn(self._cancel_attempt(host, r.attempt_id, grace))
        for final in unstarted:
            await self._record_unstarted(final)
        return reached

    async def _cancel_attempt(self, host: Host, attempt_id: str, grace: float) -> None:
        try:
            await host.client.cancel(attempt_id, grace)
        except grpc.aio.AioRpcError as e:
            log.warning("cancelling %s on %s: %s", attempt_id, host.name, e.details())

    # ---- reads -----------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        run = self.store.run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}")
        return run

    async def logs(
        self, run_id: str, offset: int, follow: bool, attempt: int = 0
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        """A run's output as (attempt, offset, data), from `offset` of its latest attempt that
        ran; with follow, waits for one to start and goes on until the run ends, from the
        start of each attempt after it (a retry), none skipped however slowly they are read.
        With `attempt`, that attempt's output only. "<submission>.build@<host>" (or just
        "<submission>.build") is a build's output (attempt 0)."""
        if (m := BUILD_ENTRY.fullmatch(run_id)) is not None:
            if attempt:
                raise UsageError("a build has no attempts to choose from")
            async for off, data in self._build_log(m.group(1), m.group(2), offset, follow):
                yield 0, off, data
            return
        run = self.run(run_id)
        if attempt:
            async for off, data in self._one_attempt(run, attempt, offset, follow):
                yield attempt, off, data
            return
        if not follow:
            ran = self.store.attempt_hosts(run_id)
            if ran:  # the current attempt, or the last one that ran (a retry not begun yet)
                latest = max(ran)
                async for off, data in self._attempt_log(run, latest, ran[latest], offset, False):
                    yield latest, off, data
            return
        streamed = 0  # the last attempt streamed
        ran = self.store.attempt_hosts(run_id)
        if ran and not run.state.terminal and run.state is not RunState.RUNNING:
            # Between attempts (a retry queued or starting): the one that ended first.
            streamed = max(ran)
            async for off, data in self._attempt_log(run, streamed, ran[streamed], offset, False):
                yield streamed, off, data
            offset = 0
        while True:
            run = await self._started(run_id, after=streamed)
            if run.attempt <= streamed:  # ended with no attempt after the last one streamed
                return
            ran = self.store.attempt_hosts(run_id)
            # Attempts that ran and ended while the one before was being read (a slow reader,
            # or a retry that failed fast): whole, in order.
            for k in sorted(a for a in ran if streamed and streamed < a < run.attempt):
                async for off, data in self._attempt_log(run, k, ran[k], 0, False):
                    yield k, off, data
            # Running, or the run has ended: its last attempt, or if that never ran (a retry
            # that failed to start) and nothing was streamed yet, the last one that did.
            target = 0
            if run.attempt in ran:
                target = run.attempt
            elif ran and not streamed:
                target = max(ran)
            if target:
                live = not run.state.terminal
                async for off, data in self._attempt_log(run, target, ran[target], offset, live):
                    yield target, off, data
            if run.state.terminal:
                return
            streamed, offset = run.attempt, 0

    async def _one_attempt(
        self, run: RunRecord, attempt: int, offset: int, follow: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Attempt `attempt`'s output; following, one still to come is waited for, and one
        running is followed until it ends. (Attempts are counted per placement: a run placed
        again, say after its host lost the revision, has more than retries + 1.)"""
        if attempt < 1:
            raise UsageError(f"attempt {attempt}: attempts count from 1")
        ran = self.store.attempt_hosts(run.id)
        if follow and attempt not in ran and not run.state.terminal:
            run = await self._started(run.id, after=attempt - 1)
            ran = self.store.attempt_hosts(run.id)
        if attempt not in ran:
            if attempt < run.attempt or (attempt == run.attempt and run.state.terminal):
                raise NotFound(f"{run.id}: attempt {attempt} never reached running")
            if run.state.terminal:
                raise NotFound(f"{run.id} ended after {run.attempt} attempt(s)")
            raise NotFound(f"{run.id}: attempt {attempt} has not started yet (following "
                           "waits for it)")  # fmt: skip
        live = follow and run.attempt == attempt and run.state is RunState.RUNNING
        async for chunk in self._attempt_log(run, attempt, ran[attempt], offset, live,
                                             gone_ok=False):  # fmt: skip
            yield chunk

    async def _started(self, run_id: str, after: int) -> RunRecord:
        """The run once an attempt after `after` is running, or once it has ended."""
        async with self.bus.subscribe() as q:
            run = self.run(run_id)  # subscribed first: no change slips between the two
            while not run.state.terminal and not (
                run.state is RunState.RUNNING and run.attempt > after
            ):
                ev = await q.get()
                if ev.run.id == run_id:
                    run = ev.run
        return run

    async def _attempt_log(
        self, run: RunRecord, attempt: int, host_name: str, offset: int, follow: bool,
        gone_ok: bool = True,
    ) -> AsyncIterator[tuple[int, bytes]]:  # fmt: skip
        """One attempt's output: saved with the run's results when they are that attempt's,
        else from the host it ran on (which keeps it after the attempt ends). Following, a
        connection to the host that drops is taken up again where it stopped, as the run's
        own wait is (for LOST_GRACE_S). One the host no longer knows is empty, or with
        `gone_ok` False, NotFound."""
        saved = Path(run.results_path) / "output.log"
        if _saved_attempt(run) == attempt and saved.exists():
            async for chunk in _read_from(saved, offset):
                yield chunk
            return
        deadline: float | None = None  # set by a failure, cleared by output: a streak's end
        while True:
            host = self.hosts.get(host_name)
            if host is None:
                raise ConvoyError(f"{run.id}: attempt {attempt} ran on {host_name}, which is "
                                  "not one of this coordinator's hosts any more")  # fmt: skip
            try:
                async for off, data in host.client.read_log(attempt_id(run.id, attempt), offset,
                                                            follow):  # fmt: skip
                    yield off, data
                    offset, deadline = off + len(data), None
                return
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    if gone_ok:
                        return  # the host collected it, or it never wrote any
                    raise NotFound(f"{run.id}: attempt {attempt}'s output is no longer kept "
                                   f"({host_name} no longer has it)") from None  # fmt: skip
                deadline = deadline or time.monotonic() + LOST_GRACE_S
                if not (follow and e.code() in TRANSIENT and time.monotonic() < deadline):
                    raise ConvoyError(f"{run.id}: cannot read attempt {attempt}'s output from "
                                      f"{host_name}: {e.details()}") from None  # fmt: skip
                await asyncio.sleep(0.5)  # the run's own wait reconnects the host
                current = self.store.run(run.id) or run
                if current.state.terminal and _saved_attempt(current) == attempt:
                    async for chunk in _read_from(saved, offset):
                        yield chunk
                    return

    async def _build_log(
        self, sub_id: str, host_name: str | None, offset: int, follow: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        sub = self.store.submission(sub_id)
        if sub is None:
            raise NotFound(f"no submission {sub_id!r}")
        hosts = self.builds.hosts_of(sub_id)
        saved = sorted(p.stem for p in (Path(sub.results_dir) / "build").glob("*.log"))
        if host_name is None:
            names = sorted(set(hosts) | set(saved))
            if len(names) != 1:
                which = ", ".join(f"{sub_id}.build@{n}" for n in names) or "none yet"
                raise NotFound(f"{sub_id} has builds on {len(names)} hosts: name one ({which})")
            host_name = names[0]
        path = Path(sub.results_dir) / "build" / f"{host_name}.log"
        while True:
            entry = self.builds.attempt(sub_id, host_name)
            if (entry is None or entry[1]) and path.exists():  # ended: the saved copy
                async for chunk in _read_from(path, offset):
                    yield chunk
                return
            host = self.hosts.get(host_name)
            if entry is None or host is None:
                raise NotFound(f"no build of {sub_id} on {host_name!r}")
            try:
                async for chunk in host.client.read_log(entry[0], offset, follow):
                    yield chunk
                    offset = chunk[0] + len(chunk[1])
                return
            except grpc.aio.AioRpcError as e:
                # The agent prepares the build's folder before its attempt exists.
                if e.code() != grpc.StatusCode.NOT_FOUND or not follow:
                    raise
            await asyncio.sleep(0.1)

    def host_views(self) -> list[tuple[Host, HostView, list[str]]]:
        out = []
        for h in self.hosts.values():
            holders = [rid for rid, (hn, _, _) in self._allocations.items() if hn == h.name]
            out.append((h, self._view(h), holders))
        return out


def _saved_attempt(run: RunRecord) -> int:
    """Which attempt's output the run's results folder holds (0: none yet)."""
    try:
        return output_attempt(json.loads((Path(run.results_path) / "run.json").read_text()))
    except (OSError, ValueError):
        return 0


async def _read_from(path: Path, offset: int) -> AsyncIterator[tuple[int, bytes]]:
    """A saved log from a byte offset, in chunks (offset, data)."""
    with open(path, "rb") as f:
        f.seek(offset)
        while data := await asyncio.to_thread(f.read, 256 * 1024):
            yield offset, data
            offset += len(data)


async def _counted(
    pieces: AsyncGenerator[FilePiece, None], grant: Grant
) -> AsyncGenerator[FilePiece, None]:
    """The pieces, their bytes counted as written against the grant; closed, it closes them."""
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            grant.wrote(len(piece.data))
            yield piece
