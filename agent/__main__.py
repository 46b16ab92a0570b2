"""python -m convoy.agent --home DIR --socket PATH [--cpus N] [--memory SIZE] [--docker-host URL]
[--runtime docker|fake [--fake-state DIR]]: one host's agent.

--runtime fake runs no containers at all: each run only seems to, for as long and with the
exit code, output and files its env asks for (CONVOY_FAKE_DURATION, CONVOY_FAKE_EXIT,
CONVOY_FAKE_OUTPUT, CONVOY_FAKE_LINES, CONVOY_FAKE_FILES, CONVOY_FAKE_OOM,
CONVOY_FAKE_START_ERROR, CONVOY_FAKE_DISK_FULL; the agent's own environment gives the
defaults). It is for tests and simulated fleets, never for real work; its containers are
files in --fake-state and outlive the agent as Docker's do."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import sys
from pathlib import Path

from convoy import __version__
from convoy.errors import UsageError
from convoy.spec import parse_memory

from .policy import POLICY_FILE, load_policy
from .server import RUNTIMES, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m convoy.agent", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--home", type=Path, required=True, help="the agent's state folder")
    p.add_argument("--socket", type=Path, required=True, help="the unix socket to listen on")
    p.add_argument("--cpus", type=float, help="cpus to offer (default: this host's)")
    p.add_argument("--memory", help="memory to offer, e.g. 8GiB (default: this host's)")
    p.add_argument("--name", help="the host's name (default: hostname)")
    p.add_argument(
        "--docker-host", metavar="URL",
        help="the Docker engine to use, e.g. unix:///var/run/docker.sock (default: DOCKER_HOST "
        "or the default socket)",
    )  # fmt: skip
    p.add_argument(
        "--runtime", choices=RUNTIMES, default="docker",
        help="what runs the containers: docker (default), or fake, for tests and simulated "
        "fleets (see above)",
    )  # fmt: skip
    p.add_argument(
        "--fake-state", type=Path, metavar="DIR",
        help="where the fake runtime keeps its containers (default: HOME/fake-runtime)",
    )  # fmt: skip
    p.add_argument(
        "--policy", type=Path, metavar="FILE",
        help="the host's policy for runs (networks allowed, the user runs execute as); default: "
        "HOME/policy.yaml when it exists, else none and bridge, and nobody (65534) for a root "
        "agent",
    )  # fmt: skip
    p.add_argument("--version", action="version", version=__version__)
    ns = p.parse_args(argv)
    if ns.runtime != "fake" and ns.fake_state is not None:
        p.error("--fake-state goes with --runtime fake")
    if ns.runtime == "fake" and ns.docker_host:
        p.error("--docker-host goes with --runtime docker")
    if ns.docker_host:
        os.environ["DOCKER_HOST"] = ns.docker_host  # read by the runtime's docker.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ns.home.mkdir(parents=True, exist_ok=True)
    lock = open(ns.home / "agent.lock", "w")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"convoy agent: another agent already runs with home {ns.home}", file=sys.stderr)
        return 2
    memory = parse_memory(ns.memory) if ns.memory else None
    try:
        load_policy(ns.policy or ns.home / POLICY_FILE)  # a bad policy: said now, exit 2
    except UsageError as e:
        print(f"convoy agent: {e}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(ns.home, ns.socket, ns.cpus, memory, ns.name,
                          runtime_kind=ns.runtime, fake_state=ns.fake_state,
                          policy_file=ns.policy))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
