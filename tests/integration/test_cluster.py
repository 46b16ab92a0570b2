"""Runs across real SSH hosts: sshd on 127.0.0.2 and 127.0.0.3, agents installed over SSH,
sources synced content-addressed, images shipped to a host whose engine lacks them."""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import docker
import pytest

from .cluster import add_hosts, cluster, down, up, wait_hosts
from .conftest import write_experiment
from .testhosts import TestHost, TestHosts

pytestmark = pytest.mark.docker


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _peak(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_twenty_runs_spread_over_two_ssh_hosts_without_over_committing(
    test_hosts_with_docker: list[TestHost], tmp_path: Path
) -> None:
    """20 one-cpu runs on two 2-cpu SSH hosts: both used, at most 2 at once on each, every result
    checksum-verified; the agent is installed over SSH, the image shipped to h2's own engine."""
    h1, h2 = test_hosts_with_docker
    assert not (h1.agent_home / "lib").exists()  # nothing installed yet
    (tmp_path / "model.txt").write_text("the model\n")
    spec = write_experiment(tmp_path, """
        name: spread
        image: convoy/busybox:1
        command: cat model.txt; sleep 0.4; echo ${i} > out/${i}.txt
        matrix:
          i: {range: [0, 20]}
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".keep").write_text("")
    with cluster([h1, h2]) as env:
        out = env.cli("run", str(spec))
        assert out.returncode == 0, out.stderr + (env.home / "up.log").read_text()
    sub = tmp_path / "convoy-results/spread/spread-1"
    runs = [json.loads(p.read_text()) for p in sorted(sub.glob("*/run.json"))]
    assert len(runs) == 20 and all(r["state"] == "succeeded" for r in runs)
    by_host: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in runs:
        by_host[r["host"]].append((_ts(r["started_at"]), _ts(r["ended_at"])))
        assert (sub / r["run"] / "output.log").read_text() == "the model\n"
        assert set(r["files"]) == {f"out/{r['params']['i']}.txt"}  # only what it changed
        for rel, meta in r["files"].items():
            data = (sub / r["run"] / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    assert set(by_host) == {"h1", "h2"}
    assert all(_peak(iv) <= 2 for iv in by_host.values())
    assert (h1.agent_home / "lib").is_dir()  # installed over SSH
    h2_engine = docker.DockerClient(base_url=h2.docker_host)
    assert h2_engine.images.get("convoy/busybox:1")  # shipped over SSH


def test_a_host_with_an_unknown_key_is_refused_naming_it_and_its_fingerprint(
    test_hosts: list[TestHost],
) -> None:
    """A host whose key was never trusted is not used; `convoy hosts` says why, with the key."""
    h1 = test_hosts[0]
    with cluster([h1], trust=False) as env:
        out = env.cli("hosts", "--json")
        assert out.returncode == 0, out.stderr
        [host] = json.loads(out.stdout)
    assert host["state"] == "unreachable"
    assert "h1" in host["reason"] and h1.host_key_fingerprint in host["reason"]


def test_a_running_revision_sees_only_its_own_files_while_the_next_syncs(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """Revision 1, still running while revision 2 syncs, sees only revision 1's files; its
    result holds only the files it changed."""
    (tmp_path / "data.txt").write_text("v1\n")
    spec = write_experiment(tmp_path, """
        name: revs
        image: convoy/busybox:1
        command: sleep 3; cat data.txt; ls; echo made > made.txt
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    with cluster([test_hosts[0]]) as env:
        assert env.cli("run", "--detach", str(spec)).returncode == 0
        env.wait_for("revs-1.00", {"running"}, timeout=60)
        (tmp_path / "data.txt").write_text("v2 is longer\n")
        (tmp_path / "extra.txt").write_text("only in v2\n")
        out = env.cli("run", str(spec))
        assert out.returncode == 0, out.stderr
        env.wait_for("revs-1.00", {"succeeded"}, timeout=60)
    first = tmp_path / "convoy-results/revs/revs-1/revs-1.00"
    second = tmp_path / "convoy-results/revs/revs-2/revs-2.00"
    log1 = (first / "output.log").read_text()
    assert log1.startswith("v1\n") and "extra.txt" not in log1
    assert (second / "output.log").read_text().startswith("v2 is longer\n")
    assert "extra.txt" in (second / "output.log").read_text()
    assert set(json.loads((first / "run.json").read_text())["files"]) == {"made.txt"}
    assert (
        json.loads((first / "run.json").read_text())["revision"]
        != json.loads((second / "run.json").read_text())["revision"]
    )


def test_an_image_naming_an_unreachable_registry_is_shipped_instead(
    test_hosts_with_docker: list[TestHost], tmp_path: Path
) -> None:
    """The host cannot pull localhost:1/busybox:cvy (nothing listens there), so the coordinator
    ships its own copy over SSH and the run succeeds on the host's empty engine."""
    h2 = test_hosts_with_docker[1]
    engine = docker.from_env()
    engine.images.get("convoy/busybox:1").tag("localhost:1/busybox", "cvy")
    try:
        spec = write_experiment(tmp_path, """
            name: pulled
            image: localhost:1/busybox:cvy
            command: echo from the shipped image
        """)  # fmt: skip
        with cluster([h2]) as env:
            out = env.cli("run", str(spec))
            log = (env.home / "up.log").read_text()
            assert out.returncode == 0, out.stderr + log
        assert "could not pull localhost:1/busybox:cvy" in log
        assert docker.DockerClient(base_url=h2.docker_host).images.get("localhost:1/busybox:cvy")
    finally:
        engine.images.remove("localhost:1/busybox:cvy")


def test_a_host_that_stops_answering_gets_no_runs_until_it_is_back(
    make_test_hosts: Callable[..., TestHosts], tmp_path: Path
) -> None:
    """With h1's SSH frozen (SIGSTOP), new runs all go to h2; once thawed, h1 is up again."""
    hosts = make_test_hosts(2)
    spec = write_experiment(tmp_path, """
        name: failover
        image: convoy/busybox:1
        command: echo ${i}
        matrix:
          i: {range: [0, 6]}
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    with cluster(hosts.hosts) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        hosts.freeze("h1")
        try:
            wait_hosts(env, {"h1": "unreachable", "h2": "up"})
            out = env.cli("run", str(spec))
            assert out.returncode == 0, out.stderr
            assert {r["host"] for r in env.runs("failover-1")} == {"h2"}
        finally:
            hosts.thaw("h1")
        wait_hosts(env, {"h1": "up", "h2": "up"})


def test_placement_pins_runs_to_labelled_or_named_hosts(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """`placement: labels` sends every run to the hosts carrying them, `placement: hosts` to the
    hosts named; `policy: spread` puts two runs on two hosts where pack puts them on one; a
    placement no host matches is refused at submit (exit 2), naming the hosts' labels, and
    nothing is queued; so is one naming a host there is not (a typo)."""

    def experiment(name: str, placement: str, runs: int = 4) -> Path:
        return write_experiment(tmp_path / name, f"""
            name: {name}
            image: convoy/busybox:1
            command: echo ${{i}}
            matrix:
              i: {{range: [0, {runs}]}}
            resources: {{cpus: 1, memory: 64MiB}}
            placement: {placement}
        """)  # fmt: skip

    with cluster(test_hosts, labels={"h2": "rack=b"}) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        listed = json.loads(env.cli("hosts", "--json").stdout)
        assert {h["name"]: h["labels"] for h in listed} == {"h1": {}, "h2": {"rack": "b"}}
        assert "rack=b" in env.cli("hosts").stdout.splitlines()[2]  # h2's row, under LABELS
        out = env.cli("run", str(experiment("bylabel", "{labels: {rack: b}}")))
        assert out.returncode == 0, out.stderr
        assert [r["host"] for r in env.runs("bylabel-1")] == ["h2"] * 4
        out = env.cli("run", str(experiment("byname", "{hosts: [h1]}")))
        assert out.returncode == 0, out.stderr
        assert [r["host"] for r in env.runs("byname-1")] == ["h1"] * 4
        for policy, used in (("pack", ["h1", "h1"]), ("spread", ["h1", "h2"])):
            out = env.cli("run", str(experiment(policy, f"{{policy: {policy}}}", runs=2)))
            assert out.returncode == 0, out.stderr
            assert sorted(r["host"] for r in env.runs(f"{policy}-1")) == used
        out = env.cli("run", str(experiment("nowhere", "{labels: {rack: z}}")))
        assert out.returncode == 2, out.stderr
        assert "no connected host matches placement (labels rack=z)" in out.stderr
        assert "h1 (no labels); h2 (rack=b)" in out.stderr
        assert env.runs("nowhere-1") == []
        out = env.cli("run", str(experiment("typo", "{hosts: [h1, h3]}")))
        assert out.returncode == 2, out.stderr
        assert "placement.hosts: no host named 'h3'; the hosts: h1, h2" in out.stderr
        assert env.runs("typo-1") == []


def test_runs_pinned_to_a_host_taken_out_of_the_hosts_file_fail_saying_why(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """Runs waiting for h2 when the coordinator restarts without h2 in its hosts file would
    wait forever: they fail instead, their reason and run.json naming the placement and the
    hosts there are, and another submission's runs go on."""
    pinned = write_experiment(tmp_path / "pinned", """
        name: pinned
        image: convoy/busybox:1
        command: sleep 60
        matrix:
          i: [0, 1, 2]
        resources: {cpus: 2, memory: 64MiB}
        placement: {hosts: [h2]}
    """)  # fmt: skip
    anywhere = write_experiment(tmp_path / "anywhere", """
        name: anywhere
        image: convoy/busybox:1
        command: echo ok
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    with cluster(test_hosts) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        out = env.cli("run", "--detach", str(pinned))
        assert out.returncode == 0, out.stderr
        env.wait_for("pinned-1.00", {"running"})
        assert {r["state"] for r in env.runs("pinned-1")} == {"running", "queued"}
        down(env)
        hosts_yaml = (env.home / "hosts.yaml").read_text()
        out = env.cli("hosts", "remove", "h2")  # a run is in flight there: refused
        assert out.returncode == 2, out
        assert "h2 has 1 run(s) in flight: pinned-1.00 (running)" in out.stderr, out.stderr
        assert (env.home / "hosts.yaml").read_text() == hosts_yaml
        out = env.cli("hosts", "remove", "--force", "h2")
        assert out.returncode == 0, out.stderr
        assert "1 run(s) were in flight on h2" in out.stderr
        env.coordinator = up(env.home)
        for i in range(3):
            run = env.wait_for(f"pinned-1.0{i}", {"failed"}, timeout=30)
            assert "no host matches its placement (hosts h2) any more" in run["reason"]
            assert "the hosts: h1 (no labels)" in run["reason"]
            result = json.loads((tmp_path / "pinned/convoy-results/pinned/pinned-1" /
                                 f"pinned-1.0{i}/run.json").read_text())  # fmt: skip
            assert result["state"] == "failed" and result["reason"] == run["reason"]
        out = env.cli("run", str(anywhere))
        assert out.returncode == 0, out.stderr
        assert [(r["state"], r["host"]) for r in env.runs("anywhere-1")] == [("succeeded", "h1")]


def test_queued_runs_no_host_can_take_after_a_capacity_change_fail_saying_why(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """h1 offered 2 cpus when three 2-cpu runs were submitted; the coordinator restarts with
    h1 offering 1: the running one is adopted and succeeds, the two queued ones fail naming
    what they ask for and what the largest host offers, instead of waiting forever."""
    h1 = test_hosts[0]
    spec = write_experiment(tmp_path, """
        name: wide
        image: convoy/busybox:1
        command: sleep 6
        matrix:
          i: [0, 1, 2]
        resources: {cpus: 2, memory: 64MiB}
    """)  # fmt: skip
    with cluster([h1]) as env:
        wait_hosts(env, {"h1": "up"})
        out = env.cli("run", "--detach", str(spec))
        assert out.returncode == 0, out.stderr
        env.wait_for("wide-1.00", {"running"})
        down(env)
        assert env.cli("hosts", "remove", "--force", "h1").returncode == 0  # and back:
        add_hosts(env.home, [h1])
        hosts_file = env.home / "hosts.yaml"
        hosts_file.write_text(hosts_file.read_text().replace("cpus: 2", "cpus: 1"))
        env.coordinator = up(env.home)
        for i in (1, 2):
            run = env.wait_for(f"wide-1.0{i}", {"failed"}, timeout=30)
            assert run["reason"].startswith("no host it may use can ever run it: a run asks "
                                            "for 2 cpus"), run  # fmt: skip
            assert "the largest host (h1) offers 1 cpus" in run["reason"], run
        run = env.wait_for("wide-1.00", {"succeeded", "failed", "lost"}, timeout=60)
        assert (run["state"], run["attempt"]) == ("succeeded", 1), run


def test_a_run_whose_host_is_down_when_the_coordinator_restarts_is_adopted_not_run_twice(
    make_test_hosts: Callable[..., TestHosts], tmp_path: Path
) -> None:
    """The coordinator is killed while a run goes on on h2, and comes back while h2's SSH is
    frozen: it waits for h2 instead of queueing the run again (its container is still
    running there), then adopts attempt 1 and collects it."""
    hosts = make_test_hosts(2)
    spec = write_experiment(tmp_path, """
        name: steady
        image: convoy/busybox:1
        command: echo "attempt $CONVOY_ATTEMPT"; sleep 15; echo done
        resources: {cpus: 1, memory: 64MiB}
        placement: {hosts: [h2]}
    """)  # fmt: skip
    with cluster(hosts.hosts) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        out = env.cli("run", "--detach", str(spec))
        assert out.returncode == 0, out.stderr
        env.wait_for("steady-1.00", {"running"})
        env.coordinator.kill()
        env.coordinator.wait()
        hosts.freeze("h2")
        try:
            env.coordinator = up(env.home)
            deadline = time.monotonic() + 60
            while "host h2 is unreachable" not in (env.home / "up.log").read_text():
                assert time.monotonic() < deadline, (env.home / "up.log").read_text()
                time.sleep(0.2)
            time.sleep(1)  # the restarted coordinator has looked at the run by now
            [run] = env.runs("steady-1")
            assert (run["state"], run["attempt"]) == ("running", 1), run
        finally:
            hosts.thaw("h2")
        run = env.wait_for("steady-1.00", {"succeeded", "failed", "lost"}, timeout=90)
        assert (run["state"], run["attempt"]) == ("succeeded", 1), run
        log = tmp_path / "convoy-results/steady/steady-1/steady-1.00/output.log"
        assert log.read_text() == "attempt 1\ndone\n"


def _builds_on(host: TestHost) -> list[Path]:
    return sorted(p for p in (host.agent_home / "builds").glob("*") if (p / "result.json").exists())


def test_a_build_runs_once_per_host_and_never_again_for_that_revision(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """20 runs on two hosts: exactly one build on each, seen by all its runs; submitting the
    same revision again builds nothing."""
    h1, h2 = test_hosts
    spec = write_experiment(tmp_path, """
        name: built
        image: convoy/busybox:1
        build: cat /proc/sys/kernel/random/uuid > built-at; echo building
        command: cat built-at; sleep 0.2
        matrix:
          i: {range: [0, 20]}
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    with cluster([h1, h2]) as env:
        out = env.cli("run", str(spec))
        assert out.returncode == 0, out.stderr + (env.home / "up.log").read_text()
        first = tmp_path / "convoy-results/built/built-1"
        by_host: dict[str, set[str]] = defaultdict(set)
        for p in sorted(first.glob("*/run.json")):
            r = json.loads(p.read_text())
            assert r["state"] == "succeeded"
            by_host[r["host"]].add((first / r["run"] / "output.log").read_text())
        assert set(by_host) == {"h1", "h2"}
        assert all(len(seen) == 1 for seen in by_host.values())  # one build per host...
        assert by_host["h1"] != by_host["h2"]  # ...and each host made its own
        assert len(_builds_on(h1)) == len(_builds_on(h2)) == 1
        for name in ("h1", "h2"):
            assert (first / "build" / f"{name}.log").read_text() == "building\n"
            assert json.loads((first / "build" / f"{name}.json").read_text())["made_now"]

        out = env.cli("run", "--force", str(spec))  # run again, not reused: the build is
        assert out.returncode == 0, out.stderr
        second = tmp_path / "convoy-results/built/built-2"
        for p in sorted(second.glob("*/run.json")):
            r = json.loads(p.read_text())
            assert (second / r["run"] / "output.log").read_text() in by_host[r["host"]]
        assert len(_builds_on(h1)) == len(_builds_on(h2)) == 1  # nothing built again
        records = [json.loads(p.read_text()) for p in sorted(second.glob("build/*.json"))]
        assert [r["host"] for r in records] == ["h1", "h2"]  # each host's build is on record
        assert not any(r["made_now"] for r in records)
        assert {r["made_for"] for r in records} == {"built-1"}


def test_every_build_s_output_is_streamed_by_convoy_run(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """The build-log race: a client follows a build as soon as a run says `building`, which
    came before the build was asked of the host. 10 submissions of new sources, each building
    on both SSH hosts: all 20 builds' output reaches `convoy run`."""
    h1, h2 = test_hosts
    spec = write_experiment(tmp_path, """
        name: race
        image: convoy/busybox:1
        build: echo "compiling $(cat version)"
        command: 'true'
        matrix:
          i: [0, 1]
        resources: {cpus: 1, memory: 64MiB}
        placement: {policy: spread}
    """)  # fmt: skip
    with cluster([h1, h2]) as env:
        for n in range(1, 11):
            (tmp_path / "version").write_text(f"v{n}\n")  # new sources: a new build key
            out = env.cli("run", str(spec))
            assert out.returncode == 0, out.stderr
            for host in ("h1", "h2"):
                line = f"[race-{n}.build@{host}] compiling v{n}"
                assert line in out.stdout.splitlines(), (line, out.stdout, out.stderr)


def test_down_cancel_stops_the_ssh_hosts_agents_once_their_runs_ended(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """`convoy down --cancel` cancels the sleeping runs, then stops each SSH host's agent (its
    process gone), saying so per host."""
    h1, h2 = test_hosts
    spec = write_experiment(tmp_path, """
        name: sleepy
        image: convoy/busybox:1
        command: sleep 300
        matrix:
          i: [0, 1]
        resources: {cpus: 1, memory: 64MiB}
        placement: {policy: spread}
    """)  # fmt: skip
    with cluster([h1, h2]) as env:
        assert env.cli("run", "--detach", str(spec)).returncode == 0
        for i in (0, 1):
            env.wait_for(f"sleepy-1.0{i}", {"running"})
        pids = {h.name: int((h.agent_home / "agent.pid").read_text()) for h in (h1, h2)}
        out = env.cli("down", "--cancel", "--grace", "1")
        assert out.returncode == 0, out.stderr
        assert "cancelled 2 unfinished run(s)" in out.stdout
        for name, pid in pids.items():
            assert f"{name}: stopped agent (pid {pid})" in out.stdout, out.stdout
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not Path(f"/proc/{pid}").exists(), f"{name}'s agent {pid} still runs"
