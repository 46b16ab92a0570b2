"""Hosts managed through the running coordinator (AddHost, RemoveHost, TrustHost, by way of
`convoy hosts add|remove|trust`): real sshd test hosts, a real coordinator, no restart."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

from .cluster import add_args, cluster, down, up, wait_hosts
from .conftest import ConvoyEnv, write_experiment
from .testhosts import TestHost

pytestmark = pytest.mark.docker


def _hosts(env: ConvoyEnv) -> dict[str, dict[str, object]]:
    out = env.cli("hosts", "--json")
    assert out.returncode == 0, out.stderr
    return {h["name"]: h for h in json.loads(out.stdout)}


def test_a_host_added_through_the_api_takes_a_run_without_a_restart(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """`convoy hosts add` and `trust` with a coordinator running: it writes the host to its
    file, connects to it at once, and a run pinned to it lands there, the coordinator never
    restarted."""
    h1, h2 = test_hosts
    spec = write_experiment(tmp_path, """
        name: onh2
        image: convoy/busybox:1
        command: echo on the new host
        resources: {cpus: 1, memory: 64MiB}
        placement: {hosts: [h2]}
    """)  # fmt: skip
    with cluster([h1], later=[h2]) as env:
        wait_hosts(env, {"h1": "up"})
        pid = env.coordinator.pid
        out = env.cli(*add_args(h2, "rack=b"))
        assert out.returncode == 0, out.stderr
        assert "the coordinator connects to it now" in out.stdout
        assert "name: h2" in (env.home / "hosts.yaml").read_text()
        out = env.cli("hosts", "trust", "h2", "--fingerprint", h2.host_key_fingerprint)
        assert out.returncode == 0, out.stderr
        wait_hosts(env, {"h1": "up", "h2": "up"})
        assert _hosts(env)["h2"]["labels"] == {"rack": "b"}
        out = env.cli("run", str(spec))
        assert out.returncode == 0, out.stderr + (env.home / "up.log").read_text()
        [run] = env.runs("onh2-1")
        assert run["host"] == "h2" and run["state"] == "succeeded"
        assert env.coordinator.poll() is None and env.coordinator.pid == pid


def test_trust_with_a_wrong_fingerprint_records_nothing_and_the_right_one_brings_the_host_up(
    test_hosts: list[TestHost],
) -> None:
    """A host added with a key the coordinator does not know stays unreachable; trusting it
    with another fingerprint is refused (status 2) and records nothing; with its own, the
    key is recorded and the host comes up."""
    h1 = test_hosts[0]
    with cluster([h1], trust=False) as env:
        known = env.home / "known_hosts"
        before = known.read_text() if known.exists() else ""
        wrong = "SHA256:" + "A" * 43
        out = env.cli("hosts", "trust", "h1", "--fingerprint", wrong)
        assert out.returncode == 2, out.stderr
        assert f"offers key {h1.host_key_fingerprint}, not {wrong}: not recorded" in out.stderr
        assert (known.read_text() if known.exists() else "") == before
        assert _hosts(env)["h1"]["state"] == "unreachable"
        out = env.cli("hosts", "trust", "h1")  # no terminal, no fingerprint: only said
        assert out.returncode == 2 and h1.host_key_fingerprint in out.stderr
        assert (known.read_text() if known.exists() else "") == before
        out = env.cli("hosts", "trust", "h1", "--fingerprint", h1.host_key_fingerprint)
        assert out.returncode == 0, out.stderr
        assert f"recorded h1's key {h1.host_key_fingerprint} in {known}" in out.stdout
        wait_hosts(env, {"h1": "up"})


def test_remove_is_refused_with_a_run_in_flight_and_forced_it_queues_the_run_elsewhere(
    test_hosts: list[TestHost], tmp_path: Path
) -> None:
    """`convoy hosts remove` of a host running a run is refused (status 2), naming the run,
    and changes nothing; with --force the host is gone from the file and the coordinator,
    and the run is placed again on the host left."""
    spec = write_experiment(tmp_path, """
        name: busy
        image: convoy/busybox:1
        command: sleep 120
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    with cluster(test_hosts) as env:
        wait_hosts(env, {"h1": "up", "h2": "up"})
        assert env.cli("run", "--detach", str(spec)).returncode == 0
        first = env.wait_for("busy-1.00", {"running"}, timeout=120)
        host, other = first["host"], ({"h1", "h2"} - {first["host"]}).pop()
        out = env.cli("hosts", "remove", host)
        assert out.returncode == 2
        assert f"{host} has 1 run(s) in flight: busy-1.00 (running)" in out.stderr
        assert f"name: {host}" in (env.home / "hosts.yaml").read_text()
        assert set(_hosts(env)) == {"h1", "h2"}
        out = env.cli("hosts", "remove", "--force", host)
        assert out.returncode == 0, out.stderr
        assert "1 run(s) were in flight on" in out.stderr and "queued again" in out.stderr
        assert f"name: {host}" not in (env.home / "hosts.yaml").read_text()
        assert set(_hosts(env)) == {other}
        again = env.wait_for("busy-1.00", {"running"}, timeout=120)  # queued again at once
        assert again["host"] == other and again["attempt"] == 2
        assert env.cli("cancel", "busy-1").returncode == 0
        env.wait_for("busy-1.00", {"cancelled"}, timeout=60)


def test_the_host_rpcs_answer_with_their_codes_and_keep_the_file(tmp_path: Path) -> None:
    """A coordinator started with no hosts: AddHost checks as the hosts file does
    (INVALID_ARGUMENT, ALREADY_EXISTS) and writes it; TrustHost and RemoveHost say NOT_FOUND
    for a host there is not; a host that cannot be reached fails TrustHost with exit status 1,
    recording nothing; `--file` naming another file is edited here, and said so."""
    home = Path(tempfile.mkdtemp(prefix="cvc-", dir="/tmp"))
    env = ConvoyEnv(home, up(home))
    try:
        with grpc.insecure_channel(f"unix:{home / 'coordinator.sock'}") as channel:
            api = pb_grpc.CoordinatorStub(channel)

            def code(call: Callable[[], object]) -> grpc.RpcError:
                with pytest.raises(grpc.RpcError) as err:
                    call()
                return err.value

            bad = code(lambda: api.AddHost(pb.AddHostRequest(name="h1", address="x", cpus=-1)))
            assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "cpus" in bad.details()
            added = api.AddHost(pb.AddHostRequest(name="h1", address="127.0.0.1", port=1))
            assert added.hosts_file == str(home / "hosts.yaml") and added.host.name == "h1"
            assert "name: h1" in (home / "hosts.yaml").read_text()
            again = code(lambda: api.AddHost(pb.AddHostRequest(name="h1", address="y")))
            assert again.code() == grpc.StatusCode.ALREADY_EXISTS
            assert api.Hosts(pb.HostsRequest()).hosts_file == added.hosts_file
            for call in (lambda: api.TrustHost(pb.TrustHostRequest(name="nope")),
                         lambda: api.RemoveHost(pb.RemoveHostRequest(name="nope"))):  # fmt: skip
                assert code(call).code() == grpc.StatusCode.NOT_FOUND
            down_host = code(lambda: api.TrustHost(pb.TrustHostRequest(name="h1")))
            assert down_host.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert ("convoy-exit-status", "1") in tuple(down_host.trailing_metadata() or ())
            assert not (home / "known_hosts").exists()
        other = tmp_path / "other.yaml"
        out = env.cli("hosts", "add", "h2", "127.0.0.1", "--file", str(other))
        assert out.returncode == 0, out.stderr
        assert f"the running coordinator keeps {home / 'hosts.yaml'}, not {other}" in out.stderr
        assert "name: h2" in other.read_text()
        assert "h2" not in (home / "hosts.yaml").read_text()
        out = env.cli("hosts", "remove", "h1")
        assert out.returncode == 0, out.stderr
        assert "and the running coordinator" in out.stdout
        assert "hosts: []" in (home / "hosts.yaml").read_text()
    finally:
        down(env)
        shutil.rmtree(home, ignore_errors=True)
