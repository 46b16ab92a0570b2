"""What the benchmarks share: a coordinator and local agent in a throwaway CONVOY_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IMAGE = "convoy/busybox:1"
CONVOY = [sys.executable, "-m", "convoy.cli.main"]


@dataclass(frozen=True)
class Local:
    home: Path
    env: dict[str, str]

    @property
    def experiments(self) -> Path:
        """A folder for experiment files, beside the state folder (convoy refuses those inside)."""
        return self.home.parent / "experiments"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CONVOY, *args], env=self.env, check=True, capture_output=True,
                              text=True)  # fmt: skip


def require(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"{sys.argv[0]} needs `{tool}` (bash scripts/setup.sh installs it)")
    subprocess.run(["docker", "image", "inspect", IMAGE], check=True, capture_output=True)


@contextmanager
def convoy_up(cpus: int | None = None) -> Iterator[Local]:
    """`convoy up` in a fresh home; stopped, with its agent, and the home removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="cvy-bench-", dir="/tmp"))
    home = base / "home"
    (base / "experiments").mkdir()
    env = dict(os.environ, CONVOY_HOME=str(home))
    args = [*CONVOY, "up", *(["--cpus", str(cpus)] if cpus else [])]
    up = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (home / "coordinator.sock").exists():
            if up.poll() is not None:
                sys.exit("convoy up failed")
            time.sleep(0.05)
        yield Local(home, env)
    finally:
        up.terminate()
        up.wait()
        pid = home / "agent" / "agent.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
        shutil.rmtree(base, ignore_errors=True)
