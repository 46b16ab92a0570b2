"""TestHosts: several real sshd's (and an extra dockerd) on this machine, and their cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.integration.testhosts import (
    TestHost,
    TestHosts,
    reap_stale,
    ssh_command,
    ssh_rsh,
)

ROOT = Path(__file__).resolve().parents[2]


def ssh(host: TestHost, command: str) -> str:
    done = subprocess.run([*ssh_command(host), command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def connect(host: TestHost, known_hosts: Path | None = None) -> Any:
    """asyncssh.connect to host (use with `async with` or await), trusting only known_hosts."""
    return asyncssh.connect(
        host.address, port=host.port, username=host.user, client_keys=[str(host.identity)],
        known_hosts=str(known_hosts or host.known_hosts), agent_path=None,
    )  # fmt: skip


def dead(pid: int) -> bool:
    """The process has exited (a zombie is dead: init reaps it, on some machines lazily)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def naming(root: Path) -> dict[int, str]:
    """Command lines of the live processes that mention root, by pid."""
    marker = str(root).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            cmdline = _read(entry / "cmdline")
            if marker in cmdline:
                found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode()
    return found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def bridges_of(root: Path) -> set[str]:
    """The cvyb bridges that TestHosts made for root (it labels them with the root as alias)."""
    found = set()
    for link in Path("/sys/class/net").glob("cvyb*"):
        if _read(link / "ifalias").decode().strip() == str(root):
            found.add(link.name)
    return found


def mounts_under(root: Path) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line
    ]


def test_ssh_command_runs_echo_on_each_host(test_hosts: list[TestHost]) -> None:
    """ssh_command (identity, known_hosts, strict checking) runs a command on every host."""
    assert [h.address for h in test_hosts] == ["127.0.0.2", "127.0.0.3"]
    for host in test_hosts:
        assert ssh(host, "echo ok") == "ok\n"


def test_asyncssh_logs_in_with_identity_and_known_hosts(test_hosts: list[TestHost]) -> None:
    """asyncssh logs in with the identity and checks the host key (fingerprint) by known_hosts."""

    async def main(host: TestHost) -> tuple[str, str]:
        async with connect(host) as conn:
            result = await conn.run("echo ok", check=True)
            key = conn.get_server_host_key()
            assert key is not None
            return str(result.stdout), key.get_fingerprint("sha256")

    for host in test_hosts:
        assert asyncio.run(main(host)) == ("ok\n", host.host_key_fingerprint)


def test_unknown_host_key_is_refused_by_asyncssh(test_hosts: list[TestHost]) -> None:
    """With an empty known_hosts, asyncssh refuses the host: HostKeyNotVerifiable."""
    empty = test_hosts[0].agent_home / "empty_known_hosts"
    empty.write_text("")

    async def main() -> None:
        async with connect(test_hosts[0], known_hosts=empty):
            pass

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(main())


def test_hosts_have_their_own_host_keys_and_agent_homes(test_hosts: list[TestHost]) -> None:
    """Hosts differ in host key and agent_home; known_hosts holds "[address]:port key"."""
    h1, h2 = test_hosts
    assert h1.host_key_fingerprint.startswith("SHA256:")
    assert h1.host_key_fingerprint != h2.host_key_fingerprint
    assert h1.agent_home != h2.agent_home and h1.agent_home.is_dir() and h2.agent_home.is_dir()
    assert h1.known_hosts.read_text().startswith(f"[{h1.address}]:{h1.port} ssh-ed25519 ")
    assert (h1.docker_host, h2.docker_host) == (None, None)


def test_unix_socket_forward_reaches_a_server_in_agent_home(test_hosts: list[TestHost]) -> None:
    """forward_local_path reaches a unix socket server in the host's agent_home."""
    host = test_hosts[1]
    remote = host.agent_home / "echo.sock"
    local = host.agent_home.parent / "fwd.sock"

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo " + await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        server = await asyncio.start_unix_server(echo, path=str(remote))
        async with server, connect(host) as conn:
            listener = await conn.forward_local_path(str(local), str(remote))
            reader, writer = await asyncio.open_unix_connection(str(local))
            writer.write(b"ping\n")
            answer = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
            listener.close()
            return answer

    assert asyncio.run(main()) == b"echo ping\n"


def test_rsync_over_ssh_command_copies_a_tree(test_hosts: list[TestHost], tmp_path: Path) -> None:
    """rsync -e ssh_rsh(host) copies a tree to the host."""
    host = test_hosts[0]
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "src" / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    dst = host.agent_home / "dst"
    subprocess.run(
        ["rsync", "-a", "-e", shlex.join(ssh_rsh(host)), f"{tmp_path / 'src'}/",
         f"{host.user}@{host.address}:{dst}/"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert (dst / "a.txt").read_text() == "a"
    assert (dst / "sub" / "b.bin").read_bytes() == (tmp_path / "src" / "sub" / "b.bin").read_bytes()


def test_stop_drops_connections_and_start_serves_the_same_key_again(
    make_test_hosts: Callable[..., TestHosts],
) -> None:
    """stop() drops open connections, refuses new ones; start() serves the same port and key."""
    hosts = make_test_hosts(1)
    h1 = hosts.hosts[0]

    async def main() -> None:
        async with connect(h1) as conn:
            hosts.stop("h1")
            with pytest.raises((asyncssh.Error, OSError)):
                await asyncio.wait_for(conn.run("echo ok", check=True), 10)
        with pytest.raises(OSError):
            await connect(h1)

    asyncio.run(main())
    assert dead(h1.sshd_pid)
    again = hosts.start("h1")
    assert hosts.hosts[0] is again and again.sshd_pid != h1.sshd_pid
    assert (again.port, again.host_key_fingerprint) == (h1.port, h1.host_key_fingerprint)
    assert ssh(again, "echo ok") == "ok\n"


def test_frozen_host_stalls_and_thawed_host_answers(
    make_test_hosts: Callable[..., TestHosts],
) -> None:
    """freeze() stalls open and new connections; thaw() resumes the open one."""
    hosts = make_test_hosts(1)
    h1 = hosts.hosts[0]

    async def main() -> None:
        async with connect(h1) as conn:
            hosts.freeze("h1")
            try:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(conn.run("echo ok"), 1)
                with pytest.raises((TimeoutError, asyncssh.Error, OSError)):
                    await asyncio.wait_for(connect(h1), 1)
            finally:
                hosts.thaw("h1")
            assert (await asyncio.wait_for(conn.run("echo ok"), 10)).stdout == "ok\n"

    asyncio.run(main())
    assert ssh(h1, "echo ok") == "ok\n"


def test_second_dockerd_starts_empty_and_runs_a_loaded_image(
    test_hosts_with_docker: list[TestHost], busybox_image: str
) -> None:
    """h2's own dockerd starts with no images, on a 10.200.N bridge, and runs a loaded image."""
    h1, h2 = test_hosts_with_docker
    assert h1.docker_host is None and h2.docker_host is not None
    docker = ["docker", "-H", h2.docker_host]

    def out(*args: str) -> str:
        return subprocess.run(
            [*docker, *args], check=True, capture_output=True, text=True, timeout=60
        ).stdout.strip()

    assert out("info", "--format", "{{.Images}} {{.Containers}}") == "0 0"
    assert out("images", "-q") == ""
    subnet = out("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Subnet}}")
    assert subnet.startswith("10.200.") and subnet.endswith(".0/24")
    load = f"docker save {busybox_image} | {shlex.join(docker)} load"
    subprocess.run(["bash", "-o", "pipefail", "-c", load], check=True, capture_output=True)
    assert out("run", "--rm", busybox_image, "echo", "hi") == "hi"
    assert subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def test_exit_leaves_no_process_bridge_mount_or_folder(busybox_image: str) -> None:
    """Exit with a frozen host, a running container and a daemon in agent_home leaves nothing."""
    root = Path(tempfile.mkdtemp(prefix="cvh-", dir="/tmp"))
    testhosts = TestHosts(root, 2, own_docker={"h2"})
    with testhosts as (h1, h2):
        assert h2.docker_host is not None
        docker = ["docker", "-H", h2.docker_host]
        load = f"docker save {busybox_image} | {shlex.join(docker)} load"
        subprocess.run(["bash", "-o", "pipefail", "-c", load], check=True, capture_output=True)
        container = subprocess.run(
            [*docker, "run", "-d", busybox_image, "sleep", "600"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        # an agent-like daemon started over ssh in agent_home, outliving its session
        daemon = int(ssh(h1, f"cd {h1.agent_home} && (sleep 600 >/dev/null 2>&1 & echo $!)"))
        dockerd = int((root / "h2" / "docker.pid").read_text())
        started = [h1.sshd_pid, h2.sshd_pid, dockerd, daemon, *naming(root)]
        pid = subprocess.run(
            [*docker, "inspect", "-f", "{{.State.Pid}}", container],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        started.append(int(pid))
        assert bridges_of(root) and mounts_under(root)
        subprocess.run(["ip", "link", "show", "docker0"], check=True, capture_output=True)
        testhosts.freeze("h1")  # teardown copes with a frozen host
    assert all(dead(pid) for pid in started), [p for p in started if not dead(p)]
    assert (naming(root), bridges_of(root), mounts_under(root)) == ({}, set(), [])
    assert not root.exists()
    subprocess.run(["ip", "link", "show", "docker0"], check=True, capture_output=True)
    subprocess.run(["docker", "run", "--rm", busybox_image, "true"], check=True, timeout=60)


def test_stale_root_of_a_killed_process_is_reaped(busybox_image: str) -> None:
    """Owner and dockerd SIGKILLed, a container running: the next reap_stale removes it all."""
    root = Path(tempfile.mkdtemp(prefix="cvh-", dir="/tmp"))
    script = """if True:
        import json, subprocess, sys
        from pathlib import Path
        from tests.integration.testhosts import TestHosts
        root, image = Path(sys.argv[1]), sys.argv[2]
        (h1,) = TestHosts(root, 1, own_docker={"h1"}).__enter__()
        docker = ["docker", "-H", h1.docker_host]
        saved = subprocess.run(["docker", "save", image], check=True, capture_output=True)
        subprocess.run([*docker, "load"], input=saved.stdout, check=True, capture_output=True)
        cid = subprocess.check_output([*docker, "run", "-d", image, "sleep", "600"], text=True)
        pid = subprocess.check_output([*docker, "inspect", "-f", "{{.State.Pid}}", cid.strip()])
        print(json.dumps([h1.sshd_pid, int(pid)]), flush=True)
        sys.stdin.read()
    """
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(root), busybox_image],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.kill()  # no cleanup of its own: reap_stale must do it
        child.wait()
        assert line, "the child did not start its hosts"
        dockerd = int((root / "h1" / "docker.pid").read_text())
        pids = [*json.loads(line), dockerd, *naming(root)]
        os.kill(dockerd, signal.SIGKILL)  # and its containers are left running
        assert bridges_of(root) and mounts_under(root) and not dead(pids[1])  # the container runs
        assert root in reap_stale(root.parent)
        assert [p for p in pids if not dead(p)] == []
        assert (naming(root), bridges_of(root), mounts_under(root)) == ({}, set(), [])
        assert not root.exists()
    finally:
        child.kill()
        child.wait()
        reap_stale(root.parent)  # whatever this test left, should it fail
