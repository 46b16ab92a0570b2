"""`convoy hosts`: list the coordinator's hosts; edit the hosts file; trust a host's SSH key."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from convoy.client import AsyncClient
from convoy.errors import UsageError
from convoy.runjson import iso
from convoy.sizes import human_bytes
from convoy.spec import label_from_text, parse_memory

from .render import table


def add_parser(sub: Any) -> None:
    h = sub.add_parser(
        "hosts",
        help="list hosts; edit the hosts file; trust a host",
        description="Without a subcommand: the coordinator's hosts with their capacity, what is "
        "allocated, and the runs holding it. The hosts file is $CONVOY_HOME/hosts.yaml unless "
        "--file says otherwise; `convoy up` reads it when it starts.",
    )
    h.add_argument("--json", action="store_true", help="print JSON")
    hs = h.add_subparsers(dest="hosts_command", metavar="SUBCOMMAND")
    a = hs.add_parser("add", help="add a host to the hosts file",
                      description="Add a host reached by SSH to the hosts file. Settings left "
                      "out come from ~/.ssh/config.")  # fmt: skip
    a.add_argument("name")
    a.add_argument("address", help="host name, address or ~/.ssh/config alias")
    a.add_argument("--port", type=int)
    a.add_argument("--user")
    a.add_argument("--identity", help="private key file")
    a.add_argument("--cpus", type=float, help="cpus to offer (default: the host's)")
    a.add_argument("--memory", help="memory to offer, e.g. 16GiB (default: the host's)")
    a.add_argument("--python", help="the python the agent runs with (default python3)")
    a.add_argument("--agent-home", help="the agent's folder on the host (~/.convoy/agent)")
    a.add_argument("--docker-host", help="the host's Docker engine, e.g. unix:///run/docker.sock")
    a.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="a label for placement (repeatable); yes/no/on/off read as true/false, "
                   "as in YAML")  # fmt: skip
    r = hs.add_parser("remove", help="remove a host from the hosts file",
                      description="Remove a host from the hosts file. Refused while runs are "
                      "in flight there: once the next `convoy up` no longer knows the host, "
                      "those runs are queued again elsewhere while their containers go on "
                      "there, unseen.")  # fmt: skip
    r.add_argument("name")
    r.add_argument("--force", action="store_true",
                   help="remove it even with runs in flight there")  # fmt: skip
    t = hs.add_parser("trust", help="record a host's SSH key once you have checked it",
                      description="Fetch NAME's SSH host key and record it in "
                      "$CONVOY_HOME/known_hosts. Check the fingerprint out of band (on the host: "
                      "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pass it with "
                      "--fingerprint, or confirm it at the prompt.")  # fmt: skip
    t.add_argument("name")
    t.add_argument("--fingerprint", help="the SHA256:... fingerprint you expect")
    for p in (a, r, t):
        p.add_argument("--file", type=Path, help="hosts file (default: $CONVOY_HOME/hosts.yaml)")


def main(
    home: Path, ns: argparse.Namespace, run_async: Callable[[Coroutine[Any, Any, int]], int]
) -> int:
    cmd = ns.hosts_command
    if cmd is None:
        return run_async(_list(home, ns))
    from convoy.coordinator.hosts import hostsfile
    from convoy.coordinator.runs.store import STATE_DB, in_flight_on

    path = ns.file or home / "hosts.yaml"
    if cmd == "add":
        labels = {}
        for item in ns.label:
            try:
                key, value = label_from_text(item)
            except ValueError as e:
                raise UsageError(f"--label {e}") from None
            labels[key] = value
        cfg = hostsfile.HostConfig(
            name=ns.name, address=ns.address, port=ns.port, user=ns.user, identity=ns.identity,
            labels=labels, cpus=ns.cpus,
            memory=_memory(ns.memory),
            python=ns.python or hostsfile.DEFAULT_PYTHON,
            agent_home=ns.agent_home or hostsfile.DEFAULT_AGENT_HOME,
            docker_host=ns.docker_host,
        )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        hostsfile.add_host(path, cfg)
        print(f"added {ns.name} to {path}; `convoy hosts trust {ns.name}` records its key, and "
              "the next `convoy up` uses it")  # fmt: skip
        return 0
    if cmd == "remove":
        busy: list[tuple[str, str]] = []

        def confirm() -> None:  # once the file is known to hold the host
            try:
                busy.extend(in_flight_on(home / STATE_DB, ns.name))
            except sqlite3.Error as e:
                if ns.force:
                    return
                raise UsageError(f"cannot read the coordinator's store {home / STATE_DB} to "
                                 f"see whether runs are in flight on {ns.name} ({e}); --force "
                                 "removes the host without looking") from None  # fmt: skip
            if busy and not ns.force:
                shown = ", ".join(f"{run} ({state})" for run, state in busy[:5])
                more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
                raise UsageError(
                    f"{ns.name} has {len(busy)} run(s) in flight: {shown}{more}. Unless the "
                    "host is back in the file when `convoy up` next starts, they are then "
                    "queued again elsewhere while their containers go on there, unseen. Cancel "
                    "them (`convoy cancel RUN`) or let them end first, or pass --force"
                )

        hostsfile.remove_host(path, ns.name, confirm)
        print(f"removed {ns.name} from {path}")
        if busy:
            print(f"convoy: {len(busy)} run(s) were in flight on {ns.name}; their containers "
                  "go on there", file=sys.stderr)  # fmt: skip
        return 0
    return asyncio.run(_trust(home, path, ns.name, ns.fingerprint))


def _memory(text: str | None) -> int | None:
    try:
        return parse_memory(text) if text else None
    except ValueError as e:
        raise UsageError(f"--memory: {e}") from None


async def _trust(home: Path, path: Path, name: str, expected: str | None) -> int:
    from convoy.coordinator.hosts import hostsfile
    from convoy.coordinator.hosts.ssh import SSHHost

    cfgs = {h.name: h for h in hostsfile.read_hosts(path)}
    if name not in cfgs:
        raise UsageError(f"{path}: no host {name!r}")
    ssh = SSHHost(cfgs[name], home)
    offered = await ssh.fingerprint()
    others = [(fp, file) for fp, file in ssh.recorded_keys() if fp != offered]
    replaces = (
        "; it replaces the key recorded before: "
        + "; ".join(f"{fp} (in {file})" for fp, file in others)
        if others else ""
    )  # fmt: skip
    if any(file != str(ssh.known_hosts_path) for _, file in others):
        replaces += (
            "; convoy leaves your own known_hosts file as it is, and a host offering "
            "the key it holds is still accepted: remove that with `ssh-keygen -R`"
        )
    if expected is None:
        if not sys.stdin.isatty():
            raise UsageError(f"host {name} offers key {offered}{replaces}; check it on the "
                             f"host, then run `convoy hosts trust {name} --fingerprint "
                             f"{offered}`")  # fmt: skip
        answer = input(f"host {name} offers key {offered}{replaces}. Is that its key? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not recorded")
            return 1
    elif expected != offered:
        raise UsageError(f"host {name} offers key {offered}, not {expected}: not recorded")
    await ssh.trust(offered)
    print(f"recorded {name}'s key {offered} in {home / 'known_hosts'}{replaces}")
    return 0


async def _list(home: Path, ns: argparse.Namespace) -> int:
    async with await AsyncClient.connect(home) as client:
        hosts = await client.hosts()
    if ns.json:
        print(json.dumps([
            {
                "name": h.name, "state": h.state, "address": h.address,
                "agent_version": h.agent_version,
                "capacity": {"cpus": h.capacity.cpus, "memory_bytes": h.capacity.memory_bytes,
                             "gpus": h.capacity.gpus},
                "allocated": {"cpus": h.allocated.cpus, "memory_bytes": h.allocated.memory_bytes,
                              "gpus": h.allocated.gpus},
                "runs": list(h.runs), "reason": h.reason, "labels": dict(h.labels),
                "accepting": h.accepting, "since": iso(h.since),
            }
            for h in hosts
        ], indent=2))  # fmt: skip
        return 0
    rows = [
        [h.name, h.state if h.accepting or h.state != "up" else "up (full)",
         f"{h.allocated.cpus:g}/{h.capacity.cpus:g}",
         f"{human_bytes(h.allocated.memory_bytes)}/{human_bytes(h.capacity.memory_bytes)}",
         str(len(h.runs)), ",".join(f"{k}={v}" for k, v in sorted(h.labels.items())) or "-"]
        for h in hosts
    ]  # fmt: skip
    print(table(["HOST", "STATE", "CPUS", "MEMORY", "RUNS", "LABELS"], rows))
    for h in hosts:
        if h.reason:
            print(f"{h.name}: {h.reason}")
    return 0
