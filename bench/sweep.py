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
import statistics
import subprocess
import time

from harness import IMAGE, Local, convoy_up, require


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


def sweep(local: Local, runs: int) -> float:
    spec = local.experiments / "sweep.yaml"
    spec.write_text(
        f"name: sweep\nimage: {IMAGE}\ncommand: echo run ${{i}}\n"
        f"matrix: {{i: {{range: [0, {runs}]}}}}\nresources: {{cpus: 1, memory: 64MiB}}\n"
    )
    t0 = time.perf_counter()
    local.cli("run", "-q", "--force", str(spec))  # each round runs, not reuses, every run
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=60)
    p.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=3)
    ns = p.parse_args()
    require("docker", "parallel")
    convoy_times: list[float] = []
    baseline_times: list[float] = []
    with convoy_up(ns.parallel) as local:
        sweep(local, 1)  # warm up: agent, image cache, first submission
        baseline(ns.parallel, ns.parallel)
        for i in range(ns.rounds):
            if i % 2 == 0:
                convoy_times.append(sweep(local, ns.runs))
                baseline_times.append(baseline(ns.runs, ns.parallel))
            else:
                baseline_times.append(baseline(ns.runs, ns.parallel))
                convoy_times.append(sweep(local, ns.runs))
            print(f"round {i + 1}: convoy {convoy_times[-1]:.2f} s, "
                  f"baseline {baseline_times[-1]:.2f} s", flush=True)  # fmt: skip
    convoy_s = statistics.median(convoy_times)
    baseline_s = statistics.median(baseline_times)
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
