"""One SSH session per host: connect with keys and known_hosts, install and start the agent,
tunnel its gRPC socket to a local one, and open channels to its store socket for objects.

    host = SSHHost(cfg, home)
    await host.connect()            # HostKeyUnknown until `convoy hosts trust NAME`
    await host.ensure_agent()
    client = host.client()          # gRPC: "unix:<home>/tunnels/<name>.sock" -> agent.sock;
    ...                             # objects: a channel per sync -> agent.objs
    await host.close()              # the agent keeps running on its host

Host keys are checked against convoy's own known_hosts (<home>/known_hosts) and the user's
~/.ssh/known_hosts; an unknown or changed key fails closed. Settings the hosts file leaves out
come from ~/.ssh/config (asyncssh reads it). Authentication is by key only.

The agent runs detached on its host (nohup setsid), so it outlives the session and keeps its
runs going while the coordinator is away; it holds a lock on its home, so two starts leave one
agent. Remote commands go through `sh -c`, whatever the user's login shell is, and no login
shell is started (rc files cost time per command and print noise).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from convoy.buildid import own_build
from convoy.coordinator.hosts.agents import AgentClient, AgentInfo
from convoy.coordinator.hosts.batching import BatchingTunnel
from convoy.coordinator.hosts.bundle import (
    AGENT_DISTRIBUTIONS,
    AGENT_MODULES,
    Bundle,
    Runtime,
    build_bundle,
    bundle_id,
    local_runtime,
)
from convoy.coordinator.hosts.hostsfile import HostConfig
from convoy.coordinator.hosts.remote import AGENT_PIDS, PROBE, Probe, in_sh, quote_path, tail
from convoy.errors import HostUnavailable, KeyMismatch
from convoy.objstream import store_socket_beside
from convoy.sshlib import asyncssh

log = logging.getLogger("convoy.ssh")

KEEPALIVE_INTERVAL = 5.0  # seconds between keepalives; a dead host is noticed in ~15 s
KEEPALIVE_COUNT_MAX = 3
CONNECT_TIMEOUT = 15.0
# Bringing a host back (hosts/session.py tries again every second or so): a connection that
# does not open in this long is tried anew, so a host whose network returns is up within seconds.
RECONNECT_TIMEOUT = 4.0
ALIVE_CHECK_TIMEOUT = 4.0  # an open connection that cannot run `true` in this long is dead
# An agent whose process lives is never replaced for being slow to answer (it may be starting,
# or thawing after its host was frozen): it gets this long.
AGENT_ANSWER_TIMEOUT = 60.0
AGENT_STOP_TIMEOUT = 10.0
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the NUL
MIN_PYTHON = (3, 11)  # convoy's requires-python
_DEFAULT = Path("~")  # sentinel: "the user's default" for paths that may also be None

# AES-GCM first: with AES-NI it moves 100 MB through asyncssh in 0.38 s here, against 0.72 s for
# asyncssh's default chacha20-poly1305 (bench: a `cat > /dev/null` channel on this machine).
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
_DEFAULT_CIPHERS = [a.decode() for a in asyncssh.encryption.get_default_encryption_algs()]


def _agent_socket(ahome: str) -> str:
    """The agent's gRPC socket on its host (its store socket is beside it)."""
    return f"{ahome}/agent.sock"


class HostKeyUnknown(HostUnavailable):
    """The host offered a key that convoy's known_hosts does not hold (or holds another one)."""

    def __init__(
        self, host: str, address: str, port: int, key_type: str, fingerprint: str,
        changed: bool, recorded: Sequence[tuple[str, str]] = (),
    ) -> None:  # fmt: skip
        where = f"{address}:{port}"
        if changed:
            was = "; ".join(f"{fp} (in {file})" for fp, file in recorded) or "another key"
            what = (
                f"the host key of {where} has CHANGED: known_hosts records {was}, and the host "
                f"now offers {key_type} {fingerprint}. This can be a reinstalled host or "
                "someone intercepting the connection."
            )
        else:
            what = f"the host key of {where} is not known: {key_type} {fingerprint}."
        super().__init__(
            host,
            f"{what} Check that fingerprint on the host itself (ssh-keygen -lf on its host key "
            f"file, e.g. /etc/ssh/ssh_host_*_key.pub), then run `convoy hosts trust {host}`.",
        )
        self.address = address
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.changed = changed
        self.recorded = tuple(recorded)


@dataclass(frozen=True)
class KeyCheck:
    """A host's key as offered, checked against what the user expects (check_key)."""

    key_type: str
    fingerprint: str  # what the host offers
    recorded: bool  # written to convoy's known_hosts
    known_hosts: Path
    others: tuple[tuple[str, str], ...] = ()  # (fingerprint, file) of other keys recorded


class SSHHost:
    """The coordinator's session with one host: one SSH connection, the agent's tunnel."""

    def __init__(
        self,
        cfg: HostConfig,
        home: Path,
        *,
        ssh_config: Sequence[Path] | None = None,
        user_known_hosts: Path | None = _DEFAULT,
    ) -> None:
        """`home` is the coordinator's CONVOY_HOME. ssh_config: the ssh_config files to read
        (None: ~/.ssh/config if it exists); user_known_hosts: the user's own known_hosts file
        read besides convoy's (default ~/.ssh/known_hosts; None: convoy's alone)."""
        self.cfg = cfg
        self.home = home
        self._config: Sequence[Path] | tuple[()] = () if ssh_config is None else ssh_config
        self._user_known_hosts = (
            Path("~/.ssh/known_hosts").expanduser() if user_known_hosts is _DEFAULT
            else user_known_hosts
        )  # fmt: skip
        self._conn: asyncssh.SSHClientConnection | None = None
        self._listener: asyncssh.SSHListener | None = None
        self._lock = asyncio.Lock()
        self._agent_lock = asyncio.Lock()
        self._agent_home: str | None = None  # agent_home as the host expands it
        self.connect_seconds = 0.0  # the last connect's duration, for status lines
        self.install_seconds = 0.0  # the last bundle install's duration (0: none was needed)

    # --- properties ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def known_hosts_path(self) -> Path:
        return self.home / "known_hosts"

    @property
    def tunnel_path(self) -> Path:
        return self.home / "tunnels" / f"{self.cfg.name}.sock"

    @property
    def target(self) -> str:
        """The local gRPC target of the agent (valid once ensure_agent has returned)."""
        return f"unix:{self.tunnel_path}"

    def client(self) -> AgentClient:
        """A client of the host's agent: gRPC through the tunnel, object streams through
        channels of their own (valid once ensure_agent has returned)."""
        return AgentClient(self.target, open_store=self.open_store)

    async def open_store(self) -> tuple[asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes]]:
        """A channel to the agent's store socket over the host's connection (objsend.py): the
        objects go straight into the channel, with no local socket in between."""
        conn, ahome = self._conn, self._agent_home
        if conn is None or conn.is_closed() or ahome is None:
            raise ConnectionError(f"not connected to {self.name}")
        return await conn.open_unix_connection(
            store_socket_beside(_agent_socket(ahome)), encoding=None
        )

    @property
    def cipher(self) -> str:
        """The cipher the connection negotiated ('' when not connected)."""
        conn = self._conn
        return "" if conn is None or conn.is_closed() else str(conn.get_extra_info("send_cipher"))

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    # --- connection ------------------------------------------------------------------------

    def _options(self) -> asyncssh.SSHClientConnectionOptions:
        """The settings ssh_config gives this host (real host name, port, user, alias)."""
        return asyncssh.SSHClientConnectionOptions(
            host=self.cfg.address, port=self.cfg.port or (), username=self.cfg.user or (),
            config=self._config, client_keys=None, agent_path=None,
        )  # fmt: skip

    def _known_hosts(self) -> asyncssh.SSHKnownHosts:
        text = ""
        for path in (self.known_hosts_path, self._user_known_hosts):
            if path is not None and path.is_file():
                text += path.read_text() + "\n"
        return asyncssh.import_known_hosts(text)

    def recorded_keys(self) -> list[tuple[str, str]]:
        """(fingerprint, file) of each key a known_hosts file records for this host."""
        host, port = self._where()
        alias = self._options().host_key_alias or host
        out = []
        for path in (self.known_hosts_path, self._user_known_hosts):
            if path is not None and path.is_file():
                known = asyncssh.import_known_hosts(path.read_text())
                for key in known.match(alias, "", port if port != 22 else None)[0]:
                    out.append((key.get_fingerprint("sha256"), str(path)))
        return out

    def _where(self) -> tuple[str, int]:
        opts = self._options()
        return opts.host, opts.port

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Open the host's one connection (again, if it was lost); idempotent."""
        async with self._lock:
            if self.connected:
                return
            await self._drop_forward()
            opts = self._options()  # ssh_config read once: the same values as _where()
            host, port = opts.host, opts.port
            kwargs: dict[str, object] = {}
            if [a.decode() for a in opts.encryption_algs] == _DEFAULT_CIPHERS:
                kwargs["encryption_algs"] = CIPHERS  # unless ssh_config names its own Ciphers
            if not (opts.tunnel or opts.proxy_command):  # a direct connection
                kwargs["tunnel"] = BatchingTunnel(opts.family, opts.local_addr or None)
            if self.cfg.identity:
                kwargs["client_keys"] = [os.path.expanduser(self.cfg.identity)]
            t0 = time.monotonic()
            try:
                self._conn = await asyncssh.connect(
                    self.cfg.address, port=self.cfg.port or (), username=self.cfg.user or (),
                    config=self._config, known_hosts=self._known_hosts(),
                    preferred_auth="publickey", connect_timeout=timeout,
                    keepalive_interval=KEEPALIVE_INTERVAL,
                    keepalive_count_max=KEEPALIVE_COUNT_MAX, **kwargs,
                )  # fmt: skip
            except asyncssh.HostKeyNotVerifiable:
                raise await self._host_key_error(host, port) from None
            except asyncssh.PermissionDenied as e:
                raise HostUnavailable(
                    self.name,
                    f"{host}:{port} refused our keys ({e.reason}); convoy signs in with SSH keys "
                    "only: set `identity:` in the hosts file, use ssh-agent, or ~/.ssh/config",
                ) from None
            except asyncssh.KeyImportError as e:
                raise HostUnavailable(
                    self.name, f"cannot read the identity {self.cfg.identity}: {e} (a key with "
                    "a passphrase must be loaded into ssh-agent instead)",
                ) from None  # fmt: skip
            except (TimeoutError, OSError, asyncssh.Error) as e:
                why = str(e) or type(e).__name__
                raise HostUnavailable(self.name, f"cannot connect to {host}:{port}: {why}") from e
            self.connect_seconds = time.monotonic() - t0
            log.info("connected to %s (%s:%d) in %.3f s, cipher %s", self.name, host, port,
                     self.connect_seconds, self.cipher)  # fmt: skip

    async def _offered_key(self) -> asyncssh.SSHKey:
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    self.cfg.address, self.cfg.port or (), config=self._config
                ),
                CONNECT_TIMEOUT,
            )
        except (TimeoutError, OSError, asyncssh.Error) as e:
            raise HostUnavailable(self.name, f"cannot fetch the host key: {e}") from e
        if key is None:
            raise HostUnavailable(self.name, "the host offered no host key")
        return key

    async def _host_key_error(self, host: str, port: int) -> HostUnavailable:
        key = await self._offered_key()
        alias = self._options().host_key_alias or host
        known = self._known_hosts().match(alias, "", port if port != 22 else None)
        return HostKeyUnknown(
            self.name, host, port, key.get_algorithm(), key.get_fingerprint("sha256"),
            changed=bool(known[0]), recorded=self.recorded_keys(),
        )  # fmt: skip

    async def host_key(self) -> tuple[str, str]:
        """(key type, "SHA256:..." fingerprint) of the key the host offers; no sign-in."""
        key = await self._offered_key()
        return key.get_algorithm(), key.get_fingerprint("sha256")

    async def fingerprint(self) -> str:
        """The "SHA256:..." fingerprint of the key the host offers; no sign-in."""
        return (await self.host_key())[1]

    async def trust(self, fingerprint: str | None = None) -> str:
        """Add the key the host offers to convoy's known_hosts and return its fingerprint.

        With `fingerprint` (what the user checked), a host offering another key is refused.
        Earlier entries of convoy's own file for the same host and port are replaced.
        """
        key = await self._offered_key()
        got = key.get_fingerprint("sha256")
        host, port = self._where()
        if fingerprint is not None and fingerprint != got:
            raise HostKeyUnknown(self.name, host, port, key.get_algorithm(), got, changed=True)
        pattern = self._options().host_key_alias or host
        if port != 22:
            pattern = f"[{pattern}]:{port}"
        public = key.export_public_key("openssh").decode().split()
        line = f"{pattern} {public[0]} {public[1]}\n"
        path = self.known_hosts_path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        old = path.read_text().splitlines(keepends=True) if path.exists() else []
        kept = [x for x in old if x.split(" ", 1)[0] != pattern]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept) + line)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return got

    async def check_key(self, expected: str | None) -> KeyCheck:
        """The key the host offers, recorded only when it is the one `expected` (a fingerprint
        checked on the host): with None, nothing is recorded, so that a caller can show it and
        ask. KeyMismatch when the host offers another."""
        key_type, offered = await self.host_key()
        others = tuple((fp, file) for fp, file in self.recorded_keys() if fp != offered)
        if expected is None:
            return KeyCheck(key_type, offered, False, self.known_hosts_path, others)
        if expected != offered:
            raise KeyMismatch(self.name, offered, expected)
        await self.trust(offered)  # fetched again: a host that changed key meanwhile is refused
        return KeyCheck(key_type, offered, True, self.known_hosts_path, others)

    async def _alive_connection(self) -> None:
        """A connection that works: an open one that still runs a command (a partition leaves
        a connection open and silent until its keepalives fail), else a new one."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.run("true", check=False), ALIVE_CHECK_TIMEOUT)
                return
            except (TimeoutError, OSError, asyncssh.Error):
                log.info("%s: the connection went silent: opening a new one", self.name)
                await self.close()
        await self.connect(timeout=RECONNECT_TIMEOUT)

    async def close(self) -> None:
        """Close the tunnel and the connection; the agent keeps running on its host."""
        async with self._lock:
            await self._drop_forward()
            if self._conn is not None:
                self._conn.close()
                await self._conn.wait_closed()
                self._conn = None

    async def wait_closed(self) -> None:
        """Return when the connection ends (closed, or lost: keepalives unanswered)."""
        if self._conn is not None:
            await self._conn.wait_closed()

    # --- commands --------------------------------------------------------------------------

    async def run(
        self, cmd: str, *, input: bytes | None = None, timeout: float | None = None
    ) -> asyncssh.SSHCompletedProcess:
        """Run `cmd` on the host (through the user's shell, not a login shell); never raises
        for its exit status. With `input`, stdin gets those bytes and stdout/stderr are bytes."""
        if not self.connected:
            await self.connect()
        assert self._conn is not None
        extra: dict[str, object] = {} if input is None else {"input": input, "encoding": None}
        try:
            return await self._conn.run(cmd, check=False, timeout=timeout, **extra)
        except asyncssh.TimeoutError as e:
            raise HostUnavailable(self.name, f"`{cmd[:60]}` took over {timeout} s") from e
        except (OSError, asyncssh.Error) as e:
            raise HostUnavailable(self.name, f"lost the connection: {e}") from e

    async def _checked(self, what: str, cmd: str, input: bytes | None = None) -> str:
        r = await self.run(cmd, input=input)
        out, err = (
            x.decode(errors="replace") if isinstance(x, bytes) else str(x or "")
            for x in (r.stdout, r.stderr)
        )
        if r.exit_status != 0:
            status = r.exit_status if r.exit_signal is None else r.exit_signal[0]
            raise HostUnavailable(self.name, f"{what} failed ({status}): {tail(err)}")
        return out

    # --- the agent -------------------------------------------------------------------------

    def _python(self) -> str:
        return quote_path(self.cfg.python)

    async def _probe(self, ids: Sequence[str]) -> Probe:
        cmd = (
            f"{self._python()} -c {shlex.quote(PROBE)} {quote_path(self.cfg.agent_home)} "
            f"{shlex.quote(json.dumps(list(ids)))} {shlex.quote(json.dumps(AGENT_MODULES))}"
        )
        r = await self.run(cmd)
        if r.exit_status != 0:
            hint = ""
            if r.exit_status == 127:
                hint = "; set `python:` in the hosts file to an installed python 3.11+"
            raise HostUnavailable(
                self.name, f"`{self.cfg.python}` failed ({r.exit_status}): "
                f"{tail(str(r.stderr), 5)}{hint}",
            )  # fmt: skip
        d = json.loads(str(r.stdout))
        runtime = Runtime(d["python"], d["platform"], d["machine"])
        return Probe(
            d["home"], d["agent_home"], runtime, tuple(d["installed"]), d["bundle"], d["socket"],
            d["deps"],
        )  # fmt: skip

    def _choose_bundle(self, probe: Probe) -> bool:
        """Whether the host gets the pure bundle; raise if neither kind can run there."""
        local = local_runtime()
        major, minor = (int(x) for x in probe.runtime.python.split("."))
        if (major, minor) < MIN_PYTHON:
            raise HostUnavailable(
                self.name, f"`{self.cfg.python}` is python {probe.runtime.python}; convoy's "
                f"agent needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer: set `python:` in the "
                "hosts file to such an interpreter",
            )  # fmt: skip
        if probe.runtime == local:
            return False
        if probe.deps:
            return True
        raise HostUnavailable(
            self.name,
            f"`{self.cfg.python}` there is {probe.runtime}, and this coordinator can only ship "
            f"the agent's compiled dependencies for {local}. Either install them for that python "
            f"(`{self.cfg.python} -m pip install {' '.join(AGENT_DISTRIBUTIONS)}`, or into a "
            "venv whose python you then name in `python:`), or set `python:` in the hosts file "
            f"to a python {local.python} on that host.",
        )

    async def ensure_agent(self) -> str:
        """Make sure convoy's agent of this build runs on the host; return the local gRPC
        target tunnelled to it. Installs the agent bundle when missing (no internet needed on
        the host), starts the agent when none runs, replaces one of another build. An agent
        that runs but is slow to answer is waited for, never replaced (AGENT_ANSWER_TIMEOUT)."""
        async with self._agent_lock:
            self.install_seconds = 0.0
            await self._alive_connection()
            ids = await asyncio.to_thread(lambda: [bundle_id(False), bundle_id(True)])
            probe = await self._probe(ids)
            pure = self._choose_bundle(probe)
            ident = ids[1] if pure else ids[0]
            ahome = self._agent_home = probe.agent_home
            sock = _agent_socket(ahome)
            if len(sock.encode()) > SOCKET_PATH_MAX:
                raise HostUnavailable(
                    self.name, f"the agent's socket path {sock} is too long for a unix socket; "
                    "set a shorter `agent_home:`",
                )  # fmt: skip
            if ident not in probe.installed:
                ident = await self._install(ahome, pure)  # the id of what it built and sent
            lib = f"{ahome}/lib/{ident}"
            target = await self._forward(sock)
            pids = await self._agent_pids(ahome, stop=False)
            if pids:
                info = await self._describe(timeout=5.0)
                if info is None:  # it runs but does not answer (yet): give it time
                    info = await self._answer_of(ahome, pids[0])
                if info is not None and info.build == own_build() and probe.bundle in ("", ident):
                    return target
                if info is not None:
                    log.info("%s: replacing agent %s (build %s) with %s", self.name,
                             info.version, info.build or probe.bundle or "?", ident)  # fmt: skip
                else:
                    log.warning("%s: agent pid %d did not answer for %g s: replacing it",
                                self.name, pids[0], AGENT_ANSWER_TIMEOUT)  # fmt: skip
                await self._stop_agent(ahome)
            await self._start_agent(ahome, lib, ident)
            return target

    async def _answer_of(self, ahome: str, pid: int) -> AgentInfo | None:
        """The agent's answer once it gives one, while its process lives; None if it dies or
        stays silent for AGENT_ANSWER_TIMEOUT."""
        deadline = time.monotonic() + AGENT_ANSWER_TIMEOUT
        alive = in_sh(f"kill -0 {pid} 2>/dev/null")
        while time.monotonic() < deadline:
            info = await self._describe(timeout=2.0)
            if info is not None:
                return info
            if (await self.run(alive, timeout=ALIVE_CHECK_TIMEOUT)).exit_status != 0:
                return None
            await asyncio.sleep(0.5)
        return None

    async def _install(self, ahome: str, pure: bool) -> str:
        t0 = time.monotonic()
        bundle: Bundle = await asyncio.to_thread(build_bundle, self.home / "bundles", pure)
        data = await asyncio.to_thread(bundle.path.read_bytes)
        lib = f"{ahome}/lib"
        script = (
            f'set -e; umask 077; lib={shlex.quote(lib)}; mkdir -p "$lib"; '
            'stage=$(mktemp -d "$lib/.stage.XXXXXX"); '
            'trap \'rm -rf "$stage"\' EXIT; tar xzf - -C "$stage"; '
            f"id={shlex.quote(bundle.id)}; "
            'if [ ! -d "$lib/$id" ]; then mv "$stage" "$lib/$id"; fi'
        )  # the id names its content: an existing folder of that id is complete (moved in whole)
        await self._checked("installing the agent", in_sh(script), input=data)
        self.install_seconds = time.monotonic() - t0
        log.info("%s: installed agent bundle %s (%d bytes) in %.2f s", self.name, bundle.id,
                 bundle.size, self.install_seconds)  # fmt: skip
        return bundle.id

    async def _forward(self, remote_sock: str) -> str:
        if self._listener is None:
            assert self._conn is not None
            local = self.tunnel_path
            if len(str(local).encode()) > SOCKET_PATH_MAX:
                raise HostUnavailable(self.name, f"the tunnel path {local} is too long for a "
                                      "unix socket: use a shorter CONVOY_HOME")  # fmt: skip
            local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(local.parent, 0o700)  # only its user may reach the agents
            local.unlink(missing_ok=True)
            try:
                self._listener = await self._conn.forward_local_path(str(local), remote_sock)
            except (OSError, asyncssh.Error) as e:
                raise HostUnavailable(self.name, f"cannot forward {local}: {e}") from e
        return self.target

    async def _drop_forward(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
            self.tunnel_path.unlink(missing_ok=True)

    async def _describe(self, timeout: float = 3.0) -> AgentInfo | None:
        """The agent's Describe through the tunnel, or None if it does not answer."""
        client = AgentClient(self.target)
        try:
            return await client.describe(timeout=timeout)
        except grpc.aio.AioRpcError:
            return None
        finally:
            await client.close()

    async def _agent_pids(self, ahome: str, stop: bool) -> list[int]:
        cmd = (
            f"{self._python()} -c {shlex.quote(AGENT_PIDS)} {shlex.quote(ahome)} "
            f"{'stop' if stop else 'find'} {AGENT_STOP_TIMEOUT}"
        )
        return [int(p) for p in (await self._checked("finding the agent", cmd)).split()]

    async def stop_agent(self) -> str:
        """Stop the host's agent (`convoy down --cancel`); what was stopped, for people."""
        async with self._agent_lock:
            ahome = self._agent_home
            if ahome is None:  # never reached: whatever runs there is not known to be ours
                return "its agent was never reached: nothing stopped"
            await self._alive_connection()
            pids = await self._agent_pids(ahome, stop=True)
        log.info("%s: stopped agent pid %s", self.name, pids)
        return f"stopped agent (pid {', '.join(map(str, pids))})" if pids else "no agent ran"

    async def _stop_agent(self, ahome: str) -> None:
        pids = await self._agent_pids(ahome, stop=True)
        log.info("%s: stopped agent pid %s", self.name, pids)

    async def _start_agent(self, ahome: str, lib: str, ident: str) -> None:
        cfg = self.cfg
        argv = [  # -P: not the working folder first on sys.path, so nothing there shadows ours
            "-P", "-m", "convoy.agent", "--home", ahome, "--socket", _agent_socket(ahome),
            "--name", cfg.name,
        ]  # fmt: skip
        if cfg.cpus is not None:
            argv += ["--cpus", f"{cfg.cpus:g}"]
        if cfg.memory is not None:
            argv += ["--memory", str(cfg.memory)]
        if cfg.docker_host is not None:
            argv += ["--docker-host", cfg.docker_host]
        q = shlex.quote
        script = (
            f"umask 077; cd ~ && mkdir -p {q(ahome)} || exit 1; "
            f'echo "--- convoy: starting agent {ident} at $(date)" >> {q(ahome + "/agent.log")}; '
            f"PYTHONPATH={q(lib)}${{PYTHONPATH:+:$PYTHONPATH}} "
            f"nohup setsid {self._python()} {shlex.join(argv)} "
            f">> {q(ahome + '/agent.log')} 2>&1 < /dev/null & "
            f"echo $! > {q(ahome + '/agent.pid')}; echo {q(ident)} > {q(ahome + '/agent.bundle')}; "
            "echo $!"
        )  # a background child of a non-interactive sh leads no process group: setsid forks not
        pid = int((await self._checked("starting the agent", in_sh(script))).split()[-1])
        deadline = time.monotonic() + AGENT_ANSWER_TIMEOUT  # never killed while it starts
        alive_check = in_sh(f"kill -0 {pid} 2>/dev/null")
        while True:
            info = await self._describe(timeout=2.0)
            if info is not None:
                break
            alive = (await self.run(alive_check)).exit_status == 0
            if not alive or time.monotonic() > deadline:
                if not alive and (info := await self._describe(timeout=2.0)) is not None:
                    break  # another coordinator's start won the agent's lock
                why = "exited" if not alive else f"did not answer within {AGENT_ANSWER_TIMEOUT:g} s"
                r = await self.run(f"tail -n 30 {q(ahome + '/agent.log')}")
                raise HostUnavailable(
                    self.name, f"the agent {why}; the end of {ahome}/agent.log:\n"
                    f"{tail(str(r.stdout), 30)}",
                )  # fmt: skip
            await asyncio.sleep(0.1)
        if (await self.run(alive_check)).exit_status != 0:  # ours lost the lock race: record
            pids = await self._agent_pids(ahome, stop=False)  # the pid of the one that runs
            if len(pids) == 1:
                await self.run(in_sh(f"echo {pids[0]} > {q(ahome + '/agent.pid')}"))
        log.info("%s: agent %s answers (pid %d)", self.name, info.version, pid)

    async def agent_pid(self) -> int | None:
        """The pid in the host's agent.pid (None if there is none)."""
        path = f"{self._agent_home or self.cfg.agent_home}/agent.pid"
        r = await self.run(f"cat {quote_path(path)} 2>/dev/null")
        text = str(r.stdout).strip()
        return int(text) if r.exit_status == 0 and text.isdigit() else None
