"""Run states and the one lifecycle they follow.

::

    queued ──> syncing ──> building ──> starting ──> running ──> succeeded
      │  ^        │           │            │           │    ├──> failed
      │  │        │           │            │           │    └──> cancelled
      │  └────────┴───────────┴────────────┴───────────┘   (retry: back to queued)
      │                                    │           │
      └──> cancelled                       └───────────┴──> lost ──> queued (retry)

syncing and building are skipped while a revision is already on the host (and built). Any
unfinished state may go to cancelled; a state may go to failed when its step fails (a copy, a
start). `lost` means the host stopped answering for longer than the grace period; a lost run with
retries left is queued again. Every transition is recorded with its time and reason.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"
    SYNCING = "syncing"
    BUILDING = "building"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def holds_host(self) -> bool:
        """True while the run holds an allocation on a host."""
        return self in ACTIVE


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.LOST})
ACTIVE = frozenset({RunState.SYNCING, RunState.BUILDING, RunState.STARTING, RunState.RUNNING})

_S = RunState
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    _S.QUEUED: frozenset({_S.SYNCING, _S.BUILDING, _S.STARTING, _S.CANCELLED, _S.FAILED}),
    _S.SYNCING: frozenset({_S.BUILDING, _S.STARTING, _S.QUEUED, _S.FAILED, _S.CANCELLED, _S.LOST}),
    _S.BUILDING: frozenset({_S.STARTING, _S.QUEUED, _S.FAILED, _S.CANCELLED, _S.LOST}),
    _S.STARTING: frozenset({_S.RUNNING, _S.QUEUED, _S.FAILED, _S.CANCELLED, _S.LOST}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.LOST, _S.QUEUED}),
    _S.LOST: frozenset({_S.QUEUED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, run_id: str, current: RunState, target: RunState) -> None:
        super().__init__(f"run {run_id}: no transition from {current} to {target}")
        self.run_id = run_id
        self.current = current
        self.target = target


def check_transition(run_id: str, current: RunState, target: RunState) -> None:
    """Raise InvalidTransition unless the lifecycle allows current -> target."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(run_id, current, target)
