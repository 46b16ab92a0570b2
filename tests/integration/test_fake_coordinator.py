"""The whole coordinator with no Docker at all: `convoy run` and `convoy up` whose local agent
runs the fake runtime (CONVOY_AGENT_RUNTIME=fake), the coordinator's own Docker engine out of
reach. What a simulated fleet is built on: sources synced, runs placed, retried and collected,
in seconds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import write_experiment


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cvz-", dir="/tmp"))
    try:
        yield folder / "home"
    finally:
        for pidfile in (folder / "home" / "coordinator.pid", folder / "home/agent/agent.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def convoy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CONVOY_HOME=str(home), CONVOY_AGENT_RUNTIME="fake",
               DOCKER_HOST=f"unix://{home.parent}/no-docker.sock")  # fmt: skip
    return subprocess.run([sys.executable, "-m", "convoy.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


def test_a_sweep_runs_on_the_fake_runtime_without_docker(home: Path) -> None:
    """20 runs: the fake prints, exits and writes files as each run's env says; the sources are
    synced to the host; the failed runs say why; every result comes back checksummed."""
    spec = write_experiment(
        home.parent / "exp",
        """
        name: fake
        image: any/image:1
        command: ignored by the fake
        matrix:
          i: {range: [0, 10]}
          exit: [0, 3]
        env:
          CONVOY_FAKE_DURATION: "0.${i}"
          CONVOY_FAKE_LINES: "3"
          CONVOY_FAKE_EXIT: "${exit}"
          CONVOY_FAKE_FILES: '{"out/n.txt": "run ${i}"}'
        resources: {cpus: 0.25, memory: 16MiB}
    """,
    )
    (spec.parent / "model.txt").write_text("sources are synced to the fake host as to any\n")
    out = convoy(home, "run", "-q", str(spec))
    assert out.returncode == 1, out.stderr  # some runs failed, as they were told to
    runs = json.loads(convoy(home, "runs", "--json").stdout)
    assert len(runs) == 20
    for r in runs:
        want = ("succeeded", 0) if r["params"]["exit"] == 0 else ("failed", 3)
        assert (r["state"], r["exit_code"], r["code"], r["attempt"]) == (*want, "exit_code", 1)
        folder = Path(r["results_path"])
        assert (folder / "output.log").read_text() == "line 1\nline 2\nline 3\n"
        meta = json.loads((folder / "run.json").read_text())
        if r["state"] == "succeeded":
            assert (folder / "out" / "n.txt").read_text() == f"run {r['params']['i']}"
            assert set(meta["files"]) == {"out/n.txt"}
    stores = list((home / "agent" / "store").rglob("*"))
    assert stores, "the sources were synced to the host's store"
    assert not list((home / "agent" / "attempts").iterdir())  # every folder released
    assert convoy(home, "down").returncode == 0


def test_a_run_over_its_limits_keeps_what_came_within_them_and_fails(home: Path) -> None:
    """limits: past output_files the rest is named, not collected; past log_bytes the log's
    first and last halves are kept; the run fails with output_limit (a real coordinator,
    agent and store; the fake runtime)."""
    files = {f"out/{i}.txt": f"file {i}" for i in range(5)}
    spec = write_experiment(
        home.parent / "exp",
        f"""
        name: capped
        image: any/image:1
        command: ignored by the fake
        env:
          CONVOY_FAKE_LINES: "3000"
          CONVOY_FAKE_FILES: '{json.dumps(files)}'
        resources: {{cpus: 0.25, memory: 16MiB}}
        limits: {{output_files: 2, log_bytes: 1KiB}}
    """,
    )
    out = convoy(home, "run", "-q", str(spec))
    assert out.returncode == 1, out.stderr
    (r,) = json.loads(convoy(home, "runs", "--json").stdout)
    assert (r["state"], r["code"]) == ("failed", "output_limit")
    folder = Path(r["results_path"])
    meta = json.loads((folder / "run.json").read_text())
    assert sorted(meta["files"]) == ["out/0.txt", "out/1.txt"]
    assert "out/2.txt" in meta["not_collected"] and "output.log" in meta["not_collected"]
    log = (folder / "output.log").read_bytes()
    assert log.startswith(b"line 1\nline 2\n") and log.endswith(b"line 2999\nline 3000\n")
    assert b"bytes of this run's output were cut here" in log and len(log) < 1200
    assert "went over limits.output_files (2 files)" in out.stderr  # said as it ends
    assert convoy(home, "down").returncode == 0


def test_a_run_writing_past_its_disk_is_stopped_by_its_agent(home: Path) -> None:
    """resources.disk: the agent stops a run whose writes (here its log) go past it; the run
    fails with disk_limit, not retried, what it wrote until then kept."""
    spec = write_experiment(
        home.parent / "exp",
        """
        name: writer
        image: any/image:1
        command: ignored by the fake
        env: {CONVOY_FAKE_LINES: "400000", CONVOY_FAKE_DURATION: "40"}
        resources: {cpus: 0.25, memory: 16MiB, disk: 200KiB}
        retries: 2
    """,
    )
    out = convoy(home, "run", "-q", str(spec))
    assert out.returncode == 1, out.stderr
    (r,) = json.loads(convoy(home, "runs", "--json").stdout)
    assert (r["state"], r["code"], r["attempt"]) == ("failed", "disk_limit", 1)
    assert "over its resources.disk (200.0KiB)" in r["reason"]
    log = (Path(r["results_path"]) / "output.log").read_bytes()
    assert log.startswith(b"line 1\n") and 200 << 10 < len(log) < 2_000_000  # of 4.9 MB
    assert convoy(home, "down").returncode == 0


def test_runs_state_active_lists_the_runs_going(home: Path) -> None:
    """`convoy runs --state active` was refused though the TUI's filter takes it."""
    spec = write_experiment(
        home.parent / "exp",
        """
        name: long
        image: any/image:1
        command: ignored by the fake
        matrix: {i: [0, 1, 2]}
        env: {CONVOY_FAKE_DURATION: "60"}
        resources: {cpus: 1, memory: 16MiB}
    """,
    )
    up = convoy(home, "up", "--cpus", "2", "--memory", "1GiB", "--detach")
    assert up.returncode == 0, up.stderr
    out = convoy(home, "run", "--detach", str(spec))
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 30
    while True:
        listed = convoy(home, "runs", "--json", "--state", "active")
        assert listed.returncode == 0, listed.stderr
        going = sorted(r["run"] for r in json.loads(listed.stdout))
        if len(going) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert going == ["long-1.00", "long-1.01"]  # two cpus: the third waits
    queued = json.loads(convoy(home, "runs", "--json", "--state", "queued").stdout)
    assert [r["run"] for r in queued] == ["long-1.02"]
    assert convoy(home, "down", "--cancel", "--grace", "1").returncode == 0
