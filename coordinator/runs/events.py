"""What happens to runs, attempts and hosts: the events the lifecycle (lifecycle.py) is fed.

The engine turns what it learns (a submission stored, an agent's report, a call that failed, a
second passing) into these; the lifecycle decides what follows. Frozen, compared by equality,
free of I/O types: tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.runs.scheduler import Units
from convoy.spec import PlacementSpec
from convoy.states import Reason, RunState


class AttemptPhase(StrEnum):
    """Where one attempt is, as the coordinator knows it."""

    LAUNCHING = "launching"  # placed: its host gets the revision, image and build, then starts it
    RUNNING = "running"
    COLLECTING = "collecting"  # ended; its results are on their way to the coordinator
    ENDED = "ended"  # done with; its folder stays on its host until released
    SUPERSEDED = "superseded"  # given up (its host was lost): never accepted, stopped when seen


ON_REQUEST = "cancelled on request"


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    code: Reason
    message: str  # a sentence for people: "exited with code 3", "ran out of memory (512 MiB)"
    exit_code: int | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    image_id: str = ""

    @property
    def succeeded(self) -> bool:
        return self.code is Reason.EXIT_CODE and self.exit_code == 0


@dataclass(frozen=True)
class AttemptRecord:
    """The coordinator's ledger of one attempt (persisted: it outlives a coordinator restart)."""

    id: str
    run_id: str
    number: int
    host: str
    units: Units
    phase: AttemptPhase
    held: bool = True  # counts against its host's capacity: its container may exist
    outcome: Outcome | None = None
    orphan: bool = False  # restored while launching: no launch of this coordinator carries it
    kept: bool = False  # its log (and results) are in its run's folder: nothing more to bring


@dataclass(frozen=True)
class Seen:
    """One attempt as its agent reports it (in a host's snapshot)."""

    id: str
    run_id: str
    state: str  # "starting", "running" or "ended"
    units: Units = field(default_factory=Units)
    outcome: Outcome | None = None  # set once ended


# ---- the coordinator's own ---------------------------------------------------------------


@dataclass(frozen=True)
class HostAdded:
    """A host of the hosts file (or the local one); unreachable until it first answers, so a
    restarted coordinator gives every host the grace before any of its runs is lost."""

    name: str
    at: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HostRemoved:
    """A host taken out while the coordinator runs (RemoveHost). What it held is forgotten, as
    a restart without it in the hosts file would: its runs in flight are queued again (their
    containers go on there, unseen) and nothing is placed there any more."""

    name: str
    at: float


@dataclass(frozen=True)
class Submitted:
    """A submission's runs, stored and queued."""

    runs: tuple[RunRecord, ...]
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    stop_after: int = 0  # on_failure.stop_after: that many failures stop the rest; 0: never


@dataclass(frozen=True)
class Restored:
    """What the store held when the coordinator started: unfinished runs and the attempts
    not yet released, with each submission's placement."""

    runs: tuple[RunRecord, ...]
    attempts: tuple[AttemptRecord, ...]
    placements: tuple[tuple[str, PlacementSpec], ...] = ()  # submission id -> where it may run
    # submission id -> (its on_failure.stop_after, how many of its runs failed so far)
    stop_after: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class Dispatch:
    """Place what fits (the engine sends it after events that may free room or add work)."""

    at: float


@dataclass(frozen=True)
class Tick:
    """Time passes: unreachable hosts past their grace are lost."""

    at: float


@dataclass(frozen=True)
class CancelRequested:
    run_ids: tuple[str, ...]
    grace: float
    at: float
    why: str = ON_REQUEST  # the runs' reason (the stop of a submission says its own)


# ---- hosts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostUp:
    """The host's agent answers, and reports every attempt it holds for this coordinator:
    on its first answer, and again after each time it stopped answering."""

    name: str
    at: float
    capacity: Units
    attempts: tuple[Seen, ...] = ()
    accepting: bool = True  # its agent has room (disk) for new runs
    why: str = ""  # why not accepting
    networks: tuple[str, ...] = ()  # what its policy lets runs have (empty: not said)


@dataclass(frozen=True)
class HostSilent:
    """The host missed its heartbeats (or its connection broke) at `at`."""

    name: str
    at: float
    why: str = ""


@dataclass(frozen=True)
class HostStatus:
    """The host's agent says whether it takes new runs (room on its disk)."""

    name: str
    accepting: bool
    why: str = ""


# ---- attempts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """A launching attempt's run syncs, builds, or starts."""

    attempt_id: str
    state: RunState


@dataclass(frozen=True)
class AttemptStarted:
    attempt_id: str
    at: float


@dataclass(frozen=True)
class LaunchFailed:
    """An attempt never started: its sync, image, build or start failed."""

    attempt_id: str
    code: Reason
    message: str
    at: float
    exit_code: int | None = None


@dataclass(frozen=True)
class AttemptEnded:
    attempt_id: str
    outcome: Outcome


@dataclass(frozen=True)
class Progressed:
    """A running attempt's output showed a percent (its experiment's `progress:` pattern)."""

    attempt_id: str
    percent: float


@dataclass(frozen=True)
class Collected:
    """The attempt's results (or the part a Collect asked for) are safe at the coordinator.
    `over_limits`: the caps of the run's limits its results went over ("" none); a run that
    succeeded then fails, code output_limit, as its run.json already says."""

    attempt_id: str
    over_limits: str = ""


@dataclass(frozen=True)
class CollectFailed:
    """The attempt's results could not be brought in (the host answers, but they cannot)."""

    attempt_id: str
    message: str


@dataclass(frozen=True)
class Released:
    """The agent released the attempt (whole: its folder is gone, the attempt forgotten)."""

    attempt_id: str
    whole: bool


Event = (
    HostAdded | HostRemoved | Submitted | Restored | Dispatch | Tick | CancelRequested | HostUp
    | HostSilent | HostStatus | Phase | AttemptStarted | Progressed | LaunchFailed
    | AttemptEnded | Collected | CollectFailed | Released
)  # fmt: skip
