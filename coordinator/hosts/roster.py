"""The running coordinator's SSH hosts as the API changes them (AddHost, RemoveHost,
TrustHost): the hosts file it started with, kept in step with the engine, and the SSH session
behind each host.

The file is what the next start reads; the engine is what places runs now. A change is
checked first, then written to the file (atomically), then made in the engine, so a request
refused changes neither. A file edited by hand meanwhile is read again at each change, and
what it says wins for the file: a host added there by hand is used at the next start only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from convoy.coordinator.engine import Coordinator, HostSpec
from convoy.coordinator.hosts.hostsfile import (
    RESERVED_NAME,
    HostConfig,
    add_host_text,
    load_hosts,
    read_hosts,
    remove_host_text,
    write_atomic,
)
from convoy.coordinator.hosts.ssh import KeyCheck, SSHHost
from convoy.errors import HostBusy, HostExists, NotFound, UsageError


@dataclass(frozen=True)
class Removed:
    """What RemoveHost did."""

    in_file: bool  # it was in the hosts file
    in_use: bool  # the coordinator used it
    requeued: tuple[str, ...] = ()  # its runs in flight (forced), queued again elsewhere


class Roster:
    def __init__(self, home: Path, path: Path) -> None:
        """`home`: CONVOY_HOME (known_hosts, tunnels); `path`: the hosts file."""
        self.home = home
        self.path = path
        self.engine: Coordinator | None = None  # set once the coordinator is made
        self.configs: dict[str, HostConfig] = {}  # the hosts in use, as configured
        self._ssh: dict[str, SSHHost] = {}
        self._lock = asyncio.Lock()  # one change of the file at a time

    def load(self) -> list[HostSpec]:
        """The hosts of the file, for the coordinator's start (no file: none)."""
        return [self._spec(cfg) for cfg in read_hosts(self.path)]

    def _spec(self, cfg: HostConfig) -> HostSpec:
        ssh = SSHHost(cfg, self.home)
        self.configs[cfg.name] = cfg
        self._ssh[cfg.name] = ssh

        async def revive() -> None:  # connect (again) and start the agent
            await ssh.ensure_agent()

        async def close() -> None:
            await ssh.close()

        where = f"{cfg.user + '@' if cfg.user else ''}{cfg.address}"
        return HostSpec(cfg.name, ssh.client(), revive, dict(cfg.labels), where, cpus=cfg.cpus,
                        memory=cfg.memory, stop_agent=ssh.stop_agent, close=close)  # fmt: skip

    def _engine(self) -> Coordinator:
        assert self.engine is not None, "Roster.engine is set before the API is served"
        return self.engine

    async def add(self, cfg: HostConfig) -> None:
        """Write the host to the file and have the coordinator use it (ALREADY_EXISTS when
        either has the name; INVALID_ARGUMENT for a setting the file would not load)."""
        engine = self._engine()
        async with self._lock:
            text = self.path.read_text() if self.path.exists() else ""
            new = add_host_text(text, cfg, str(self.path))  # validates, and refuses a name taken
            if cfg.name in engine.specs:
                raise HostExists(f"the coordinator already has a host named {cfg.name!r} (not "
                                 f"in {self.path}: it was taken out by hand)")  # fmt: skip
            await asyncio.to_thread(write_atomic, self.path, new)
            engine.add_host(self._spec(cfg))

    async def remove(self, name: str, force: bool) -> Removed:
        """Take the host out of the file and out of the coordinator (HostBusy while runs are in
        flight there, unless `force`)."""
        engine = self._engine()
        if name == RESERVED_NAME:
            raise UsageError(f"'{name}' is this machine's own agent, not a host of the hosts "
                             "file; `convoy up --no-local` leaves it out")  # fmt: skip
        async with self._lock:
            text = self.path.read_text() if self.path.exists() else ""
            in_file = any(h.name == name for h in load_hosts(text, str(self.path)))
            in_use = name in self._ssh and name in engine.specs
            if not in_file and not in_use:
                raise NotFound(f"no host named {name!r} (in {self.path}, or in use)")
            if in_use and (busy := engine.in_flight_on(name)) and not force:
                raise HostBusy(name, [(r.id, r.state.value) for r in busy])
            if in_file:
                await asyncio.to_thread(
                    write_atomic, self.path, remove_host_text(text, name, str(self.path))
                )
            requeued = []
            if in_use:
                requeued = [r.id for r in await engine.remove_host(name, force=True)]
                self.configs.pop(name, None)
                self._ssh.pop(name, None)
        return Removed(in_file, in_use, tuple(requeued))

    async def trust(self, name: str, expected: str | None) -> KeyCheck:
        """The key the host offers the coordinator, recorded when it is `expected`; a host
        waiting for its key is then tried again at once."""
        ssh = self._ssh.get(name)
        if ssh is None:
            cfg = next((h for h in read_hosts(self.path) if h.name == name), None)
            if cfg is None:
                raise NotFound(f"no host named {name!r} (in {self.path}, or in use)")
            ssh = SSHHost(cfg, self.home)
        check = await ssh.check_key(expected)
        if check.recorded:
            self._engine().retry_host(name)
        return check
