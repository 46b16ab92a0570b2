"""A soak: N short runs over K SSH test hosts while faults are injected at random, then every
invariant of the run lifecycle checked.

    python bench/soak.py [--runs 200] [--hosts 3] [--minutes 10] [--grace 60] [--seed S] [--check]

The hosts are real OpenSSH sshd's on 127.0.0.2, ... sharing this machine's Docker engine
(tests/integration/testhosts.py), 2 cpus each; the coordinator is `convoy up --no-local`. Each
run prints B to B+6 lines a second apart, each naming its attempt, and writes out.txt naming it
too, B chosen so that the sweep's work lasts about as long as the faults (at least 3); one run
in ten exits 3 (retries: 1, so it must end failed after two attempts). For
--minutes, faults come every 5-25 s, at most one per host at a time: its agent SIGKILLed (the
coordinator brings it back), the whole host frozen (SIGSTOP of its sshd and agent) or
partitioned (iptables DROP of its address) for 5-90 s, or the coordinator SIGKILLed and
started again. Then every fault is healed and the sweep drains (for --drain-minutes at most).

Checked: each run ended exactly once, as it should (succeeded; failed when it exits 3), or
lost only with its infrastructure budget spent; its folder's log and files come from the one
attempt run.json names (no result accepted twice, none from a superseded attempt); every
succeeded run's output.log is complete and its files match run.json's sha256; no container of
the soak's agents is left; SQLite's integrity check passes; no host ever ran more containers
than its cpus (sampled every second, superseded ones included). Everything started is gone at
the end, also when the soak fails or is interrupted. With --check, the exit status is 1 when
any of these does not hold (CI runs a 2-minute soak so). The last line printed is JSON:

    {"runs", "faults": {kind: n}, "terminal": {state: n}, "wrong_outcomes", "lost",
     "duplicate_results", "incomplete_logs", "orphan_containers", "integrity",
     "over_committed", "seconds"}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from convoy.agent.server import agent_id_for  # noqa: E402
from tests.integration.cluster import add_hosts, up  # noqa: E402
from tests.integration.testhosts import TestHosts  # noqa: E402

CONVOY = [sys.executable, "-m", "convoy.cli.main"]
CPUS = 2  # per host
FAULTS = ("agent_kill", "freeze", "partition", "coordinator_kill")
_LINE = re.compile(r"line (\d+) a(\d+)")

EXPERIMENT = """\
name: soak
image: convoy/busybox:1
command: |
  n=$(( ${i} % 7 + BASE ))
  for k in $(seq 1 $n); do echo "line $k a$CONVOY_ATTEMPT"; sleep 1; done
  echo "run ${i} a$CONVOY_ATTEMPT" > out.txt
  [ $(( ${i} % 10 )) -ne 9 ] || exit 3
matrix:
  i: {range: [0, RUNS]}
retries: 1
resources: {cpus: 1, memory: 64MiB}
"""


class Soak:
    def __init__(self, hosts: TestHosts, home: Path, grace: float, rng: random.Random) -> None:
        self.hosts = hosts
        self.home = home
        self.grace = grace
        self.rng = rng
        self.env = dict(os.environ, CONVOY_HOME=str(home))
        self.coordinator: subprocess.Popen[bytes] | None = None
        self.faults: Counter[str] = Counter()
        self.busy: dict[str, float] = {}  # host -> when its fault ends
        self.healers: list[threading.Timer] = []
        self.over_committed = 0
        self._stop_sampling = threading.Event()
        self.lock = threading.Lock()  # the hosts' faults come from timers too
        self.labels = {h.name: agent_id_for(h.agent_home) for h in hosts.hosts}

    # ---- the coordinator -------------------------------------------------------------------

    def up(self) -> None:
        # A host frozen or cut off when it starts costs a coordinator a few seconds first.
        self.coordinator = up(self.home, ["--host-grace", str(self.grace)], wait_s=180)

    def down(self) -> None:
        if self.coordinator is not None and self.coordinator.poll() is None:
            self.coordinator.terminate()
            try:
                self.coordinator.wait(20)
            except subprocess.TimeoutExpired:
                self.coordinator.kill()
                self.coordinator.wait()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CONVOY, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def runs(self) -> list[dict[str, Any]]:
        out = self.cli("runs", "--json")
        answered = out.returncode == 0 and "no coordinator runs" not in out.stderr  # not its store
        return list(json.loads(out.stdout)) if answered else []

    # ---- faults ----------------------------------------------------------------------------

    def inject(self) -> None:
        """One fault, on a host with none going on (or the coordinator)."""
        now = time.monotonic()
        free = [h.name for h in self.hosts.hosts if self.busy.get(h.name, 0) <= now]
        kind = self.rng.choice(FAULTS)
        if kind == "coordinator_kill":
            assert self.coordinator is not None
            self.coordinator.send_signal(signal.SIGKILL)
            self.coordinator.wait()
            time.sleep(self.rng.uniform(1, 5))
            self.up()
        else:
            if not free:
                return
            host = self.rng.choice(free)
            if kind == "agent_kill":
                if self.hosts.agent_pid(host) is None:
                    return
                self.hosts.kill_agent(host)
                self.busy[host] = now + 5
            else:
                seconds = self.rng.uniform(5, 90)
                with self.lock:
                    if kind == "freeze":
                        self.hosts.freeze(host, agent=True)
                        undo = self.hosts.thaw
                    else:
                        self.hosts.partition(host)
                        undo = self.hosts.heal
                self.busy[host] = now + seconds

                def heal(host: str = host, undo: Any = undo) -> None:
                    with self.lock:
                        undo(host)

                timer = threading.Timer(seconds, heal)
                timer.daemon = True
                timer.start()
                self.healers.append(timer)
        self.faults[kind] += 1
        where = "" if kind == "coordinator_kill" else f" {host}"
        print(f"soak: {time.strftime('%H:%M:%S')} {kind}{where}", flush=True)

    def heal_all(self) -> None:
        for t in self.healers:
            t.cancel()
        with self.lock:
            for h in self.hosts.hosts:
                self.hosts.thaw(h.name)
                self.hosts.heal(h.name)
        self.busy.clear()

    # ---- watching --------------------------------------------------------------------------

    def sample(self, engine: docker.DockerClient) -> None:
        """Every second: no host runs more containers (one cpu each) than it has cpus."""
        while not self._stop_sampling.wait(1.0):
            try:
                for label in self.labels.values():
                    running = engine.containers.list(filters={"label": f"convoy.agent={label}"})
                    if len(running) > CPUS:
                        self.over_committed += 1
            except Exception:
                continue

    def stop_sampling(self) -> None:
        self._stop_sampling.set()


def check(runs: list[dict[str, Any]], total: int, base: int) -> dict[str, Any]:
    """The invariants, each as a count of the runs breaking it."""
    terminal = Counter(r["state"] for r in runs)
    wrong = lost = duplicates = incomplete = 0
    for r in runs:
        i = r["params"]["i"]
        state = r["state"]
        if state == "lost":
            lost += 1
            if r["code"] != "host_lost" or r["failures"]["infrastructure"] != (
                r["retries"]["infrastructure"] + 1
            ):
                wrong += 1
            continue
        expected = "failed" if i % 10 == 9 else "succeeded"
        if state != expected:
            wrong += 1
            print(f"soak: wrong outcome: {r['run']} {state} ({r['code']}): {r['reason']}")
            continue
        if expected == "failed" and (r["code"], r["failures"]["application"]) != ("exit_code", 2):
            wrong += 1
            print(f"soak: wrong failure: {r['run']} {r['code']} {r['failures']}")
        folder = Path(r["results_path"])
        try:
            meta = json.loads((folder / "run.json").read_text())
            log = (folder / "output.log").read_text()
            out = (folder / "out.txt").read_text()
        except OSError as e:
            incomplete += 1
            print(f"soak: {r['run']}: {e}")
            continue
        lines = [_LINE.fullmatch(x) for x in log.splitlines()]
        attempts = {m.group(2) for m in lines if m} | set(re.findall(r" a(\d+)$", out.strip()))
        if attempts != {str(meta["attempt"])} or meta["output_attempt"] != meta["attempt"]:
            duplicates += 1
            print(f"soak: {r['run']}: results of attempts {sorted(attempts)}, "
                  f"run.json says {meta['attempt']}")  # fmt: skip
        n = i % 7 + base
        whole = [int(m.group(1)) for m in lines if m] == list(range(1, n + 1))
        sums = all(
            hashlib.sha256((folder / name).read_bytes()).hexdigest() == f["sha256"]
            for name, f in meta["files"].items()
        )
        if state == "succeeded" and not (whole and len(lines) == n and sums):
            incomplete += 1
            print(f"soak: incomplete: {r['run']} ({len(lines)} of {n} lines, sums {sums})")
    missing = total - len(runs)
    return {
        "terminal": dict(sorted(terminal.items())), "wrong_outcomes": wrong + missing,
        "lost": lost, "duplicate_results": duplicates, "incomplete_logs": incomplete,
    }  # fmt: skip


def ended_not_once(db: Path) -> int:
    """Runs with other than one transition into a terminal state (read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT r.id, COUNT(t.id) FROM runs r LEFT JOIN transitions t ON t.run_id = r.id "
            "AND t.to_state IN ('succeeded', 'failed', 'cancelled', 'lost') GROUP BY r.id"
        ).fetchall()
    finally:
        con.close()
    return sum(1 for _, n in rows if n != 1)


def containers(engine: docker.DockerClient, agent_label: str) -> list[Any]:
    """Every container (running or not) of one agent."""
    found = engine.containers.list(all=True, filters={"label": f"convoy.agent={agent_label}"})
    return list(found)


def integrity_of(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--minutes", type=float, default=10.0, help="how long faults are injected")
    p.add_argument("--grace", type=float, default=60.0, help="the coordinator's host grace (s)")
    p.add_argument("--drain-minutes", type=float, default=10.0,
                   help="how long the sweep may take to end once faults stop")  # fmt: skip
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--check", action="store_true",
                   help="exit 1 when an invariant does not hold")  # fmt: skip
    ns = p.parse_args()
    # Lines per run (a second each): the sweep's work, on every cpu, about as long as the faults.
    lines = max(3, round(ns.minutes * 60 * CPUS * ns.hosts / max(ns.runs, 1) * 0.8) - 3)
    if os.geteuid() != 0:
        sys.exit("soak: needs root (iptables, SIGSTOP of sshd's, test hosts)")
    seed = ns.seed if ns.seed is not None else random.randrange(1 << 30)
    print(f"soak: seed {seed}", flush=True)
    rng = random.Random(seed)
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="cvsk-", dir="/tmp"))
    home, sources = base / "home", base / "exp"
    sources.mkdir()
    spec = sources / "soak.yaml"
    spec.write_text(EXPERIMENT.replace("RUNS", str(ns.runs)).replace("BASE", str(lines)))
    engine = docker.from_env()
    soak: Soak | None = None
    try:
        hosts = TestHosts(base / "h", ns.hosts)
        with hosts:
            add_hosts(home, hosts.hosts)
            soak = Soak(hosts, home, ns.grace, rng)
            soak.up()
            sampler = threading.Thread(target=soak.sample, args=(engine,), daemon=True)
            sampler.start()
            out = soak.cli("run", "--detach", str(spec))
            if out.returncode != 0:
                raise SystemExit(f"soak: submit failed: {out.stderr}")
            deadline = time.monotonic() + ns.minutes * 60
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(5, 25))
                if time.monotonic() < deadline:
                    soak.inject()
            soak.heal_all()
            print("soak: faults over; healed; draining", flush=True)
            end = time.monotonic() + ns.drain_minutes * 60
            runs: list[dict[str, Any]] = []
            while time.monotonic() < end:
                runs = soak.runs()
                if len(runs) == ns.runs and all(
                    r["state"] in ("succeeded", "failed", "cancelled", "lost") for r in runs
                ):
                    break
                time.sleep(2)
            time.sleep(5)  # releases and fencing of what a late thaw brought back
            soak.stop_sampling()
            runs = [r for r in soak.runs() if r["state"] in
                    ("succeeded", "failed", "cancelled", "lost")]  # fmt: skip
            result = check(runs, ns.runs, lines)
            soak.down()
            db = home / "state.db"
            result["wrong_outcomes"] += ended_not_once(db)
            orphans = [c.id for label in soak.labels.values() for c in containers(engine, label)]
            report = {
                "runs": ns.runs, "hosts": ns.hosts, "minutes": ns.minutes, "grace_s": ns.grace,
                "lines_per_run": [lines, lines + 6],
                "seed": seed, "faults": dict(sorted(soak.faults.items())), **result,
                "orphan_containers": len(orphans), "integrity": integrity_of(db),
                "over_committed": soak.over_committed,
                "seconds": round(time.monotonic() - t0, 1),
            }  # fmt: skip
            for h in hosts.hosts:  # the agents go with their hosts
                pid = hosts.agent_pid(h.name)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
            for cid in orphans:
                engine.api.remove_container(cid, force=True)
    finally:
        if soak is not None:
            soak.stop_sampling()
            soak.down()
        for label in soak.labels.values() if soak else ():
            for c in engine.containers.list(all=True, filters={"label": f"convoy.agent={label}"}):
                c.remove(force=True)
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(report))
    broken = [k for k in ("wrong_outcomes", "duplicate_results", "incomplete_logs",
                          "orphan_containers", "over_committed") if report[k]]  # fmt: skip
    if report["integrity"] != "ok":
        broken.append("integrity")
    if ns.check and broken:
        print(f"soak: invariants broken: {', '.join(broken)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
