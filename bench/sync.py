"""Incremental sync: convoy versus `rsync -a --delete -e ssh` to the same sshd host.

The tree: 10,000 files of about 2 KB in 100 folders, plus five 20 MB files. Four scenarios,
each timed for both tools in the same invocation: the initial sync, a re-sync with nothing
changed, a re-sync after one small file changed, and one after 1 KB changed in the middle of a
20 MB file. The host is a real OpenSSH sshd on 127.0.0.2 (tests/integration/testhosts.py);
convoy reaches its agent over one asyncssh connection, as the coordinator does.

convoy's time is the coordinator's whole path: learning what changed (the tree is watched, as
the coordinator watches the sources it has seen), storing new objects, one round trip to learn
what the host lacks, sending that, and the host materialising the revision's snapshot. Bytes
are the sync requests' payload (hashes asked about, the objects' stream, manifest entries);
rsync's are its own `--stats` "Total bytes sent".

    [BENCH_DIR=/tmp] python bench/sync.py [--files 10000] [--big 5] [--rounds 5]

Timings on these machines drift by a factor of two from minute to minute, so the initial sync
is measured in --rounds rounds, each against a new host, a new coordinator home and a new
rsync destination, with the tools' order alternating, and the round of median ratio is
reported. Before each tool's turn, pending writes are flushed (`sync`), so neither pays for
the other's writeback, and nothing is deleted until the last round is over (see run()).

Where the files land matters as much as either tool: on the root ext4 here (no journal),
10,000 creates take 0.1 s in a quiet block group and 2.2-2.5 s in one as churned as /tmp's.
BENCH_DIR (default /tmp) chooses the folder that holds the tree, the host and both copies;
a loop-mounted ext4 with a journal gives steadier figures than /tmp.

The last line is JSON: {"initial": C, "nochange": C, "small_change": C, "big_file_change": C},
each C being {"convoy_s", "rsync_s", "ratio", "convoy_bytes", "rsync_bytes", "changed_bytes"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convoy.coordinator.hosts.agents import AgentClient  # noqa: E402
from convoy.coordinator.hosts.hostsfile import HostConfig  # noqa: E402
from convoy.coordinator.hosts.ssh import SSHHost  # noqa: E402
from convoy.coordinator.sources.sync import Syncer  # noqa: E402
from tests.integration.testhosts import TestHost, TestHosts, descendants, ssh_rsh  # noqa: E402


def make_tree(root: Path, files: int, big: int) -> None:
    rnd = os.urandom
    for i in range(files):
        d = root / f"d{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(rnd(1024).hex().encode())  # 2 KB
    root.mkdir(parents=True, exist_ok=True)
    for j in range(big):
        (root / f"big{j}.bin").write_bytes(rnd(20 * 1024 * 1024))


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a live process (with `children`: also of its reaped descendants)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(x) for x in f[11 : 15 if children else 13]) / _TICK


def cpu_seconds(host: TestHost, agent_pid: int | None) -> float:
    """CPU seconds used so far by this process and its reaped children (rsync, ssh), the
    host's sshd with every process under it, live or reaped, and the host's agent (which
    detaches from sshd). A tool's figure is the difference across its turn: on two shared
    cores, what both tools' processes together cost bounds how fast either can be."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    total += _proc_cpu(host.sshd_pid, children=True)
    # With their reaped children: rsync's server, waited for by a session still closing.
    total += sum(_proc_cpu(p, True) for p, _ in descendants(host.sshd_pid) if p != agent_pid)
    return total + (_proc_cpu(agent_pid) if agent_pid else 0.0)


def rsync(src: Path, host: TestHost, dest: str) -> tuple[float, int]:
    cmd = ["rsync", "-a", "--delete", "--stats", "-e", shlex.join(ssh_rsh(host)),
           f"{src}/", f"{host.user}@{host.address}:{dest}/"]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    took = time.perf_counter() - t0
    m = re.search(r"Total bytes sent: ([\d,.]+)", out)
    return took, int(re.sub(r"[,.]", "", m.group(1))) if m else -1


class ConvoySide:
    def __init__(self, home: Path, host: TestHost) -> None:
        self.home = home
        self.host = host
        self.syncer = Syncer(home)
        cfg = HostConfig(name=host.name, address=host.address, port=host.port, user=host.user,
                         identity=str(host.identity), agent_home=str(host.agent_home))  # fmt: skip
        self.ssh = SSHHost(cfg, home, user_known_hosts=host.known_hosts)
        self.client: AgentClient | None = None

    async def open(self) -> None:
        await self.ssh.ensure_agent()
        self.client = self.ssh.client()
        await self.client.describe()

    def agent_pid(self) -> int | None:
        pid = self.host.agent_home / "agent.pid"
        return int(pid.read_text().strip()) if pid.exists() else None

    async def sync(self, src: Path) -> tuple[float, int]:
        assert self.client is not None
        await asyncio.sleep(
            0.05
        )  # the change's file events arrive (as they do long before a submit)
        t0 = time.perf_counter()
        rev = await asyncio.to_thread(self.syncer.snapshot, src)
        report = await self.syncer.ensure_on_host(self.host.name, self.client, rev)
        return time.perf_counter() - t0, report.bytes_sent

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.syncer.close()
        pid = self.host.agent_home / "agent.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
        await self.ssh.close()


def _row(
    name: str, c: tuple[float, int], r: tuple[float, int], changed: int, cpu: tuple[float, float]
) -> dict[str, Any]:
    (c_s, c_b), (r_s, r_b) = c, r
    print(f"{name:16} convoy {c_s:7.3f} s {c_b:>11} B {cpu[0]:5.2f} cpu-s   rsync {r_s:7.3f} s "
          f"{r_b:>11} B {cpu[1]:5.2f} cpu-s   ratio {c_s / r_s:.3f}", flush=True)  # fmt: skip
    return {"convoy_s": round(c_s, 4), "rsync_s": round(r_s, 4), "ratio": round(c_s / r_s, 4),
            "convoy_bytes": c_b, "rsync_bytes": r_b, "changed_bytes": changed}  # fmt: skip


async def run(ns: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="cvs-", dir=os.environ.get("BENCH_DIR", "/tmp")))
    src = work / "src"
    make_tree(src, ns.files, ns.big)
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    initial: list[dict[str, Any]] = []
    try:
        # Nothing is deleted before the last round ends. On an ext4 without a journal (these
        # machines), creating a file skips, one by one, every free inode of its group deleted
        # in the last minute or more, so a round that followed the removal of the previous
        # round's 20,000 files measured mostly whichever tool allocated next to them: 2.6 s of
        # kernel time for the same 10,000 creates that took 1.0 s in a round with no removal
        # before.
        with TestHosts(work / "hosts", ns.rounds) as hosts:
            for round_ in range(ns.rounds):
                # Each round: a new host (empty agent store), a new coordinator home (nothing
                # scanned or stored) and a new rsync destination. The last round goes on to
                # the re-syncs; the initial sync's result is the round of median ratio.
                last = round_ == ns.rounds - 1
                host = hosts[round_]
                convoy = ConvoySide(work / f"home{round_}", host)
                await convoy.open()
                try:
                    dest = str(work / f"rsync-dest{round_}")

                    async def both(
                        name: str, changed: int, convoy: ConvoySide = convoy,
                        host: TestHost = host, dest: str = dest, rsync_first: bool = False,
                    ) -> dict[str, Any]:  # fmt: skip
                        # Each tool starts with no writes pending: the tree was just written,
                        # and either tool's writes would be flushed during the other's turn.
                        agent = convoy.agent_pid()

                        def timed_rsync() -> tuple[tuple[float, int], float]:
                            os.sync()
                            before = cpu_seconds(host, agent)
                            took = rsync(src, host, dest)
                            return took, cpu_seconds(host, agent) - before

                        if rsync_first:
                            r, r_cpu = timed_rsync()
                        os.sync()
                        before = cpu_seconds(host, agent)
                        c = await convoy.sync(src)
                        c_cpu = cpu_seconds(host, agent) - before
                        if not rsync_first:
                            r, r_cpu = timed_rsync()
                        return _row(name, c, r, changed, (c_cpu, r_cpu))

                    # Which tool goes first alternates between rounds.
                    initial.append(await both("initial", total, rsync_first=round_ % 2 == 1))
                    if last:
                        results["nochange"] = await both("nochange", 0)
                        i = min(42, ns.files - 1)  # a small file in the middle of the tree
                        small = src / f"d{i % 100:02d}" / f"f{i:05d}.txt"
                        small.write_bytes(os.urandom(1024).hex().encode())
                        results["small_change"] = await both("small_change", small.stat().st_size)
                        with open(src / f"big{ns.big // 2}.bin", "r+b") as f:
                            f.seek(10 * 1024 * 1024)
                            f.write(os.urandom(1024))
                        results["big_file_change"] = await both("big_file_change", 1024)
                finally:
                    await convoy.close()
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    ranked = sorted(initial, key=lambda c: c["ratio"])
    results = {"initial": ranked[len(ranked) // 2], **results}
    print(f"initial ratios by round: {[c['ratio'] for c in initial]}; median "
          f"{results['initial']['ratio']}", flush=True)  # fmt: skip
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--big", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5, help="initial syncs measured (median kept)")
    ns = p.parse_args()
    if ns.files < 1 or ns.big < 1 or ns.rounds < 1:
        p.error("--files, --big and --rounds must be at least 1 (the re-syncs change a small "
                "and a large file)")  # fmt: skip
    results = asyncio.run(run(ns))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
