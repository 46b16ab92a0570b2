"""The coordinator's store of small objects: appended to pack files, not one file each.

Creating a file costs about 0.1 ms on these machines, so storing a 10,000-file tree one object
per file took a second; appending the same objects to one pack takes a few milliseconds. Large
objects stay as files in an ObjectStore (see Syncer). It holds what submissions were made of,
so that a run placed hours later still gets exactly its revision; what no kept revision names
any more is dropped by `compact` (see retention.py), which rewrites the packs that held it.

    packs/<n>.pack    objects back to back
    packs/index       one line per object: "<hash> <pack> <offset> <size>", appended after the
                      object's bytes are in its pack, so a line never names missing bytes
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from convoy.content import SyncError, check_hash, hash_bytes

PACK_LIMIT = 256 * 1024 * 1024  # a new pack file after this many bytes
_WRITEV_AT_MOST = 1024  # IOV_MAX on Linux


class PackStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()
        self._pack = 0
        self._readers: dict[int, BinaryIO] = {}
        self._load()

    def _load(self) -> None:
        index = self.root / "index"
        if not index.exists():
            return
        sizes: dict[int, int] = {}
        for line in index.read_text().splitlines():
            try:
                h, pack, offset, size = line.split()
                entry = (int(pack), int(offset), int(size))
            except ValueError:
                continue  # a line cut short by a crash
            if entry[0] not in sizes:
                p = self._pack_path(entry[0])
                sizes[entry[0]] = p.stat().st_size if p.exists() else 0
            if entry[1] + entry[2] <= sizes[entry[0]]:
                self._index[h] = entry
                self._pack = max(self._pack, entry[0])

    def close(self) -> None:
        with self._lock:
            for f in self._readers.values():
                f.close()
            self._readers.clear()

    def _pack_path(self, n: int) -> Path:
        return self.root / f"{n}.pack"

    def __contains__(self, hash: str) -> bool:
        return hash in self._index

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return sorted(h for h in hashes if h not in self._index)

    def put_many(self, items: Iterable[tuple[str, bytes]], verified: bool = False) -> int:
        """Append objects (hash, content); each is verified first unless the caller has just
        hashed that very content (`verified`). The number stored."""
        stored = 0
        with self._lock:
            path = self._pack_path(self._pack)
            if path.exists() and path.stat().st_size >= PACK_LIMIT:
                self._pack += 1
                path = self._pack_path(self._pack)
            # Indexed only once all of them are written: an object that fails its check stops
            # the batch, and no earlier one of it may be found at bytes never written (the next
            # append reuses those offsets).
            new: dict[str, tuple[int, int, int]] = {}
            with open(path, "ab", buffering=0) as pack:
                offset = pack.tell()
                parts: list[bytes] = []
                for h, data in items:
                    check_hash(h)
                    if h in self._index or h in new:
                        continue
                    if not verified and hash_bytes(data) != h:
                        raise SyncError(f"content ({len(data)} bytes) does not match its hash", h)
                    parts.append(data)
                    new[h] = (self._pack, offset, len(data))
                    offset += len(data)
                    if len(parts) == _WRITEV_AT_MOST:
                        _write_all(pack.fileno(), parts)
                _write_all(pack.fileno(), parts)
            with open(self.root / "index", "a") as index:
                index.write("".join(f"{h} {p} {o} {n}\n" for h, (p, o, n) in new.items()))
            self._index.update(new)
            stored = len(new)
        return stored

    def compact(self, live: set[str]) -> tuple[int, int]:
        """Drop every object not in `live`: each pack holding one is rewritten with only its
        live objects (appended to new packs, numbered above every pack file there is), the
        index is replaced whole (a new file renamed over it), then the old packs are deleted,
        and so are pack files no entry names (left by a compaction or a batch a crash cut
        short). (objects dropped, bytes freed)

        A crash before the new index takes its place leaves the old one and its packs whole;
        after, the old packs are unnamed and a later compaction deletes them. Not for use
        beside snapshots or syncs of this store (the coordinator compacts before serving)."""
        with self._lock:
            dead = {h for h in self._index if h not in live}
            referenced = {p for p, _, _ in self._index.values()}
            on_disk = {int(p.stem): p for p in self.root.glob("*.pack") if p.stem.isdecimal()}
            unnamed = [p for n, p in on_disk.items() if n not in referenced]
            freed = sum(p.stat().st_size for p in unnamed)
            if not dead:
                for q in unnamed:
                    q.unlink()
                return 0, freed
            rewritten = {self._index[h][0] for h in dead}
            # Per hash, not per place: an empty object shares its offset with the next one.
            moving = sorted(
                ((h, e) for h, e in self._index.items() if h not in dead and e[0] in rewritten),
                key=lambda item: (item[1][0], item[1][1]),
            )
            index = {h: e for h, e in self._index.items() if h not in dead}
            pack = max([*referenced, *on_disk]) + 1  # no file there is written over
            first_new, offset, moved = pack, 0, 0
            out: BinaryIO | None = None
            sources: dict[int, BinaryIO] = {}
            try:
                for h, (p, o, n) in moving:
                    if out is None or (offset and offset + n > PACK_LIMIT):
                        if out is not None:
                            os.fsync(out.fileno())
                            out.close()
                            pack, offset = pack + 1, 0
                        out = open(self._pack_path(pack), "xb", buffering=0)  # noqa: SIM115
                    src = sources.get(p) if n else None
                    if src is None and n:  # an empty object needs no pack (it may be gone)
                        src = sources[p] = open(self._pack_path(p), "rb")  # noqa: SIM115
                    data = os.pread(src.fileno(), n, o) if src is not None else b""
                    if len(data) != n:
                        raise SyncError("cut short in the coordinator's store", f"{p}.pack")
                    _write_all(out.fileno(), [data])
                    index[h] = (pack, offset, n)
                    offset += n
                    moved += n
                if out is not None:
                    os.fsync(out.fileno())
            finally:
                if out is not None:
                    out.close()
                for src in sources.values():
                    src.close()
            tmp = self.root / "index.new"
            with open(tmp, "w") as lines:
                lines.write("".join(f"{h} {p} {o} {n}\n" for h, (p, o, n) in index.items()))
                lines.flush()
                os.fsync(lines.fileno())
            os.replace(tmp, self.root / "index")
            folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)  # the new index named on disk before the old packs go
            finally:
                os.close(folder)
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()
            for p in rewritten:
                with contextlib.suppress(FileNotFoundError):  # held only empty objects
                    freed += self._pack_path(p).stat().st_size
                    self._pack_path(p).unlink()
            for q in unnamed:
                q.unlink()
            self._index = index
            # Appends go on in the newest pack any entry names (a new one, or the last kept).
            self._pack = max((e[0] for e in index.values()), default=first_new)
            return len(dead), freed - moved

    def read(self, hash: str) -> bytes:
        try:
            pack, offset, size = self._index[hash]
        except KeyError:
            raise SyncError("not in the coordinator's store", hash) from None
        if size == 0:  # its pack need not exist (an index line may outlive it)
            return b""
        with self._lock:  # one open file per pack: a sync reads thousands of objects
            f = self._readers.get(pack)
            if f is None:
                f = self._readers[pack] = open(self._pack_path(pack), "rb")  # noqa: SIM115
            data = os.pread(f.fileno(), size, offset)
        if len(data) != size:
            raise SyncError("cut short in the coordinator's store", hash)
        return data


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write the parts back to back, gathered (no copy into one buffer); empties the list."""
    i = 0
    while i < len(parts):
        n = os.writev(fd, parts[i : i + _WRITEV_AT_MOST])
        while i < len(parts) and n >= len(parts[i]):
            n -= len(parts[i])
            i += 1
        if n:
            parts[i] = parts[i][n:]  # a short write: the rest of this part next
    parts.clear()


def read_small_files(
    source: Path, wanted: Iterable[tuple[str, str]]
) -> Iterable[tuple[str, bytes]]:
    """(hash, content) of each (relative path, hash) wanted, read from the source tree."""
    for rel, h in wanted:
        yield h, (source / rel).read_bytes()
