"""What the agent asks of a container runtime, and the data that crosses that line.

The agent (agent/attempts.py, agent/server.py) depends on `ContainerRuntime` only, so the same
code runs containers on a Docker engine (`DockerRuntime`, real hosts) or on nothing at all
(`FakeRuntime`, tests and simulated fleets). tests/contract/ holds the one suite both must pass.

Every method blocks and may be called from several threads at once (``asyncio.to_thread``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LABEL_PREFIX = "convoy."
_NAME_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass(frozen=True)
class ContainerSpec:
    attempt_id: str
    run_id: str
    submission_id: str
    experiment: str
    agent_id: str  # identifies the agent instance (its home dir hash); label convoy.agent
    image: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cpus: float
    memory_bytes: int
    network: str  # "none" or a docker network name
    workdir: Path  # host dir, bind-mounted rw at /work, the container's cwd
    logdir: Path  # host dir, bind-mounted rw at /.convoy; output goes to logdir/"output.log"
    pids_limit: int = 4096
    read_only_root: bool = True
    # (lower, upper, work) of an overlay to mount at /work instead of binding `workdir`: lower
    # holds the revision's layers joined by ':' (top first), the run's changes land in upper.
    # It is the container's own anonymous volume, made with it and removed with it.
    work_overlay: tuple[str, str, str] | None = None
    # Container path -> host folder, mounted read-only (datasets: /inputs/<name>).
    read_only_mounts: tuple[tuple[str, str], ...] = ()
    user: str = ""  # "uid:gid" the run executes as (agent/policy.py); "": the agent's own


@dataclass(frozen=True)
class ContainerHandle:
    """Serialisable: a restarted agent rebuilds it from the container's labels."""

    container_id: str
    attempt_id: str
    labels: dict[str, str]  # the convoy.* labels only


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int
    started_at: float  # unix seconds
    ended_at: float
    oom_killed: bool
    image_id: str


@dataclass(frozen=True)
class ContainerState:
    status: str  # docker's: created, running, exited, dead, ...
    running: bool
    exit: ContainerExit | None  # set once it has ended


def container_name(attempt_id: str) -> str:
    """Docker's name charset is [a-zA-Z0-9][a-zA-Z0-9_.-]*; other characters become '-'."""
    return _NAME_BAD_CHARS.sub("-", f"convoy-{attempt_id}")


def labels_for(spec: ContainerSpec) -> dict[str, str]:
    """The labels `start` puts on a container: how `recover` finds an agent's containers."""
    return {
        f"{LABEL_PREFIX}managed": "1",
        f"{LABEL_PREFIX}agent": spec.agent_id,
        f"{LABEL_PREFIX}attempt": spec.attempt_id,
        f"{LABEL_PREFIX}run": spec.run_id,
        f"{LABEL_PREFIX}submission": spec.submission_id,
        f"{LABEL_PREFIX}experiment": spec.experiment,
    }


def handle_from_labels(container_id: str, labels: dict[str, str] | None) -> ContainerHandle:
    ours = {k: v for k, v in (labels or {}).items() if k.startswith(LABEL_PREFIX)}
    return ContainerHandle(container_id, ours.get(f"{LABEL_PREFIX}attempt", ""), ours)


def missing_image_message(image: str) -> str:
    return f"image {image!r} is not on this host (build it: bash images/build.sh)"


class ContainerRuntime(Protocol):
    """Runs an agent's containers and finds them again after the agent restarts.

    Failures are `convoy.errors.RuntimeFailure` (`DiskFull` when the host's disk is full).
    """

    def version(self) -> str:
        """The engine's version (reported as the host's docker_version)."""
        ...

    def image_id(self, image: str) -> str:
        """The image's id; RuntimeFailure naming the image when the host lacks it."""
        ...

    def has_image(self, image: str) -> str:
        """The image's id, or "" when the host has no such image."""
        ...

    def pull_image(self, image: str) -> str:
        """Fetch the image from its registry; its id."""
        ...

    def load_image(self, chunks: Iterator[bytes]) -> list[str]:
        """Load a `docker save` tar stream (consumed to its end); the names loaded."""
        ...

    def start(self, spec: ContainerSpec) -> ContainerHandle:
        """Start the attempt's container; idempotent per attempt id, so a restarted agent can
        repeat a start safely. Output goes to spec.logdir/output.log, which exists on return."""
        ...

    def wait(self, handle: ContainerHandle) -> ContainerExit:
        """Block until the container has ended, however long that takes."""
        ...

    def stop(self, handle: ContainerHandle, grace_seconds: float) -> None:
        """End it (SIGTERM, SIGKILL after the grace); a no-op for an ended or gone one."""
        ...

    def remove(self, handle: ContainerHandle) -> None:
        """Remove the container (also a running one); a no-op for a gone one."""
        ...

    def state(self, handle: ContainerHandle) -> ContainerState:
        """Whether it runs, and how it ended; RuntimeFailure when it is gone."""
        ...

    def recover(self, agent_id: str) -> list[ContainerHandle]:
        """Every container labelled with this agent, running or not, oldest first."""
        ...
