"""Keeping hosts reachable: a heartbeat, reconnection (reviving an agent that died), and
calls retried across a dropped connection for a grace period. Mixed into the Coordinator."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from convoy.coordinator.hosts.agents import AgentClient, AgentInfo
from convoy.coordinator.runs.scheduler import Units
from convoy.errors import ConvoyError

log = logging.getLogger("convoy.coordinator")
_T = TypeVar("_T")

# How long a host may stop answering before its attempts are given up as lost.
LOST_GRACE_S = 60.0
HEARTBEAT_S = 5.0
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED)


@dataclass
class Host:
    name: str
    client: AgentClient
    info: AgentInfo | None = None
    up: bool = False
    # Brings the agent back (for the local host: starts it again); None: just reconnect.
    revive: Callable[[], Awaitable[None]] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why it is not up
    _reconnecting: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def capacity(self) -> Units:
        return Units.of(self.info.capacity) if self.info else Units()


def labelled(hosts: Iterable[Host]) -> str:
    """The hosts with their labels, for messages: `h1 (no labels); h2 (rack=b)`."""
    return "; ".join(
        f"{h.name} ({', '.join(f'{k}={v}' for k, v in h.labels.items()) or 'no labels'})"
        for h in hosts
    )


class HostLiveness:
    hosts: dict[str, Host]
    _wake: asyncio.Event

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        raise NotImplementedError

    async def _heartbeat(self) -> None:
        """Every few seconds: a host that stops answering gets no new runs until it is back."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            for h in list(self.hosts.values()):
                try:
                    await h.client.describe(timeout=HEARTBEAT_S)
                    if not h.up:
                        h.up = True
                        log.info("host %s is back", h.name)
                        self._wake.set()
                except grpc.aio.AioRpcError:
                    if h.up:
                        log.warning("host %s stopped answering", h.name)
                    h.up = False
                    if not h._reconnecting.locked():
                        self._spawn(self._reconnect(h))

    async def _reconnect(self, h: Host) -> None:
        """Called when a call to `h` failed: revive its agent if we can, then reconnect."""
        async with h._reconnecting:
            try:
                h.info = await h.client.describe(timeout=2)
                h.up, h.reason = True, ""
                return
            except grpc.aio.AioRpcError:
                h.up = False
            if h.revive is not None:
                try:
                    await h.revive()
                except ConvoyError as e:
                    h.reason = e.render()
                    log.warning("host %s: %s", h.name, h.reason)
                    return
            await self._connect(h, attempts=10)

    async def _resilient(self, h: Host, call: Callable[[], Awaitable[_T]]) -> _T:
        """`call()`, retried across agent restarts and dropped connections for LOST_GRACE_S.

        Every call made through here is idempotent on the agent (start, wait and cancel are
        keyed by attempt id), so repeating one after a lost answer is safe.
        """
        deadline = time.monotonic() + LOST_GRACE_S
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as e:
                if e.code() not in TRANSIENT or time.monotonic() > deadline:
                    raise
                log.warning("host %s: %s; reconnecting", h.name, e.details())
                await self._reconnect(h)
                await asyncio.sleep(0.2)

    async def _connect(self, h: Host, attempts: int = 50) -> None:
        for i in range(attempts):
            try:
                h.info = await h.client.describe()
                h.up, h.reason = True, ""
                log.info("host %s up: %s", h.name, h.info.capacity)
                return
            except grpc.aio.AioRpcError as e:
                if i == attempts - 1:
                    h.reason = f"its agent does not answer: {e.details()}"
                    log.warning("host %s unreachable: %s", h.name, e.details())
                await asyncio.sleep(0.1)
