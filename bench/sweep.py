"""N short runs through convoy versus the same N `docker run`s driven by GNU parallel.

Both sides run the same image and command with the same parallelism (the host's cpus; each run
asks for one cpu) and the same container settings (no network, all capabilities dropped,
no-new-privileges, a pids limit, cpu and memory limits, read-only root, an init). convoy's time
is `convoy run` from submission to the last result on disk, against a coordinator that is
already up; the baseline is `parallel -j P docker run --rm ...`.

    python bench/sweep.py [--runs 60] [--parallel P] [--rounds 3]

This machine's timings drift by 10-20 % from minute to minute, so the two sides are measured in
alternating order for several rounds and compared by their medians. The last line printed is
JSON: {"runs", "parallel", "rounds", "convoy_s", "baseline_s", "ratio", "round_ratios"}, the
times being medians.
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
import time
from pathlib import Path

IMAGE = "convoy/busybox:1"


def sh(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)


def convoy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return sh(sys.executable, "-m", "convoy.cli.main", *args, env=env)


def baseline(n: int, parallel: int) -> float:
    docker_run = (
        "docker run --rm --network none --cap-drop ALL --security-opt no-new-privileges "
        "--pids-limit 4096 --cpus 1 --memory 64m --read-only --tmpfs /tmp --init "
        f"--label convoy.bench=1 {IMAGE} sh -c 'echo run {{}}'"
    )
    t0 = time.perf_counter()
    subprocess.run(
        ["parallel", "--will-cite", "-j", str(parallel), docker_run, ":::", *map(str, range(n))],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=60)
    p.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=3)
    ns = p.parse_args()
    for tool in ("docker", "parallel"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/sweep.py needs `{tool}` (bash scripts/setup.sh installs it)")
    sh("docker", "image", "inspect", IMAGE)

    home = Path(tempfile.mkdtemp(prefix="cvy-bench-", dir="/tmp"))
    work = home / "exp"
    work.mkdir()
    spec = work / "sweep.yaml"
    env = dict(os.environ, CONVOY_HOME=str(home))
    up = subprocess.Popen(
        [sys.executable, "-m", "convoy.cli.main", "up", "--cpus", str(ns.parallel)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not (home / "coordinator.sock").exists():
            if up.poll() is not None:
                sys.exit("convoy up failed")
            time.sleep(0.05)
        spec.write_text(
            f"name: warm\nimage: {IMAGE}\ncommand: echo warm\n"
            "resources: {cpus: 1, memory: 64MiB}\n"
        )
        convoy(env, "run", "-q", str(spec))  # warm up: agent, image cache, first submission
        baseline(ns.parallel, ns.parallel)
        spec.write_text(
            f"name: sweep\nimage: {IMAGE}\ncommand: echo run ${{i}}\n"
            f"matrix: {{i: {{range: [0, {ns.runs}]}}}}\nresources: {{cpus: 1, memory: 64MiB}}\n"
        )
        convoy_times: list[float] = []
        baseline_times: list[float] = []

        def convoy_sweep() -> None:
            t0 = time.perf_counter()
            convoy(env, "run", "-q", str(spec))
            convoy_times.append(time.perf_counter() - t0)

        for i in range(ns.rounds):
            for side in [convoy_sweep, None] if i % 2 == 0 else [None, convoy_sweep]:
                if side is None:
                    baseline_times.append(baseline(ns.runs, ns.parallel))
                else:
                    side()
            print(f"round {i + 1}: convoy {convoy_times[-1]:.2f} s, "
                  f"baseline {baseline_times[-1]:.2f} s", flush=True)  # fmt: skip
        convoy_s = statistics.median(convoy_times)
        baseline_s = statistics.median(baseline_times)
    finally:
        up.terminate()
        up.wait()
        pid = home / "agent" / "agent.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
        shutil.rmtree(home, ignore_errors=True)
    print(f"convoy:   {ns.runs} runs, parallelism {ns.parallel}: median {convoy_s:.2f} s")
    print(f"baseline: {ns.runs} x docker run via GNU parallel -j {ns.parallel}: "
          f"median {baseline_s:.2f} s")  # fmt: skip
    print(json.dumps({
        "runs": ns.runs, "parallel": ns.parallel, "rounds": ns.rounds,
        "convoy_s": round(convoy_s, 3), "baseline_s": round(baseline_s, 3),
        "ratio": round(convoy_s / baseline_s, 3),
        "round_ratios": [
            round(c / b, 3) for c, b in zip(convoy_times, baseline_times, strict=True)
        ],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
