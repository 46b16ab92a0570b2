"""Processes convoy started detached and knows by a pid file (the coordinator, a local agent)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def stop_by_pidfile(pidfile: Path, wait_s: float = 5.0, kill: bool = False) -> int | None:
    """SIGTERM the process named in `pidfile` and wait up to `wait_s` for it to end (with
    `kill`, SIGKILL it then); remove the file unless it names another process by then (one
    started meanwhile). The pid it stopped, or None when none was running (or the file names
    none)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _unlink_naming(pidfile, pid)
        return None
    deadline = time.monotonic() + wait_s
    while not _ended(pid):
        if time.monotonic() >= deadline:
            if not kill:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill = False
            deadline = time.monotonic() + 5.0
        time.sleep(0.05)
    _unlink_naming(pidfile, pid)
    return pid


def _ended(pid: int) -> bool:
    """Gone, or a zombie: it has ended, and waits only for its parent (which may be slow to
    reap it, or a container's init that never does) to be forgotten."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(ChildProcessError):  # our own child: reaped, else a zombie stays
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc here: the signal answered, so it runs
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def _unlink_naming(pidfile: Path, pid: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(pidfile.read_text().strip()) == pid:
            pidfile.unlink()
