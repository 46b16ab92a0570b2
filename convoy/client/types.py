"""What the client returns: plain dataclasses, one per thing the coordinator tells about.

They mirror the API's messages (proto/convoy/v1/coordinator.proto), field for field, with
Python's own types where the wire has stand-ins: `exit_code` and `progress` are None when
there is none (the wire's has_exit_code/has_progress), `params` is a dict (the wire's JSON
text), times are unix seconds with 0.0 for "not yet". Made by convoy/client/convert.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convoy.states import TERMINAL


@dataclass(frozen=True)
class Resources:
    """What a run asks for, or what a host offers or has given out."""

    cpus: float = 0.0
    memory_bytes: int = 0
    gpus: int = 0
    disk_bytes: int = 0  # a run's writable storage on its host (0: no cap)


@dataclass(frozen=True)
class Run:
    """A run: one point of an experiment's matrix, in one submission."""

    id: str
    submission_id: str
    experiment: str
    index: int
    params: dict[str, Any]
    state: str  # queued, syncing, building, starting, running, succeeded, failed, ...
    attempt: int = 0  # 0 until the first attempt starts
    host: str = ""
    exit_code: int | None = None
    created_at: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    reason: str = ""  # why it is in its state, for people
    image: str = ""
    results_path: str = ""  # on the coordinator's machine
    revision: str = ""
    resources: Resources = field(default_factory=Resources)
    command: str = ""  # a shell command, or a JSON array for an argv
    image_id: str = ""
    code: str = ""  # why it ended: exit_code, oom_killed, timeout, host_lost, ... ("": not yet)
    retries: int = 0
    infra_retries: int = 0
    app_failures: int = 0
    infra_failures: int = 0
    key: str = ""  # what determines its result, hashed ("": none)
    reused_from: str = ""  # the run whose result it is, when it was already done
    progress: float | None = None  # percent, while it runs and its output says
    waiting_for: str = ""  # while queued: why it waits, host by host

    @property
    def terminal(self) -> bool:
        """It has ended and will not change again."""
        return self.state in TERMINAL

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.ended_at:
            return round(self.ended_at - self.started_at, 3)
        return None


@dataclass(frozen=True)
class Submission:
    id: str
    experiment: str
    total: int  # runs
    created_at: float
    results_dir: str  # on the coordinator's machine
    revision: str
    spec_path: str
    progress_pattern: str = ""  # the experiment's `progress:` regex ("": none)
    priority: int = 0


@dataclass(frozen=True)
class UploadReport:
    """What a submission sent of its sources and inputs: files (objects) and bytes, sent
    (what the coordinator lacked) and in all."""

    objects_sent: int
    objects_total: int
    bytes_sent: int
    bytes_total: int


@dataclass(frozen=True)
class Submitted:
    """What a submit (or a rerun) made."""

    submission_id: str  # "" when unchanged
    runs: list[Run]
    revision: str
    unchanged: bool = False  # the sources still make unless_revision: nothing submitted
    changed: list[str] = field(default_factory=list)  # paths changed since unless_revision
    warnings: list[str] = field(default_factory=list)
    uploaded: UploadReport | None = None  # the sources were sent: the results stay there

    @property
    def results_dir(self) -> str:
        """The submission's results folder, on the coordinator's machine ("" without runs)."""
        return self.runs[0].results_path.rsplit("/", 1)[0] if self.runs else ""


@dataclass(frozen=True)
class RunEvent:
    run: Run
    previous_state: str  # "" in a snapshot
    snapshot: bool
    at: float


@dataclass(frozen=True)
class LogChunk:
    """A slice of a run's output: `data` starts at byte `offset` of attempt `attempt`'s log."""

    offset: int
    data: bytes
    attempt: int


@dataclass(frozen=True)
class Host:
    name: str
    state: str  # up, unreachable, lost
    capacity: Resources
    allocated: Resources
    runs: list[str]  # runs (or superseded attempts) holding allocations there
    agent_version: str = ""
    address: str = ""
    reason: str = ""  # why it is unreachable, or does not take runs
    labels: dict[str, str] = field(default_factory=dict)
    accepting: bool = True  # takes new runs (false: its disk is full)
    since: float = 0.0  # when it stopped answering


@dataclass(frozen=True)
class NewHost:
    """A host to add (AddHost): reached by SSH at `address`; what is left out (0, "") comes
    from ~/.ssh/config on the coordinator's machine, or the host's own capacity."""

    name: str
    address: str
    port: int = 0
    user: str = ""
    identity: str = ""  # a private key file, on the coordinator's machine
    cpus: float = 0.0
    memory_bytes: int = 0
    python: str = ""  # default python3
    agent_home: str = ""  # default ~/.convoy/agent
    docker_host: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostAdded:
    hosts_file: str  # the coordinator's, where it was written
    host: Host | None  # as the coordinator has it now (not connected yet)


@dataclass(frozen=True)
class HostRemoved:
    hosts_file: str
    in_file: bool  # it was in the hosts file (and is no more)
    in_use: bool  # the coordinator used it (and no more does)
    requeued: list[str]  # runs in flight there (with force): queued again elsewhere


@dataclass(frozen=True)
class KeyCheck:
    """A host's SSH key as the coordinator fetched it, and whether it was recorded."""

    key_type: str
    fingerprint: str  # SHA256:..., what the host offers
    recorded: bool
    known_hosts: str  # the coordinator's known_hosts file
    others: list[tuple[str, str]]  # (fingerprint, file) of other keys recorded for the host


@dataclass(frozen=True)
class Why:
    """Why a run ran, or did not (its result was reused), as decided at submission."""

    run_id: str
    key: str
    key_parts: dict[str, str]
    reused_from: str
    compared: str
    changed: list[str]
    changed_files: list[str]
    forced: bool
    text: str  # all of it, for people


@dataclass(frozen=True)
class AgentStopped:
    host: str
    stopped: bool
    said: str
