"""Processes convoy started detached and knows by a pid file (the coordinator, a local agent)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def stop_by_pidfile(pidfile: Path, wait_s: float = 5.0) -> int | None:
    """SIGTERM the process named in `pidfile` and wait up to `wait_s` for it to end; remove
    the file. The pid it stopped, or None when none was running (or the file names none)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return pid
