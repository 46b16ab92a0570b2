"""Syncer against a real agent over gRPC (a unix socket, no SSH): every byte of a revision
arrives, small and large objects interleaved in one stream, and a re-sync sends only changes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.objects import ObjectStore
from coordinator.agents import AgentClient
from coordinator.sync import SMALL, Syncer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def agent_socket() -> Iterator[tuple[Path, Path]]:
    """A real agent process on a unix socket; (its home, its socket). Killed at teardown."""
    work = Path(tempfile.mkdtemp(prefix="cvy-", dir="/tmp"))  # short: a socket path
    home, sock = work / "agent", work / "a.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--home", str(home), "--socket", str(sock)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)
        yield home, sock
    finally:
        proc.kill()
        proc.wait()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def _tree_of(store: ObjectStore, revision: str) -> dict[str, bytes]:
    root = store.full_dir(revision)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _source_of(src: Path) -> dict[str, bytes]:
    return {
        p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()
    }


def test_a_revision_arrives_whole_and_a_resync_sends_only_the_change(
    tmp_path: Path, agent_socket: tuple[Path, Path]
) -> None:
    agent_home, sock = agent_socket
    src = tmp_path / "src"
    for i in range(300):
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 7}" / f"f{i}.txt").write_bytes(os.urandom(300 + i))
    big = [src / "big0.bin", src / "d3" / "big1.bin"]
    for n, path in enumerate(big):
        path.write_bytes(os.urandom(SMALL + 700_000 * (n + 1)))  # large: stored and sent apart
    (src / "d1" / "same.txt").write_bytes(b"dup")
    (src / "d2" / "same.txt").write_bytes(b"dup")

    async def scenario() -> None:
        syncer = Syncer(tmp_path / "home")
        client = AgentClient(f"unix:{sock}")
        try:
            rev1 = await asyncio.to_thread(syncer.snapshot, src)
            report = await syncer.ensure_on_host("h", client, rev1)
            assert report.objects_sent == 303  # 300 + 2 large + "dup", stored once for two paths
            assert _tree_of(ObjectStore(agent_home / "store"), rev1.id) == _source_of(src)

            (src / "d5" / "f5.txt").write_bytes(b"changed")
            with open(big[1], "r+b") as f:
                f.seek(400_000)
                f.write(b"!" * 1000)
            time.sleep(0.1)
            rev2 = await asyncio.to_thread(syncer.snapshot, src)
            report = await syncer.ensure_on_host("h", client, rev2)
            assert report.objects_sent == 2
            assert report.bytes_sent < big[1].stat().st_size + 16 * 1024
            assert _tree_of(ObjectStore(agent_home / "store"), rev2.id) == _source_of(src)
        finally:
            await client.close()
            syncer.close()

    asyncio.run(scenario())
