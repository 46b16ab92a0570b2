"""Receiving a tree from a client on another machine: the coordinator's side of an upload.

A client that does not share the coordinator's file system scans its sources and inputs itself
(with the same Scanner and ignore rules, so a tree makes the same revision id on either side),
asks which objects the coordinator lacks, sends just those, and registers the manifest. What
arrives is trusted no more than what a host sends back: every object is hashed as it is
stored and refused if it is not what its name says, every path and link target of a manifest
is checked (convoy/content.py), and a manifest is registered only when every object it names
is stored and its entries hash to the revision id the client gave. A registered revision is a
revision like a snapshot's (sync.py), kept and collected by the same rules (retention.py);
objects uploaded for a manifest that never came are collected at the next collection.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from convoy.agent.objects import ObjectWriter
from convoy.content import SyncError, check_entries, check_hash
from convoy.coordinator.sources.sync import SMALL, Revision, Syncer
from convoy.errors import UsageError
from convoy.manifest import Entry, Manifest, max_tree_bytes
from convoy.sizes import human_bytes

MAX_ASKED = 20_000  # hashes in one MissingObjects request (66 bytes each on the wire)
_REVISION_RE = re.compile(r"[0-9a-f]{20}")


def check_revision(revision: str) -> str:
    """A revision id a client gives names a file of the store: 20 lowercase hex digits only."""
    if not isinstance(revision, str) or _REVISION_RE.fullmatch(revision) is None:
        raise UsageError(f"not a revision id: {revision[:80]!r}")
    return revision


class ObjectsMissing(SyncError):
    """A manifest names objects not stored yet: they are to be sent first."""


@dataclass(frozen=True)
class Received:
    stored: int  # objects new to the store
    bytes: int  # bytes received


class Uploads:
    """Objects and manifests from clients, into the Syncer's store."""

    def __init__(self, syncer: Syncer) -> None:
        self.syncer = syncer

    def missing(self, revision: str, hashes: Sequence[str]) -> tuple[bool, list[str]]:
        """Whether the revision is stored (then nothing more is looked up), else which of the
        hashes are not, once each in the order given. Blocking: a worker thread's."""
        if revision and self.syncer.manifest_path(check_revision(revision)).exists():
            return True, []
        if len(hashes) > MAX_ASKED:
            raise UsageError(f"{len(hashes)} hashes asked about at once; at most {MAX_ASKED}")
        seen: set[str] = set()
        out = []
        for h in hashes:
            if h not in seen and not self.syncer.has_object(check_hash(h)):
                out.append(h)
            seen.add(h)
        return False, out

    async def receive(self, chunks: AsyncIterator[tuple[str, bytes, bool]]) -> Received:
        """Store the objects of a PutObjects stream. An object of up to SMALL bytes goes to a
        pack, a larger one to its own file, written as it arrives. One that does not match
        its hash raises SyncError, and the objects before it in the stream stay stored (each
        was verified); the one cut short by the stream's end is dropped."""
        stored = received = 0
        name = ""  # the object in progress
        small: list[bytes] = []  # its chunks while it is small
        held = 0
        writer: ObjectWriter | None = None
        try:
            async for hash, data, last in chunks:
                if hash:
                    if name:
                        raise SyncError("an object began before the last one ended", hash)
                    name = check_hash(hash)
                elif not name:
                    raise SyncError("a chunk of no object")
                received += len(data)
                if writer is None and held + len(data) <= SMALL:
                    small.append(data)
                    held += len(data)
                else:
                    if writer is None:
                        writer = self.syncer.store.writer(name)
                        for part in small:
                            writer.write(part)
                        small, held = [], 0
                    await asyncio.to_thread(writer.write, data)
                if not last:
                    continue
                if writer is not None:
                    if await asyncio.to_thread(writer.commit):
                        stored += 1
                    self.syncer.stored(name)
                    writer = None
                else:
                    whole = b"".join(small)
                    stored += await asyncio.to_thread(self.syncer.packs.put_many, [(name, whole)])
                    small, held = [], 0
                name = ""
        finally:
            if writer is not None:
                writer.abort()
        if name:
            raise SyncError("the stream ended within an object", name)
        return Received(stored, received)

    def register(self, revision: str, entries: Sequence[Entry]) -> Revision:
        """A client's manifest as a stored revision, once checked: safe paths and links, a
        tree no larger than a local one may be, every object stored, and entries that make
        `revision`. Blocking: a worker thread's."""
        check_revision(revision)
        check_entries(entries)  # SyncError names a bad path or link
        manifest = Manifest(tuple(sorted(entries, key=lambda e: e.path)))
        if manifest.size > (limit := max_tree_bytes()):
            raise UsageError(f"the tree holds {human_bytes(manifest.size)}, over the "
                             f"{human_bytes(limit)} convoy takes")  # fmt: skip
        if manifest.revision != revision:
            raise UsageError(f"the manifest makes revision {manifest.revision}, not {revision}")
        lacking = [h for h in sorted(manifest.hashes()) if not self.syncer.has_object(h)]
        if lacking:
            raise ObjectsMissing(f"{len(lacking)} of its objects are not stored; send them first "
                            f"(PutObjects)", lacking[0])  # fmt: skip
        return self.syncer.register(manifest)
