"""A small world for the lifecycle's tests: runs to submit, and a driver that feeds events to a
Lifecycle and keeps what its actions asked for (the store, launches, stops, collections)."""

from __future__ import annotations

from dataclasses import dataclass, field

from convoy.coordinator.runs.actions import (
    Abandon,
    Action,
    Collect,
    CollectMode,
    Commit,
    ForgetAttempts,
    HostChanged,
    Launch,
    RecordEnded,
    Release,
    SaveAttempts,
    Stop,
)
from convoy.coordinator.runs.events import AttemptRecord, Event, HostAdded, HostUp, Seen
from convoy.coordinator.runs.lifecycle import Lifecycle
from convoy.coordinator.runs.records import RunRecord, attempt_id
from convoy.coordinator.runs.scheduler import Units
from convoy.spec import Resources
from convoy.states import RunState

CPU = Units(1000, 1 << 20, 0)


def make_run(n: int, retries: int = 0, infra_retries: int = 3, cpus: float = 1.0) -> RunRecord:
    return RunRecord(
        id=f"s-1.{n:02d}", submission_id="s-1", experiment="s", index=n, params={"i": n},
        command="true", env={}, image="img", resources=Resources(cpus, 1 << 20, 0),
        retries=retries, timeout_seconds=0.0, network="none", outputs=(), revision="rev",
        results_path=f"/r/s-1.{n:02d}", priority=0, seq=1, infra_retries=infra_retries,
    )  # fmt: skip


@dataclass
class Driver:
    """Feeds events to a Lifecycle and records what it asks for, by kind."""

    life: Lifecycle = field(default_factory=Lifecycle)
    store: dict[str, RunRecord] = field(default_factory=dict)  # committed runs
    ledger: dict[str, AttemptRecord] = field(default_factory=dict)  # saved attempts
    actions: list[Action] = field(default_factory=list)  # every action, in order
    transitions: dict[str, list[RunState]] = field(default_factory=dict)

    def feed(self, event: Event) -> list[Action]:
        acts = self.life.handle(event)
        for act in acts:
            if isinstance(act, Commit):
                for _, after in act.changes:
                    had = self.store.get(after.id)
                    assert had is None or not had.state.terminal, (
                        f"{after.id} changed after it ended ({had.state} -> {after.state})"
                    )
                    self.store[after.id] = after
                    self.transitions.setdefault(after.id, []).append(after.state)
            elif isinstance(act, SaveAttempts):
                for a in act.attempts:
                    self.ledger[a.id] = a
            elif isinstance(act, ForgetAttempts):
                for i in act.attempt_ids:
                    self.ledger.pop(i, None)
        self.actions += acts
        return acts

    def add_hosts(self, *names: str, at: float = 0.0) -> None:
        for name in names:
            self.feed(HostAdded(name, at))

    def up(
        self, name: str, at: float, cpus: int = 2, seen: tuple[Seen, ...] = (), **kw: object
    ) -> list[Action]:
        return self.feed(HostUp(name, at, Units(cpus * 1000, 1 << 30, 0), seen, **kw))  # type: ignore[arg-type]

    def of(self, kind: type, acts: list[Action] | None = None) -> list:  # type: ignore[type-arg]
        return [a for a in (self.actions if acts is None else acts) if isinstance(a, kind)]

    def state(self, run_id: str) -> RunState:
        return self.store[run_id].state


def aid(run: RunRecord | str, n: int) -> str:
    return attempt_id(run if isinstance(run, str) else run.id, n)


__all__ = [
    "CPU", "Abandon", "Collect", "CollectMode", "Commit", "Driver", "HostChanged", "Launch",
    "RecordEnded", "Release", "Stop", "aid", "make_run",
]  # fmt: skip
