"""Runs already done are not run again: real coordinator, agent and Docker, via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from convoy.agent.runtime import LABEL_PREFIX
from convoy.agent.server import agent_id_for

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker

SPEC = """
    name: memo
    image: convoy/busybox:1
    command: cat model.txt; echo ${{rho}} > out.txt
    matrix:
      rho: [{values}]
    resources: {{cpus: 1, memory: 64MiB}}
"""


class Creations:
    """Containers the test's agent creates, counted from the Docker engine's own events."""

    def __init__(self, env: ConvoyEnv) -> None:
        self.client = docker.from_env()
        self.label = f"{LABEL_PREFIX}agent={agent_id_for(env.home / 'agent')}"
        self.since = time.time()

    def count(self) -> int:
        until = time.time() + 0.5  # the engine's clock is this machine's
        events = self.client.events(since=self.since, until=until, decode=True,
                                    filters={"event": "create", "label": self.label})  # fmt: skip
        n = sum(1 for e in events if e.get("Type") == "container")
        self.since = until
        return n


def run(env: ConvoyEnv, spec: Path, *args: str) -> str:
    out = env.cli("run", str(spec), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stderr


def test_an_unchanged_experiment_runs_nothing_new_points_run_and_force_runs_all(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    (tmp_path / "model.txt").write_text("model v1\n")
    spec = write_experiment(tmp_path, SPEC.format(values="1, 2"))
    created = Creations(convoy_env)
    assert "submitted memo-1: 2 runs;" in run(convoy_env, spec)
    assert created.count() == 2

    said = run(convoy_env, spec)  # unchanged: nothing runs
    assert "submitted memo-2: nothing to run: 2 already done in memo-1 (--force" in said
    assert created.count() == 0
    runs = {r["run"]: r for r in convoy_env.runs("memo-2")}
    assert [r["reused_from"] for r in runs.values()] == ["memo-1.00", "memo-1.01"]
    assert all(r["state"] == "succeeded" and r["exit_code"] == 0 for r in runs.values())
    folder = tmp_path / "convoy-results" / "memo" / "memo-2" / "memo-2.01"
    assert folder.is_symlink() and (folder / "out.txt").read_text() == "2\n"
    logs = convoy_env.cli("logs", "memo-2.01")
    assert logs.returncode == 0 and logs.stdout == "model v1\n"
    why = convoy_env.cli("why", "memo-2.01")
    assert why.stdout.strip() == (
        "memo-2.01 did not run: already done: memo-1.01 succeeded "
        "with the same key; its results are linked from memo-1.01's"
    )

    spec.write_text(spec.read_text().replace("[1, 2]", "[1, 2, 3]"))  # one value more
    assert "submitted memo-3: 1 to run, 2 already done in memo-1" in run(convoy_env, spec)
    assert created.count() == 1
    assert "no earlier run of these parameter values" in convoy_env.cli("why", "memo-3.02").stdout

    assert "submitted memo-4: 3 runs;" in run(convoy_env, spec, "--force")
    assert created.count() == 3
    forced = json.loads(convoy_env.cli("why", "memo-4.00", "--json").stdout)
    assert forced["forced"] and forced["compared"] == "memo-3.00" and not forced["reused_from"]

    (tmp_path / "model.txt").write_text("model v2\n")  # the sources change: every run again
    assert "submitted memo-5: 3 runs;" in run(convoy_env, spec)
    assert created.count() == 3
    changed = json.loads(convoy_env.cli("why", "memo-5.01", "--json").stdout)
    assert changed["compared"] == "memo-4.01" and changed["changed"] == ["sources"]
    assert changed["changed_files"] == ["model.txt"]
    assert "changed since memo-4.01: sources\n  the sources changed: model.txt" in changed["text"]


def test_only_and_indexes_run_a_subset(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("m\n")
    spec = write_experiment(tmp_path, SPEC.format(values="1, 2, 3, 4"))
    created = Creations(convoy_env)
    assert "submitted memo-1: 2 runs;" in run(convoy_env, spec, "--only", "rho=2",
                                               "--only", "rho=4")  # fmt: skip
    assert created.count() == 2
    assert sorted(r["run"] for r in convoy_env.runs("memo-1")) == ["memo-1.01", "memo-1.03"]
    said = run(convoy_env, spec, "--indexes", "0-1")
    assert "submitted memo-2: 1 to run, 1 already done in memo-1" in said
    assert created.count() == 1
    bad = convoy_env.cli("run", str(spec), "--only", "rho=7")
    assert bad.returncode == 2 and "rho has no such value; its values: 1, 2, 3, 4" in bad.stderr
    assert len(convoy_env.cli("runs", "--json").stdout) > 0 and created.count() == 0


def test_stop_after_cancels_the_rest_and_the_summary_groups_the_failures(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """on_failure: {stop_after: 2} on 8 runs that all fail alike, two at a time: the sweep
    stops after the second failure (a third may end as it comes), the others cancelled; the
    summary says the failures in one line."""
    spec = write_experiment(tmp_path, """
        name: stops
        image: convoy/busybox:1
        command: 'sleep 0.3; echo working ${i}; echo "ERROR: bad value"; exit 3'
        matrix:
          i: {range: [0, 8]}
        resources: {cpus: 1, memory: 64MiB}
        on_failure: {stop_after: 2}
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 1, out.stderr
    states = [r["state"] for r in convoy_env.runs("stops-1")]
    assert 2 <= states.count("failed") <= 3 and states.count("cancelled") == 8 - states.count(
        "failed"
    ), states
    cancelled = [r for r in convoy_env.runs("stops-1") if r["state"] == "cancelled"]
    assert all("(on_failure: stop_after: 2)" in r["reason"] for r in cancelled)
    n = states.count("failed")
    assert f"convoy: {n} runs failed the same way: ERROR: bad value (stops-1." in out.stderr


def test_a_build_the_host_already_had_is_said_not_replayed(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """After a restart the coordinator no longer knows the host holds the build, asks for it,
    and the agent answers with the one it made before: convoy run says so and streams no
    output as if it were built again."""
    (tmp_path / "model.txt").write_text("m\n")
    spec = write_experiment(tmp_path, """
        name: once
        image: convoy/busybox:1
        build: echo compiling
        command: 'true'
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    assert "[once-1.build@local] compiling" in out.stdout
    assert convoy_env.cli("down").returncode == 0
    assert convoy_env.coordinator.wait(10) is not None
    with open(convoy_env.home / "up.log", "ab") as log:
        convoy_env.coordinator = subprocess.Popen(
            [sys.executable, "-m", "convoy.cli.main", "up", "--cpus", "2", "--memory", "4GiB"],
            env=convoy_env.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while convoy_env.cli("hosts").returncode != 0:
        assert time.monotonic() < deadline, (convoy_env.home / "up.log").read_text()
        time.sleep(0.2)
    out = convoy_env.cli("run", "--force", str(spec))
    assert out.returncode == 0, out.stderr
    assert "once-2.build" not in out.stdout, out.stdout
    assert ("convoy: once-2.build@local: local already had this build (made for an earlier "
            "submission of these sources): nothing built now") in out.stderr  # fmt: skip
    record = json.loads((tmp_path / "convoy-results/once/once-2/build/local.json").read_text())
    assert record["succeeded"] and not record["made_now"]
