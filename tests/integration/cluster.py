"""A coordinator over SSH test hosts (testhosts.py), driven through the `convoy` CLI: what the
multi-host tests share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import docker

from convoy.agent.server import agent_id_for

from .conftest import ConvoyEnv, remove_container
from .testhosts import TestHost


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convoy.cli.main", *args],
        env=dict(os.environ, CONVOY_HOME=str(home)), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def add_args(h: TestHost, label: str = "") -> list[str]:
    """`convoy hosts add` of the test host, offering 2 cpus and 4 GiB."""
    args = ["hosts", "add", h.name, h.address, "--port", str(h.port), "--user", h.user,
            "--identity", str(h.identity), "--cpus", "2", "--memory", "4GiB",
            "--agent-home", str(h.agent_home)]  # fmt: skip
    if label:
        args += ["--label", label]
    if h.docker_host:
        args += ["--docker-host", h.docker_host]
    return args


def add_hosts(
    home: Path, hosts: list[TestHost], trust: bool = True, labels: Mapping[str, str] = {}
) -> None:
    for h in hosts:
        out = cli(home, *add_args(h, labels.get(h.name, "")))
        assert out.returncode == 0, out.stderr
        if trust:
            out = cli(home, "hosts", "trust", h.name, "--fingerprint", h.host_key_fingerprint)
            assert out.returncode == 0, out.stderr


@contextlib.contextmanager
def cluster(
    hosts: list[TestHost],
    trust: bool = True,
    labels: Mapping[str, str] = {},
    up_args: Sequence[str] = (),
    later: Sequence[TestHost] = (),
) -> Iterator[ConvoyEnv]:
    """`convoy up` over these hosts; `labels`: host name -> one KEY=VALUE label for it;
    `up_args`: more options for `convoy up` (kept for its restarts: env.up_args); `later`:
    hosts the test adds to the running coordinator, cleaned up after as the others are."""
    home = Path(tempfile.mkdtemp(prefix="cvc-", dir="/tmp"))
    add_hosts(home, hosts, trust, labels)
    env = ConvoyEnv(home, up(home, up_args))
    env.up_args = tuple(up_args)
    try:
        yield env
    finally:
        down(env)
        engine = docker.from_env()
        for h in [*hosts, *later]:
            pid = h.agent_home / "agent.pid"
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid.read_text().strip()), signal.SIGKILL)
            label = f"convoy.agent={agent_id_for(h.agent_home)}"
            for c in engine.containers.list(all=True, filters={"label": label}):
                remove_container(engine.api, c.id)
            for v in engine.volumes.list(filters={"label": label}):
                v.remove(force=True)
        subprocess.run(["rm", "-rf", str(home)], check=False)


def up(home: Path, args: Sequence[str] = (), wait_s: float = 60) -> subprocess.Popen[bytes]:
    """`convoy up --no-local` in `home`, once its socket is there (within `wait_s`); its output
    appended to up.log."""
    (home / "coordinator.sock").unlink(missing_ok=True)
    with open(home / "up.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convoy.cli.main", "up", "--no-local", *args],
            env=dict(os.environ, CONVOY_HOME=str(home)), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while not (home / "coordinator.sock").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((home / "up.log").read_text())
        time.sleep(0.1)
    return proc


def down(env: ConvoyEnv) -> None:
    env.coordinator.terminate()
    try:
        env.coordinator.wait(15)
    except subprocess.TimeoutExpired:
        env.coordinator.kill()
        env.coordinator.wait()


def wait_hosts(env: ConvoyEnv, want: dict[str, str], timeout: float = 60) -> None:
    """Wait until `convoy hosts` shows exactly these states (host name -> state)."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        out = env.cli("hosts", "--json")
        if out.returncode == 0:
            states = {h["name"]: h["state"] for h in json.loads(out.stdout)}
            if states == want:
                return
        time.sleep(0.5)
    raise AssertionError(f"hosts stayed {states}, not {want}")
