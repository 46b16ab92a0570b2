"""A run printing about 50 MB of short lines: `convoy logs -f` versus `docker logs -f`.

Both sides run the identical container (`seq 1 7000000`: 7 M numbered lines, 54.9 MB) and a
client that follows its output from the moment it is started until the last byte. convoy: `convoy
run --detach`, then `convoy logs -f RUN`; baseline: `docker run -d` (the engine's default
json-file log driver), then `docker logs -f`. Every byte is checked against the expected output.

    python bench/logs.py [--lines 7000000]

The last line printed is JSON: {"bytes", "convoy_s", "baseline_s", "ratio", "complete"}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time

from harness import CONVOY, IMAGE, convoy_up, require


def expected_digest(lines: int) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    step = 100_000
    for start in range(1, lines + 1, step):
        chunk = "".join(f"{i}\n" for i in range(start, min(start + step, lines + 1))).encode()
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def consume(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a follower to its end; the byte count and sha256 of what it printed on stdout."""
    h = hashlib.sha256()
    size = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        while data := proc.stdout.read(1 << 20):
            h.update(data)
            size += len(data)
        if proc.wait() != 0:
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}")
    return size, h.hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lines", type=int, default=7_000_000)
    ns = p.parse_args()
    require("docker")
    want = expected_digest(ns.lines)
    print(f"output: {ns.lines} lines, {want[0] / 1e6:.1f} MB", flush=True)

    container = ""
    with convoy_up() as local:
        spec = local.experiments / "logs.yaml"
        spec.write_text(
            f"name: logs\nimage: {IMAGE}\ncommand: seq 1 {ns.lines}\n"
            "resources: {cpus: 1, memory: 256MiB}\n"
        )
        t0 = time.perf_counter()
        local.cli("run", "--detach", str(spec))
        got_convoy = consume([*CONVOY, "logs", "-f", "logs-1.00"], local.env)
        convoy_s = time.perf_counter() - t0
        print(f"convoy logs -f:  {convoy_s:.2f} s, {got_convoy[0]} bytes", flush=True)
    try:
        t0 = time.perf_counter()
        container = subprocess.run(
            ["docker", "run", "-d", "--label", "convoy.bench=1", IMAGE, "seq", "1", str(ns.lines)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        got_docker = consume(["docker", "logs", "-f", container])
        baseline_s = time.perf_counter() - t0
        print(f"docker logs -f:  {baseline_s:.2f} s, {got_docker[0]} bytes", flush=True)
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], check=False, capture_output=True)
    complete = got_convoy == want and got_docker == want
    print(json.dumps({
        "bytes": want[0], "convoy_s": round(convoy_s, 3), "baseline_s": round(baseline_s, 3),
        "ratio": round(convoy_s / baseline_s, 4), "complete": complete,
        "convoy_complete": got_convoy == want, "baseline_complete": got_docker == want,
    }))  # fmt: skip
    if not complete:
        sys.exit(1)


if __name__ == "__main__":
    main()
