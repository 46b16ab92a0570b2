"""python -m convoy.agent --home DIR --socket PATH [--cpus N] [--memory SIZE] [--docker-host URL]:
one host's agent."""

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
from convoy.spec import parse_memory

from .server import serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convoy.agent", description=__doc__)
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
    p.add_argument("--version", action="version", version=__version__)
    ns = p.parse_args(argv)
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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(ns.home, ns.socket, ns.cpus, memory, ns.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
