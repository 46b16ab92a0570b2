"""Fixtures for tests against the real Docker engine.

With no engine, docker tests are skipped, except under CI (env CI set) or CONVOY_REQUIRE_DOCKER=1,
where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from agent.runtime import LABEL_PREFIX, DockerRuntime
from convoy.errors import RuntimeFailure

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_IMAGE = "convoy/busybox:1"


def _docker_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("CONVOY_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def docker_runtime() -> DockerRuntime:
    try:
        runtime = DockerRuntime()
        runtime.version()
    except (RuntimeFailure, docker.errors.DockerException) as e:
        if _docker_required():
            pytest.fail(f"CI or CONVOY_REQUIRE_DOCKER=1 requires Docker: {e}")
        pytest.skip(str(e))
    return runtime


@pytest.fixture(scope="session")
def busybox_image(docker_runtime: DockerRuntime) -> str:
    try:
        docker_runtime.image_id(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except RuntimeFailure:
        pass
    script = ROOT / "images" / "build.sh"
    if not script.exists():
        pytest.fail(f"{BUSYBOX_IMAGE} is missing and {script} does not exist to build it")
    subprocess.run(["bash", str(script), "busybox"], cwd=ROOT, check=True)
    docker_runtime.image_id(BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE


@pytest.fixture
def agent_id(docker_runtime: DockerRuntime) -> Iterator[str]:
    """A fresh agent identity; every container labelled with it is removed afterwards."""
    ident = f"test-{uuid.uuid4().hex[:12]}"
    yield ident
    leftovers = docker_runtime.client.containers.list(
        all=True, filters={"label": f"{LABEL_PREFIX}agent={ident}"}
    )
    for container in leftovers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
