"""A 10^5-run sweep on one coordinator: how long submitting and cancelling it take, and whether
`convoy runs` keeps answering meanwhile (issue: a hostile or just large matrix).

    python bench/big_sweep.py [--runs 100000]

The coordinator is `convoy up` with its local agent on the fake runtime (no containers: what
is measured is the coordinator), in a fresh CONVOY_HOME. The sweep's runs would last an hour;
the host takes 8 at a time, so the rest stay queued. While the sweep is submitted, and then
cancelled whole (`convoy cancel SUBMISSION`), `convoy runs -s <a one-run submission>` is run
again and again: its latency, start-up of the CLI included, against the same command on the
idle coordinator before (the baseline). A refused 10^7-run matrix is timed too (`convoy run`
until it exits 2). Then `convoy down` is timed, and no process of the home may outlive it.

The last line printed is JSON: {"runs", "submit_s", "cancel_s", "refuse_10e7_s", "down_s",
"idle_probe_s", "probe_max_s": {"submit", "cancel"}, "probe_median_s": {...}, "ratio_max":
{...} (max over the idle probe), "coordinator_rss_mb", "left_running"}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

SPEC = """
name: {name}
image: any/image:1
sources: src
command: ignored
{matrix}
env: {{CONVOY_FAKE_DURATION: "{duration}"}}
resources: {{cpus: 1, memory: 16MiB}}
"""


class Home:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cvb-", dir="/tmp"))
        self.home = self.dir / "home"
        (self.dir / "src").mkdir()
        self.env = dict(os.environ, CONVOY_HOME=str(self.home), CONVOY_AGENT_RUNTIME="fake",
                        DOCKER_HOST=f"unix://{self.dir}/no-docker.sock")  # fmt: skip

    def spec(self, name: str, matrix: str, duration: str) -> Path:
        path = self.dir / f"{name}.yaml"
        path.write_text(textwrap.dedent(SPEC.format(name=name, matrix=matrix, duration=duration)))
        return path

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "convoy.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def pids(self) -> list[int]:
        """Processes started with this home in their environment or command line."""
        mark = str(self.home).encode()
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if mark in (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes():
                        out.append(int(entry.name))
                except OSError:
                    pass
        return out


class Prober:
    """`convoy runs -s SUB` again and again in a thread while something else goes on."""

    def __init__(self, home: Home, sub: str) -> None:
        self.home, self.sub = home, sub
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            out = self.home.cli("runs", "-s", self.sub)
            if out.returncode == 0:
                self.times.append(time.perf_counter() - t0)
            else:
                self.times.append(float("inf"))

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ns = ap.parse_args()
    h = Home()
    up = subprocess.Popen([sys.executable, "-m", "convoy.cli.main", "up", "--cpus", "8",
                           "--memory", "8GiB"], env=h.env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while h.cli("hosts").returncode != 0:
            if time.monotonic() > deadline or up.poll() is not None:
                raise SystemExit("convoy up did not answer")
            time.sleep(0.2)
        small = h.cli("run", "-q", str(h.spec("small", "", "0.1")))
        assert small.returncode == 0, small.stderr
        idle = []
        for _ in range(5):
            t0 = time.perf_counter()
            h.cli("runs", "-s", "small-1")
            idle.append(time.perf_counter() - t0)
        idle_s = statistics.median(idle)

        t0 = time.perf_counter()
        refused = h.cli("run", str(h.spec("huge", "matrix: {i: {range: [0, 10000000]}}", "1")))
        refuse_s = time.perf_counter() - t0
        assert refused.returncode == 2, refused.stderr

        big = h.spec("big", f"matrix: {{i: {{range: [0, {ns.runs}]}}}}", "3600")
        with Prober(h, "small-1") as during_submit:
            t0 = time.perf_counter()
            sub = h.cli("run", "--detach", str(big))
            submit_s = time.perf_counter() - t0
        assert sub.returncode == 0, sub.stderr
        pid = int((h.home / "coordinator.pid").read_text())
        rss_kb = int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])
        with Prober(h, "small-1") as during_cancel:
            t0 = time.perf_counter()
            cancel = h.cli("cancel", "big-1")
            while "queued" in h.cli("runs", "-s", "big-1", "--state", "queued").stdout:
                time.sleep(0.2)  # cancel returns when every run was reached; queued ones end
            cancel_s = time.perf_counter() - t0
        assert cancel.returncode == 0, cancel.stderr
        t0 = time.perf_counter()
        down = h.cli("down", "--cancel")
        down_s = time.perf_counter() - t0
        assert down.returncode == 0, down.stderr
        time.sleep(1)
        left = h.pids()
    finally:
        for p in h.pids():
            os.kill(p, signal.SIGKILL)
        if up.poll() is None:
            up.kill()
        up.wait()
        shutil.rmtree(h.dir, ignore_errors=True)

    def stats(p: Prober) -> tuple[float, float]:
        return max(p.times), statistics.median(p.times)

    (smax, smed), (cmax, cmed) = stats(during_submit), stats(during_cancel)
    print(f"idle `convoy runs`: {idle_s:.2f} s; 10^7 matrix refused in {refuse_s:.2f} s")
    print(f"submit {ns.runs:,} runs: {submit_s:.1f} s, `convoy runs` at most {smax:.2f} s "
          f"(median {smed:.2f}, {len(during_submit.times)} probes)")  # fmt: skip
    print(f"cancel them: {cancel_s:.1f} s, `convoy runs` at most {cmax:.2f} s "
          f"(median {cmed:.2f}, {len(during_cancel.times)} probes)")  # fmt: skip
    print(f"coordinator RSS {rss_kb / 1024:.0f} MB; down {down_s:.1f} s; left running: {left}")
    print(json.dumps({
        "runs": ns.runs, "submit_s": round(submit_s, 2), "cancel_s": round(cancel_s, 2),
        "refuse_10e7_s": round(refuse_s, 2), "down_s": round(down_s, 2),
        "idle_probe_s": round(idle_s, 3),
        "probe_max_s": {"submit": round(smax, 3), "cancel": round(cmax, 3)},
        "probe_median_s": {"submit": round(smed, 3), "cancel": round(cmed, 3)},
        "ratio_max": {"submit": round(smax / idle_s, 2), "cancel": round(cmax / idle_s, 2)},
        "coordinator_rss_mb": round(rss_kb / 1024), "left_running": len(left),
    }))  # fmt: skip
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
