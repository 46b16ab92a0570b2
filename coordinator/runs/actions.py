"""What the lifecycle (lifecycle.py) asks the engine to do: each a frozen record, carried out by
the engine against the store, the agents and the disk, its result fed back as an event."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from convoy.coordinator.runs.events import AttemptRecord
from convoy.coordinator.runs.records import RunRecord


@dataclass(frozen=True)
class Commit:
    """Persist these run changes (before, after) in one transaction, then publish them. Runs
    that reach a terminal state here have their results folder written already (Collect), or
    get it from a RecordEnded in the same batch of actions."""

    changes: tuple[tuple[RunRecord, RunRecord], ...]


@dataclass(frozen=True)
class SaveAttempts:
    """Persist these attempts' ledger rows (a restarted coordinator reads them back)."""

    attempts: tuple[AttemptRecord, ...]


@dataclass(frozen=True)
class ForgetAttempts:
    attempt_ids: tuple[str, ...]


@dataclass(frozen=True)
class Launch:
    """Bring the run's revision, inputs, image and build to its host and start its attempt
    (the run as placed: its host and attempt number set). Reported by Phase, AttemptStarted or
    LaunchFailed; a host that stops answering meanwhile is waited for, and the launch goes on
    once it answers (every step is idempotent per attempt), until an Abandon."""

    run: RunRecord


@dataclass(frozen=True)
class Abandon:
    """Stop working on this attempt (its launch or collection): its host was lost."""

    attempt_id: str


@dataclass(frozen=True)
class Stop:
    """Stop the attempt's container (SIGTERM, SIGKILL after `grace` s) and remove it: a cancel,
    or fencing a superseded attempt. Its end comes back as AttemptEnded."""

    host: str
    attempt_id: str
    grace: float
    why: str


class CollectMode(StrEnum):
    ACCEPT = "accept"  # the attempt's results and log become the run's folder, with run.json
    HISTORY = "history"  # an earlier attempt's log, kept in the run's folder (attempts/aN.log)
    ASIDE = "aside"  # a superseded attempt's log and files, kept apart (superseded/aN/), noted


@dataclass(frozen=True)
class Collect:
    """Bring an attempt's results to the coordinator. ACCEPT writes `final` as the folder's
    run.json (the run as this attempt leaves it); HISTORY and ASIDE add to the folder of the run
    as the store holds it (it has ended). Reported by Collected or CollectFailed."""

    host: str
    attempt_id: str
    run_id: str
    mode: CollectMode
    final: RunRecord | None = None  # ACCEPT only


@dataclass(frozen=True)
class Release:
    """Free what the attempt keeps on its host: its workspace, or with `whole` its folder too
    (output log, status), once nothing of it is still wanted there. Reported by Released."""

    host: str
    attempt_id: str
    whole: bool


@dataclass(frozen=True)
class RecordEnded:
    """Write the run's run.json (results an earlier attempt left stay): for a run that ended
    without its results coming in (cancelled while queued, never started, lost)."""

    run: RunRecord


@dataclass(frozen=True)
class HostChanged:
    """A host changed state (for the log and for `convoy hosts`): said once, not per retry."""

    host: str
    state: str  # "up", "unreachable", "lost"; "refusing" / "accepting" for its disk
    message: str


@dataclass(frozen=True)
class Progress:
    """Tell clients the running run's percent (Lifecycle.progress; nothing to persist)."""

    run: RunRecord
    percent: float


Action = (
    Commit | SaveAttempts | ForgetAttempts | Launch | Abandon | Stop | Collect | Release
    | RecordEnded | HostChanged | Progress
)  # fmt: skip
