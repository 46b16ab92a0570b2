"""The agent's side of the lifecycle, with the fake runtime on a real gRPC server (no Docker):
WatchAttempts (a snapshot, then changes, heartbeats), reason codes, whole releases, and a full
disk that never stops the agent."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

import convoy.agent.attempts as attempts_module
from convoy.agent.attempts import AttemptRequest, Attempts, AttemptState
from convoy.agent.policy import Policy, load_policy
from convoy.agent.runtime import FakeRuntime
from convoy.agent.server import AgentService, host_capacity
from convoy.errors import UsageError
from convoy.v1 import agent_pb2 as pb
from convoy.v1 import agent_pb2_grpc as pb_grpc

SOURCES = Path(__file__).parent / "snapshots"  # any small folder: a run's sources, copied


def request(n: int, owner: str = "c1", **env: str) -> AttemptRequest:
    return AttemptRequest(
        attempt_id=f"r.{n:02d}-a1", run_id=f"r.{n:02d}", submission_id="r", experiment="e",
        image="img", argv=("true",), env={"CONVOY_FAKE_DURATION": "0.05", **env}, cpus=1.0,
        memory_bytes=1 << 20, network="none", timeout_seconds=0, source_path=str(SOURCES),
        owner=owner,
    )  # fmt: skip


async def _agent(tmp_path: Path) -> tuple[Attempts, grpc.aio.Server, pb_grpc.AgentStub]:
    attempts = Attempts(tmp_path / "home", FakeRuntime(tmp_path / "fake"), "agent1",
                        overlay=False)  # fmt: skip
    server = grpc.aio.server()
    pb_grpc.add_AgentServicer_to_server(
        AgentService(attempts, "h1", host_capacity(2, 1 << 30)), server
    )
    sock = tmp_path / "a.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    return attempts, server, pb_grpc.AgentStub(grpc.aio.insecure_channel(f"unix:{sock}"))


async def _events(stub: pb_grpc.AgentStub, owner: str) -> AsyncIterator[pb.AgentEvent]:
    async for ev in stub.WatchAttempts(pb.WatchAttemptsRequest(owner=owner, heartbeat_seconds=0.2)):
        yield ev


def test_watch_gives_the_owner_s_attempts_then_their_changes_and_heartbeats(
    tmp_path: Path,
) -> None:
    """The snapshot holds the owner's attempts only; an attempt's end arrives as a change with
    its code; a quiet agent sends heartbeats."""

    async def main() -> None:
        attempts, server, stub = await _agent(tmp_path)
        try:
            await attempts.start(request(0, CONVOY_FAKE_DURATION="30"))
            await attempts.start(request(1, owner="c2"))
            stream = _events(stub, "c1")
            first = await anext(stream)
            assert [a.attempt_id for a in first.snapshot.attempts] == ["r.00-a1"]
            assert first.snapshot.attempts[0].owner == "c1"
            assert first.snapshot.attempts[0].resources.cpus == 1.0
            assert first.snapshot.accepting
            await attempts.start(request(2, CONVOY_FAKE_EXIT="3"))
            seen = []
            async for ev in stream:
                kind = ev.WhichOneof("kind")
                seen.append(kind)
                if kind == "changed" and ev.changed.state == pb.ATTEMPT_EXITED:
                    assert ev.changed.attempt_id == "r.02-a1"
                    assert (ev.changed.code, ev.changed.exit_code) == ("exit_code", 3)
                    break
            assert "changed" in seen
            beat = await anext(stream)
            while beat.WhichOneof("kind") != "heartbeat":
                beat = await anext(stream)
            assert beat.heartbeat.accepting
            await attempts.cancel("r.00-a1", 0)  # not left running: its thread would wait
        finally:
            await server.stop(0)
            await attempts.close()

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize(("env", "code"), [
    ({"CONVOY_FAKE_OOM": "1"}, "oom_killed"),
    ({"CONVOY_FAKE_EXIT": "0"}, "exit_code"),
    ({"CONVOY_FAKE_DISK_FULL": "1"}, "disk_full"),
    ({"CONVOY_FAKE_START_ERROR": "no such thing"}, "runtime_error"),
])  # fmt: skip
def test_an_ended_attempt_says_why_with_a_code(
    tmp_path: Path, env: dict[str, str], code: str
) -> None:
    async def main() -> None:
        attempts = Attempts(tmp_path / "home", FakeRuntime(tmp_path / "fake"), "a1",
                            overlay=False)  # fmt: skip
        try:
            await attempts.start(request(0, **env))
            status = await attempts.wait("r.00-a1")
            assert status.code == code, status
        finally:
            await attempts.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_whole_release_forgets_the_attempt_and_removes_its_folder(tmp_path: Path) -> None:
    async def main() -> None:
        attempts = Attempts(tmp_path / "home", FakeRuntime(tmp_path / "fake"), "a1",
                            overlay=False)  # fmt: skip
        try:
            await attempts.start(request(0))
            await attempts.wait("r.00-a1")
            folder = attempts.root / "r.00-a1"
            attempts.release("r.00-a1")
            assert (folder / "log" / "output.log").exists()  # the workspace only
            attempts.release("r.00-a1", whole=True)
            assert not folder.exists() and not attempts.known("r.00-a1")
        finally:
            await attempts.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_full_disk_never_stops_the_agent_and_the_run_ends_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D5: writing the status hits ENOSPC mid-run: the attempt still ends (with disk_full),
    its status is kept and written once there is room, and the host refuses new runs."""

    async def main() -> None:
        attempts = Attempts(tmp_path / "home", FakeRuntime(tmp_path / "fake"), "a1",
                            overlay=False)  # fmt: skip
        real_write = attempts_module.write_json
        full = {"on": False}

        def write_json(path: Path, value: object, **kw: object) -> None:
            if full["on"] and path.name == "status.json":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real_write(path, value, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(attempts_module, "write_json", write_json)
        try:
            await attempts.start(request(0, CONVOY_FAKE_DURATION="0.3", CONVOY_FAKE_EXIT="1"))
            full["on"] = True  # the disk fills: statvfs says so, and writes fail
            monkeypatch.setenv("CONVOY_AGENT_MIN_FREE", str(1 << 62))
            status = await attempts.wait("r.00-a1")
            assert status.state is AttemptState.EXITED and status.code == "disk_full"
            assert "disk was full" in status.reason
            a = attempts.get("r.00-a1")
            assert a.unsaved
            assert not attempts.room()[0]
            full["on"] = False
            monkeypatch.delenv("CONVOY_AGENT_MIN_FREE")
            assert attempts.room()[0]
            attempts.save_unsaved()
            assert not a.unsaved
            assert '"disk_full"' in (a.dir / "status.json").read_text()
        finally:
            await attempts.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_room_refuses_runs_below_the_minimum_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = Attempts(tmp_path / "home", FakeRuntime(tmp_path / "fake"), "a1", overlay=False)
    assert attempts.room() == (True, "")
    monkeypatch.setenv("CONVOY_AGENT_MIN_FREE", str(1 << 62))
    ok, why = attempts.room()
    assert not ok and "disk is full" in why


def test_the_agent_refuses_a_network_its_policy_does_not_allow(tmp_path: Path) -> None:
    """Whatever the coordinator sends: a network the host's policy does not list fails the
    attempt with the code `refused`, saying what the host allows; nothing is started."""

    async def main() -> None:
        policy = Policy(networks=("none",), run_as=(1000, 1000), source="set in test")
        attempts = Attempts(tmp_path / "home", FakeRuntime(tmp_path / "fake"), "a1",
                            overlay=False, policy=policy)  # fmt: skip
        try:
            req = replace(request(0), network="host")
            status = await attempts.start(req)
            assert (status.state, status.code) == (AttemptState.ERROR, "refused")
            assert "does not allow network 'host' (it allows: none; set in test)" in status.reason
            assert list((tmp_path / "fake").glob("*.json")) == []  # no container made
        finally:
            await attempts.close()

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize(("text", "error"), [
    ("networks: host", "networks: expected a list"),
    ("run_as: root", 'run_as: expected "uid:gid"'),
    ("networks: [none]\nnetwork: [host]", "unknown policy fields ['network']"),
    ("[1, 2]", "expected a mapping"),
    ("a: [", "not valid YAML"),
])  # fmt: skip
def test_a_bad_policy_is_refused_naming_the_file(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(error)) as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_the_policy_s_defaults_are_the_safe_ones(tmp_path: Path) -> None:
    policy = load_policy(tmp_path / "none.yaml")
    assert policy.networks == ("none", "bridge")
    assert policy.run_as == ((65534, 65534) if os.geteuid() == 0 else (os.geteuid(),
                                                                       os.getegid()))  # fmt: skip
    given = tmp_path / "policy.yaml"
    given.write_text('networks: [none, bridge, host]\nrun_as: "1000:100"\n')
    assert load_policy(given) == Policy(("none", "bridge", "host"), (1000, 100), f"set in {given}")


def test_an_agent_with_a_bad_policy_does_not_start_and_says_why(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "policy.yaml").write_text("run_as: 0\n")
    out = subprocess.run(
        [sys.executable, "-m", "convoy.agent", "--home", str(home), "--socket",
         str(tmp_path / "a.sock"), "--runtime", "fake"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out
    assert 'policy.yaml: run_as: expected "uid:gid"' in out.stderr
    assert "Traceback" not in out.stderr
