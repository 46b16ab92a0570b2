"""The edit loop: from saving a source file to the new run's first line of output.

A one-run experiment (`python3 model.py`, image convoy/python:3.11) is watched by `convoy watch`
(its own coordinator and local agent, in a temporary CONVOY_HOME). Each of --edits rounds
rewrites model.py with a new marker and times how long until the line carrying that marker
reaches the watching client, then does the same with a bare `docker run` of the same command,
image, cpus and memory on the same folder (the write, then `docker run`, then its first line).
The two alternate, so both see the same machine. Each waits for its run to end before the next
edit.

    python bench/edit_loop.py [--edits 20]

The last line is JSON: {"convoy_median_s", "docker_median_s", "ratio"} (ratio = convoy / docker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGE = "convoy/python:3.11"
SPEC = """name: editloop
image: convoy/python:3.11
command: python3 model.py
resources: {cpus: 1, memory: 256MiB}
"""
MODEL = "print('marker {n}', flush=True)\n"


class Lines:
    """A process's output lines as they come, with when each arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.seen.append((time.perf_counter(), line.rstrip("\n")))
                self._cv.notify_all()

    def wait(self, text: str, after: int = 0, timeout: float = 120) -> tuple[float, int]:
        """When the first line holding `text` (from line `after` on) arrived, and its index."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for i in range(after, len(self.seen)):
                    if text in self.seen[i][1]:
                        return self.seen[i][0], i
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(line for _, line in self.seen[-20:])
                    raise TimeoutError(f"no line with {text!r} in {timeout} s; last lines:\n{tail}")
                self._cv.wait(left)


def docker_round(work: Path, n: int) -> float:
    (work / "model.py").write_text(MODEL.format(n=n))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["docker", "run", "--rm", "--network", "none", "--cpus", "1", "--memory", "256m",
         "-v", f"{work}:/work:ro", "-w", "/work", IMAGE, "python3", "model.py"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    took = time.perf_counter() - t0
    proc.wait()
    if f"marker {n}" not in first:
        raise RuntimeError(f"docker run printed {first!r}")
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--edits", type=int, default=20)
    ns = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cvb-", dir="/tmp"))
    home, exp, plain = tmp / "home", tmp / "exp", tmp / "plain"
    exp.mkdir()
    plain.mkdir()
    (exp / "experiment.yaml").write_text(SPEC)
    (exp / "model.py").write_text(MODEL.format(n=0))
    env = dict(os.environ, CONVOY_HOME=str(home))
    convoy = [sys.executable, "-m", "convoy.cli.main"]
    watch = subprocess.Popen(
        [*convoy, "watch", str(exp / "experiment.yaml")], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = Lines(watch)
    convoy_s: list[float] = []
    docker_s: list[float] = []
    try:
        _, at = lines.wait("marker 0")
        _, at = lines.wait("watching for changes", at)
        for n in range(1, ns.edits + 1):
            time.sleep(0.5)  # a quick person: save again half a second after the output ends
            t0 = time.perf_counter()
            (exp / "model.py").write_text(MODEL.format(n=n))
            seen, at = lines.wait(f"marker {n}", at)
            convoy_s.append(seen - t0)
            _, at = lines.wait("watching for changes", at)
            docker_s.append(docker_round(plain, n))
            print(f"edit {n:2d}: convoy {convoy_s[-1]:.3f} s   docker run {docker_s[-1]:.3f} s",
                  flush=True)  # fmt: skip
    finally:
        watch.terminate()
        watch.wait(20)
        subprocess.run([*convoy, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    c, d = statistics.median(convoy_s), statistics.median(docker_s)
    print(f"median: convoy {c:.3f} s, docker run {d:.3f} s, ratio {c / d:.3f}")
    print(json.dumps({"convoy_median_s": round(c, 4), "docker_median_s": round(d, 4),
                      "ratio": round(c / d, 4)}))  # fmt: skip


if __name__ == "__main__":
    main()
