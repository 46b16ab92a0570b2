"""One host as the coordinator keeps in touch with it: reach its agent (bringing it back when
it is gone), hold its WatchAttempts stream, and say what happens as lifecycle events.

    session = HostSession("h1", client, revive=..., owner=..., emit=engine.feed)
    task = asyncio.create_task(session.run())     # for as long as the coordinator runs
    await session.call(lambda: session.client.cancel(attempt, 10))   # waits while it is away

The stream is the heartbeat: the agent sends its attempts' changes and, in between, a beat
every HEARTBEAT_S. A host that sends nothing for MISSED_BEATS beats, or whose stream breaks, is
silent from the moment it was last heard (HostSilent); each answer after that (a new stream,
whose first message is a snapshot of what the agent holds) is a HostUp. Reconnecting is tried
every RETRY_S at most, and only the changes of state are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from convoy.coordinator.hosts.agents import (
    AgentClient,
    AgentInfo,
    AttemptOutcome,
    Changed,
    Heartbeat,
    Snapshot,
    WatchEvent,
)
from convoy.coordinator.runs.events import (
    AttemptEnded,
    AttemptStarted,
    Event,
    HostSilent,
    HostStatus,
    HostUp,
    Outcome,
    Progressed,
    Seen,
)
from convoy.coordinator.runs.scheduler import Units
from convoy.errors import ConvoyError
from convoy.spec import Resources
from convoy.states import Reason

log = logging.getLogger("convoy.coordinator")
_T = TypeVar("_T")

HEARTBEAT_S = 2.0
MISSED_BEATS = 3  # silent after this many beats not heard
RETRY_S = (0.2, 0.5, 1.0, 2.0)  # waits between tries to reach it again, then the last
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.DEADLINE_EXCEEDED)  # fmt: skip
# What the agent's states and codes mean for the lifecycle.
_ENDED = ("exited", "cancelled", "timed_out", "error")


class Gone(Exception):
    """The host stopped answering while a call waited for it (the call may be tried again)."""


@dataclass
class HostSession:
    name: str
    client: AgentClient
    owner: str  # this coordinator's id: the agent reports only its attempts
    emit: Callable[[Event], None]
    # Brings the agent back (connects, installs, starts it); None: only reconnect.
    revive: Callable[[], Awaitable[None]] | None = None
    address: str = ""
    cpus: float | None = None  # capacity overrides of the hosts file
    memory: int | None = None
    info: AgentInfo | None = None
    up: bool = False
    why: str = "not connected yet"  # why it is not up
    _last_heard: float = 0.0
    _up_event: asyncio.Event | None = None
    _tried: asyncio.Event | None = None
    _wake: asyncio.Event | None = None

    @property
    def tried(self) -> asyncio.Event:
        """Set once the first try to reach the host has ended, either way."""
        if self._tried is None:
            self._tried = asyncio.Event()
        return self._tried

    @property
    def up_event(self) -> asyncio.Event:
        if self._up_event is None:
            self._up_event = asyncio.Event()
        return self._up_event

    async def run(self) -> None:
        """Stay in touch with the host until cancelled."""
        tries = 0
        while True:
            try:
                await self._reach()
                await self._follow()
                tries = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure is this host's silence, said in _why
                self._silent(_why(e))
            else:
                self._silent("its agent ended the stream")
            self.tried.set()
            await self._pause(RETRY_S[min(tries, len(RETRY_S) - 1)])
            tries += 1

    def retry_now(self) -> None:
        """Cut the wait before the next try short (what stopped the last one was fixed: its
        host key trusted, say)."""
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _reach(self) -> None:
        """An agent that answers: the running one, or one brought back."""
        try:
            self.info = await self.client.describe(timeout=3)
            return
        except grpc.aio.AioRpcError as e:
            if self.revive is None:
                raise
            log.debug("host %s: its agent does not answer (%s): reviving it", self.name,
                      e.details())  # fmt: skip
        await self.revive()
        self.info = await self.client.describe(timeout=10)

    async def _follow(self) -> None:
        """The watch stream, until it ends or goes quiet."""
        events = self.client.watch(self.owner, HEARTBEAT_S)
        async with contextlib.aclosing(events):
            async for ev in _quiet_after(events, HEARTBEAT_S * MISSED_BEATS):
                self._last_heard = time.time()
                if isinstance(ev, Snapshot):
                    self._up(ev)
                elif isinstance(ev, Changed):
                    self._changed(ev.attempt)
                elif isinstance(ev, Heartbeat):
                    self.emit(HostStatus(self.name, ev.accepting, ev.why))

    def _up(self, snap: Snapshot) -> None:
        assert self.info is not None
        if not self.up:
            log.info("host %s up: %s", self.name, self.info.capacity)
        self.up, self.why = True, ""
        self.up_event.set()
        self.tried.set()
        mine = [a for a in snap.attempts if a.owner in (self.owner, "")]
        self.emit(HostUp(self.name, self._last_heard, Units.of(self.capacity),
                         tuple(_seen(a) for a in mine), snap.accepting, snap.why,
                         self.info.networks))  # fmt: skip
        for a in mine:
            if a.state == "running" and a.progress is not None:
                self.emit(Progressed(a.attempt_id, a.progress))

    @property
    def capacity(self) -> Resources:
        """What the host offers: what its agent measures, less what the hosts file overrides."""
        c = self.info.capacity if self.info else Resources(0, 0, 0)
        cpus = c.cpus if self.cpus is None else self.cpus
        memory = c.memory_bytes if self.memory is None else self.memory
        return Resources(cpus, memory, c.gpus)

    def _changed(self, a: AttemptOutcome) -> None:
        if a.owner not in (self.owner, ""):  # "": an agent from before attempts had owners
            return
        if a.state in _ENDED:
            self.emit(AttemptEnded(a.attempt_id, outcome_of(a)))
        elif a.state == "running":  # it started, or (said again) its progress changed
            self.emit(AttemptStarted(a.attempt_id, a.started_at))
            if a.progress is not None:
                self.emit(Progressed(a.attempt_id, a.progress))

    def _silent(self, why: str) -> None:
        if self.up:
            log.warning("host %s stopped answering: %s", self.name, why)
            self.emit(HostSilent(self.name, self._last_heard or time.time(), why))
        elif why != self.why:
            log.info("host %s: %s", self.name, why)
        self.up, self.why = False, why
        self.up_event.clear()

    async def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """`fn()` once the host answers, again after each time it stopped answering meanwhile
        (every call made through here is idempotent on the agent), until it succeeds, fails
        for a reason of its own, or the caller is cancelled (the host was lost)."""
        while True:
            await self.up_event.wait()
            try:
                return await fn()
            except grpc.aio.AioRpcError as e:
                if e.code() not in TRANSIENT:
                    raise
                await asyncio.sleep(0.5)  # the stream notices a silent host meanwhile
            except ConnectionError:  # the store socket's channel could not be opened
                await asyncio.sleep(0.5)


async def _quiet_after(
    events: AsyncIterator[WatchEvent], seconds: float
) -> AsyncIterator[WatchEvent]:
    """The events, raising TimeoutError when none comes for `seconds`."""
    it = aiter(events)
    while True:
        try:
            ev = await asyncio.wait_for(anext(it), seconds)
        except StopAsyncIteration:
            return
        yield ev


def _seen(a: AttemptOutcome) -> Seen:
    ended = a.state in _ENDED
    state = "ended" if ended else "running" if a.state == "running" else "starting"
    return Seen(a.attempt_id, a.run_id, state, Units.of(a.resources),
                outcome_of(a) if ended else None)  # fmt: skip


def outcome_of(a: AttemptOutcome) -> Outcome:
    """The lifecycle's Outcome of an attempt the agent reports ended."""
    try:
        code = Reason(a.code) if a.code else _FALLBACK[a.state]
    except ValueError:
        code = Reason.RUNTIME_ERROR
    exit_code: int | None = a.exit_code if a.state != "error" else None
    return Outcome(code, a.reason or f"attempt {a.state}", exit_code, a.started_at, a.ended_at,
                   a.image_id)  # fmt: skip


_FALLBACK = {
    "exited": Reason.EXIT_CODE, "cancelled": Reason.CANCELLED, "timed_out": Reason.TIMEOUT,
    "error": Reason.RUNTIME_ERROR,
}  # fmt: skip


def _why(e: BaseException) -> str:
    """A sentence for people, not transport text."""
    if isinstance(e, TimeoutError):
        return f"no heartbeat for {HEARTBEAT_S * MISSED_BEATS:g} s"
    if isinstance(e, ConvoyError):
        return e.render()
    if isinstance(e, grpc.aio.AioRpcError):
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "its agent did not answer in time"
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            return "its agent cannot be reached"
        return f"its agent failed ({e.code().name.lower()})"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
