"""Reaching the coordinator: its socket under CONVOY_HOME, started on demand for `convoy run`;
or, with --coordinator / CONVOY_COORDINATOR, one elsewhere (convoy/client/channel.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from convoy.client.channel import open_channel, resolve_target, resolve_token
from convoy.errors import CoordinatorUnavailable
from convoy.paths import checked_home, coordinator_socket, open_state
from convoy.v1 import coordinator_pb2_grpc as pb_grpc


async def connect(
    home: Path, timeout: float = 2.0, target: str | None = None
) -> tuple[grpc.aio.Channel, pb_grpc.CoordinatorStub]:
    """A channel to the coordinator at `target` (default: $CONVOY_COORDINATOR; "" or unset:
    this CONVOY_HOME's socket)."""
    if where := resolve_target(target):
        channel, _ = await open_channel(where, home, resolve_token(), timeout=max(timeout, 5.0))
        return channel, pb_grpc.CoordinatorStub(channel)
    sock = coordinator_socket(home)
    if not sock.exists():
        raise CoordinatorUnavailable(
            f"no coordinator is running (no socket at {sock}); start one with `convoy up`"
        )
    channel = grpc.aio.insecure_channel(
        f"unix:{sock}", options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    )
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout)
    except (TimeoutError, grpc.aio.AioRpcError):
        await channel.close(None)
        raise CoordinatorUnavailable(
            f"the coordinator does not answer on {sock}; start one with `convoy up`"
        ) from None
    return channel, pb_grpc.CoordinatorStub(channel)


def start_detached(home: Path, up_args: list[str] | None = None, wait_s: float = 30.0) -> int:
    """Start `convoy up` in the background, logging to CONVOY_HOME/coordinator.log."""
    env = dict(os.environ, CONVOY_HOME=str(home))
    checked_home(home)
    with open_state(home / "coordinator.log") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convoy.cli.main", "up", *(up_args or [])], stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CoordinatorUnavailable(
                f"the coordinator exited at start (status {proc.returncode}); "
                f"see {home / 'coordinator.log'}"
            )
        if coordinator_socket(home).exists():
            return proc.pid
        time.sleep(0.05)
    raise CoordinatorUnavailable(f"the coordinator did not start; see {home / 'coordinator.log'}")


async def connect_or_start(home: Path) -> tuple[grpc.aio.Channel, pb_grpc.CoordinatorStub]:
    if resolve_target(None):  # a coordinator elsewhere: not ours to start
        return await connect(home)
    try:
        return await connect(home)
    except CoordinatorUnavailable:
        pass
    pid = await asyncio.to_thread(start_detached, home)
    print(f"convoy: started a coordinator (pid {pid}; log {home / 'coordinator.log'})",
          file=sys.stderr)  # fmt: skip
    return await connect(home, timeout=15.0)
