"""`convoy hosts`: list the coordinator's hosts; edit the hosts file; trust a host's SSH key."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from convoy.client import AsyncClient, KeyCheck, NewHost
from convoy.client.channel import resolve_target
from convoy.errors import CoordinatorUnavailable, UsageError
from convoy.runjson import iso
from convoy.sizes import human_bytes
from convoy.spec import label_from_text, parse_memory

from .render import table

_R = TypeVar("_R")


def add_parser(sub: Any) -> None:
    h = sub.add_parser(
        "hosts",
        help="list hosts; add, remove or trust a host",
        description="Without a subcommand: the coordinator's hosts with their capacity, what is "
        "allocated, and the runs holding it. add, remove and trust ask the running coordinator, "
        "which changes its hosts file ($CONVOY_HOME/hosts.yaml, or `convoy up --hosts FILE`) "
        "and uses the change at once. With no coordinator running, or with --file naming "
        "another file, they edit that file here, for the next `convoy up` to read.",
    )
    h.add_argument("--json", action="store_true", help="print JSON")
    hs = h.add_subparsers(dest="hosts_command", metavar="SUBCOMMAND")
    a = hs.add_parser("add", help="add a host reached by SSH",
                      description="Add a host reached by SSH: the running coordinator writes it "
                      "to its hosts file and connects to it at once (an SSH key it does not know "
                      "yet: `convoy hosts trust NAME`). Settings left out come from "
                      "~/.ssh/config.")  # fmt: skip
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
    r = hs.add_parser("remove", help="remove a host",
                      description="Remove a host: the running coordinator takes it out of its "
                      "hosts file and places nothing more there (its agent keeps running on the "
                      "host). Refused while runs are in flight there: removed, the host's "
                      "runs are queued again elsewhere while their containers go on there, "
                      "unseen.")  # fmt: skip
    r.add_argument("name")
    r.add_argument("--force", action="store_true",
                   help="remove it even with runs in flight there")  # fmt: skip
    t = hs.add_parser("trust", help="record a host's SSH key once you have checked it",
                      description="Fetch the SSH host key NAME offers the coordinator and record "
                      "it in $CONVOY_HOME/known_hosts; a host waiting for its key is then tried "
                      "again at once. Check the fingerprint out of band (on the host: "
                      "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pass it with "
                      "--fingerprint, or confirm it at the prompt: nothing is recorded "
                      "unchecked.")  # fmt: skip
    t.add_argument("name")
    t.add_argument("--fingerprint", help="the SHA256:... fingerprint you expect")
    for p in (a, r, t):
        p.add_argument("--file", type=Path,
                       help="a hosts file to edit here rather than the running coordinator's "
                       "(default: the coordinator's; with none running, "
                       "$CONVOY_HOME/hosts.yaml)")  # fmt: skip


def main(
    home: Path, ns: argparse.Namespace, run_async: Callable[[Coroutine[Any, Any, int]], int]
) -> int:
    cmd = ns.hosts_command
    if cmd is None:
        return run_async(_list(home, ns))
    if cmd == "add":
        host = new_host(ns)
        return run_async(_through_coordinator(home, ns, lambda c: _add(c, host)))
    if cmd == "remove":
        return run_async(_through_coordinator(home, ns, lambda c: _remove(c, ns)))
    return run_async(_through_coordinator(home, ns, lambda c: _trust(c, ns)))


def new_host(ns: argparse.Namespace) -> NewHost:
    labels = {}
    for item in ns.label:
        try:
            key, value = label_from_text(item)
        except ValueError as e:
            raise UsageError(f"--label {e}") from None
        labels[key] = value
    # 0 is what the request says for a setting left out: refused here, in the words of the
    # hosts file's check (which the coordinator applies to the rest).
    if ns.cpus == 0:
        raise UsageError(f"host {ns.name!r}: cpus: expected a positive number, got 0")
    if ns.port == 0:
        raise UsageError(f"host {ns.name!r}: port: expected a port number from 1 to 65535, got 0")
    memory = _memory(ns.memory)  # never 0: parse_memory refuses it
    identity = ns.identity
    if identity and not identity.startswith("~"):  # read by a coordinator with another cwd
        identity = os.path.abspath(identity)
    return NewHost(
        name=ns.name, address=ns.address, port=ns.port or 0, user=ns.user or "",
        identity=identity or "", cpus=ns.cpus or 0.0, memory_bytes=memory or 0,
        python=ns.python or "", agent_home=ns.agent_home or "",
        docker_host=ns.docker_host or "", labels=labels,
    )  # fmt: skip


def _memory(text: str | None) -> int | None:
    try:
        return parse_memory(text) if text else None
    except ValueError as e:
        raise UsageError(f"--memory: {e}") from None


async def _through_coordinator(
    home: Path, ns: argparse.Namespace, call: Callable[[AsyncClient], Awaitable[int]]
) -> int:
    """`call(client)` against the running coordinator, which edits its hosts file and uses
    the change at once. With no coordinator on this machine, or `--file` naming another file
    than the one it keeps, the file is edited here instead (hostsoffline.py), for the next
    `convoy up` to read. A coordinator elsewhere (--coordinator) must answer."""
    from . import hostsoffline as offline  # what it imports, only when it is needed

    try:
        client = await AsyncClient.connect(home)
    except CoordinatorUnavailable:
        if resolve_target(None):
            raise
        return await offline.edit(home, ns, ns.file or home / "hosts.yaml", None)
    async with client:
        if ns.file is not None:
            kept = Path(await client.hosts_file())
            if ns.file.resolve() != kept.resolve():
                if client.remote:
                    raise UsageError(f"--file {ns.file}: the coordinator at {client.where} "
                                     f"keeps {kept}, on its machine")  # fmt: skip
                return await offline.edit(home, ns, ns.file, kept)
        return await call(client)


async def _add(client: AsyncClient, host: NewHost) -> int:
    resp = await client.add_host(host)
    print(f"added {host.name} to {resp.hosts_file}; the coordinator connects to it now "
          f"(`convoy hosts` shows its state; an SSH key it does not know yet: `convoy hosts "
          f"trust {host.name}`)")  # fmt: skip
    return 0


async def _remove(client: AsyncClient, ns: argparse.Namespace) -> int:
    resp = await client.remove_host(ns.name, ns.force)
    where = " and ".join(
        w for w, did in ((f"{resp.hosts_file}", resp.in_file),
                         ("the running coordinator", resp.in_use)) if did
    )  # fmt: skip
    print(f"removed {ns.name} from {where}")
    if resp.requeued:
        print(f"convoy: {len(resp.requeued)} run(s) were in flight on {ns.name}: queued again "
              "elsewhere, while their containers go on there", file=sys.stderr)  # fmt: skip
    return 0


async def _trust(client: AsyncClient, ns: argparse.Namespace) -> int:
    async def ask(fingerprint: str | None) -> KeyCheck:
        return await client.trust_host(ns.name, fingerprint)

    return await confirm_key(ns.name, ns.fingerprint, ask)


async def confirm_key(
    name: str, expected: str | None,
    ask: Callable[[str | None], Awaitable[KeyCheck]],
) -> int:  # fmt: skip
    """`convoy hosts trust`: the key recorded only once checked, by `--fingerprint` or at the
    prompt. `ask(None)` says the key offered and records nothing; `ask(fingerprint)` records
    it if it is still the one offered."""
    check = await ask(expected)
    if not check.recorded:
        replaces = _replaces(check)
        if not sys.stdin.isatty():
            raise UsageError(f"host {name} offers key {check.fingerprint}{replaces}; check it on "
                             f"the host, then run `convoy hosts trust {name} --fingerprint "
                             f"{check.fingerprint}`")  # fmt: skip
        answer = input(f"host {name} offers key {check.fingerprint}{replaces}. Is that its key? "
                       "[y/N] ")  # fmt: skip
        if answer.strip().lower() not in ("y", "yes"):
            print("not recorded")
            return 1
        check = await ask(check.fingerprint)
    print(f"recorded {name}'s key {check.fingerprint} in {check.known_hosts}{_replaces(check)}")
    return 0


def _replaces(check: KeyCheck) -> str:
    if not check.others:
        return ""
    text = "; it replaces the key recorded before: " + "; ".join(
        f"{fp} (in {file})" for fp, file in check.others
    )
    if any(file != check.known_hosts for _, file in check.others):
        text += (
            "; convoy leaves your own known_hosts file as it is, and a host offering "
            "the key it holds is still accepted: remove that with `ssh-keygen -R`"
        )
    return text


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
