"""SSHHost against real sshd's (tests/integration/testhosts.py), a real agent and Docker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from convoy import __version__
from convoy.agent.objects import ObjectStore
from convoy.agent.runtime import LABEL_PREFIX, DockerRuntime
from convoy.agent.server import agent_id_for
from convoy.content import hash_bytes
from convoy.coordinator.hosts.agents import AgentClient
from convoy.coordinator.hosts.bundle import build_bundle, bundle_id
from convoy.coordinator.hosts.hostsfile import HostConfig
from convoy.coordinator.hosts.ssh import HostKeyUnknown, SSHHost
from convoy.coordinator.runs.records import RunRecord
from convoy.errors import HostUnavailable
from convoy.spec import Resources
from tests.integration.cluster import add_hosts, cli
from tests.integration.conftest import remove_container
from tests.integration.testhosts import TestHost

pytestmark = pytest.mark.docker


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _agent_pids(agent_home: Path) -> list[int]:
    """This machine's processes that are an agent of agent_home (the hosts are all local)."""
    marker = b"--home\0" + str(agent_home).encode() + b"\0"
    return [
        int(p.name) for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"agent" in (c := _cmdline(int(p.name))) and marker in c
    ]  # fmt: skip


def _alive(pid: int) -> bool:
    return bool(_cmdline(pid))  # a zombie has no command line


@pytest.fixture
def coordinator_home() -> Iterator[Path]:
    """A fresh CONVOY_HOME (short: it holds the tunnels' unix sockets)."""
    home = Path(tempfile.mkdtemp(prefix="cvc-", dir="/tmp"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def hosts(test_hosts: list[TestHost], docker_runtime: DockerRuntime) -> Iterator[list[TestHost]]:
    """The test hosts; afterwards, their agents are killed and their containers removed."""
    yield test_hosts
    for th in test_hosts:
        for pid in _agent_pids(th.agent_home):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_agent_pids(th.agent_home) for th in test_hosts) and time.monotonic() < deadline:
        time.sleep(0.05)
    leaked = [pid for th in test_hosts for pid in _agent_pids(th.agent_home)]
    for th in test_hosts:
        label = f"{LABEL_PREFIX}agent={agent_id_for(th.agent_home)}"
        for c in docker_runtime.api.containers(all=True, filters={"label": label}):
            remove_container(docker_runtime.api, c["Id"])
    assert not leaked, f"agents outlived their SIGKILL: {leaked}"


def config_for(th: TestHost, **changes: object) -> HostConfig:
    fields: dict[str, object] = dict(
        name=th.name, address=th.address, port=th.port, user=th.user, identity=str(th.identity),
        agent_home=str(th.agent_home), docker_host=th.docker_host, cpus=2.0,
    )  # fmt: skip
    fields.update(changes)
    return HostConfig(**fields)  # type: ignore[arg-type]


def session(
    th: TestHost,
    home: Path,
    trusted: bool = True,
    ssh_config: Sequence[Path] = (),
    **changes: object,
) -> SSHHost:
    """An SSHHost reading no ~/.ssh files; with `trusted`, home's known_hosts holds the key."""
    if trusted:
        home.mkdir(parents=True, exist_ok=True)
        with open(home / "known_hosts", "a") as f:
            f.write(th.known_hosts.read_text())
    return SSHHost(config_for(th, **changes), home, ssh_config=ssh_config, user_known_hosts=None)


def test_the_bundle_alone_runs_the_agent(tmp_path: Path) -> None:
    """The bundle holds everything the agent imports: it starts with no site-packages at all."""
    bundle = build_bundle(tmp_path / "cache")
    assert bundle.id == bundle_id() and bundle.size < 30 << 20
    with tarfile.open(bundle.path) as tar:
        tar.extractall(tmp_path / "lib", filter="data")
    assert (tmp_path / "lib" / "VERSION").read_text() == bundle.id + "\n"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "lib")}
    out = subprocess.run(
        [sys.executable, "-S", "-P", "-c",
         "import convoy.agent.server, convoy.agent.__main__; print('ok')"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.stdout == "ok\n", out.stderr
    version = subprocess.run(
        [sys.executable, "-S", "-P", "-m", "convoy.agent", "--version"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (version.returncode, version.stdout) == (0, __version__ + "\n"), version.stderr


def test_unknown_host_key_fails_closed_and_trust_lets_it_in(
    hosts: list[TestHost], coordinator_home: Path
) -> None:
    """An unknown host key refuses the connection, naming host and fingerprint; trust() fixes it."""
    th = hosts[0]

    async def scenario() -> None:
        host = session(th, coordinator_home, trusted=False)
        with pytest.raises(HostKeyUnknown) as err:
            await host.connect()
        assert not host.connected
        e = err.value
        assert th.name in str(e) and th.host_key_fingerprint in str(e)
        assert f"convoy hosts trust {th.name}" in str(e)
        assert (e.fingerprint, e.key_type, e.changed) == (th.host_key_fingerprint, "ssh-ed25519",
                                                          False)  # fmt: skip
        assert await host.host_key() == ("ssh-ed25519", th.host_key_fingerprint)
        with pytest.raises(HostKeyUnknown):  # a fingerprint the user did not check is refused
            await host.trust(fingerprint="SHA256:" + "A" * 43)
        assert not (coordinator_home / "known_hosts").exists()
        assert await host.trust(fingerprint=th.host_key_fingerprint) == th.host_key_fingerprint
        line = (coordinator_home / "known_hosts").read_text()
        assert line.startswith(f"[{th.address}]:{th.port} ssh-ed25519 ")
        await host.connect()
        assert (await host.run("echo ok")).stdout == "ok\n"
        await host.close()

    asyncio.run(scenario())


def test_changed_host_key_is_refused(hosts: list[TestHost], coordinator_home: Path) -> None:
    """A host offering another key than known_hosts holds is refused as CHANGED."""
    h1, h2 = hosts[0], hosts[1]
    h2_key = h2.known_hosts.read_text().split(" ", 1)[1]
    (coordinator_home / "known_hosts").write_text(f"[{h1.address}]:{h1.port} {h2_key}")

    async def scenario() -> None:
        host = session(h1, coordinator_home, trusted=False)
        with pytest.raises(HostKeyUnknown) as err:
            await host.connect()
        assert err.value.changed and "CHANGED" in str(err.value)
        assert h1.host_key_fingerprint in str(err.value)
        recorded = (h2.host_key_fingerprint, str(coordinator_home / "known_hosts"))
        assert err.value.recorded == (recorded,)  # the key it had, and where
        assert f"records {recorded[0]} (in {recorded[1]})" in str(err.value)

    asyncio.run(scenario())
    # Trusting the new key says which one it replaces.
    add_hosts(coordinator_home, [h1], trust=False)
    out = cli(coordinator_home, "hosts", "trust", h1.name, "--fingerprint",
              h1.host_key_fingerprint)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"it replaces the key recorded before: {h2.host_key_fingerprint}" in out.stdout
    assert h2.host_key_fingerprint not in (coordinator_home / "known_hosts").read_text()


def test_ensure_agent_installs_starts_and_a_second_coordinator_reuses_it(
    hosts: list[TestHost], coordinator_home: Path
) -> None:
    """A bare host gets the bundle and a started agent; a second coordinator reuses that agent."""
    th = hosts[0]

    async def scenario() -> None:
        host = session(th, coordinator_home / "c1")
        target = await host.ensure_agent()
        assert target == f"unix:{coordinator_home / 'c1' / 'tunnels' / 'h1.sock'}"
        assert host.install_seconds > 0
        assert (th.agent_home / "lib" / bundle_id() / "VERSION").read_text() == bundle_id() + "\n"
        client = AgentClient(target)
        info = await client.describe()
        await client.close()
        assert (info.name, info.version, info.capacity.cpus) == (th.name, __version__, 2.0)
        pid = await host.agent_pid()
        assert pid is not None and _agent_pids(th.agent_home) == [pid]

        other = session(th, coordinator_home / "c2")
        client = AgentClient(await other.ensure_agent())
        assert (await client.describe()).version == __version__
        await client.close()
        assert other.install_seconds == 0  # nothing reinstalled
        assert await other.agent_pid() == pid and _agent_pids(th.agent_home) == [pid]
        await other.close()
        await host.close()

    asyncio.run(scenario())


def test_aes_gcm_is_negotiated_unless_ssh_config_names_ciphers(
    hosts: list[TestHost], coordinator_home: Path
) -> None:
    """AES-GCM moves objects at twice asyncssh's default chacha20 speed; a user's Ciphers wins."""
    th = hosts[0]

    async def scenario() -> None:
        host = session(th, coordinator_home / "c1")
        await host.connect()
        assert host.cipher == "aes128-gcm@openssh.com"
        await host.close()
        config = coordinator_home / "ssh_config"
        config.write_text(f"Host {th.address}\n  Ciphers aes256-ctr\n")
        host = session(th, coordinator_home / "c2", ssh_config=[config])
        await host.connect()
        assert host.cipher == "aes256-ctr"
        await host.close()

    asyncio.run(scenario())


def test_agent_outlives_the_ssh_session(hosts: list[TestHost], coordinator_home: Path) -> None:
    """Closing the session leaves the agent running; a new session reconnects to the same one."""
    th = hosts[0]

    async def scenario() -> None:
        host = session(th, coordinator_home)
        await host.ensure_agent()
        pid = await host.agent_pid()
        assert pid is not None
        await host.close()
        assert not host.tunnel_path.exists()
        await asyncio.sleep(0.5)  # time for a hang-up to reach it, if it were to
        assert _alive(pid)

        again = SSHHost(host.cfg, coordinator_home, ssh_config=[], user_known_hosts=None)
        client = AgentClient(await again.ensure_agent())
        assert (await client.describe()).name == th.name
        await client.close()
        assert await again.agent_pid() == pid
        await again.close()

    asyncio.run(scenario())


def test_agent_of_another_build_is_replaced(hosts: list[TestHost], coordinator_home: Path) -> None:
    """An agent started from another bundle is stopped and this coordinator's one started."""
    th = hosts[0]

    async def scenario() -> None:
        host = session(th, coordinator_home)
        await host.ensure_agent()
        old = await host.agent_pid()
        await host.close()
        (th.agent_home / "agent.bundle").write_text("0.0.1-older\n")
        again = SSHHost(host.cfg, coordinator_home, ssh_config=[], user_known_hosts=None)
        client = AgentClient(await again.ensure_agent())
        assert (await client.describe()).version == __version__
        await client.close()
        new = await again.agent_pid()
        assert old is not None and new is not None and new != old
        assert not _alive(old) and _agent_pids(th.agent_home) == [new]
        assert (th.agent_home / "agent.bundle").read_text().strip() == bundle_id()
        await again.close()

    asyncio.run(scenario())


def test_a_container_runs_through_the_tunnel(
    hosts: list[TestHost], coordinator_home: Path, busybox_image: str, tmp_path: Path
) -> None:
    """StartAttempt over the SSH tunnel runs a container, and WaitAttempt reports its exit 0."""
    th = hosts[0]
    source = tmp_path / "src"
    source.mkdir()
    (source / "hello.txt").write_text("hi\n")
    run = RunRecord(
        id="r-ssh-1", submission_id="s-ssh", experiment="ssh", index=0, params={},
        command="cat hello.txt && echo done", env={}, image=busybox_image,
        resources=Resources(cpus=0.5, memory_bytes=64 << 20), retries=0, timeout_seconds=60,
        network="none", outputs=(), revision="", results_path="", priority=0, seq=1, attempt=1,
    )  # fmt: skip

    async def scenario() -> None:
        host = session(th, coordinator_home)
        client = AgentClient(await host.ensure_agent())
        started = await client.start(run, source_path=str(source))
        assert started.state in ("starting", "running", "exited"), started.reason
        outcome = await asyncio.wait_for(client.wait(run.attempt_id), 60)
        assert (outcome.state, outcome.exit_code) == ("exited", 0), outcome.reason
        out = b"".join([data async for _, data in client.read_log(run.attempt_id, 0, False)])
        assert b"hi\n" in out and b"done" in out
        await client.close()
        await host.close()

    asyncio.run(scenario())


def test_a_python_without_the_agent_dependencies_is_refused(
    hosts: list[TestHost], coordinator_home: Path
) -> None:
    """A host python of another version without the agent's packages gets a message saying what
    to install or configure."""
    others = [
        p for p in Path("/root/.pyenv/versions").glob("3.1[2-9]*/bin/python3") if p.exists()
    ] if Path("/root/.pyenv/versions").is_dir() else []  # fmt: skip
    if not others:
        pytest.skip("no python 3.12+ beside this one on this machine")

    async def scenario() -> None:
        host = session(hosts[0], coordinator_home, python=str(others[0]))
        with pytest.raises(HostUnavailable) as err:
            await host.ensure_agent()
        assert "pip install" in str(err.value) and "python:" in str(err.value)
        await host.close()

    asyncio.run(scenario())


def test_objects_travel_on_a_channel_of_their_own_and_a_killed_agent_is_unavailable(
    hosts: list[TestHost], coordinator_home: Path
) -> None:
    """put_objects goes through an SSH channel to the agent's store socket (no local socket
    is made for it), stores every object, and when the agent is gone fails UNAVAILABLE (a
    failure the coordinator retries across a reconnect) rather than hanging."""
    th = hosts[0]
    big = os.urandom(3 << 20)
    small = [os.urandom(2048) for _ in range(500)]
    items = [(hash_bytes(d), d, True) for d in small]
    items[250:250] = [
        (hash_bytes(big), big[: 1 << 20], False),
        (hash_bytes(big), big[1 << 20 :], True),
    ]

    async def objects(
        items: list[tuple[str, bytes, bool]],
    ) -> AsyncIterator[tuple[str, bytes, bool]]:
        for item in items:
            yield item

    async def scenario() -> grpc.StatusCode:
        host = session(th, coordinator_home)
        await host.ensure_agent()
        client = host.client()
        try:
            stored = await client.put_objects(objects(items))
            assert stored == len(big) + sum(map(len, small))
            tunnels = sorted(p.name for p in (coordinator_home / "tunnels").iterdir())
            assert tunnels == [f"{th.name}.sock"]  # gRPC's only
            for pid in _agent_pids(th.agent_home):
                os.kill(pid, signal.SIGKILL)
            again = [(hash_bytes(b"after"), b"after", True)]
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await asyncio.wait_for(client.put_objects(objects(again)), 30)
            return raised.value.code()
        finally:
            await client.close()
            await host.close()

    assert asyncio.run(scenario()) == grpc.StatusCode.UNAVAILABLE
    store = ObjectStore(th.agent_home / "store")
    assert store.missing([hash_bytes(big), *map(hash_bytes, small)]) == []
