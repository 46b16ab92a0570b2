"""Fan-out of run changes (states, progress) to every subscriber (Events streams, log followers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from convoy.coordinator.runs.records import RunRecord


@dataclass(frozen=True)
class RunChanged:
    """A run changed: its state (previous_state differs), its record, or its progress."""

    run: RunRecord
    previous_state: str
    at: float
    progress: float | None = None  # while it runs: the last percent its output showed


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[RunChanged]] = set()

    def publish(self, event: RunChanged) -> None:
        for q in self._subscribers:
            q.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[RunChanged]]:
        q: asyncio.Queue[RunChanged] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)
