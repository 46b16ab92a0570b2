"""convoy.procs: stopping a detached process known by its pid file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convoy.procs import _ended, stop_by_pidfile

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"  # noqa: E501


def started(pidfile: Path, code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline()  # its handler is set
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def test_one_that_ignores_sigterm_is_killed_when_asked(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    proc = started(pidfile, STUBBORN)
    try:
        assert stop_by_pidfile(pidfile, 0.3, kill=True) == proc.pid
        with pytest.raises(ProcessLookupError):
            os.kill(proc.pid, 0)  # gone (and reaped: it was our child)
        assert not pidfile.exists()
    finally:
        proc.kill()
        proc.wait()


def test_without_kill_it_is_left_and_said(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    proc = started(pidfile, STUBBORN)
    try:
        assert stop_by_pidfile(pidfile, 0.3) == proc.pid
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_a_pid_file_rewritten_meanwhile_is_kept(tmp_path: Path) -> None:
    """A process started while the old one was stopping (a local agent revived) keeps its pid
    file: removing it would leave that process running with nothing to stop it by."""
    pidfile = tmp_path / "x.pid"
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    open({str(pidfile)!r}, 'w').write('4194000\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye); print(1, flush=True); time.sleep(60)"
    )
    proc = started(pidfile, code)
    try:
        assert stop_by_pidfile(pidfile, 5) == proc.pid
        assert pidfile.read_text() == "4194000\n"
    finally:
        proc.kill()
        proc.wait()


def test_none_running_is_none(tmp_path: Path) -> None:
    assert stop_by_pidfile(tmp_path / "missing.pid") is None
    (tmp_path / "gone.pid").write_text("4194001\n")
    assert stop_by_pidfile(tmp_path / "gone.pid") is None
    assert not (tmp_path / "gone.pid").exists()


def test_a_zombie_counts_as_stopped() -> None:
    """A process that ended but that its parent does not reap (a container's init that never
    does, a parent busy elsewhere) has stopped: `convoy down` waited its whole minute for one."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import os, signal, subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
         "os.kill(child.pid, signal.SIGKILL)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(60)  # never reaps it"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        zombie = int(parent.stdout.readline())
        while not Path(f"/proc/{zombie}/stat").read_text().rsplit(")", 1)[1].startswith(" Z"):
            time.sleep(0.01)
        os.kill(zombie, 0)  # still there, as far as signals go
        assert _ended(zombie)
        assert not _ended(parent.pid)
    finally:
        parent.kill()
        parent.wait()
