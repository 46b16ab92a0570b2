"""A host's session turns the percents its agent reports (in the snapshot, and as changes of a
running attempt) into Progressed events, for this coordinator's attempts only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from convoy.coordinator.hosts.agents import AgentInfo, AttemptOutcome, Changed, Snapshot
from convoy.coordinator.hosts.session import HostSession
from convoy.coordinator.runs.events import AttemptStarted, Event, HostUp, Progressed
from convoy.spec import Resources


def attempt(aid: str, progress: float | None, owner: str = "c1") -> AttemptOutcome:
    return AttemptOutcome(aid, "running", 0, 10.0, 0.0, "", "", run_id=aid.rsplit("-a", 1)[0],
                          owner=owner, progress=progress)  # fmt: skip


class Agent:
    async def describe(self, timeout: float = 5.0) -> AgentInfo:
        return AgentInfo("h1", "0", Resources(2, 1 << 30, 0), "fake")

    async def watch(self, owner: str, heartbeat: float) -> AsyncGenerator[object, None]:
        yield Snapshot((attempt("r.0-a1", 20.0), attempt("r.1-a1", None),
                        attempt("x.0-a1", 70.0, owner="c2")), True, "")  # fmt: skip
        yield Changed(attempt("r.0-a1", 30.0))


def test_percents_of_the_snapshot_and_of_changes_become_progressed_events() -> None:
    events: list[Event] = []
    session = HostSession("h1", Agent(), "c1", events.append)  # type: ignore[arg-type]

    async def main() -> None:
        await session._reach()
        await session._follow()

    asyncio.run(main())
    assert isinstance(events[0], HostUp)
    assert [s.id for s in events[0].attempts] == ["r.0-a1", "r.1-a1"]
    assert events[1:] == [
        Progressed("r.0-a1", 20.0),
        AttemptStarted("r.0-a1", 10.0),
        Progressed("r.0-a1", 30.0),
    ]
