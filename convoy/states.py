"""Run states, the one lifecycle they follow, and the reason codes a run ends with.

::

    queued ──> starting ──> running ──> succeeded
      │  ^      │   ^ │         │  ├──> failed
      │  │      v   │ │         │  └──> cancelled
      │  │   syncing ─┤         │
      │  │      │     │         │
      │  │      v     │         │
      │  │   building ┘         │
      │  │      │               │
      │  └──────┴───────────────┘   (a retry: back to queued, the next attempt elsewhere)
      │                         │
      └──> cancelled, failed    └──> lost (its host stopped answering for longer than the
                                          grace, and its infrastructure budget is spent)

A placed run is `starting`; it shows `syncing` or `building` while its host gets its revision or
builds it. Any unfinished state may end (failed, cancelled, lost); a running attempt that failed
with retries left goes back to `queued`. The four terminal states are final: a run that ended is
run again only as a new submission (`convoy rerun`). Every transition is recorded with its time,
its reason code and a sentence (coordinator/runs/lifecycle.py decides them all).

Two retry budgets (Kubernetes' pod failure policy, Nomad's restart and reschedule): `retries`
for the application's failures (a non-zero exit, out of memory, a timeout) and `infra_retries`
for the platform's (its host lost, the runtime or agent failing, sync, image or disk trouble).
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
        """True while the run has an attempt placed on a host."""
        return self in ACTIVE


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.LOST})
ACTIVE = frozenset({RunState.SYNCING, RunState.BUILDING, RunState.STARTING, RunState.RUNNING})

_S = RunState
_ENDS = frozenset({_S.FAILED, _S.CANCELLED, _S.LOST})
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    _S.QUEUED: frozenset({_S.STARTING, _S.CANCELLED, _S.FAILED}),
    _S.STARTING: frozenset({_S.SYNCING, _S.BUILDING, _S.RUNNING, _S.QUEUED, *_ENDS}),
    _S.SYNCING: frozenset({_S.BUILDING, _S.STARTING, _S.RUNNING, _S.QUEUED, *_ENDS}),
    _S.BUILDING: frozenset({_S.STARTING, _S.RUNNING, _S.QUEUED, *_ENDS}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.QUEUED, *_ENDS}),
    _S.LOST: frozenset(),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}


class Reason(StrEnum):
    """Why a run (or one attempt of it) ended: a code for scripts, beside a sentence for people."""

    EXIT_CODE = "exit_code"  # the command exited by itself: 0 succeeded, else failed
    OOM_KILLED = "oom_killed"
    TIMEOUT = "timeout"
    HOST_LOST = "host_lost"  # its host stopped answering for longer than the grace
    RUNTIME_ERROR = "runtime_error"  # the container runtime or the agent failed it
    SYNC_FAILED = "sync_failed"
    IMAGE_FAILED = "image_failed"
    BUILD_FAILED = "build_failed"
    DISK_FULL = "disk_full"  # its host's disk filled up
    OUTPUT_LIMIT = "output_limit"
    DISK_LIMIT = "disk_limit"  # it wrote more than its resources.disk on its host
    CANCELLED = "cancelled"
    UNPLACEABLE = "unplaceable"  # no host it may use can ever take it
    REFUSED = "refused"  # its host's policy does not allow what it asks (a network)
    INTERNAL_ERROR = "internal_error"  # the coordinator itself failed (a bug: please report)

    @property
    def kind(self) -> FailureKind:
        return _KINDS[self]


class FailureKind(StrEnum):
    APPLICATION = "application"  # counted against `retries`
    INFRASTRUCTURE = "infrastructure"  # counted against `infra_retries`
    FINAL = "final"  # never retried: retrying would end the same way, or was asked not to


_R, _K = Reason, FailureKind
_KINDS = {
    _R.EXIT_CODE: _K.APPLICATION, _R.OOM_KILLED: _K.APPLICATION, _R.TIMEOUT: _K.APPLICATION,
    _R.HOST_LOST: _K.INFRASTRUCTURE, _R.RUNTIME_ERROR: _K.INFRASTRUCTURE,
    _R.SYNC_FAILED: _K.INFRASTRUCTURE, _R.IMAGE_FAILED: _K.INFRASTRUCTURE,
    _R.DISK_FULL: _K.INFRASTRUCTURE, _R.INTERNAL_ERROR: _K.INFRASTRUCTURE,
    _R.BUILD_FAILED: _K.FINAL, _R.OUTPUT_LIMIT: _K.FINAL, _R.DISK_LIMIT: _K.FINAL,
    _R.CANCELLED: _K.FINAL,
    _R.UNPLACEABLE: _K.FINAL, _R.REFUSED: _K.FINAL,
}  # fmt: skip

DEFAULT_INFRA_RETRIES = 3


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
