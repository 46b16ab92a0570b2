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

import grpc
import pytest

from convoy.agent.objects import ObjectStore
from convoy.coordinator.hosts.agents import AgentClient
from convoy.coordinator.sources.sync import SMALL, Syncer, _make_or_whole

ROOT = Path(__file__).resolve().parents[2]


class _Agent:
    """A real agent process on a unix socket, which a test may restart."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="cvy-", dir="/tmp"))  # short: a socket path
        self.home, self.sock = self.work / "agent", self.work / "a.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        self.proc = proc = subprocess.Popen(
            [sys.executable, "-m", "convoy.agent", "--home", str(self.home), "--socket",
             str(self.sock)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self.sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def agent() -> Iterator[_Agent]:
    """A started agent; killed, and its folder removed, at teardown."""
    a = _Agent()
    try:
        a.start()
        yield a
    finally:
        a.kill()
        subprocess.run(["rm", "-rf", str(a.work)], check=False)


@pytest.fixture
def agent_socket(agent: _Agent) -> tuple[Path, Path]:
    """(the agent's home, its socket)."""
    return agent.home, agent.sock


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


def test_a_snapshot_begun_by_an_agent_that_restarted_is_made_from_the_whole_manifest(
    tmp_path: Path, agent: _Agent
) -> None:
    """The first sync of a revision hands the host its entries up front, so that it builds the
    snapshot while the objects travel; an agent restarted in between has forgotten that build,
    and the coordinator sends the entries again."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(50):
        (src / "d" / f"f{i}.txt").write_bytes(os.urandom(100 + i))
    (src / "up").symlink_to("d")

    async def scenario() -> None:
        syncer = Syncer(tmp_path / "home")
        rev = await asyncio.to_thread(syncer.snapshot, src)
        client = AgentClient(f"unix:{agent.sock}")
        try:
            hashes = [e.hash for e in rev.manifest.entries if e.hash]
            has, missing = await client.missing_objects(rev.id, hashes, rev.manifest.entries)
            assert not has and sorted(missing) == sorted(hashes)
            sizes = {e.hash: e.size for e in rev.manifest.entries if e.hash}
            await client.put_objects(syncer._read_objects(missing, sizes))
        finally:
            await client.close()
        agent.kill()
        agent.start()
        client = AgentClient(f"unix:{agent.sock}")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as lost:
                await client.make_revision(rev.id, (), planned=True)
            assert lost.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            await _make_or_whole(client, rev, planned=True)  # as the Syncer finishes a sync
            assert (await syncer.ensure_on_host("h", client, rev)).had_revision
        finally:
            await client.close()
            syncer.close()
        tree = _tree_of(ObjectStore(agent.home / "store"), rev.id)
        assert tree == _source_of(src)
        assert os.readlink(agent.home / "store" / "revisions" / rev.id / "up") == "d"

    asyncio.run(scenario())


def test_objects_the_host_collected_behind_the_coordinator_s_back_are_sent_again(
    tmp_path: Path, agent: _Agent
) -> None:
    """The coordinator asks a host only about objects it has not seen there. When the host
    has collected the revision and its objects since (its store is wiped here, as collect
    would), the next revision's build lacks them: the coordinator forgets what it knew of the
    host and syncs the revision whole, instead of failing every sync until it restarts."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(20):
        (src / "d" / f"f{i}.txt").write_bytes(os.urandom(200 + i))

    async def scenario() -> None:
        syncer = Syncer(tmp_path / "home")
        client = AgentClient(f"unix:{agent.sock}")
        try:
            first = await asyncio.to_thread(syncer.snapshot, src)
            await syncer.ensure_on_host("h", client, first)
            store = agent.home / "store"
            for folder in ("revisions", "objects", "manifests"):
                subprocess.run(["rm", "-rf", str(store / folder)], check=True)
            agent.kill()  # and the agent's memory of them
            agent.start()
            (src / "d" / "f3.txt").write_bytes(b"changed\n")
            second = await asyncio.to_thread(syncer.snapshot, src)
            report = await syncer.ensure_on_host("h", client, second)
            assert report.objects_sent == 19  # all but the changed one, sent by the first try
        finally:
            await client.close()
            syncer.close()
        assert _tree_of(ObjectStore(agent.home / "store"), second.id) == _source_of(src)

    asyncio.run(scenario())
