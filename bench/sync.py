"""Incremental sync: convoy versus `rsync -a --delete -e ssh` to the same sshd host.

The tree: 10,000 files of about 2 KB in 100 folders, plus five 20 MB files. Four scenarios,
each timed for both tools in the same invocation: the initial sync, a re-sync with nothing
changed, a re-sync after one small file changed, and one after 1 KB changed in the middle of a
20 MB file. The host is a real OpenSSH sshd on 127.0.0.2 (tests/integration/testhosts.py);
convoy reaches its agent over one asyncssh connection, as the coordinator does.

convoy's time is the coordinator's whole path: learning what changed (the tree is watched, as
the coordinator watches the sources it has seen), storing new objects, one round trip to learn
what the host lacks, sending that, and the host materialising the revision's snapshot. Bytes are
the sync requests' payload (hashes asked about, objects, manifest entries); rsync's are its own
`--stats` "Total bytes sent".

    python bench/sync.py [--files 10000] [--big 5]

The last line is JSON: {"initial": C, "nochange": C, "small_change": C, "big_file_change": C},
each C being {"convoy_s", "rsync_s", "ratio", "convoy_bytes", "rsync_bytes", "changed_bytes"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coordinator.agents import AgentClient  # noqa: E402
from coordinator.hostsfile import HostConfig  # noqa: E402
from coordinator.ssh import SSHHost  # noqa: E402
from coordinator.sync import Syncer  # noqa: E402
from tests.integration.testhosts import TestHost, TestHosts, ssh_rsh  # noqa: E402


def make_tree(root: Path, files: int, big: int) -> None:
    rnd = os.urandom
    for i in range(files):
        d = root / f"d{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(rnd(1024).hex().encode())  # 2 KB
    root.mkdir(parents=True, exist_ok=True)
    for j in range(big):
        (root / f"big{j}.bin").write_bytes(rnd(20 * 1024 * 1024))


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
        target = await self.ssh.ensure_agent()
        self.client = AgentClient(target)
        await self.client.describe()

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


async def run(ns: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="cvs-", dir="/tmp"))
    src = work / "src"
    make_tree(src, ns.files, ns.big)
    with TestHosts(work / "hosts", 1) as hosts:
        host = hosts[0]
        convoy = ConvoySide(work / "home", host)
        await convoy.open()
        try:
            dest = str(work / "rsync-dest")

            async def both(name: str, changed_bytes: int) -> None:
                # Each tool starts with no other writes pending: the tree was just written, and
                # either tool's writes would otherwise be flushed during the other's turn.
                os.sync()
                c_s, c_b = await convoy.sync(src)
                os.sync()
                r_s, r_b = rsync(src, host, dest)
                results[name] = {"convoy_s": round(c_s, 4), "rsync_s": round(r_s, 4),
                                 "ratio": round(c_s / r_s, 4), "convoy_bytes": c_b,
                                 "rsync_bytes": r_b, "changed_bytes": changed_bytes}  # fmt: skip
                print(f"{name:16} convoy {c_s:7.3f} s {c_b:>11} B   rsync {r_s:7.3f} s "
                      f"{r_b:>11} B   ratio {c_s / r_s:.3f}", flush=True)  # fmt: skip

            total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
            await both("initial", total)
            await both("nochange", 0)
            small = src / "d42" / "f00042.txt"
            small.write_bytes(os.urandom(1024).hex().encode())
            await both("small_change", small.stat().st_size)
            with open(src / "big2.bin", "r+b") as f:
                f.seek(10 * 1024 * 1024)
                f.write(os.urandom(1024))
            await both("big_file_change", 1024)
        finally:
            await convoy.close()
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--big", type=int, default=5)
    results = asyncio.run(run(p.parse_args()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
