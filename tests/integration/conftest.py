"""Fixtures for tests against the real Docker engine.

With no engine, docker tests are skipped, except under CI (env CI set) or CONVOY_REQUIRE_DOCKER=1,
where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from convoy.agent.runtime import LABEL_PREFIX, DockerRuntime
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


def remove_container(api: docker.APIClient, container_id: str, timeout: float = 30) -> None:
    """Remove a test's container, also while the engine is removing it already (409: its
    removal is in progress, started by the agent): then wait until it is gone."""
    try:
        api.remove_container(container_id, force=True, v=True)
        return
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.inspect_container(container_id)
        except docker.errors.NotFound:
            return
        time.sleep(0.1)
    raise AssertionError(f"container {container_id[:12]} was not removed within {timeout} s")


@pytest.fixture
def agent_id(docker_runtime: DockerRuntime) -> Iterator[str]:
    """A fresh agent identity; every container labelled with it is removed afterwards."""
    ident = f"test-{uuid.uuid4().hex[:12]}"
    yield ident
    leftovers = docker_runtime.client.containers.list(
        all=True, filters={"label": f"{LABEL_PREFIX}agent={ident}"}
    )
    for container in leftovers:
        remove_container(docker_runtime.client.api, container.id)


@dataclass
class ConvoyEnv:
    """A coordinator and local agent in their own CONVOY_HOME, driven through the `convoy` CLI."""

    home: Path
    coordinator: subprocess.Popen[bytes]
    up_args: tuple[str, ...] = ()  # the options its coordinator was started with

    def env(self) -> dict[str, str]:
        return dict(os.environ, CONVOY_HOME=str(self.home))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "convoy.cli.main", *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def cli_async(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "convoy.cli.main", *args],
            env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def runs(self, submission: str = "") -> list[dict[str, Any]]:
        args = ["runs", "--json"] + (["--submission", submission] if submission else [])
        out = self.cli(*args)
        assert out.returncode == 0, out.stderr
        return list(json.loads(out.stdout))

    def wait_for(self, run_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.cli("runs", "--json")
            # A coordinator restarting does not answer for a moment (the listing then comes
            # from its store, as it was: not what is waited for).
            if out.returncode == 0 and "no coordinator runs" not in out.stderr:
                for r in json.loads(out.stdout):
                    if r["run"] == run_id and r["state"] in states:
                        return dict(r)
            time.sleep(0.2)
        raise AssertionError(f"{run_id} did not reach {states} within {timeout} s")


def _kill_pidfile(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@pytest.fixture
def convoy_env(docker_runtime: DockerRuntime, busybox_image: str) -> Iterator[ConvoyEnv]:
    """`convoy up --cpus 2` in a fresh short-pathed home; everything it started is gone after."""
    from convoy.agent.server import agent_id_for

    home = Path(tempfile.mkdtemp(prefix="cvy-", dir="/tmp"))  # unix socket paths must stay short
    env = dict(os.environ, CONVOY_HOME=str(home))
    log = open(home / "up.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "convoy.cli.main", "up", "--cpus", "2", "--memory", "4GiB"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    env_: ConvoyEnv | None = None
    try:
        deadline = time.monotonic() + 30
        while not (home / "coordinator.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"convoy up did not start: {(home / 'up.log').read_text()}")
            time.sleep(0.05)
        env_ = ConvoyEnv(home, proc)
        yield env_
    finally:
        proc = env_.coordinator if env_ is not None else proc  # a test may have restarted it
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _kill_pidfile(home / "coordinator.pid")  # one a CLI started in the background
        _kill_pidfile(home / "agent" / "agent.pid")
        log.close()
        ident = agent_id_for(home / "agent")
        for c in docker_runtime.client.containers.list(
            all=True, filters={"label": f"{LABEL_PREFIX}agent={ident}"}
        ):
            remove_container(docker_runtime.client.api, c.id)
        shutil.rmtree(home, ignore_errors=True)
    leaked = _processes_of(home)
    said = {pid: _cmdline(pid) for pid in leaked}  # what they were, before they are gone
    for pid in leaked:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not leaked, f"processes of {home} outlived the test: {said}"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:300]
    except OSError:
        return "?"


def _processes_of(home: Path) -> list[int]:
    """Pids of the processes started with CONVOY_HOME=home or with home on their command line."""
    marker = str(home).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline or b"CONVOY_HOME=" + marker + b"\0" in environ + b"\0":
            pids.append(int(entry.name))
    return pids


def write_experiment(folder: Path, text: str, name: str = "experiment.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# --- several SSH hosts on this machine (tests/integration/testhosts.py) -------------------------

from collections.abc import Callable, Iterable  # noqa: E402

from tests.integration.testhosts import SSHD, TestHost, TestHosts  # noqa: E402


@pytest.fixture
def make_test_hosts() -> Iterator[Callable[..., TestHosts]]:
    """make(count=2, own_docker=frozenset()) -> entered TestHosts, all torn down after the test."""
    if not os.access(SSHD, os.X_OK):
        if _docker_required():
            pytest.fail(f"CI or CONVOY_REQUIRE_DOCKER=1 requires {SSHD} (openssh-server)")
        pytest.skip(f"{SSHD} is missing (apt-get install openssh-server)")
    with contextlib.ExitStack() as stack:

        def make(count: int = 2, own_docker: Iterable[str] = frozenset()) -> TestHosts:
            root = Path(tempfile.mkdtemp(prefix="cvh-", dir="/tmp"))  # short: unix sockets
            hosts = TestHosts(root, count, own_docker)
            stack.enter_context(hosts)
            return hosts

        yield make


@pytest.fixture
def test_hosts(make_test_hosts: Callable[..., TestHosts]) -> list[TestHost]:
    """Two SSH hosts h1 and h2 on 127.0.0.2 and 127.0.0.3, using the machine's Docker engine."""
    return make_test_hosts(2).hosts


@pytest.fixture
def test_hosts_with_docker(
    make_test_hosts: Callable[..., TestHosts], docker_runtime: DockerRuntime
) -> list[TestHost]:
    """Two SSH hosts; h2 has its own dockerd (docker_host), which starts with no images."""
    return make_test_hosts(2, own_docker={"h2"}).hosts
