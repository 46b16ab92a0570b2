"""Submitting from another machine: the experiment's sources and inputs uploaded to the
coordinator, content-addressed, as the coordinator sends them to hosts.

The client scans each tree itself with the coordinator's Scanner (the same ignore files, the
same always-excluded names), so a tree makes the same revision id here as a snapshot on the
coordinator would: memoised runs are found again, and watch mode compares revisions as it
does locally. Then, per tree: one round trip learns which objects the coordinator lacks (or
that it has the revision already, and nothing more is asked), one stream sends just those,
and one request registers the manifest. The coordinator checks every object against its hash
and the manifest against the revision id (coordinator/sources/uploads.py); Submit then names
the revisions (`Uploaded.as_pb`).

An Uploader keeps its scanners, so a second upload of a tree (watch mode) re-hashes only the
files whose stat changed.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from convoy.content import SyncError, hash_bytes, new_hasher, open_regular_fd
from convoy.errors import UsageError
from convoy.manifest import Entry, Manifest, Scanner
from convoy.paths import default_home
from convoy.spec import load_spec
from convoy.v1 import agent_pb2
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

CHUNK = 1024 * 1024  # bytes of an object per message
MAX_ASKED = 20_000  # hashes per MissingObjects request (the coordinator's limit)
ENTRIES_PER_MESSAGE = 10_000  # manifest entries per PutRevision message (well under 4 MB)


def forced() -> bool:
    """Whether to upload even to a coordinator on this machine (CONVOY_UPLOAD=1): how tests
    and a user who wants the coordinator to keep its own copy of the sources ask for it."""
    return os.environ.get("CONVOY_UPLOAD", "") == "1"


@dataclass(frozen=True)
class TreeSent:
    """One tree's upload: its revision, and what of it travelled."""

    revision: str
    objects_sent: int
    bytes_sent: int
    objects_total: int
    bytes_total: int


@dataclass(frozen=True)
class Uploaded:
    """An experiment's sources and inputs, stored on the coordinator as these revisions."""

    spec_path: Path  # absolute
    spec_text: str
    revision: str  # the sources'
    inputs: dict[str, str]  # input name -> its revision
    experiment_file: str  # its path within the sources; "": outside them
    trees: dict[str, TreeSent] = field(default_factory=dict)  # "sources", "input NAME"

    @property
    def objects_sent(self) -> int:
        return sum(t.objects_sent for t in self.trees.values())

    @property
    def bytes_sent(self) -> int:
        return sum(t.bytes_sent for t in self.trees.values())

    @property
    def objects_total(self) -> int:
        return sum(t.objects_total for t in self.trees.values())

    @property
    def bytes_total(self) -> int:
        return sum(t.bytes_total for t in self.trees.values())

    def as_pb(self, origin: str | None = None) -> pb.Upload:
        """SubmitRequest.upload; `origin`: this machine's name unless given."""
        return pb.Upload(
            revision=self.revision, inputs=self.inputs, experiment_file=self.experiment_file,
            origin=socket.gethostname() if origin is None else origin,
        )  # fmt: skip


class Uploader:
    """Uploads trees; keeps a scanner per tree, so a tree uploaded again is re-hashed only
    where its files' stat changed. With `cache_dir`, each tree's stat cache is also kept
    there, so that the next process (the next `convoy run`) is spared the hashing too."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._scanners: dict[tuple[Path, tuple[Path, ...]], Scanner] = {}
        self.hashed = 0  # files the last scan hashed (the stat caches spared the others)

    def scan(self, folder: Path, excludes: Sequence[Path] = ()) -> Manifest:
        """The tree's manifest, as the coordinator's snapshot of it would be (blocking)."""
        key = (folder.resolve(), tuple(excludes))
        scanner = self._scanners.get(key)
        if scanner is None:
            cache = None
            if self.cache_dir is not None:  # named as the coordinator names its own
                self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                cache = self.cache_dir / f"{hash_bytes(os.fsencode(key[0]))[:24]}.json"
            scanner = self._scanners[key] = Scanner(folder, cache, excludes)
        manifest = scanner.scan()
        self.hashed = scanner.hashed
        if scanner.hashed:
            scanner.save()
        return manifest

    async def tree(
        self, stub: pb_grpc.CoordinatorStub, folder: Path, excludes: Sequence[Path] = ()
    ) -> TreeSent:
        """Upload one tree: only the objects the coordinator lacks travel. The scan hashes in
        a worker thread, so that a TUI or a watch session stays live meanwhile."""
        manifest = await asyncio.to_thread(self.scan, folder, excludes)
        return await send_tree(stub, folder, manifest)


async def send_tree(stub: pb_grpc.CoordinatorStub, root: Path, manifest: Manifest) -> TreeSent:
    """The manifest's revision onto the coordinator, its files read from `root`."""
    sizes = {e.hash: e.size for e in manifest.entries if e.hash}
    paths = {e.hash: e.path for e in manifest.entries if e.hash}
    hashes = list(sizes)
    total = sum(sizes.values())
    missing: list[str] = []
    for i in range(0, max(len(hashes), 1), MAX_ASKED):
        # The revision goes with the first request: when the coordinator has it, that is all.
        resp = await stub.MissingObjects(pb.HasObjectsRequest(
            revision=manifest.revision if i == 0 else "", hashes=hashes[i : i + MAX_ASKED],
        ))  # fmt: skip
        if resp.has_revision:
            return TreeSent(manifest.revision, 0, 0, len(hashes), total)
        missing.extend(resp.missing)
    sent = 0
    if missing:
        problem: list[SyncError] = []  # what the stream met, said rather than the cancel
        try:
            await stub.PutObjects(_chunks(root, [(h, paths[h]) for h in missing], problem))
        except Exception:
            if problem:
                raise problem[0] from None
            raise
        sent = sum(sizes[h] for h in missing)
    await stub.PutRevision(_revision_parts(manifest))
    return TreeSent(manifest.revision, len(missing), sent, len(hashes), total)


async def _chunks(
    root: Path, objects: Sequence[tuple[str, str]], problem: list[SyncError]
) -> AsyncIterator[pb.ObjectChunk]:
    """Each object's chunks, read from the tree and checked against its hash as read: a file
    changed since it was scanned stops the stream (the coordinator would refuse it)."""
    for h, rel in objects:
        try:
            fd = open_regular_fd(root / rel)
        except OSError as e:
            problem.append(SyncError(f"cannot read it to upload: {e.strerror}", rel))
            raise problem[0] from None
        try:
            hasher = new_hasher()
            data = os.read(fd, CHUNK)
            first = True
            while True:
                hasher.update(data)
                more = os.read(fd, CHUNK) if data else b""
                if not more and hasher.hexdigest() != h:
                    problem.append(SyncError("changed while it was uploaded; run again", rel))
                    raise problem[0]
                yield pb.ObjectChunk(hash=h if first else "", data=data, last=not more)
                if not more:
                    break
                data, first = more, False
        finally:
            os.close(fd)


async def _revision_parts(manifest: Manifest) -> AsyncIterator[pb.PutRevisionRequest]:
    entries = manifest.entries
    for i in range(0, max(len(entries), 1), ENTRIES_PER_MESSAGE):
        yield pb.PutRevisionRequest(
            revision=manifest.revision if i == 0 else "",
            entries=[_entry_pb(e) for e in entries[i : i + ENTRIES_PER_MESSAGE]],
        )


def _entry_pb(e: Entry) -> agent_pb2.ManifestEntry:
    return agent_pb2.ManifestEntry(path=e.path, mode=e.mode, size=e.size, hash=e.hash,
                                   target=e.target)  # fmt: skip


def experiment_trees(spec_path: Path, text: str) -> tuple[Path, dict[str, Path], str]:
    """The experiment's sources folder, its input folders by name, and the experiment file's
    path within the sources ("" when outside them), as the coordinator would find them."""
    source, inputs = load_spec(text, str(spec_path)).folders(spec_path)
    if not source.is_dir():
        raise UsageError(f"{spec_path}: sources folder {source} does not exist")
    for name, path in inputs.items():
        if not path.is_dir():
            raise UsageError(f"{spec_path}: input {name!r}: folder {path} does not exist")
    try:
        rel = spec_path.resolve().relative_to(source).as_posix()
    except ValueError:
        rel = ""
    return source, inputs, rel


async def upload_experiment(
    stub: pb_grpc.CoordinatorStub, spec_path: Path, uploader: Uploader | None = None,
    spec_text: str | None = None,
) -> Uploaded:  # fmt: skip
    """Upload the sources and inputs of the experiment file at `spec_path` (its text read
    now unless given), sending only what the coordinator lacks; Submit with
    `upload=result.as_pb()` then runs it. The scans read this machine's files in a worker
    thread (an Uploader kept across uploads hashes only what changed)."""
    spec_path = spec_path.absolute()
    if spec_text is None:
        try:
            spec_text = spec_path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{spec_path}: cannot read: {e}") from None
    uploader = uploader or Uploader()
    source, inputs, rel = experiment_trees(spec_path, spec_text)
    home = default_home()  # never part of a tree here, as the coordinator leaves out its own
    excludes = (spec_path.parent / "convoy-results", home)
    trees = {"sources": await uploader.tree(stub, source, excludes)}
    for name, folder in inputs.items():
        trees[f"input {name}"] = await uploader.tree(stub, folder, (home,))
    return Uploaded(
        spec_path=spec_path, spec_text=spec_text, revision=trees["sources"].revision,
        inputs={n: trees[f"input {n}"].revision for n in inputs}, experiment_file=rel,
        trees=trees,
    )  # fmt: skip
