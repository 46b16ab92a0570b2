"""Several SSH hosts on one machine for integration tests: real OpenSSH sshd's on 127.0.0.2, ...

    root = Path(tempfile.mkdtemp(prefix="cvh-", dir="/tmp"))
    with TestHosts(root, 2, own_docker={"h2"}) as hosts:
        subprocess.run([*ssh_command(hosts[0]), "echo ok"], check=True)

Each host is one `sshd -D` with its own host key, config, known_hosts file and agent folder; a
host named in own_docker also gets its own dockerd (own data-root, exec-root, socket and bridge
cvyb<N> with 10.200.<N>.1/24, no iptables rules), which starts with no images.

Everything started is recorded in <root>/.testhosts.json (pid and start time, bridges, docker
sockets), and torn down from there by __exit__, by an atexit hook, and by the next TestHosts on
the same machine when the process that made the root died without cleaning up (SIGKILL).
Teardown: the extra dockerd's containers, the dockerd, the sshd's with their connections, any
process still naming the root folder (cmdline, environ, cwd), mounts under the root, the bridges,
then the root folder itself. Keep the root short (unix socket paths are limited to 107 bytes).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

SSHD = "/usr/sbin/sshd"
STATE = ".testhosts.json"
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes with the NUL; containerd nests deeper


@dataclass(frozen=True)
class TestHost:
    __test__ = False  # not a pytest test class

    name: str  # "h1", "h2", ...
    address: str  # "127.0.0.2", "127.0.0.3", ...
    port: int
    user: str
    identity: Path  # the client's private key (ed25519, no passphrase), shared by all hosts
    known_hosts: Path  # "[address]:port key" of this host only
    host_key_fingerprint: str  # "SHA256:..."
    agent_home: Path  # this host's own folder for convoy's agent state
    docker_host: str | None  # "unix://..." when the host has its own dockerd, else None
    sshd_pid: int


def ssh_command(host: TestHost) -> list[str]:
    """The ssh command line that logs in to host; append a remote command."""
    return [*ssh_rsh(host), f"{host.user}@{host.address}"]


def ssh_rsh(host: TestHost) -> list[str]:
    """ssh_command without the destination: for `rsync -e shlex.join(ssh_rsh(host))`."""
    return [
        "ssh", "-i", str(host.identity), "-p", str(host.port),
        "-o", f"UserKnownHostsFile={host.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
    ]  # fmt: skip


class TestHosts:
    """Context manager: `count` sshd's (h1, h2, ...), and a dockerd for each name in own_docker."""

    __test__ = False  # not a pytest test class

    def __init__(self, root: Path, count: int = 2, own_docker: Iterable[str] = frozenset()) -> None:
        if not 1 <= count <= 200:
            raise ValueError(f"count must be 1..200, not {count}")
        self.root = Path(root).absolute()
        self.count = count
        self.own_docker = frozenset(own_docker)
        names = {f"h{i}" for i in range(1, count + 1)}
        if not self.own_docker <= names:
            raise ValueError(f"own_docker names unknown hosts: {sorted(self.own_docker - names)}")
        self.hosts: list[TestHost] = []
        self.known_hosts = self.root / "known_hosts"  # all hosts' keys in one file
        self.timings: dict[str, float] = {}  # seconds: "sshd" (all hosts), "dockerd" (each)
        self.leaked: list[str] = []  # processes the teardown had to kill by their root reference
        self._popens: dict[str, subprocess.Popen[bytes]] = {}
        self._frozen: dict[str, list[tuple[int, int]]] = {}
        self._state: dict[str, Any] = {"owner": _ident(os.getpid()), "procs": {}, "bridges": []}
        self._state["dockers"] = {}
        self._closed = False
        self._entered = False

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> list[TestHost]:
        if self._entered:
            raise RuntimeError("a TestHosts is entered once")
        self._entered = True
        reap_stale(self.root.parent, exclude=self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        _check_socket_path(self.root / "h00" / "x" / "containerd" / "containerd.sock")
        self._save()
        _LIVE.add(self)
        try:
            self._start_all()
        except BaseException:
            self.close()
            raise
        return self.hosts

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        errors = self.close()
        if errors and exc_type is None:
            raise RuntimeError("TestHosts teardown: " + "; ".join(errors))

    def close(self) -> list[str]:
        """Stop and remove everything; returns what went wrong (also printed to stderr)."""
        if self._closed:
            return []
        self._closed = True
        _LIVE.discard(self)
        for name in list(self._frozen):
            self.thaw(name)
        errors, self.leaked = _teardown(self.root, self._state, self._popens)
        for e in errors:
            print(f"testhosts: {e}", file=sys.stderr)
        return errors

    # --- faults --------------------------------------------------------------------------------

    def host(self, name: str) -> TestHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def stop(self, name: str) -> None:
        """Stop the host's sshd and its connections (SIGTERM, then SIGKILL); commands live on."""
        key = f"sshd:{name}"
        ident = self._state["procs"].get(key)
        if ident is None:
            raise RuntimeError(f"{name}'s sshd is not running")
        self.thaw(name)
        listener = (ident["pid"], ident["start"])
        sshds = descendants(listener[0], comm="sshd")  # sshd, and sshd-session in OpenSSH 9.8+
        _terminate([listener, *sshds], self._popens.get(key))
        self._popens.pop(key, None)
        del self._state["procs"][key]
        self._save()

    def start(self, name: str) -> TestHost:
        """Start the host's sshd again on the same address, port and key; returns the new host."""
        if f"sshd:{name}" in self._state["procs"]:
            raise RuntimeError(f"{name}'s sshd is running")
        old = self.host(name)
        pid = self._start_sshd(name, old.address, old.port)
        new = replace(old, sshd_pid=pid)
        self.hosts[self.hosts.index(old)] = new
        return new

    def freeze(self, name: str, agent: bool = False) -> None:
        """SIGSTOP the host's sshd, its connections and their commands (a hung host); with
        `agent`, its agent too (detached, it is not below sshd): the whole host hangs."""
        ident = self._state["procs"].get(f"sshd:{name}")
        if ident is None:
            raise RuntimeError(f"{name}'s sshd is not running")
        tree = [(ident["pid"], ident["start"]), *descendants(ident["pid"])]
        if agent and (pid := self.agent_pid(name)) is not None:
            me = _ident(pid)
            if me:
                tree += [(pid, me["start"]), *descendants(pid)]
        self._frozen.setdefault(name, []).extend(tree)
        for pid, start in tree:
            _signal(pid, start, signal.SIGSTOP)

    def agent_pid(self, name: str) -> int | None:
        """The pid of the host's agent, if one runs (its pid file, checked against its
        command line: a pid is reused)."""
        home = self.host(name).agent_home
        try:
            pid = int((home / "agent.pid").read_text().split()[0])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(home).encode() in argv else None

    def kill_agent(self, name: str) -> int:
        """SIGKILL the host's agent; its pid."""
        pid = self.agent_pid(name)
        if pid is None:
            raise RuntimeError(f"{name} has no agent running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def partition(self, name: str) -> None:
        """Drop every packet to and from the host's address (iptables, tagged with the root):
        its connections go silent, as in a real partition. heal() undoes it."""
        address = self.host(name).address
        for rule in _partition_rules(address, self._tag):
            _run(["iptables", "-I", *rule])
            self._state.setdefault("iptables", []).append(rule)
        self._save()

    def heal(self, name: str) -> None:
        address = self.host(name).address
        rules = self._state.get("iptables", [])
        for rule in _partition_rules(address, self._tag):
            _delete_rule(rule)
            if rule in rules:
                rules.remove(rule)
        self._save()

    def small_disk(self, name: str, size: str = "24m") -> Path:
        """A tmpfs of `size` over the host agent's attempts folder (a disk that fills up);
        unmounted at teardown. Its attempts folder, now empty."""
        folder = self.host(name).agent_home / "attempts"
        folder.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)])
        return folder

    @property
    def _tag(self) -> str:
        return f"convoy-test:{self.root.name}"

    def thaw(self, name: str) -> None:
        """SIGCONT what freeze stopped."""
        for pid, start in self._frozen.pop(name, []):
            _signal(pid, start, signal.SIGCONT)

    # --- starting ------------------------------------------------------------------------------

    def _save(self) -> None:
        tmp = self.root / (STATE + ".tmp")
        tmp.write_text(json.dumps(self._state))
        tmp.replace(self.root / STATE)

    def _record(self, key: str, popen: subprocess.Popen[bytes]) -> None:
        self._popens[key] = popen
        self._state["procs"][key] = _ident(popen.pid) or {"pid": popen.pid, "start": -1}
        self._save()

    def _start_all(self) -> None:
        if not os.access(SSHD, os.X_OK):
            raise RuntimeError(f"{SSHD} is missing (apt-get install openssh-server)")
        with contextlib.suppress(FileExistsError, PermissionError):
            os.mkdir("/run/sshd", 0o755)  # sshd's privilege separation directory
        t0 = time.monotonic()
        dockerd_started = {name: self._spawn_dockerd(name) for name in sorted(self.own_docker)}
        client = self.root / "client"
        client.mkdir()
        identity = client / "id_ed25519"
        _keygen(identity, "convoy-test-client")
        client_pub = identity.with_suffix(".pub").read_text()
        t1 = time.monotonic()
        all_known: list[str] = []
        for i in range(1, self.count + 1):
            name, address = f"h{i}", f"127.0.0.{i + 1}"
            folder = self.root / name
            folder.mkdir(exist_ok=True)
            (folder / "agent").mkdir()
            (folder / "authorized_keys").write_text(client_pub)
            _keygen(folder / "host_key", name)
            pid = self._start_sshd(name, address, 0)
            port = int((folder / "port").read_text())
            key = " ".join((folder / "host_key.pub").read_text().split()[:2])
            line = f"[{address}]:{port} {key}\n"
            (folder / "known_hosts").write_text(line)
            all_known.append(line)
            fingerprint = _run(["ssh-keygen", "-lf", str(folder / "host_key.pub")]).split()[1]
            sock = self._state["dockers"].get(name, {}).get("sock")
            self.hosts.append(
                TestHost(
                    name=name, address=address, port=port, user=_user(), identity=identity,
                    known_hosts=folder / "known_hosts", host_key_fingerprint=fingerprint,
                    agent_home=folder / "agent", docker_host=f"unix://{sock}" if sock else None,
                    sshd_pid=pid,
                )
            )  # fmt: skip
        self.known_hosts.write_text("".join(all_known))
        self.timings["sshd"] = time.monotonic() - t1
        for name, started in dockerd_started.items():
            self._wait_dockerd(name)
            self.timings[f"dockerd:{name}"] = time.monotonic() - started
        self.timings["total"] = time.monotonic() - t0

    def _sshd_config(self, name: str, address: str, port: int) -> Path:
        folder = self.root / name
        lines = [
            f"ListenAddress {address}:{port}",
            f"HostKey {folder / 'host_key'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            f"PidFile {folder / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding yes",
            "AllowStreamLocalForwarding yes",
            "StreamLocalBindUnlink yes",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "PermitUserEnvironment no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
        ]
        if _sshd_knows("PerSourcePenalties"):  # OpenSSH 9.8+ would block 127.0.0.1 after faults
            lines.append("PerSourcePenalties no")
        config = folder / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _start_sshd(self, name: str, address: str, port: int) -> int:
        """Start sshd on address:port (port 0: a free one, retried if taken); returns its pid."""
        folder = self.root / name
        for _attempt in range(5):
            chosen = port or _free_port(address)
            config = self._sshd_config(name, address, chosen)
            log = folder / "sshd.log"
            with open(log, "ab") as out:
                popen = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                )  # fmt: skip
            key = f"sshd:{name}"
            self._record(key, popen)
            deadline = time.monotonic() + 15
            while True:
                if _banner(address, chosen):
                    (folder / "port").write_text(str(chosen))
                    return popen.pid
                if popen.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            _terminate([(popen.pid, self._state["procs"][key]["start"])], popen)
            del self._state["procs"][key], self._popens[key]
            self._save()
            tail = _tail(log)
            if port == 0 and "Address already in use" in tail:
                continue
            raise RuntimeError(f"sshd for {name} on {address}:{chosen} did not start:\n{tail}")
        raise RuntimeError(f"sshd for {name}: no free port on {address} after 5 attempts")

    def _spawn_dockerd(self, name: str) -> float:
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is missing (apt-get install docker.io)")
        folder = self.root / name
        folder.mkdir()
        bridge, n = self._make_bridge()
        sock = folder / "docker.sock"
        self._state["dockers"][name] = {"sock": str(sock)}
        (folder / "daemon.json").write_text("{}\n")
        argv = [
            "dockerd",
            "--data-root", str(folder / "d"), "--exec-root", str(folder / "x"),
            "--pidfile", str(folder / "docker.pid"), "-H", f"unix://{sock}",
            "--config-file", str(folder / "daemon.json"),
            "--bridge", bridge, "--iptables=false", "--ip-masq=false",
            # if the machine runs a system containerd, both engines use it: keep them apart
            "--containerd-namespace", f"cvh{n}", "--containerd-plugins-namespace", f"cvh{n}p",
        ]  # fmt: skip
        started = time.monotonic()
        with open(folder / "dockerd.log", "ab") as out:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        self._record(f"dockerd:{name}", popen)
        return started

    def _wait_dockerd(self, name: str) -> None:
        folder = self.root / name
        popen = self._popens[f"dockerd:{name}"]
        host = f"unix://{folder / 'docker.sock'}"
        deadline = time.monotonic() + 60
        while True:
            ok = subprocess.run(
                ["docker", "-H", host, "info", "--format", "{{.ID}}"],
                capture_output=True, timeout=30,
            ).returncode == 0  # fmt: skip
            if ok:
                return
            if popen.poll() is not None or time.monotonic() > deadline:
                why = "exited" if popen.poll() is not None else "did not answer within 60 s"
                raise RuntimeError(f"dockerd for {name} {why}:\n{_tail(folder / 'dockerd.log')}")
            time.sleep(0.1)

    def _make_bridge(self) -> tuple[str, int]:
        """A new bridge cvyb<N> with 10.200.<N>.1/24, N the first free one on this machine."""
        taken = _run(["ip", "-o", "-4", "addr", "show"]) + _run(["ip", "-4", "route", "show"])
        for n in range(1, 255):
            name = f"cvyb{n}"
            if f"10.200.{n}." in taken:
                continue
            made = subprocess.run(["ip", "link", "add", "name", name, "type", "bridge"],
                                  capture_output=True)  # fmt: skip
            if made.returncode != 0:  # another one's (the kernel hands out each name once)
                continue
            self._state["bridges"].append(name)
            self._save()
            _run(["ip", "link", "set", name, "alias", str(self.root)])  # for reap_stale
            _run(["ip", "addr", "add", f"10.200.{n}.1/24", "dev", name])
            _run(["ip", "link", "set", name, "up"])
            return name, n
        raise RuntimeError("no free bridge cvyb1..cvyb254 / 10.200.N.0/24")


# --- teardown ------------------------------------------------------------------------------------

_LIVE: set[TestHosts] = set()


@atexit.register
def _close_live() -> None:
    for hosts in list(_LIVE):
        hosts.close()


def reap_stale(parent: Path, exclude: Path | None = None) -> list[Path]:
    """Tear down TestHosts roots in parent whose owning process is gone; bridges likewise."""
    reaped = []
    with contextlib.suppress(OSError):
        for state_file in parent.glob(f"*/{STATE}"):
            root = state_file.parent
            if root == exclude:
                continue
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            owner = state.get("owner") or {}
            if _alive(owner.get("pid", 0), owner.get("start", -1)):
                continue
            errors, _ = _teardown(root, state, {})
            for e in errors:
                print(f"testhosts: reaping {root}: {e}", file=sys.stderr)
            reaped.append(root)
    for link in Path("/sys/class/net").glob("cvyb*"):
        with contextlib.suppress(OSError):
            alias = (link / "ifalias").read_text().strip()
            if alias.startswith("/") and not Path(alias).exists():
                subprocess.run(["ip", "link", "del", link.name], capture_output=True)
    return reaped


def _teardown(
    root: Path, state: dict[str, Any], popens: dict[str, subprocess.Popen[bytes]]
) -> tuple[list[str], list[str]]:
    """Stop everything state records and everything left naming root; returns (errors, leaked)."""
    errors: list[str] = []
    procs: dict[str, dict[str, int]] = state.get("procs", {})
    killed: list[tuple[int, int]] = []

    def step(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:
            errors.append(f"{what}: {type(e).__name__}: {e}")
            return None

    for name, docker in state.get("dockers", {}).items():
        ident = procs.get(f"dockerd:{name}")
        if ident and _alive(ident["pid"], ident["start"]):
            _signal(ident["pid"], ident["start"], signal.SIGCONT)
            step(f"removing {name}'s containers", _remove_containers, docker["sock"])
    for key, ident in procs.items():
        if key.startswith("dockerd:"):
            me = [(ident["pid"], ident["start"])]
            killed += step(f"stopping {key}", _terminate, me, popens.get(key), 30.0) or []
    for name in state.get("dockers", {}):  # when dockerd died without removing them
        killed += step("killing containers", _kill_containers, root / name / "d") or []
    for key, ident in procs.items():
        if key.startswith("sshd:"):
            tree = [(ident["pid"], ident["start"]), *descendants(ident["pid"])]
            killed += step(f"stopping {key}", _terminate, tree, popens.get(key)) or []
    for rule in state.get("iptables", []):
        step(f"deleting iptables rule {rule}", _delete_rule, rule)
    leaked, found = step("killing leftovers", _kill_referencing, root) or ([], [])
    killed += found
    step("unmounting", _unmount_under, root)
    for bridge in state.get("bridges", []):
        gone = subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        if gone.returncode != 0 and Path(f"/sys/class/net/{bridge}").exists():
            errors.append(f"deleting bridge {bridge}: {gone.stderr.decode().strip()}")
    try:
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except OSError:
        _unmount_under(root, lazy=True)
        step(f"removing {root}", shutil.rmtree, root)
    # Orphans that died are zombies until init reaps them (lazily on some machines): give it a
    # moment, so that pgrep right after shows nothing; they are dead either way.
    _wait_gone(killed, 2.0, zombies=True)
    return errors, leaked


def _partition_rules(address: str, tag: str) -> list[list[str]]:
    comment = ["-m", "comment", "--comment", tag]
    return [["INPUT", "-s", address, *comment, "-j", "DROP"],
            ["INPUT", "-d", address, *comment, "-j", "DROP"]]  # fmt: skip


def _delete_rule(rule: list[str]) -> None:
    """Delete every copy of an iptables rule (until iptables says there is none)."""
    for _ in range(20):
        if subprocess.run(["iptables", "-D", *rule], capture_output=True).returncode != 0:
            return


def _remove_containers(sock: str) -> None:
    host = f"unix://{sock}"
    ids = _run(["docker", "-H", host, "ps", "-aq"], timeout=30).split()
    if ids:
        _run(["docker", "-H", host, "rm", "-f", "-v", *ids], timeout=120)


def _kill_containers(data_root: Path) -> list[tuple[int, int]]:
    """SIGKILL the processes of data_root's containers, found by their cgroup (v1 or v2)."""
    with contextlib.suppress(OSError):
        ids = [p.name.encode() for p in (data_root / "containers").iterdir() if len(p.name) == 64]
        if ids:
            return _kill_where(lambda entry: any(i in (entry / "cgroup").read_bytes() for i in ids))
    return []


def _kill_referencing(root: Path) -> tuple[list[str], list[tuple[int, int]]]:
    """SIGKILL processes whose command line, environment or working folder names root."""
    marker = str(root).encode()
    leaked: list[str] = []

    def names_root(entry: Path) -> bool:
        cmdline = (entry / "cmdline").read_bytes()
        if not cmdline:
            return False  # kernel threads, zombies
        environ = (entry / "environ").read_bytes()
        cwd = os.readlink(entry / "cwd").encode()
        names = cmdline + b"\0" + environ + b"\0" + cwd + b"\0"
        if marker + b"/" in names or marker + b"\0" in names:
            argv = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            leaked.append(f"{entry.name} {argv}")
            return True
        return False

    return leaked, _kill_where(names_root)


def _kill_where(pred: Callable[[Path], bool]) -> list[tuple[int, int]]:
    """SIGKILL the processes (but this one and its ancestors) whose /proc entry matches pred."""
    spare = {os.getpid(), *_ancestors(os.getpid())}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        try:
            st = _stat(int(entry.name))
            if st is not None and pred(entry):
                found.append((int(entry.name), st[2]))
        except OSError:
            continue
    for pid, start in found:
        _signal(pid, start, signal.SIGCONT)
        _signal(pid, start, signal.SIGKILL)
    _wait_gone(found, 5.0)
    return found


def _unmount_under(root: Path, lazy: bool = False) -> None:
    prefix = str(root) + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # octal escapes: \040
            if point.startswith(prefix) or point == str(root):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        if lazy or subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


# --- processes -----------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, int, str] | None:
    """(ppid, state, start time, comm) of a process, or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = data[data.index("(") + 1 : data.rindex(")")]
    rest = data[data.rindex(")") + 2 :].split()
    return int(rest[1]), rest[0], int(rest[19]), comm


def _ident(pid: int) -> dict[str, int]:
    st = _stat(pid)
    return {"pid": pid, "start": st[2] if st else -1}


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid) if pid > 0 else None
    return st is not None and st[2] == start and st[1] not in "ZX"


def _present(pid: int, start: int) -> bool:
    """Whether the process exists, zombie or not."""
    st = _stat(pid)
    return st is not None and st[2] == start


def _signal(pid: int, start: int, sig: int) -> None:
    if _alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def descendants(pid: int, comm: str | None = None) -> list[tuple[int, int]]:
    """(pid, start) of pid's descendants, optionally only those whose name starts with comm."""
    children: dict[int, list[tuple[int, int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append((int(entry.name), st[2], st[3]))
    found, todo = [], [pid]
    while todo:
        for child, start, name in children.get(todo.pop(), []):
            todo.append(child)
            if comm is None or name.startswith(comm):
                found.append((child, start))
    return found


def _ancestors(pid: int) -> list[int]:
    found = []
    while pid > 1:
        st = _stat(pid)
        if st is None:
            break
        pid = st[0]
        found.append(pid)
    return found


def _wait_gone(
    procs: list[tuple[int, int]], timeout: float, popen: Any = None, zombies: bool = False
) -> bool:
    """Wait until procs are dead (zombies=True: and reaped); popen is reaped on the way."""
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None:
            popen.poll()  # reap our child, so it is no zombie
        left = _present if zombies else _alive
        if not any(left(pid, start) for pid, start in procs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _terminate(
    procs: list[tuple[int, int]], popen: subprocess.Popen[bytes] | None, timeout: float = 5.0
) -> list[tuple[int, int]]:
    """SIGCONT (in case they are frozen), SIGTERM, then SIGKILL after timeout; reap popen."""
    for pid, start in procs:
        _signal(pid, start, signal.SIGCONT)
        _signal(pid, start, signal.SIGTERM)
    if not _wait_gone(procs, timeout, popen):
        for pid, start in procs:
            _signal(pid, start, signal.SIGKILL)
        _wait_gone(procs, 5.0, popen)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(5)
    return procs


# --- small helpers -------------------------------------------------------------------------------


def _run(argv: list[str], timeout: float = 30) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _keygen(path: Path, comment: str) -> None:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _banner(address: str, port: int) -> bool:
    """Whether an SSH server answers on address:port."""
    try:
        with socket.create_connection((address, port), timeout=1) as s:
            s.settimeout(1)
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def _check_socket_path(path: Path) -> None:
    if len(str(path).encode()) > SOCKET_PATH_MAX:
        raise ValueError(f"root {path.parents[3]} is too long for unix sockets below it")


_SSHD_OPTIONS: dict[str, bool] = {}


def _sshd_knows(option: str) -> bool:
    """Whether this sshd accepts a config option (asked once per process)."""
    if option not in _SSHD_OPTIONS:
        probe = subprocess.run(
            [SSHD, "-t", "-f", "/dev/null", "-o", f"{option}=no", "-o", "HostKey=/dev/null"],
            capture_output=True, text=True,
        )  # fmt: skip
        _SSHD_OPTIONS[option] = "Bad configuration option" not in probe.stderr
    return _SSHD_OPTIONS[option]
