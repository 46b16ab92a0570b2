"""`convoy hosts add|remove|trust` when no coordinator is there to ask (or `--file` names
another hosts file than the one it keeps): the file is edited here, for the `convoy up` that
reads it next, and a host's key is fetched from this machine into $CONVOY_HOME/known_hosts
(which a coordinator of this home reads at each connection)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from convoy.client import KeyCheck, NewHost
from convoy.coordinator.hosts import hostsfile
from convoy.coordinator.hosts.ssh import SSHHost
from convoy.coordinator.runs.store import STATE_DB, in_flight_on
from convoy.errors import NotFound, UsageError

from .hosts import confirm_key, new_host


async def edit(home: Path, ns: argparse.Namespace, path: Path, kept: Path | None) -> int:
    """Carry out the subcommand on the file at `path`; `kept`: the file a running coordinator
    keeps instead (None: no coordinator answers)."""
    if ns.hosts_command == "add":
        status = _add(path, new_host(ns))
    elif ns.hosts_command == "remove":
        status = _remove(home, path, ns.name, ns.force)
    else:
        status = await _trust(home, path, ns.name, ns.fingerprint)
    if kept is not None and ns.hosts_command != "trust":
        print(f"convoy: the running coordinator keeps {kept}, not {path}: it does not use "
              f"this change (`convoy up --hosts {path}` would)", file=sys.stderr)  # fmt: skip
    return status


def _add(path: Path, r: NewHost) -> int:
    hostsfile.add_host(path, hostsfile.config_of(r))
    print(f"added {r.name} to {path} (no coordinator uses it now: the next `convoy up` "
          f"does); `convoy hosts trust {r.name}` records its key")  # fmt: skip
    return 0


def _remove(home: Path, path: Path, name: str, force: bool) -> int:
    busy: list[tuple[str, str]] = []

    def confirm() -> None:  # once the file is known to hold the host
        try:
            busy.extend(in_flight_on(home / STATE_DB, name))
        except sqlite3.Error as e:
            if force:
                return
            raise UsageError(f"cannot read the coordinator's store {home / STATE_DB} to "
                             f"see whether runs are in flight on {name} ({e}); --force "
                             "removes the host without looking") from None  # fmt: skip
        if busy and not force:
            shown = ", ".join(f"{run} ({state})" for run, state in busy[:5])
            more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
            raise UsageError(
                f"{name} has {len(busy)} run(s) in flight: {shown}{more}. Unless the "
                "host is back in the file when `convoy up` next starts, they are then "
                "queued again elsewhere while their containers go on there, unseen. Cancel "
                "them (`convoy cancel RUN`) or let them end first, or pass --force"
            )

    hostsfile.remove_host(path, name, confirm)
    print(f"removed {name} from {path}")
    if busy:
        print(f"convoy: {len(busy)} run(s) were in flight on {name}; their containers "
              "go on there", file=sys.stderr)  # fmt: skip
    return 0


async def _trust(home: Path, path: Path, name: str, expected: str | None) -> int:
    cfgs = {h.name: h for h in hostsfile.read_hosts(path)}
    if name not in cfgs:
        raise NotFound(f"{path}: no host {name!r}")
    ssh = SSHHost(cfgs[name], home)

    async def ask(fingerprint: str | None) -> KeyCheck:
        c = await ssh.check_key(fingerprint)
        return KeyCheck(c.key_type, c.fingerprint, c.recorded, str(c.known_hosts),
                        [(fp, file) for fp, file in c.others])  # fmt: skip

    return await confirm_key(name, expected, ask)
