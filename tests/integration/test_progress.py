"""Progress and reasons to wait, end to end: the agent reads a run's `progress:` pattern beside
its log, the coordinator carries the percent to `convoy runs --json` and `convoy run`; a queued
run says why it waits. Real coordinator, local agent and Docker (convoy_env: 2 cpus)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker


def _poll(env: ConvoyEnv, until: Any, what: str, timeout: float = 120) -> list[dict[str, Any]]:
    """`convoy runs --json` until `until(runs)` holds (the deadline only ends a hung test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = env.cli("runs", "--json")
        if out.returncode == 0:
            runs = json.loads(out.stdout)
            if until(runs):
                return list(runs)
        time.sleep(0.2)
    raise AssertionError(f"never saw {what}")


def test_a_running_run_s_percent_reaches_convoy_runs_and_convoy_run(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    spec = write_experiment(tmp_path, """
        name: prog
        image: convoy/busybox:1
        command: >-
          echo start; sleep 1; echo "step (10%)"; sleep 3;
          echo "step (50%)"; sleep 4; echo done
        resources: {cpus: 1, memory: 64MiB}
        progress: '\\((?P<percent>\\d+)%\\)'
    """)  # fmt: skip
    run = convoy_env.cli_async("run", str(spec))  # stdout and stderr are pipes: plain lines
    try:
        runs = _poll(convoy_env, lambda rs: any(r["progress"] == 50.0 for r in rs),
                     "the run at 50% in convoy runs --json")  # fmt: skip
        [r] = runs
        assert (r["run"], r["state"], r["waiting_for"]) == ("prog-1.00", "running", None)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    lines = err.splitlines()
    assert "convoy: prog-1.00 10%" in lines and "convoy: prog-1.00 50%" in lines, err
    assert lines.index("convoy: prog-1.00 10%") < lines.index("convoy: prog-1.00 50%")
    # stdout is the run's output, and only that.
    assert out.splitlines() == ["[prog-1.00] start", "[prog-1.00] step (10%)",
                                "[prog-1.00] step (50%)", "[prog-1.00] done"]  # fmt: skip
    [ended] = convoy_env.runs()
    assert (ended["state"], ended["progress"]) == ("succeeded", None)


def test_a_queued_run_says_it_waits_for_cpus(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """Two runs of 2 cpus on a 2-cpu host: the second waits, and says so in `convoy runs`
    (--json and the table) and `convoy why`."""
    spec = write_experiment(tmp_path, """
        name: big
        image: convoy/busybox:1
        command: sleep 60
        matrix:
          i: [0, 1]
        resources: {cpus: 2, memory: 64MiB}
    """)  # fmt: skip
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    try:
        runs = _poll(
            convoy_env,
            lambda rs: sorted(r["state"] for r in rs) == ["queued", "running"],
            "one run running and one queued",
        )
        queued = next(r for r in runs if r["state"] == "queued")
        running = next(r for r in runs if r["state"] == "running")
        assert queued["waiting_for"] == "needs 2 cpus, 64.0MiB memory; local has 0 cpus free"
        assert running["waiting_for"] is None and running["progress"] is None
        table = convoy_env.cli("runs")
        assert "WAITING FOR" in table.stdout and "local has 0 cpus free" in table.stdout
        why = convoy_env.cli("why", queued["run"])
        assert why.returncode == 0, why.stderr
        assert why.stdout.rstrip().endswith(
            "it waits: needs 2 cpus, 64.0MiB memory; local has 0 cpus free"
        )
    finally:
        convoy_env.cli("cancel", "big-1", "--grace", "1")
