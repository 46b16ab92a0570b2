"""Faults on the local host: the agent or the coordinator dies mid-run; nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker

TICKS = """
    name: {name}
    image: convoy/busybox:1
    command: for i in $(seq 1 8); do echo tick $i; sleep 0.5; done; echo done > out.txt
"""


def _pid(path: Path) -> int:
    return int(path.read_text().strip())


def test_agent_killed_mid_run_is_revived_and_the_run_completes_with_every_line(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """SIGKILL of the agent mid-run: a new agent adopts the container; the run succeeds whole."""
    spec = write_experiment(tmp_path, TICKS.format(name="agentkill"))
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    convoy_env.wait_for("agentkill-1.00", {"running"})
    time.sleep(1)
    pidfile = convoy_env.home / "agent" / "agent.pid"
    old = _pid(pidfile)
    os.kill(old, signal.SIGKILL)
    run = convoy_env.wait_for("agentkill-1.00", {"succeeded", "failed", "lost"}, timeout=60)
    assert run["state"] == "succeeded", run["reason"]
    assert _pid(pidfile) != old
    d = tmp_path / "convoy-results/agentkill/agentkill-1/agentkill-1.00"
    assert (d / "output.log").read_text() == "".join(f"tick {i}\n" for i in range(1, 9))
    assert (d / "out.txt").read_text() == "done\n"


def test_coordinator_killed_mid_run_is_restarted_and_adopts_the_run(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """SIGKILL of the coordinator mid-run: a restarted one adopts the run and collects it."""
    spec = write_experiment(tmp_path, TICKS.format(name="coordkill"))
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    convoy_env.wait_for("coordkill-1.00", {"running"})
    convoy_env.coordinator.send_signal(signal.SIGKILL)
    convoy_env.coordinator.wait(10)
    time.sleep(5)  # the run ends while no coordinator is there
    log = open(convoy_env.home / "up2.log", "wb")  # noqa: SIM115
    convoy_env.coordinator = subprocess.Popen(
        [sys.executable, "-m", "convoy.cli.main", "up"], env=convoy_env.env(), stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        run = convoy_env.wait_for("coordkill-1.00", {"succeeded", "failed", "lost"}, timeout=60)
    finally:
        log.close()
    assert run["state"] == "succeeded", run["reason"]
    d = tmp_path / "convoy-results/coordkill/coordkill-1/coordkill-1.00"
    assert (d / "output.log").read_text() == "".join(f"tick {i}\n" for i in range(1, 9))
    assert json.loads((d / "run.json").read_text())["files"]["out.txt"]["size"] == 5


def test_a_local_agent_of_a_build_without_object_streams_is_replaced(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """An agent that answers gRPC but has no object socket (a build before it) is replaced
    when the coordinator starts, so syncs to this machine work after an upgrade."""
    home = convoy_env.home
    old = _pid(home / "agent" / "agent.pid")
    (home / "agent" / "agent.objs").unlink()  # that agent still answers gRPC
    convoy_env.coordinator.terminate()
    convoy_env.coordinator.wait(10)
    log = open(home / "up2.log", "wb")  # noqa: SIM115
    convoy_env.coordinator = subprocess.Popen(
        [sys.executable, "-m", "convoy.cli.main", "up"], env=convoy_env.env(), stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        spec = write_experiment(tmp_path, TICKS.format(name="upgraded"))
        # `convoy hosts` starts nothing: `convoy run` before this coordinator answers would
        # start another one in the background, which the fixture does not know to stop.
        deadline = time.monotonic() + 60
        while (out := convoy_env.cli("hosts")).returncode != 0:
            assert time.monotonic() < deadline and convoy_env.coordinator.poll() is None, (
                out.stderr + (home / "up2.log").read_text()
            )
            time.sleep(0.2)
        out = convoy_env.cli("run", "--detach", str(spec))
        assert out.returncode == 0, out.stderr
        run = convoy_env.wait_for("upgraded-1.00", {"succeeded", "failed", "lost"}, timeout=60)
    finally:
        log.close()
    assert run["state"] == "succeeded", run["reason"]
    assert _pid(home / "agent" / "agent.pid") != old
    assert (home / "agent" / "agent.objs").exists()
    assert (
        not Path(f"/proc/{old}").exists()
        or b"agent" not in Path(f"/proc/{old}/cmdline").read_bytes()
    )
