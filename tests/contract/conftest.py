"""Each runtime as a `Subject` the contract suite runs against: one behaviour, said once as a
`Behaviour`, becomes a shell script for Docker and CONVOY_FAKE_* env for the fake.

The docker subject uses the integration tests' `docker_runtime` fixture, so it skips exactly as
they do: only when no engine answers and neither CI nor CONVOY_REQUIRE_DOCKER=1 is set."""

from __future__ import annotations

import json
import posixpath
import shlex
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from convoy.agent.runtime import (
    ContainerRuntime,
    ContainerSpec,
    DockerRuntime,
    FakeRuntime,
    RuntimeFailure,
)
from tests.integration.conftest import BUSYBOX_IMAGE, busybox_image, docker_runtime  # noqa: F401

MiB = 1 << 20
MISSING_IMAGE = "convoy/no-such-image:0"


@dataclass(frozen=True)
class Behaviour:
    """What a run does, for either runtime."""

    duration: float = 0.0  # seconds it runs (after printing, for Docker)
    exit_code: int = 0
    lines: tuple[str, ...] = ()  # printed to output.log
    files: tuple[tuple[str, str], ...] = ()  # (path relative to /work, text) written at the end
    oom: bool = False  # goes over its memory limit at the end


def docker_spec(spec: ContainerSpec, b: Behaviour) -> ContainerSpec:
    steps = [f"echo {shlex.quote(line)}" for line in b.lines]
    # A run that fills its memory within milliseconds of its start can be OOM-killed before
    # containerd watches its cgroup: exit 137 with OOMKilled false (18 in 100 under load on
    # dockerd 20.10, cgroup v1). Half a second first makes the OOM one Docker sees (100/100).
    duration = max(b.duration, 0.5) if b.oom else b.duration
    if duration:
        steps.append(f"sleep {duration:g}")
    if b.oom:  # exec: no shell outlives the kill to exit otherwise or write files, as in the fake
        steps.append("exec tail -c 100000000 /dev/zero")
    for path, text in b.files:
        if posixpath.dirname(path):
            steps.append(f"mkdir -p {shlex.quote(posixpath.dirname(path))}")
        steps.append(f"printf %s {shlex.quote(text)} > {shlex.quote(path)}")
    steps.append(f"exit {b.exit_code}")
    return replace(spec, argv=("sh", "-c", "; ".join(steps)),
                   memory_bytes=16 * MiB if b.oom else 64 * MiB)  # fmt: skip


def fake_spec(spec: ContainerSpec, b: Behaviour) -> ContainerSpec:
    env = {
        **spec.env,
        "CONVOY_FAKE_DURATION": f"{b.duration:g}",
        "CONVOY_FAKE_EXIT": str(b.exit_code),
        "CONVOY_FAKE_OUTPUT": "".join(f"{line}\n" for line in b.lines),
        "CONVOY_FAKE_FILES": json.dumps(dict(b.files)),
        "CONVOY_FAKE_OOM": "1" if b.oom else "0",
    }
    return replace(spec, env=env)


@dataclass
class Subject:
    """One runtime under test, and how to say things to it."""

    name: str
    runtime: ContainerRuntime
    restarted: Callable[[], ContainerRuntime]  # a new runtime over the same containers
    image: str
    shape: Callable[[ContainerSpec, Behaviour], ContainerSpec]
    root: Path
    agents: list[str] = field(default_factory=list)

    def agent(self) -> str:
        """A fresh agent id; its containers are removed after the test."""
        ident = f"contract-{uuid.uuid4().hex[:12]}"
        self.agents.append(ident)
        return ident

    def spec(
        self, behaviour: Behaviour, agent: str | None = None, attempt: str | None = None
    ) -> ContainerSpec:
        """A spec doing `behaviour`, for `agent` (default: the test's first agent)."""
        attempt = attempt or uuid.uuid4().hex[:12]
        agent = agent or (self.agents[0] if self.agents else self.agent())
        base = ContainerSpec(
            attempt_id=attempt, run_id=f"run-{attempt}", submission_id="sub-1",
            experiment="contract", agent_id=agent,
            image=self.image, argv=("true",), env={}, cpus=0.5, memory_bytes=64 * MiB,
            network="none", workdir=self.root / attempt / "work",
            logdir=self.root / attempt / "log",
        )  # fmt: skip
        return self.shape(base, behaviour)

    def cleanup(self) -> None:
        """Remove every container of the test's agents, each tried even if one fails."""
        rt = self.restarted()
        failures = []
        for ident in self.agents:
            for handle in rt.recover(ident):
                try:
                    rt.remove(handle)
                except RuntimeFailure as e:
                    failures.append(e)
        assert not failures, failures


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker)])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    """The fake and the real runtime in turn; every container a test starts is removed after."""
    if request.param == "docker":
        real: DockerRuntime = request.getfixturevalue("docker_runtime")
        image = request.getfixturevalue("busybox_image")
        s = Subject("docker", real, DockerRuntime, image, docker_spec, tmp_path)
    else:
        state = tmp_path / "fake-runtime"

        def fake() -> FakeRuntime:
            return FakeRuntime(state, missing_images={MISSING_IMAGE})

        s = Subject("fake", fake(), fake, BUSYBOX_IMAGE, fake_spec, tmp_path)
    try:
        yield s
    finally:
        s.cleanup()
