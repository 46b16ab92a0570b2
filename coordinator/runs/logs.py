"""A run's output as clients read it (the Logs RPC): from the results folder when its attempt's
output is kept there, else from the host that ran it, following a live attempt until it ends and
going on into every retry. A dropped connection to the host is taken up where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from convoy.coordinator.hosts.session import TRANSIENT, HostSession
from convoy.coordinator.results.collect import history_name
from convoy.coordinator.results.folders import output_attempt
from convoy.coordinator.runs.bus import EventBus
from convoy.coordinator.runs.records import RunRecord, attempt_id
from convoy.coordinator.runs.store import Store
from convoy.coordinator.sources.builds import BuildKeeper
from convoy.errors import ConvoyError, NotFound, UsageError
from convoy.states import RunState

BUILD_ENTRY = re.compile(r"(.+)\.build(?:@([^@/]+))?")
RECONNECT_S = 60.0  # how long a follower waits for a host that stopped answering
# How long a follower waits for a build said to begin (a run showing `building`) to be asked of
# its host: the phase is published first, so a client that follows at once comes before it.
BUILD_BEGIN_S = 60.0
BUILD_NOT_YET = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)


class Logs:
    def __init__(
        self, store: Store, bus: EventBus, builds: BuildKeeper,
        sessions: Callable[[], dict[str, HostSession]],
    ) -> None:  # fmt: skip
        self.store = store
        self.bus = bus
        self.builds = builds
        self._sessions = sessions

    def run(self, run_id: str) -> RunRecord:
        run = self.store.run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}")
        return run

    async def read(
        self, run_id: str, offset: int, follow: bool, attempt: int = 0
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        """A run's output as (attempt, offset, data), from `offset` of its latest attempt that
        ran; with follow, waits for one to start and goes on until the run ends, from the
        start of each attempt after it (a retry), none skipped however slowly they are read.
        With `attempt`, that attempt's output only. A run already done (reused_from) has the
        output of the run that did it. "<submission>.build@<host>" (or just
        "<submission>.build") is a build's output (attempt 0)."""
        if (m := BUILD_ENTRY.fullmatch(run_id)) is not None:
            if attempt:
                raise UsageError("a build has no attempts to choose from")
            async for off, data in self._build_log(m.group(1), m.group(2), offset, follow):
                yield 0, off, data
            return
        run = self.run(run_id)
        if run.reused_from:  # already done by another run: the output is that run's
            run_id, run = run.reused_from, self.run(run.reused_from)
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
        """One attempt's output: saved with the run's results (output.log when they are that
        attempt's, output.aN.log for an earlier one), else from the host it ran on (which keeps
        it until the run has ended). Following, a connection to the host that drops is taken up
        again where it stopped, for up to RECONNECT_S. One no longer kept anywhere is empty, or
        with `gone_ok` False, NotFound."""
        if (kept := _kept(run, attempt)) is not None:
            async for chunk in _read_from(kept, offset):
                yield chunk
            return
        deadline: float | None = None  # set by a failure, cleared by output: a streak's end
        while True:
            host = self._sessions().get(host_name)
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
                current = self.store.run(run.id) or run
                if (kept := _kept(current, attempt)) is not None:  # released meanwhile
                    async for chunk in _read_from(kept, offset):
                        yield chunk
                    return
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    if gone_ok:
                        return  # the host released it, or it never wrote any
                    raise NotFound(f"{run.id}: attempt {attempt}'s output is no longer kept "
                                   f"({host_name} no longer has it)") from None  # fmt: skip
                deadline = deadline or time.monotonic() + RECONNECT_S
                if e.code() not in TRANSIENT:
                    raise ConvoyError(f"{run.id}: attempt {attempt}'s output cannot be read on "
                                      f"{host_name}: {e.details()}") from None  # fmt: skip
                if not (follow and time.monotonic() < deadline):
                    raise ConvoyError(f"{run.id}: cannot read attempt {attempt}'s output: its "
                                      f"host {host_name} does not answer") from None  # fmt: skip
                await asyncio.sleep(0.5)  # the host's session reconnects meanwhile

    def build_reused(self, entry: str) -> bool:
        """`entry` names a build (SUB.build@HOST) that reused one made for another submission."""
        m = BUILD_ENTRY.fullmatch(entry)
        if m is None or m.group(2) is None:
            return False
        return self.builds.reused(m.group(1), m.group(2))

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
        begun_by = time.monotonic() + BUILD_BEGIN_S
        while True:
            entry = self.builds.attempt(sub_id, host_name)
            if self.builds.reused(sub_id, host_name):  # nothing was built for it: no replay
                return
            if entry is None and follow and time.monotonic() < begun_by and not path.exists():
                if not self.store.any_unfinished(sub_id):  # none will be asked for any more
                    return
                await asyncio.sleep(0.1)  # said to be building, not asked of the host yet
                continue
            if (entry is None or entry[1]) and path.exists():  # ended: the saved copy
                async for chunk in _read_from(path, offset):
                    yield chunk
                return
            host = self._sessions().get(host_name)
            if entry is None or host is None:
                raise NotFound(f"no build of {sub_id} on {host_name!r}")
            try:
                async for chunk in host.client.read_log(entry[0], offset, follow):
                    yield chunk
                    offset = chunk[0] + len(chunk[1])
                return
            except grpc.aio.AioRpcError as e:
                # The agent prepares the build's folder before its attempt exists, and its
                # attempt before its log does: taken up again while it has not ended.
                if e.code() not in BUILD_NOT_YET or not follow or entry[1]:
                    raise ConvoyError(f"the output of the build of {sub_id} on {host_name} "
                                      f"cannot be read: {e.details()}") from None  # fmt: skip
            await asyncio.sleep(0.1)


def _kept(run: RunRecord, attempt: int) -> Path | None:
    """The attempt's output as the run's results folder keeps it, if it does."""
    folder = Path(run.results_path)
    if _saved_attempt(run) == attempt and (folder / "output.log").exists():
        return folder / "output.log"
    earlier = folder / history_name(attempt)
    return earlier if earlier.exists() else None


def _saved_attempt(run: RunRecord) -> int:
    """Which attempt's output the run's results folder holds (0: none yet)."""
    try:
        return output_attempt(json.loads((Path(run.results_path) / "run.json").read_text()))
    except (OSError, ValueError):
        return 0


async def _read_from(path: Path, offset: int) -> AsyncIterator[tuple[int, bytes]]:
    """A saved log from a byte offset, in chunks (offset, data)."""
    with open(path, "rb") as f:
        if offset >= os.fstat(f.fileno()).st_size:  # past the end: nothing (a seek far past
            return  # what the file system allows would fail)
        f.seek(offset)
        while data := await asyncio.to_thread(f.read, 256 * 1024):
            yield offset, data
            offset += len(data)
