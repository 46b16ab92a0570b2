"""The fault catalogue on real SSH hosts (sshd on 127.0.0.x, one Docker engine, agents
installed over SSH): each fault injected as it happens on a real machine (SIGKILL, SIGSTOP of
the whole host, iptables DROP of its address, a disk that fills up), and the exact outcome
asserted: terminal state, attempts, reason code, results, the log complete, no container left.

The coordinator runs with a host grace of GRACE seconds (60 by default): the semantics are the
same, and the tests take seconds instead of minutes. A host is silent after 6 s without a
heartbeat (HEARTBEAT_S x MISSED_BEATS); the grace counts from then.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from convoy.agent.server import agent_id_for

from .cluster import cluster, up, wait_hosts
from .conftest import ConvoyEnv, write_experiment
from .testhosts import TestHost, TestHosts

pytestmark = pytest.mark.docker

GRACE = 10
UP_ARGS = ("--host-grace", str(GRACE))


@pytest.fixture
def fleet(make_test_hosts: Callable[..., TestHosts]) -> Iterator[tuple[TestHosts, ConvoyEnv]]:
    """Two SSH hosts of 2 cpus each, both up, under a coordinator with a short grace."""
    hosts = make_test_hosts(2)
    with cluster(hosts.hosts, up_args=UP_ARGS) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        yield hosts, env


def ticks(n: int) -> str:
    return f"for i in $(seq 1 {n}); do echo tick $i; sleep 1; done; echo done > out.txt"


def tick_log(n: int) -> str:
    return "".join(f"tick {i}\n" for i in range(1, n + 1))


def starts_of(run_id: str, since: float) -> int:
    """How many containers of this run the engine started since `since` (docker events)."""
    out = subprocess.run(
        ["docker", "events", "--since", str(int(since) - 1), "--until", str(int(time.time()) + 1),
         "--filter", f"label=convoy.run={run_id}", "--filter", "event=start",
         "--format", "{{.ID}}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return len(out.stdout.split())


def containers_of(host: TestHost, running_only: bool = True) -> list[Any]:
    engine = docker.from_env()
    found = engine.containers.list(
        all=not running_only, filters={"label": f"convoy.agent={agent_id_for(host.agent_home)}"}
    )
    return list(found)


def run_json(env: ConvoyEnv, run: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((Path(run["results_path"]) / "run.json").read_text()))


def host_view(env: ConvoyEnv, name: str) -> dict[str, Any]:
    out = env.cli("hosts", "--json")
    assert out.returncode == 0, out.stderr
    return next(h for h in json.loads(out.stdout) if h["name"] == name)


def submit(env: ConvoyEnv, folder: Path, text: str) -> None:
    out = env.cli("run", "--detach", str(write_experiment(folder, text)))
    assert out.returncode == 0, out.stderr


def wait_until(what: Callable[[], bool], timeout: float, why: str) -> float:
    """Seconds until `what()` held."""
    t0 = time.monotonic()
    while not what():
        assert time.monotonic() - t0 < timeout, f"{why}: not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - t0


def test_an_agent_killed_past_the_grace_into_a_run_comes_back_and_the_run_goes_on_D1(
    fleet: tuple[TestHosts, ConvoyEnv], tmp_path: Path
) -> None:
    """D1: the agent is SIGKILLed 15 s into a run (longer than the grace: the old engine lost
    the run then), the coordinator brings it back over SSH within seconds: one attempt,
    succeeded, its output complete, one container."""
    hosts, env = fleet
    t0 = time.time()
    submit(
        env,
        tmp_path,
        f"""
        name: d1
        image: convoy/busybox:1
        command: {ticks(25)}
        resources: {{cpus: 1, memory: 64MiB}}
    """,
    )
    run = env.wait_for("d1-1.00", {"running"})
    time.sleep(GRACE + 5)
    old = hosts.kill_agent(run["host"])
    run = env.wait_for("d1-1.00", {"succeeded", "failed", "lost"}, timeout=90)
    assert (run["state"], run["attempt"], run["code"]) == ("succeeded", 1, "exit_code"), run
    assert hosts.agent_pid(run["host"]) not in (None, old)
    folder = Path(run["results_path"])
    assert (folder / "output.log").read_text() == tick_log(25)
    assert (folder / "out.txt").read_text() == "done\n"
    assert starts_of("d1-1.00", t0) == 1


def test_a_host_gone_for_good_has_its_runs_retried_elsewhere_or_lost_with_a_folder_D2_D3(
    fleet: tuple[TestHosts, ConvoyEnv], tmp_path: Path
) -> None:
    """D2: h1's sshd and agent are gone for good (its containers with them): after the grace
    its run is retried on h2 and succeeds. D3: one with no infrastructure budget ends lost,
    with its folder and run.json (host_lost, said in words)."""
    hosts, env = fleet
    for name, budget in (("gone", 3), ("nobudget", 0)):  # both to h1: it is packed first
        submit(
            env,
            tmp_path / name,
            f"""
            name: {name}
            image: convoy/busybox:1
            command: {ticks(12)}
            infra_retries: {budget}
            resources: {{cpus: 1, memory: 64MiB}}
        """,
        )
    env.wait_for("gone-1.00", {"running"})
    env.wait_for("nobudget-1.00", {"running"})
    assert {r["host"] for r in env.runs()} == {"h1"}, env.runs()
    h1 = hosts.host("h1")
    hosts.stop("h1")
    hosts.kill_agent("h1")
    for c in containers_of(h1, running_only=False):  # the host's containers die with it
        c.remove(force=True)
    lost = env.wait_for("nobudget-1.00", {"succeeded", "failed", "lost"}, timeout=120)
    assert (lost["state"], lost["code"], lost["attempt"]) == ("lost", "host_lost", 1), lost
    assert "h1 stopped answering" in lost["reason"] and f"{GRACE} s" in lost["reason"]
    assert "UNAVAILABLE" not in lost["reason"] and "unix:" not in lost["reason"]
    meta = run_json(env, lost)
    assert (meta["state"], meta["code"], meta["reason"]) == ("lost", "host_lost", lost["reason"])
    run = env.wait_for("gone-1.00", {"succeeded", "failed", "lost"}, timeout=120)
    assert (run["state"], run["host"], run["attempt"]) == ("succeeded", "h2", 2), run
    assert run["failures"] == {"application": 0, "infrastructure": 1}
    assert (Path(run["results_path"]) / "output.log").read_text() == tick_log(12)


def test_a_frozen_host_past_the_grace_is_fenced_when_it_thaws_D4(
    fleet: tuple[TestHosts, ConvoyEnv], tmp_path: Path
) -> None:
    """D4: the whole of h1 (sshd and agent) is frozen past the grace: its run is retried on
    h2; when h1 thaws, the old container is stopped within seconds, and h1's cpus count it
    until its agent confirms it gone. The old attempt is never accepted."""
    hosts, env = fleet
    submit(
        env,
        tmp_path,
        f"""
        name: frozen
        image: convoy/busybox:1
        command: {ticks(30)}
        resources: {{cpus: 2, memory: 64MiB}}
        placement: {{policy: pack}}
    """,
    )
    run = env.wait_for("frozen-1.00", {"running"})
    assert run["host"] == "h1"
    h1 = hosts.host("h1")
    hosts.freeze("h1", agent=True)
    try:
        run = env.wait_for("frozen-1.00", {"running"}, timeout=60)
        wait_until(lambda: env.runs()[0]["host"] == "h2" and env.runs()[0]["attempt"] == 2,
                   60, "retried on h2")  # fmt: skip
        assert containers_of(h1), "the old container runs on while h1 is frozen"
        assert host_view(env, "h1")["state"] == "lost"
        assert host_view(env, "h1")["allocated"]["cpus"] == 2  # counted: not confirmed gone
    finally:
        hosts.thaw("h1")
    t_thaw = time.monotonic()
    wait_until(lambda: not containers_of(h1), 20, "the old container stopped")
    stopped_in = time.monotonic() - t_thaw
    wait_until(lambda: host_view(env, "h1")["allocated"]["cpus"] == 0, 20, "h1 given back")
    run = env.wait_for("frozen-1.00", {"succeeded", "failed", "lost"}, timeout=90)
    assert (run["state"], run["host"], run["attempt"]) == ("succeeded", "h2", 2), run
    assert (Path(run["results_path"]) / "output.log").read_text() == tick_log(30)
    assert stopped_in < 15, stopped_in
    wait_until(lambda: "1" in run_json(env, run).get("superseded", {}), 30, "noted aside")
    meta = run_json(env, run)
    assert meta["superseded"]["1"]["host"] == "h1"


def test_a_short_partition_is_ridden_out_and_a_long_one_retried_then_fenced_D6(
    make_test_hosts: Callable[..., TestHosts], tmp_path: Path
) -> None:
    """iptables DROP of a host's address. Shorter than the grace (20 s here): the run goes on,
    one attempt. Longer: the run is retried on the other host; once healed the old container
    is stopped, and the host is up again within 10 s."""
    hosts = make_test_hosts(2)
    with cluster(hosts.hosts, up_args=("--host-grace", "20")) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        submit(
            env,
            tmp_path / "short",
            f"""
            name: short
            image: convoy/busybox:1
            command: {ticks(25)}
            resources: {{cpus: 2, memory: 64MiB}}
        """,
        )
        run = env.wait_for("short-1.00", {"running"})
        host = run["host"]
        hosts.partition(host)
        time.sleep(9)  # silent from 6 s without a heartbeat
        hosts.heal(host)
        run = env.wait_for("short-1.00", {"succeeded", "failed", "lost"}, timeout=90)
        assert (run["state"], run["attempt"], run["host"]) == ("succeeded", 1, host), run
        assert (Path(run["results_path"]) / "output.log").read_text() == tick_log(25)
        assert f"{host} stopped answering" in (env.home / "up.log").read_text()

        submit(
            env,
            tmp_path / "long",
            f"""
            name: long
            image: convoy/busybox:1
            command: {ticks(40)}
            resources: {{cpus: 2, memory: 64MiB}}
        """,
        )
        run = env.wait_for("long-1.00", {"running"})
        first = run["host"]
        other = "h2" if first == "h1" else "h1"
        hosts.partition(first)
        try:
            wait_until(lambda: env.runs("long-1")[0]["host"] == other, 60, "retried elsewhere")
            assert host_view(env, first)["state"] == "lost"
        finally:
            hosts.heal(first)
        back_in = wait_until(lambda: host_view(env, first)["state"] == "up", 30, "up again")
        wait_until(lambda: not containers_of(hosts.host(first)), 20, "the old one stopped")
        run = env.wait_for("long-1.00", {"succeeded", "failed", "lost"}, timeout=120)
        assert (run["state"], run["attempt"], run["host"]) == ("succeeded", 2, other), run
        assert back_in < 10, back_in


def test_a_full_disk_ends_the_attempt_disk_full_and_the_run_goes_elsewhere_D5(
    fleet: tuple[TestHosts, ConvoyEnv], tmp_path: Path
) -> None:
    """D5: h1's disk (a 24 MiB tmpfs under its attempts) fills up: the attempt ends with
    disk_full, h1 takes no new runs until it has room, and the run succeeds on h2."""
    hosts, env = fleet
    hosts.small_disk("h1", "24m")
    submit(
        env,
        tmp_path,
        """
        name: full
        image: convoy/busybox:1
        command: head -c 40000000 /dev/zero > big.bin && sleep 1 && echo written
        resources: {cpus: 2, memory: 64MiB}
        placement: {policy: pack}
    """,
    )
    run = env.wait_for("full-1.00", {"succeeded", "failed", "lost"}, timeout=120)
    assert (run["state"], run["host"], run["attempt"]) == ("succeeded", "h2", 2), run
    assert run["failures"] == {"application": 0, "infrastructure": 1}
    log = (env.home / "up.log").read_text()
    assert "h1 takes no new runs" in log and "disk is full" in log
    # Once its attempt is released, h1 has room again and takes runs.
    wait_until(lambda: host_view(env, "h1")["accepting"], 30, "h1 accepting again")


def test_application_failures_are_not_retried_by_the_infrastructure_budget(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """A non-zero exit, running out of memory and a timeout each end the run at once (retries
    0), whatever infra_retries allows: each with its code."""
    submit(
        convoy_env,
        tmp_path,
        """
        name: appfail
        image: convoy/busybox:1
        command: |
          case "$CASE" in
            exit) exit 3;;
            oom) sleep 0.5; head -c 64m /dev/zero | tail > /dev/null;;
            timeout) sleep 60;;
          esac
        matrix:
          case: [exit, oom, timeout]
        env: {CASE: "${case}"}
        infra_retries: 3
        timeout: 3s
        resources: {cpus: 1, memory: 16MiB}
    """,
    )
    codes = {}
    for i, case in enumerate(("exit", "oom", "timeout")):
        run = convoy_env.wait_for(f"appfail-1.0{i}", {"succeeded", "failed", "lost"}, timeout=60)
        assert (run["state"], run["attempt"]) == ("failed", 1), run
        assert run["failures"] == {"application": 1, "infrastructure": 0}, run
        codes[case] = run["code"]
    assert codes == {"exit": "exit_code", "oom": "oom_killed", "timeout": "timeout"}


def test_a_restarted_coordinator_keeps_healthy_agents_and_collects_what_ran_D6(
    fleet: tuple[TestHosts, ConvoyEnv], tmp_path: Path
) -> None:
    """SIGKILL of the coordinator mid-sweep: the restarted one adopts the agents (same pids)
    and their runs; every run succeeds once (one container each), with its log complete; the
    hosts keep no attempt folder of a run whose results are in (D7)."""
    hosts, env = fleet
    t0 = time.time()
    submit(
        env,
        tmp_path,
        f"""
        name: sweep
        image: convoy/busybox:1
        command: {ticks(6)}
        matrix: {{i: {{range: [0, 8]}}}}
        resources: {{cpus: 1, memory: 64MiB}}
    """,
    )
    env.wait_for("sweep-1.03", {"running"}, timeout=60)
    agents = {h: hosts.agent_pid(h) for h in ("h1", "h2")}
    env.coordinator.kill()
    env.coordinator.wait(10)
    time.sleep(3)
    env.coordinator = up(env.home, env.up_args)
    wait_hosts(env, {"h1": "up", "h2": "up"})
    assert {h: hosts.agent_pid(h) for h in ("h1", "h2")} == agents  # adopted, not replaced
    for i in range(8):
        run = env.wait_for(f"sweep-1.0{i}", {"succeeded", "failed", "lost"}, timeout=120)
        assert (run["state"], run["attempt"]) == ("succeeded", 1), run
        assert (Path(run["results_path"]) / "output.log").read_text() == tick_log(6)
        assert starts_of(run["run"], t0) == 1
    for h in ("h1", "h2"):
        wait_until(lambda h=h: not any((hosts.host(h).agent_home / "attempts").iterdir()),  # type: ignore[misc]
                   20, f"{h}'s attempt folders released")  # fmt: skip
