"""End to end on the embedded default: real coordinator, real agent, real Docker, via the CLI."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from convoy.agent.runtime import LABEL_PREFIX, DockerRuntime
from convoy.agent.server import agent_id_for

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_twelve_one_cpu_runs_on_two_cpus_never_overlap_more_than_two(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """12 runs of cpus: 1 on a 2-cpu host all succeed with at most 2 running at any instant."""
    spec = write_experiment(tmp_path, """
        name: packing
        image: convoy/busybox:1
        command: echo start ${i}; sleep 0.5; echo ${i} > done.txt
        matrix:
          i: {range: [0, 12]}
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    sub = tmp_path / "convoy-results" / "packing" / "packing-1"
    runs = [json.loads(p.read_text()) for p in sorted(sub.glob("*/run.json"))]
    assert len(runs) == 12
    assert all(r["state"] == "succeeded" and r["exit_code"] == 0 for r in runs)
    edges = sorted(
        [(_ts(r["started_at"]), 1) for r in runs] + [(_ts(r["ended_at"]), -1) for r in runs]
    )  # an end at the same instant as a start is counted first
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2, f"peak concurrency {peak}"
    for r in runs:
        assert (sub / r["run"] / "done.txt").read_text().strip() == str(r["params"]["i"])


def test_results_folder_holds_run_json_log_files_and_runs_csv(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """Each run's folder has run.json (required fields), output.log and only the files it made."""
    (tmp_path / "input.txt").write_text("unchanged input\n")
    (tmp_path / "edit.txt").write_text("before\n")
    spec = write_experiment(tmp_path, """
        name: layout
        image: convoy/busybox:1
        command: cat input.txt; echo after > edit.txt; mkdir -p results; echo ${k} > results/k.txt
        matrix:
          k: [alpha, beta]
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    assert "[layout-1.00] unchanged input" in out.stdout
    sub = tmp_path / "convoy-results" / "layout" / "layout-1"
    for idx, k in enumerate(["alpha", "beta"]):
        d = sub / f"layout-1.{idx:02d}"
        meta = json.loads((d / "run.json").read_text())
        for field in ("run", "experiment", "submission", "params", "state", "exit_code", "host",
                      "image", "started_at", "ended_at"):  # fmt: skip
            assert field in meta, field
        assert meta["params"] == {"k": k}
        assert meta["started_at"].endswith("Z") and meta["ended_at"].endswith("Z")
        assert (d / "output.log").read_text() == "unchanged input\n"
        assert (d / "results" / "k.txt").read_text() == f"{k}\n"
        assert (d / "edit.txt").read_text() == "after\n"
        assert not (d / "input.txt").exists()  # an unchanged input is not a result
        assert set(meta["files"]) == {"edit.txt", "results/k.txt"}
    rows = list(csv.DictReader((sub / "runs.csv").open()))
    assert [(r["run"], r["param.k"], r["state"], r["exit_code"]) for r in rows] == [
        ("layout-1.00", "alpha", "succeeded", "0"),
        ("layout-1.01", "beta", "succeeded", "0"),
    ]
    assert all(float(r["duration_s"]) >= 0 for r in rows)


def test_exit_3_is_failed_with_exit_code_3_and_run_exits_1(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A run exiting 3 ends failed with exit_code 3, and `convoy run` exits 1."""
    spec = write_experiment(tmp_path, """
        name: fails
        image: convoy/busybox:1
        command: echo failing; exit 3
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 1, out.stderr
    [run] = convoy_env.runs("fails-1")
    assert run["state"] == "failed" and run["exit_code"] == 3
    meta = json.loads((tmp_path / "convoy-results/fails/fails-1/fails-1.00/run.json").read_text())
    assert meta["exit_code"] == 3 and meta["state"] == "failed"


def test_a_run_that_fails_before_it_starts_has_a_run_json_saying_why(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """An image that exists nowhere fails the run before any container starts; its results
    folder still holds a run.json with the reason, as every ended run's does."""
    spec = write_experiment(tmp_path, """
        name: noimage
        image: convoy/no-such-image:1
        command: echo never
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 1, out.stderr
    [run] = convoy_env.runs("noimage-1")
    assert run["state"] == "failed"
    folder = tmp_path / "convoy-results/noimage/noimage-1/noimage-1.00"
    meta = json.loads((folder / "run.json").read_text())
    assert meta["state"] == "failed" and "no-such-image" in meta["reason"], meta


def test_retries_run_again_and_the_last_attempt_wins(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """With retries: 1, a run failing once succeeds on its second attempt; following its output
    (`convoy run`, `convoy logs -f`) goes on into the retry."""
    spec = write_experiment(tmp_path, """
        name: flaky
        image: convoy/busybox:1
        command: |
          echo "attempt $CONVOY_ATTEMPT"
          if [ "$CONVOY_ATTEMPT" = 1 ]; then sleep 3; exit 7; fi
          echo ok
        retries: 1
    """)  # fmt: skip
    submit = convoy_env.cli_async("run", str(spec))
    follows: list[subprocess.Popen[str]] = []
    try:
        convoy_env.wait_for("flaky-1.00", {"running"})  # attempt 1, for 3 s
        follows = [convoy_env.cli_async("logs", "-f", "flaky-1.00", *only)
                   for only in ((), ("--attempt", "1"), ("--attempt", "2"))]  # fmt: skip
        out, err = submit.communicate(timeout=120)
        assert submit.returncode == 0, err
        for line in ("attempt 1", "attempt 2", "ok"):
            assert f"[flaky-1.00] {line}\n" in out, out
        f_out, f_err = follows[0].communicate(timeout=60)
        assert follows[0].returncode == 0, f_err
        assert f_out == "attempt 1\nattempt 2\nok\n", (f_out, f_err)
        assert "convoy: flaky-1.00: attempt 2" in f_err
        # --attempt N: that attempt's output only; following, N is waited for and ends it.
        for proc, want in zip(follows[1:], ("attempt 1\n", "attempt 2\nok\n"), strict=True):
            f_out, f_err = proc.communicate(timeout=60)
            assert (proc.returncode, f_out) == (0, want), f_err
    finally:
        for proc in (submit, *follows):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    [run] = convoy_env.runs("flaky-1")
    assert (run["state"], run["attempt"], run["exit_code"]) == ("succeeded", 2, 0)
    # The first attempt's output stays readable after the retry (from the host's copy).
    first = convoy_env.cli("logs", "--attempt", "1", "flaky-1.00")
    assert (first.returncode, first.stdout) == (0, "attempt 1\n"), first.stderr
    for bad, says in (("3", "ended after 2 attempt(s)"), ("0", "attempts count from 1")):
        refused = convoy_env.cli("logs", "--attempt", bad, "flaky-1.00")
        assert refused.returncode == 2 and says in refused.stderr, refused


def test_a_follower_that_reads_slowly_gets_every_attempt_in_order(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """`convoy logs -f` whose reader is still taking in attempt 1's 40 MB (more than the pipes
    and streams between hold) when attempts 2 and 3 have run and ended: it gets all three,
    whole and in order, each attempt said on stderr."""
    spec = write_experiment(tmp_path, """
        name: chatty
        image: convoy/busybox:1
        command: |
          echo "attempt $CONVOY_ATTEMPT"
          if [ "$CONVOY_ATTEMPT" = 1 ]; then yes | head -c 40000000; echo; sleep 2; exit 7; fi
          if [ "$CONVOY_ATTEMPT" = 2 ]; then exit 7; fi
          echo ok
        retries: 2
    """)  # fmt: skip
    out = convoy_env.cli("run", "--detach", str(spec))
    assert out.returncode == 0, out.stderr
    convoy_env.wait_for("chatty-1.00", {"running"})
    follow = convoy_env.cli_async("logs", "-f", "chatty-1.00")  # not read until the run ends
    try:
        run = convoy_env.wait_for("chatty-1.00", {"succeeded", "failed"}, timeout=120)
        assert (run["state"], run["attempt"]) == ("succeeded", 3), run
        f_out, f_err = follow.communicate(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, f_err
    lines = f_out.splitlines()
    assert lines[0] == "attempt 1" and lines[-3:] == ["attempt 2", "attempt 3", "ok"], lines[-4:]
    assert len(f_out) == len("attempt 1\n") + 40_000_000 + 1 + len("attempt 2\nattempt 3\nok\n")
    assert "chatty-1.00: attempt 2" in f_err and "chatty-1.00: attempt 3" in f_err, f_err


def test_a_retry_keeps_its_cpus_so_a_later_run_waits_for_them(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A retry placed while its failed attempt was still being released holds the host's two
    cpus: a 2-cpu run submitted while the retry runs stays queued until it ends (the release
    once freed the retry's allocation, and both ran at once on the 2-cpu host)."""
    retried = write_experiment(tmp_path / "retried", """
        name: retried
        image: convoy/busybox:1
        command: if [ "$CONVOY_ATTEMPT" = 1 ]; then exit 3; fi; sleep 6
        retries: 1
        resources: {cpus: 2, memory: 64MiB}
    """)  # fmt: skip
    later = write_experiment(tmp_path / "later", """
        name: later
        image: convoy/busybox:1
        command: echo done
        resources: {cpus: 2, memory: 64MiB}
    """)  # fmt: skip
    out = convoy_env.cli("run", "--detach", str(retried))
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 60
    while True:  # attempt 2 running
        [run] = convoy_env.runs("retried-1")
        if (run["state"], run["attempt"]) == ("running", 2):
            break
        assert time.monotonic() < deadline and run["state"] not in ("succeeded", "failed"), run
        time.sleep(0.1)
    out = convoy_env.cli("run", "--detach", str(later))
    assert out.returncode == 0, out.stderr
    time.sleep(2)  # time enough for a wrongly freed host to take it
    [first] = convoy_env.runs("retried-1")
    [second] = convoy_env.runs("later-1")
    assert (first["state"], second["state"]) == ("running", "queued"), (first, second)
    assert convoy_env.wait_for("later-1.00", {"succeeded"}, timeout=60)


def test_a_revision_collected_on_the_host_is_synced_again_before_the_run_starts(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """The coordinator skips asking a host about a revision it confirmed in the last 30 s; if the
    host lost it meanwhile, the start says so, and the run is synced again and started, not
    failed."""
    (tmp_path / "data.txt").write_text("from the sources\n")
    spec = write_experiment(tmp_path, """
        name: again
        image: convoy/busybox:1
        command: cat data.txt
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    snapshots = [p for p in convoy_env.home.rglob("store/revisions/*") if p.is_dir()]
    assert len(snapshots) == 1, snapshots
    subprocess.run(["rm", "-rf", str(snapshots[0])], check=True)  # as a collection would
    out = convoy_env.cli("run", "--force", str(spec))  # the same revision, confirmed moments ago
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[again-2.00] from the sources" in out.stdout
    assert snapshots[0].is_dir()


def test_timeout_fails_the_run(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """A run outliving its timeout is stopped and ends failed, saying it timed out."""
    spec = write_experiment(tmp_path, """
        name: slow
        image: convoy/busybox:1
        command: sleep 600
        timeout: 1s
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec), timeout=60)
    assert out.returncode == 1
    [run] = convoy_env.runs("slow-1")
    assert run["state"] == "failed" and "timed out" in run["reason"]


def test_running_container_is_hardened(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """A running run: NetworkMode none, CapDrop ALL, no-new-privileges, a PidsLimit."""
    spec = write_experiment(tmp_path, """
        name: hard
        image: convoy/busybox:1
        command: sleep 60
        resources: {cpus: 0.5, memory: 96MiB}
    """)  # fmt: skip
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    convoy_env.wait_for("hard-1.00", {"running"})
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=convoy.run=hard-1.00"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(ids) == 1
    info = json.loads(
        subprocess.run(["docker", "inspect", ids[0]], capture_output=True, check=True).stdout
    )[0]["HostConfig"]
    assert info["NetworkMode"] == "none"
    assert info["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in info["SecurityOpt"]
    assert info["PidsLimit"] and info["PidsLimit"] > 0
    assert info["NanoCpus"] == 500_000_000 and info["Memory"] == 96 * 1024 * 1024
    assert info["ReadonlyRootfs"] is True
    assert convoy_env.cli("cancel", "hard-1", "--grace", "1").returncode == 0


def test_a_million_numbered_lines_arrive_complete_and_in_order(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """`convoy logs -f` during the run and `convoy logs` after give all 1,000,000 lines in order."""
    spec = write_experiment(tmp_path, """
        name: lines
        image: convoy/busybox:1
        command: seq 1 1000000
    """)  # fmt: skip
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    follow = convoy_env.cli("logs", "-f", "lines-1.00")
    convoy_env.wait_for("lines-1.00", {"succeeded"})
    after = convoy_env.cli("logs", "lines-1.00")
    expected = "".join(f"{i}\n" for i in range(1, 1_000_001))
    assert follow.returncode == 0 and after.returncode == 0
    assert follow.stdout == expected
    assert after.stdout == expected
    offset = len("".join(f"{i}\n" for i in range(1, 999_001)))
    tail = convoy_env.cli("logs", "lines-1.00", "--offset", str(offset))
    assert tail.stdout == "".join(f"{i}\n" for i in range(999_001, 1_000_001))


def test_cancel_of_a_running_run_ends_it_within_grace_plus_5s(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A run ignoring SIGTERM is cancelled within grace + 5 s and keeps its partial output."""
    spec = write_experiment(tmp_path, """
        name: stubborn
        image: convoy/busybox:1
        command: trap '' TERM; echo partial > part.txt; echo begun; sleep 600 & wait; sleep 600
    """)  # fmt: skip
    watcher = convoy_env.cli_async("run", str(spec))
    try:
        convoy_env.wait_for("stubborn-1.00", {"running"})
        time.sleep(0.5)
        t0 = time.monotonic()
        out = convoy_env.cli("cancel", "stubborn-1.00", "--grace", "2")
        assert out.returncode == 0, out.stderr
        run = convoy_env.wait_for("stubborn-1.00", {"cancelled"}, timeout=2 + 5)
        assert time.monotonic() - t0 <= 2 + 5
        assert run["state"] == "cancelled"
        assert watcher.wait(30) == 1
    finally:
        if watcher.poll() is None:
            watcher.kill()
    d = tmp_path / "convoy-results/stubborn/stubborn-1/stubborn-1.00"
    assert (d / "part.txt").read_text() == "partial\n"
    assert "begun" in (d / "output.log").read_text()


def test_cancel_a_submission_cancels_queued_runs_before_they_start(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """Cancelling a submission ends its running runs and its queued runs never start."""
    spec = write_experiment(tmp_path, """
        name: many
        image: convoy/busybox:1
        command: sleep 600
        matrix:
          i: {range: [0, 5]}
        resources: {cpus: 1}
    """)  # fmt: skip
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    convoy_env.wait_for("many-1.01", {"running"})
    out = convoy_env.cli("cancel", "many-1", "--grace", "1")
    assert out.returncode == 0 and "5 run(s)" in out.stdout
    for i in range(5):
        convoy_env.wait_for(f"many-1.{i:02d}", {"cancelled"}, timeout=20)
    runs = {r["run"]: r for r in convoy_env.runs("many-1")}
    assert [runs[f"many-1.{i:02d}"]["attempt"] for i in range(5)] == [1, 1, 0, 0, 0]
    for i in range(5):  # every run has its results folder, saying how it ended
        folder = tmp_path / "convoy-results" / "many" / "many-1" / f"many-1.{i:02d}"
        record = json.loads((folder / "run.json").read_text())
        assert record["state"] == "cancelled", record


def _containers_of(convoy_env: ConvoyEnv, docker_runtime: DockerRuntime) -> list[str]:
    """The states of the containers the test's local agent started."""
    ident = agent_id_for(convoy_env.home / "agent")
    found = docker_runtime.client.containers.list(
        all=True, filters={"label": f"{LABEL_PREFIX}agent={ident}"}
    )
    return sorted(c.status for c in found)


SLEEPERS = """
    name: sleepers
    image: convoy/busybox:1
    command: sleep 600
    matrix:
      i: {range: [0, 3]}
    resources: {cpus: 1}
"""


def test_down_names_the_unfinished_runs_it_leaves_running(
    convoy_env: ConvoyEnv, tmp_path: Path, docker_runtime: DockerRuntime
) -> None:
    """`convoy down` with runs in flight says how many are unfinished and how to cancel them;
    their containers keep running (the next `convoy up` adopts them)."""
    spec = write_experiment(tmp_path, SLEEPERS)
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    convoy_env.wait_for("sleepers-1.01", {"running"})
    out = convoy_env.cli("down")
    assert out.returncode == 0, out.stderr
    assert "stopped coordinator" in out.stdout
    assert "3 run(s) are unfinished" in out.stdout and "convoy down --cancel" in out.stdout
    assert convoy_env.coordinator.wait(10) is not None
    assert _containers_of(convoy_env, docker_runtime) == ["running", "running"]


def test_down_cancel_ends_every_unfinished_run_first(
    convoy_env: ConvoyEnv, tmp_path: Path, docker_runtime: DockerRuntime
) -> None:
    """`convoy down --cancel` cancels the running and the queued runs, waits for them to end,
    then stops: no container of theirs is left, running or exited."""
    spec = write_experiment(tmp_path, SLEEPERS)
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0
    convoy_env.wait_for("sleepers-1.01", {"running"})
    out = convoy_env.cli("down", "--cancel", "--grace", "1")
    assert out.returncode == 0, out.stderr
    assert "cancelled 3 unfinished run(s)" in out.stdout and "stopped coordinator" in out.stdout
    assert "unfinished:" not in out.stdout
    assert convoy_env.coordinator.wait(10) is not None
    assert _containers_of(convoy_env, docker_runtime) == []
    for i in range(2):  # the two that started (the queued one's end is in the count above)
        record = tmp_path / f"convoy-results/sleepers/sleepers-1/sleepers-1.{i:02d}/run.json"
        assert json.loads(record.read_text())["state"] == "cancelled"


def test_runs_lists_the_history_while_no_coordinator_runs(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """After `convoy down`, `convoy runs` reads the store (saying so), with its filters, and
    starts nothing."""
    spec = write_experiment(tmp_path, """
        name: hist
        image: convoy/busybox:1
        command: echo ${i}
        matrix: {i: [1, 2, 3]}
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    assert convoy_env.cli("run", str(spec)).returncode == 0
    assert convoy_env.cli("down").returncode == 0
    assert convoy_env.coordinator.wait(10) is not None
    out = convoy_env.cli("runs", "--json", "--experiment", "hist", "--last", "2")
    assert out.returncode == 0, out.stderr
    assert [(r["run"], r["state"]) for r in json.loads(out.stdout)] == [
        ("hist-1.01", "succeeded"), ("hist-1.02", "succeeded")
    ]  # fmt: skip
    assert "no coordinator runs" in out.stderr
    assert convoy_env.cli("runs", "-e", "nope").stdout.strip() == "no runs"
    bad = convoy_env.cli("runs", "--state", "sleeping")
    assert bad.returncode == 2 and "sleeping" in bad.stderr
    assert not (convoy_env.home / "coordinator.pid").exists() or not _alive(
        convoy_env.home / "coordinator.pid"
    )


def _alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def test_hosts_shows_the_local_host_with_its_capacity(convoy_env: ConvoyEnv) -> None:
    """`convoy hosts --json` lists the local host with the capacity `convoy up` gave it."""
    out = convoy_env.cli("hosts", "--json")
    assert out.returncode == 0, out.stderr
    [host] = json.loads(out.stdout)
    assert host["name"] == "local" and host["state"] == "up"
    assert host["capacity"]["cpus"] == 2 and host["capacity"]["memory_bytes"] == 4 * 1024**3


def test_a_run_too_big_for_every_host_is_refused_with_exit_2(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A spec asking 4 cpus of a 2-cpu fleet is refused (exit 2) and nothing is stored."""
    spec = write_experiment(tmp_path, """
        name: huge
        image: convoy/busybox:1
        command: "true"
        resources: {cpus: 4}
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 2
    assert "largest host (local) offers 2 cpus" in out.stderr
    assert convoy_env.runs() == []


def test_unknown_run_is_exit_2(convoy_env: ConvoyEnv) -> None:
    """`convoy logs` of a run that does not exist says so and exits 2."""
    out = convoy_env.cli("logs", "nope-1.00")
    assert out.returncode == 2 and "no run 'nope-1.00'" in out.stderr


def test_api_refuses_a_bad_spec_with_its_position_and_serves_get_run(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """Via gRPC: a bad spec is INVALID_ARGUMENT naming file:line:column; GetRun works."""
    import asyncio
    import stat

    import grpc

    from convoy.v1 import coordinator_pb2 as pb
    from convoy.v1 import coordinator_pb2_grpc as pb_grpc

    sock = convoy_env.home / "coordinator.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    good = write_experiment(tmp_path, """
        name: api
        image: convoy/busybox:1
        command: echo via api
    """)  # fmt: skip

    async def talk() -> tuple[grpc.StatusCode, str, pb.Run]:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
            stub = pb_grpc.CoordinatorStub(channel)
            try:
                await stub.Submit(pb.SubmitRequest(
                    spec_path=str(tmp_path / "bad.yaml"),
                    spec_yaml="name: api\nimage: x\ncommand: true\nretries: many\n",
                ))  # fmt: skip
                raise AssertionError("a bad spec was accepted")
            except grpc.aio.AioRpcError as e:
                code, details = e.code(), e.details() or ""
            resp = await stub.Submit(pb.SubmitRequest(
                spec_path=str(good), spec_yaml=good.read_text(),
                results_dir=str(tmp_path / "elsewhere"),
            ))  # fmt: skip
            run = await stub.GetRun(pb.GetRunRequest(run_id=resp.runs[0].id))
            return code, details, run

    code, details, run = asyncio.run(talk())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{tmp_path / 'bad.yaml'}:4:10:" in details
    assert run.id == "api-1.00" and run.submission_id == "api-1"
    convoy_env.wait_for("api-1.00", {"succeeded"})
    assert (tmp_path / "elsewhere/api/api-1/api-1.00/output.log").read_text() == "via api\n"
    assert [r["run"] for r in convoy_env.runs()] == ["api-1.00"]  # the bad spec stored nothing


def test_runs_json_has_the_fields_of_run_json(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """`convoy runs --json` prints each run with exactly run.json's fields (less `files`,
    `output_attempt`, `not_collected` and the metrics, which are about the results folder)."""
    spec = write_experiment(tmp_path, """
        name: fields
        image: convoy/busybox:1
        command: ["echo", "argv form"]
    """)  # fmt: skip
    assert convoy_env.cli("run", str(spec)).returncode == 0
    [listed] = convoy_env.runs("fields-1")
    meta = json.loads(
        (tmp_path / "convoy-results/fields/fields-1/fields-1.00/run.json").read_text()
    )
    meta.pop("files")
    assert meta.pop("output_attempt") == 1  # which attempt output.log is of
    assert meta.pop("not_collected") == {}
    for name in ("metrics", "metrics_missing", "metrics_declared"):  # none declared
        assert meta.pop(name) == {}
    assert listed == meta


def test_sources_inside_the_state_folder_are_refused(convoy_env: ConvoyEnv) -> None:
    """An experiment kept inside CONVOY_HOME is refused: it would snapshot convoy's own state."""
    spec = write_experiment(convoy_env.home / "exp", """
        name: inside
        image: convoy/busybox:1
        command: "true"
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 2 and "inside convoy's state folder" in out.stderr


def test_inputs_are_mounted_read_only_and_are_not_results(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A dataset declared in `inputs` is readable at /inputs/<name>, not writable, not a result."""
    data = tmp_path / "datasets" / "traces"
    data.mkdir(parents=True)
    (data / "t1.csv").write_text("a,b\n1,2\n")
    spec = write_experiment(tmp_path / "exp", """
        name: withinputs
        image: convoy/busybox:1
        command: cat /inputs/traces/t1.csv; touch /inputs/traces/new 2>/dev/null || echo read-only
        inputs:
          traces: ../datasets/traces
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    d = tmp_path / "exp/convoy-results/withinputs/withinputs-1/withinputs-1.00"
    assert (d / "output.log").read_text() == "a,b\n1,2\nread-only\n"
    assert json.loads((d / "run.json").read_text())["files"] == {}
    assert sorted(p.name for p in data.iterdir()) == ["t1.csv"]


def test_rerun_runs_only_the_failed_runs_on_the_same_revision(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """`convoy rerun SUB` submits the failed runs again, with their indexes and the sources
    as they were, not as they are now."""
    (tmp_path / "flag.txt").write_text("v1\n")
    spec = write_experiment(tmp_path, """
        name: flaky
        image: convoy/busybox:1
        command: cat flag.txt; test ${n} -ne 1 && test ${n} -ne 3
        matrix:
          n: [0, 1, 2, 3]
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    assert convoy_env.cli("run", "-q", str(spec)).returncode == 1
    (tmp_path / "flag.txt").write_text("v2\n")  # not what the rerun sees
    out = convoy_env.cli("rerun", "flaky-1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "submitted flaky-2: flaky-2.01 flaky-2.03"
    for run_id in ("flaky-2.01", "flaky-2.03"):
        run = convoy_env.wait_for(run_id, {"failed", "succeeded"})
        assert run["state"] == "failed"
    second = tmp_path / "convoy-results/flaky/flaky-2"
    assert sorted(p.name for p in second.iterdir() if p.is_dir()) == ["flaky-2.01", "flaky-2.03"]
    assert (second / "flaky-2.01" / "output.log").read_text() == "v1\n"
    out = convoy_env.cli("rerun", "flaky-2", "--state", "succeeded")
    assert out.returncode == 2 and "flaky-2 has no runs that ended succeeded" in out.stderr


def test_a_run_that_swaps_its_log_for_a_link_gets_no_host_file_back(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A run can replace /.convoy/output.log (its folder is mounted writable) with a link to
    a file of the host's, which the agent once read and returned as the run's output. The
    link is not followed: the output saved is empty, the run's results still come back."""
    secret = tmp_path / "agent-users-secret"
    secret.write_text("PRIVATE KEY\n")
    spec = write_experiment(tmp_path, f"""
        name: swap
        image: convoy/busybox:1
        command: echo before; ln -sf {secret} /.convoy/output.log; echo kept > out.txt
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    assert "PRIVATE KEY" not in out.stdout
    folder = tmp_path / "convoy-results/swap/swap-1/swap-1.00"
    assert json.loads((folder / "run.json").read_text())["state"] == "succeeded"
    assert (folder / "out.txt").read_text() == "kept\n"
    assert "PRIVATE KEY" not in (folder / "output.log").read_text()
    why = "the run replaced its output log with a symbolic link; convoy does not follow it"
    assert json.loads((folder / "run.json").read_text())["not_collected"] == {"output.log": why}
    assert f"convoy: swap-1.00: not collected: output.log ({why})" in out.stderr


def test_results_that_did_not_come_back_are_named_with_why(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A result whose name is not UTF-8 was left out, said only in the agent's log; a declared
    output the run never wrote was not mentioned at all. Both are in run.json and said by run."""
    spec = write_experiment(tmp_path, r"""
        name: missing
        image: convoy/busybox:1
        command: echo x > "$(printf 'bad\377')"; echo y > kept.txt
        outputs: [kept.txt, "bad*", summary.csv]
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "convoy-results/missing/missing-1/missing-1.00"
    meta = json.loads((folder / "run.json").read_text())
    assert list(meta["files"]) == ["kept.txt"]
    none = "declared in outputs: the run created or changed no file that matches"
    assert meta["not_collected"] == {"bad\\xff": "its name is not UTF-8", "summary.csv": none}
    assert (
        "convoy: missing-1.00: not collected: bad\\xff (its name is not UTF-8); "
        f"summary.csv ({none}) (see {folder}/run.json)"
    ) in out.stderr


def test_links_fifos_and_sockets_among_outputs_are_named_not_dropped(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A run's symlink, FIFO and socket were dropped silently; each is now named in run.json's
    not_collected, the regular file beside them collected, nothing followed or opened."""
    spec = write_experiment(tmp_path, r"""
        name: odd
        image: convoy/python:3.11
        command: >-
          python3 -c "import os, socket; os.makedirs('out'); open('out/real.txt', 'w').write('r');
          os.symlink('/etc/shadow', 'out/link'); os.mkfifo('out/pipe');
          socket.socket(socket.AF_UNIX).bind('out/sock')"
        outputs: [out/]
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "convoy-results/odd/odd-1/odd-1.00"
    meta = json.loads((folder / "run.json").read_text())
    assert list(meta["files"]) == ["out/real.txt"]
    assert meta["not_collected"] == {
        "out/link": "a symbolic link: convoy does not follow it",
        "out/pipe": "not a regular file",
        "out/sock": "not a regular file",
    }
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["real.txt"]


def test_a_run_writing_past_its_disk_is_stopped(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """M4: a run with 64 MiB of memory wrote 300 MiB into its workspace. With resources.disk
    50MiB its agent stops it once it has written more: failed, code disk_limit."""
    spec = write_experiment(tmp_path, r"""
        name: filler
        image: convoy/busybox:1
        command: >-
          for i in $(seq 300); do dd if=/dev/zero of=f$i bs=1M count=1 2>/dev/null;
          sleep 0.05; done
        resources: {cpus: 1, memory: 64MiB, disk: 50MiB}
    """)  # fmt: skip
    out = convoy_env.cli("run", "-q", str(spec))
    assert out.returncode == 1, out.stderr
    (r,) = convoy_env.runs()
    assert (r["state"], r["code"]) == ("failed", "disk_limit"), r["reason"]
    assert "over its resources.disk (50.0MiB)" in r["reason"]
    folder = tmp_path / "convoy-results/filler/filler-1/filler-1.00"
    written = sum(p.stat().st_size for p in folder.glob("f*"))
    assert 50 << 20 < written < 300 << 20  # stopped on the way, what it wrote kept


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A results folder on a 64 MB tmpfs: a coordinator's disk with little room left."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_results_bigger_than_the_coordinator_s_disk_are_left_out_not_written(
    convoy_env: ConvoyEnv, tmp_path: Path, small_disk: Path
) -> None:
    """A sparse file of 200 MB (no blocks on the host) arrived written in full and filled the
    coordinator's disk: ENOSPC failed the collection, and with it SQLite and every log. Now
    what does not fit is left out and said; the rest comes back."""
    spec = write_experiment(tmp_path, """
        name: full
        image: convoy/busybox:1
        command: echo small > small.txt; truncate -s 200M big.bin; echo done
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec), "--results", str(small_disk))
    assert out.returncode == 0, out.stderr
    folder = small_disk / "full/full-1/full-1.00"
    meta = json.loads((folder / "run.json").read_text())
    assert list(meta["files"]) == ["small.txt"] and not (folder / "big.bin").exists()
    why = meta["not_collected"]["big.bin"]
    assert why.startswith("does not fit: 209,715,200 bytes (209,715,712 on disk), where the")
    assert (folder / "small.txt").read_text() == "small\n"
    assert (folder / "output.log").read_text() == "done\n"
    assert f"convoy: full-1.00: not collected: big.bin ({why})" in out.stderr


def test_output_bigger_than_the_coordinator_s_disk_is_cut_short_and_said(
    convoy_env: ConvoyEnv, tmp_path: Path, small_disk: Path
) -> None:
    spec = write_experiment(tmp_path, """
        name: loud
        image: convoy/busybox:1
        command: echo kept > kept.txt; yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 100000000
    """)  # fmt: skip
    out = convoy_env.cli("run", "--quiet", str(spec), "--results", str(small_disk))
    assert out.returncode == 0, out.stderr
    folder = small_disk / "loud/loud-1/loud-1.00"
    meta = json.loads((folder / "run.json").read_text())
    size = (folder / "output.log").stat().st_size
    assert 0 < size < 64 << 20
    assert meta["not_collected"]["output.log"] == (
        f"cut short after {size:,} bytes: the coordinator's disk had no room for more"
    )
    assert (folder / "output.log").read_bytes()[:37] == b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    assert "kept.txt" in meta["not_collected"]  # no room left for it either


def test_a_store_unused_for_thirty_days_is_collected_at_start_and_a_rerun_of_it_refused(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """The coordinator's store of source snapshots only grew. Now revisions nothing has used
    for 30 days go when it starts; a rerun of one says to submit again, and a new submission
    of the same sources makes it whole again."""
    (tmp_path / "data.txt").write_text("input\n")
    spec = write_experiment(tmp_path, """
        name: aged
        image: convoy/busybox:1
        command: cat data.txt
    """)  # fmt: skip
    assert convoy_env.cli("run", str(spec)).returncode == 0
    convoy_env.coordinator.terminate()
    convoy_env.coordinator.wait(15)
    home, month = convoy_env.home, 40 * 86400
    db = sqlite3.connect(home / "state.db")
    with db:
        db.execute("UPDATE runs SET created_at = created_at - ?, started_at = started_at - ?, "
                   "ended_at = ended_at - ?", (month, month, month))  # fmt: skip
        db.execute("UPDATE submissions SET created_at = created_at - ?", (month,))
    db.close()
    manifests = list((home / "manifests").glob("*.json"))
    assert manifests
    for m in manifests:
        os.utime(m, (time.time() - month, time.time() - month))
    (home / "collected").unlink()  # the first start collected (nothing) today
    with open(home / "up.log", "ab") as log:
        convoy_env.coordinator = subprocess.Popen(
            [sys.executable, "-m", "convoy.cli.main", "up", "--cpus", "2", "--memory", "4GiB"],
            env=convoy_env.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while convoy_env.cli("hosts").returncode != 0:  # `runs` answers from the store meanwhile
        assert time.monotonic() < deadline, (home / "up.log").read_text()
        time.sleep(0.2)
    assert not any(m.exists() for m in manifests)
    out = convoy_env.cli("rerun", "aged-1", "--state", "succeeded")
    assert out.returncode == 2, out
    assert "no longer kept" in out.stderr and "submit the experiment again" in out.stderr
    out = convoy_env.cli("run", "--force", str(spec))  # its results are kept: run it, not reuse
    assert out.returncode == 0, out.stderr
    assert "[aged-2.00] input" in out.stdout
