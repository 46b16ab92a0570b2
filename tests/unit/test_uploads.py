"""Uploads from a client on another machine: the client's scan makes the coordinator's revision
id, only what the coordinator lacks travels, and what arrives is checked (coordinator/sources/
uploads.py, convoy/client/upload.py, convoy/client/fetch.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from convoy import manifest
from convoy.client.fetch import _place
from convoy.client.upload import Uploader, upload_experiment
from convoy.content import SyncError, hash_bytes, revision_id
from convoy.coordinator.api import CoordinatorService
from convoy.coordinator.runs.store import STATE_DB, Store
from convoy.coordinator.sources.retention import collect_unused
from convoy.coordinator.sources.sync import SMALL, Syncer
from convoy.coordinator.sources.uploads import ObjectsMissing, Received, Uploads
from convoy.errors import UsageError
from convoy.manifest import Entry
from convoy.states import RunState
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc
from tests.unit.test_retention import DAY, NOW, age, readable, submitted

SPEC = """\
name: up
image: convoy/busybox:1
command: cat model.txt
inputs: {data: ../data}
"""


def _tree(root: Path) -> Path:
    """An experiment folder with an ignore file, something it ignores, a link and a large file,
    and an input folder beside it."""
    exp = root / "exp"
    (exp / "sub").mkdir(parents=True)
    (exp / "experiment.yaml").write_text(SPEC)
    (exp / "model.txt").write_text("model v1\n")
    (exp / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (exp / "sub" / "run.sh").chmod(0o755)
    (exp / ".gitignore").write_text("*.o\n")
    (exp / "skip.o").write_text("ignored\n")
    (exp / "big.bin").write_bytes(os.urandom(SMALL * 3 + 17))
    (exp / "link").symlink_to("sub/run.sh")
    (exp / "convoy-results").mkdir()
    (exp / "convoy-results" / "old.txt").write_text("a result\n")
    (root / "data").mkdir()
    (root / "data" / "trace.csv").write_text("t,x\n0,1\n")
    return exp


async def _chunks(*items: tuple[str, bytes, bool]) -> AsyncIterator[tuple[str, bytes, bool]]:
    for item in items:
        yield item


def _receive(uploads: Uploads, *items: tuple[str, bytes, bool]) -> Received:
    return asyncio.run(uploads.receive(_chunks(*items)))


@pytest.fixture
def syncer(tmp_path: Path) -> Iterator[Syncer]:
    s = Syncer(tmp_path / "home")
    yield s
    s.close()


def test_the_clients_scan_makes_the_revision_a_snapshot_on_the_coordinator_makes(
    tmp_path: Path, syncer: Syncer
) -> None:
    """The same tree, scanned by the client's Uploader and snapshot by the Syncer: one id."""
    exp = _tree(tmp_path)
    local = syncer.snapshot(exp, (exp / "convoy-results", syncer.home))
    scanned = Uploader().scan(exp, (exp / "convoy-results",))
    assert scanned.revision == local.id
    paths = [e.path for e in scanned.entries]
    assert "skip.o" not in paths and "convoy-results/old.txt" not in paths and "link" in paths


def test_a_stat_cache_kept_between_uploaders_spares_hashing_unchanged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next `convoy run` (a new Uploader on the same cache folder) hashes only what
    changed, and makes the same revision."""
    monkeypatch.setattr(manifest, "RACY_NS", 0)  # files written just now count as settled
    exp = _tree(tmp_path)
    cache = tmp_path / "home" / "upload-scans"
    first = Uploader(cache)
    rev = first.scan(exp).revision
    assert first.hashed == 5 and len(list(cache.iterdir())) == 1
    again = Uploader(cache)
    assert again.scan(exp).revision == rev and again.hashed == 0
    (exp / "model.txt").write_text("model v2\n")
    later = Uploader(cache)
    assert later.scan(exp).revision != rev and later.hashed == 1


def test_an_object_that_does_not_match_its_hash_is_refused_and_not_stored(
    syncer: Syncer,
) -> None:
    """Small and large: the content is checked against its name before it is stored."""
    uploads = Uploads(syncer)
    good, bad = b"good\n", b"tampered\n"
    with pytest.raises(SyncError, match="does not match"):
        _receive(uploads, (hash_bytes(good), bad, True))
    assert not syncer.has_object(hash_bytes(good))
    large = os.urandom(SMALL + 10)
    name = hash_bytes(large)
    with pytest.raises(SyncError, match="does not match"):
        _receive(uploads, (name, large[:SMALL], False), ("", b"x" * 10, True))
    assert not syncer.has_object(name)
    got = _receive(uploads, (name, large[:SMALL], False), ("", large[SMALL:], True))
    assert got == Received(1, len(large)) and syncer.has_object(name)
    assert syncer.store.path_of(name).read_bytes() == large


def test_a_stream_cut_within_an_object_keeps_nothing_of_it(syncer: Syncer) -> None:
    data = os.urandom(SMALL * 2)
    with pytest.raises(SyncError, match="ended within"):
        _receive(Uploads(syncer), (hash_bytes(data), data[: SMALL + 1], False))
    assert not syncer.has_object(hash_bytes(data))


def test_a_manifest_is_registered_only_when_safe_complete_and_named_by_its_entries(
    syncer: Syncer,
) -> None:
    """Paths leaving the tree and links out of it are refused; so are a manifest whose
    objects are not all stored, and one whose entries make another revision id."""
    uploads = Uploads(syncer)
    data = b"content\n"
    h = hash_bytes(data)
    _receive(uploads, (h, data, True))
    ok = [Entry("a.txt", 0o100644, len(data), h)]
    for bad in ([Entry("../a.txt", 0o100644, 8, h)], [Entry("/a.txt", 0o100644, 8, h)],
                [*ok, Entry("l", 0o120777, 5, "", "../../etc/passwd")]):  # fmt: skip
        with pytest.raises(SyncError):
            uploads.register(revision_id(bad), bad)
    other = hash_bytes(b"not sent")
    lacking = [*ok, Entry("b.txt", 0o100644, 8, other)]
    with pytest.raises(ObjectsMissing):
        uploads.register(revision_id(lacking), lacking)
    with pytest.raises(UsageError, match="makes revision"):
        uploads.register("0" * 20, ok)
    with pytest.raises(UsageError, match="not a revision id"):
        uploads.register("../../x", ok)
    got = uploads.register(revision_id(ok), ok)
    assert syncer.revision(got.id).manifest.entries == tuple(ok)
    assert uploads.missing(got.id, [other]) == (True, [])
    assert uploads.missing("", [h, other, other]) == (False, [other])


def test_a_fetched_path_may_not_leave_its_folder(tmp_path: Path) -> None:
    """Absolute paths, '..' and a link in the destination pointing elsewhere are refused."""
    dest = tmp_path / "dest"
    (dest / "run").mkdir(parents=True)
    (dest / "out").symlink_to(tmp_path)
    assert _place(dest, "run/a.txt") == dest / "run" / "a.txt"
    for bad in ("/etc/passwd", "../x", "run/../../x", "out/x"):
        with pytest.raises(SyncError):
            _place(dest, bad)


async def _serve(home: Path, sock: Path) -> tuple[grpc.aio.Server, Syncer]:
    syncer = Syncer(home)
    server = grpc.aio.server()
    fake = SimpleNamespace(uploads=Uploads(syncer))  # all the upload RPCs use of the engine
    pb_grpc.add_CoordinatorServicer_to_server(CoordinatorService(fake, None), server)  # type: ignore[arg-type]
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    return server, syncer


def test_only_what_the_coordinator_lacks_travels(tmp_path: Path) -> None:
    """Over a real gRPC server: a first upload sends every object, one after an edit sends
    that file alone, an unchanged tree sends nothing; the revisions are a snapshot's."""
    exp = _tree(tmp_path)

    async def main() -> None:
        server, syncer = await _serve(tmp_path / "home", tmp_path / "c.sock")
        try:
            async with grpc.aio.insecure_channel(f"unix:{tmp_path / 'c.sock'}") as ch:
                stub = pb_grpc.CoordinatorStub(ch)
                uploader = Uploader()
                first = await upload_experiment(stub, exp / "experiment.yaml", uploader)
                assert first.objects_sent == first.objects_total == 6  # 5 files + the input
                assert first.bytes_sent == first.bytes_total
                assert first.experiment_file == "experiment.yaml"
                assert first.revision == syncer.snapshot(exp, (exp / "convoy-results",)).id
                assert set(first.inputs) == {"data"}
                (exp / "model.txt").write_text("model v2\n")
                second = await upload_experiment(stub, exp / "experiment.yaml", uploader)
                assert (second.objects_sent, second.bytes_sent) == (1, len("model v2\n"))
                assert second.revision != first.revision and second.inputs == first.inputs
                third = await upload_experiment(stub, exp / "experiment.yaml")  # a new scan
                assert (third.revision, third.objects_sent) == (second.revision, 0)
                trace = len((tmp_path / "data" / "trace.csv").read_bytes())  # the input's
                assert syncer.revision(second.revision).manifest.size == second.bytes_total - trace
                bad = b"tampered"
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.PutObjects(_one(pb.ObjectChunk(hash=hash_bytes(b"x"), data=bad,
                                                              last=True)))  # fmt: skip
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)
            syncer.close()

    asyncio.run(main())


async def _one(msg: pb.ObjectChunk) -> AsyncIterator[pb.ObjectChunk]:
    yield msg


def test_uploaded_revisions_are_kept_and_collected_as_snapshots_are(tmp_path: Path) -> None:
    """Retention: an uploaded revision a recent submission names stays whole; one nothing
    keeps goes, and so do objects uploaded for a manifest that never came."""
    home = tmp_path / "home"
    syncer = Syncer(home)
    uploads = Uploads(syncer)
    revs = []
    for name in ("kept", "gone"):
        small, large = f"{name}\n".encode(), name.encode() * SMALL
        _receive(uploads, (hash_bytes(small), small, True), (hash_bytes(large), large, True))
        entries = [Entry(f"{name}.bin", 0o100644, len(large), hash_bytes(large)),
                   Entry(f"{name}.txt", 0o100644, len(small), hash_bytes(small))]  # fmt: skip
        revs.append(uploads.register(revision_id(entries), entries))
    orphan = b"never named" * SMALL
    _receive(uploads, (hash_bytes(orphan), orphan, True))
    syncer.close()
    store = Store(home / STATE_DB)
    try:
        submitted(store, 1, revs[0].id, NOW - DAY, RunState.SUCCEEDED)
        for rev in revs:
            age(home, rev, 40)
        report = collect_unused(home, store, now=NOW)
    finally:
        store.close()
    assert report is not None and report.revisions == 1
    assert readable(home, revs[0])
    assert not (home / "manifests" / f"{revs[1].id}.json").exists()
    after = Syncer(home)
    try:
        assert not after.has_object(hash_bytes(orphan))
        assert not after.has_object(revs[1].manifest.entries[0].hash)
    finally:
        after.close()
