"""A coordinator listening on TCP (`convoy up --listen`) for a test: started in a home of its
own, stopped with every process of that home (its agent, and the runs the fake runtime keeps
as processes) whatever the test did. test_remote*.py start theirs through here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .conftest import _processes_of

START_S = 60.0  # for `convoy up` to make its socket, on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def coordinator_up(
    home: Path, log_path: Path, args: Sequence[str], env: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`convoy up ARGS` with CONVOY_HOME=home (in `env`), once its socket is there; at the
    end it, and everything of home, is gone (AssertionError naming what would not go)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "convoy.cli.main", "up", *args],
                                env=dict(env), stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + START_S
            while not (home / "coordinator.sock").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"convoy up did not start: {log_path.read_text()}")
                time.sleep(0.05)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pidfile in (home / "coordinator.pid", home / "agent" / "agent.pid"):
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
            left = kill_all_of(home)
            assert not left, f"processes of {home} could not be stopped: {left}"


def _alive(pid: int) -> bool:
    try:  # the state follows the name in parentheses; a zombie is gone but for its parent
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_all_of(home: Path) -> list[int]:
    """SIGKILL every process of `home` (the agent's fake runs outlive it, as runs do) until
    none is left; those that would not go. Bounded, so that teardown ends whatever happens."""
    for _ in range(200):
        left = [pid for pid in _processes_of(home) if _alive(pid)]
        if not left:
            return []
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    return [pid for pid in _processes_of(home) if _alive(pid)]


def fake_env(home: Path) -> dict[str, str]:
    """The environment of a coordinator on the fake runtime (no Docker: its socket is none)."""
    return dict(os.environ, CONVOY_HOME=str(home), CONVOY_AGENT_RUNTIME="fake",
                DOCKER_HOST=f"unix://{home.parent}/no-docker.sock")  # fmt: skip


@dataclass
class Listening:
    """A coordinator on the fake runtime, listening on 127.0.0.1:port; the CLI run for it."""

    home: Path  # the coordinator's
    port: int

    def convoy(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "convoy.cli.main", *args], env={**fake_env(self.home), **env},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def token(self, name: str) -> str:
        """A new token, made as its admin makes one."""
        out = self.convoy("token", "create", name)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
