"""`convoy up`: the coordinator's process. Starts the local agent when none answers, opens the
store, serves the Coordinator API on a unix socket readable by its user alone and, with
--listen, over TLS on TCP to holders of a token (convoy/coordinator/auth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from convoy.buildid import own_build
from convoy.coordinator.api import CoordinatorService
from convoy.coordinator.auth import BearerAuth
from convoy.coordinator.engine import Coordinator, HostSpec
from convoy.coordinator.hosts.agents import AgentClient, AgentInfo
from convoy.coordinator.hosts.roster import Roster
from convoy.coordinator.runs.lifecycle import DEFAULT_GRACE_S
from convoy.coordinator.runs.store import STATE_DB, Store
from convoy.coordinator.sources.retention import collect_quietly
from convoy.coordinator.tls import Identity, bind_address, parse_listen
from convoy.coordinator.tls import identity as tls_identity
from convoy.coordinator.tokens import TokenBook, read_tokens
from convoy.errors import ConvoyError, UsageError
from convoy.objstream import store_socket_beside
from convoy.paths import checked_home, coordinator_socket, open_state, write_state
from convoy.procs import stop_by_pidfile
from convoy.rpcwire import add_checked
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

log = logging.getLogger("convoy.coordinator")

LOCAL_HOST = "local"
SWITCH_INTERVAL_S = 0.0005


def agent_home(home: Path) -> Path:
    return home / "agent"


def agent_socket(home: Path) -> Path:
    return agent_home(home) / "agent.sock"


async def _answers(client: AgentClient) -> AgentInfo | None:
    try:
        return await client.describe(timeout=2)
    except grpc.aio.AioRpcError:
        return None


async def ensure_local_agent(home: Path, cpus: float | None, memory: str | None) -> AgentClient:
    """A client for this machine's agent, starting it (detached, so it outlives us) if needed."""
    sock = agent_socket(home)
    ahome = agent_home(home)
    client = AgentClient(f"unix:{sock}")
    if sock.exists() and (info := await _answers(client)) is not None:
        if info.build == own_build() and os.path.exists(store_socket_beside(str(sock))):
            return client
        # An agent of another build (an upgrade, a changed checkout), or one without its store
        # socket (a build before object streams, convoy/objstream.py): replaced. Its runs'
        # containers go on, and the new agent adopts them.
        stopped = await asyncio.to_thread(stop_by_pidfile, ahome / "agent.pid", 10.0, True)
        log.info("replaced the local agent (pid %s): build %s, this coordinator's %s", stopped,
                 info.build or "unknown", own_build())  # fmt: skip
    ahome.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = [sys.executable, "-m", "convoy.agent", "--home", str(ahome), "--socket", str(sock),
           "--name", LOCAL_HOST]  # fmt: skip
    if cpus is not None:
        cmd += ["--cpus", str(cpus)]
    if memory is not None:
        cmd += ["--memory", memory]
    if os.environ.get("CONVOY_AGENT_RUNTIME") == "fake":  # tests and simulated fleets only
        cmd += ["--runtime", "fake"]
    with open_state(ahome / "agent.log") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    write_state(ahome / "agent.pid", f"{proc.pid}\n")
    for _ in range(300):
        if proc.poll() is not None:
            raise ConvoyError(
                f"the local agent exited with status {proc.returncode}; see {ahome / 'agent.log'}"
            )
        if sock.exists() and await _answers(client) is not None:
            return client
        await asyncio.sleep(0.05)
    raise ConvoyError(f"the local agent did not answer within 15 s; see {ahome / 'agent.log'}")


def hosts_file_of(home: Path, hosts_file: Path | None) -> Path:
    """The hosts file a coordinator reads and keeps: `--hosts FILE` (which must exist), else
    CONVOY_HOME/hosts.yaml (made by the first AddHost when there is none)."""
    if hosts_file is None:
        return home / "hosts.yaml"
    if not hosts_file.exists():
        raise UsageError(f"{hosts_file}: no such hosts file")
    return hosts_file.absolute()


async def serve(
    home: Path, cpus: float | None = None, memory: str | None = None,
    ready: asyncio.Event | None = None, hosts_file: Path | None = None, local: bool = True,
    grace_s: float | None = None, listen: str | None = None, cert: Path | None = None,
    key: Path | None = None,
) -> None:  # fmt: skip
    """Run the coordinator until SIGINT/SIGTERM (or cancellation). `grace_s`: how long a host
    may stop answering before its runs are given up (default DEFAULT_GRACE_S). `listen`:
    HOST:PORT to serve TLS on too, with `cert` and `key` (default: made in CONVOY_HOME/tls)."""
    checked_home(home)
    if listen is None and (cert is not None or key is not None):
        raise UsageError("--cert and --key are for --listen HOST:PORT")
    # Worker threads (store reads, run folders, runs.csv) hold the interpreter lock in turn
    # with the event loop; after each blocking call the loop waits up to this long to get it
    # back (the default 5 ms, paid per sqlite commit and socket write, stalls it for seconds
    # in a bulk cancel).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with _only_coordinator(home):
        # Bound before anything starts: a port in use is said with nothing left behind.
        tls = None if listen is None else _bind_tls(home, listen, cert, key)
        try:
            await _serve(home, cpus, memory, ready, hosts_file, local,
                         grace_s or DEFAULT_GRACE_S, tls)  # fmt: skip
        finally:
            if tls is not None:  # stopped already, unless _serve failed before serving
                await tls.server.stop(None)


@contextlib.contextmanager
def _only_coordinator(home: Path) -> Iterator[None]:
    """Held while a coordinator serves `home`: a second one there (started while the first
    was still collecting its store, say) is refused instead of sharing its store and socket."""
    with open_state(home / "coordinator.lock") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another coordinator already runs with home {home}") from None
        yield


@dataclass(frozen=True)
class TLSListener:
    """The TCP server of --listen, bound and not yet started."""

    server: grpc.aio.Server
    address: str  # as bound: with the port chosen, when 0 was asked
    identity: Identity


def _bind_tls(home: Path, listen: str, cert: Path | None, key: Path | None) -> TLSListener:
    """The same API on TCP, over TLS (never plaintext), to token holders only
    (convoy/coordinator/auth.py says why it is a server of its own)."""
    host, port = parse_listen(listen)
    ident = tls_identity(home, host, cert, key)
    # No SO_REUSEPORT (grpc's default): another process could bind the same port and take
    # a share of the callers, and their tokens; a port in use is an error instead.
    server = grpc.aio.server(
        interceptors=[BearerAuth(TokenBook(home))], options=[("grpc.so_reuseport", 0)]
    )
    creds = grpc.ssl_server_credentials([(ident.key_pem, ident.cert_pem)])
    try:
        bound = server.add_secure_port(bind_address(host, port), creds)
    except RuntimeError:
        raise UsageError(
            f"--listen {listen}: cannot listen there (the port is in use, or the host is not "
            "an address of this machine)"
        ) from None
    return TLSListener(server, bind_address(host, bound), ident)


async def _start_tls(home: Path, servicer: CoordinatorService, tls: TLSListener) -> None:
    add_checked(pb_grpc.add_CoordinatorServicer_to_server, servicer, tls.server)
    await tls.server.start()
    ident = tls.identity
    log.info("coordinator listening on %s over TLS; certificate %s%s, SHA256:%s", tls.address,
             ident.cert_path, " (made now)" if ident.made else "", ident.fingerprint)  # fmt: skip
    if not read_tokens(home):
        log.warning("no tokens yet, so TCP refuses every call: `convoy token create NAME`")


async def _serve(
    home: Path, cpus: float | None, memory: str | None, ready: asyncio.Event | None,
    hosts_file: Path | None, local: bool, grace_s: float, tls: TLSListener | None,
) -> None:  # fmt: skip
    roster = Roster(home, hosts_file_of(home, hosts_file))
    hosts = roster.load()
    if local:
        client = await ensure_local_agent(home, cpus, memory)

        async def revive() -> None:  # the local agent died: start another (it adopts the runs)
            fresh = await ensure_local_agent(home, cpus, memory)
            await fresh.close()

        hosts.insert(0, HostSpec(LOCAL_HOST, client, revive, address="this machine"))
    if not hosts:  # a coordinator for the API to give hosts (AddHost)
        log.warning("no hosts: %s lists none and the local host is off; runs submitted "
                    "end unplaceable until a host is added (`convoy hosts add`)",
                    roster.path)  # fmt: skip
    store = Store(home / STATE_DB)
    # Before the Syncer is made and anything is served: no snapshot or sync is in flight.
    await asyncio.to_thread(collect_quietly, home, store)
    coordinator = Coordinator(home, store, hosts, grace_s=grace_s)
    roster.engine = coordinator
    await coordinator.start()
    server = grpc.aio.server()
    servicer = CoordinatorService(coordinator, roster)
    add_checked(pb_grpc.add_CoordinatorServicer_to_server, servicer, server)
    if tls is not None:
        await _start_tls(home, servicer, tls)
    sock = coordinator_socket(home)
    if sock.exists():
        sock.unlink()
    old_umask = os.umask(0o177)  # the socket is created 0600: its user alone may connect
    try:
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
    finally:
        os.umask(old_umask)
    os.chmod(sock, 0o600)
    write_state(home / "coordinator.pid", f"{os.getpid()}\n")
    log.info("coordinator listening on %s", sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("coordinator stopping; runs keep running on their hosts")
        if tls is not None:
            await tls.server.stop(grace=1)
        await server.stop(grace=1)
        await coordinator.close()  # the hosts' SSH connections with it
        store.close()
        for f in (sock, home / "coordinator.pid"):
            f.unlink(missing_ok=True)
