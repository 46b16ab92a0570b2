"""A coordinator on this machine, started in the background when none answers (what
`convoy run` and `AsyncClient.connect(start=True)` do)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from convoy.errors import CoordinatorUnavailable
from convoy.paths import checked_home, coordinator_socket, open_state


def start_detached(home: Path, up_args: list[str] | None = None, wait_s: float = 30.0) -> int:
    """Start `convoy up` in the background, logging to home/coordinator.log; its pid, once its
    socket is there."""
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
