"""The host's object store and its revision snapshots.

    root/objects/ab/cdef...     one file per content hash (0644: see below)
    root/objects/ab/cdef...x    the same content as an executable (0755), made when a revision
                                needs it: a hard link shares its inode's mode, so the two modes
                                need two files (git tracks only the executable bit, and so do we)
    root/revisions/<rev>/       a snapshot: folders 0755, hard links into objects/, symlinks
    root/manifests/<rev>.json   the snapshot's entries; its mtime is the revision's last use
    root/leases/<rev>/<holder>  a revision in use by a run; collect never removes it
    root/tmp/                   objects being received, snapshots being built, trash

Objects are 0644, not read-only: a run sees them through its overlay workspace with no
capabilities (no CAP_DAC_OVERRIDE), and a run may rewrite a source file in place, which a
read-only mode would refuse. Nothing writes through the links: overlayfs never writes to its
lower layer, and the copy workspace copies.

Objects arrive through `writer(hash)` and are stored only when their content has that hash.
A revision is built in tmp/ and renamed into place, so a snapshot that exists is complete, and
its name is checked to be the hash of its entries, so a snapshot of that name is the same tree.
Building one makes a hard link per file: 10,000 files take 90-100 ms, of which the link
calls are 50-90 ms. Reusing the previous snapshot (`cp -al`, then redoing the changed entries)
was measured and not kept: `cp -al` alone takes 56-70 ms, since it too makes one link per file,
and the diff and a subprocess add the rest back (bench/hashes.py --sync). A host's first sync
of a revision instead begins the build before the objects arrive and links each as it is
stored (`plans`, see plans.py), so that little of the build is left when the last one lands.

An object is unreferenced when no snapshot links it (st_nlink == 1). Collection (collect.py)
removes those, except objects that missing() reported present within `grace_s` (a sync on its
way will link them) and, among objects no removed revision had linked, those received within
`grace_s` (their revision is on its way). One agent process owns a store; a lock serialises
builds, leases and collection within it (a build begun before its objects arrive links them
outside it, see plans.py: a link taken keeps its object from collection). Objects are not
fsync-ed: a host crash can lose the last ones received, and the coordinator's next
MissingObjects then asks for them again.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from convoy.content import (
    EXECUTABLE,
    FILE,
    LINK,
    Checked,
    EntryLike,
    SyncError,
    check_entries,
    check_hash,
    check_relpath,
    folders_of,
    hash_bytes,
    hash_file,
    new_hasher,
    revision_id,
)

from .collect import CollectReport, collect
from .plans import Plans
from .spread import spread_subfolders
from .trees import (
    ManifestRow,
    check_links,
    copy_object,
    kinds_clash,
    lacking,
    link_or_copy,
    link_tree,
    own_tree,
    rmtree_quiet,
)

__all__ = ["CollectReport", "EntryLike", "ObjectStore", "ObjectWriter", "SyncError"]

_REVISION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")


class RevisionMissing(SyncError):
    """The store does not hold the revision (never synced here, or collected since)."""


class ObjectWriter:
    """Receives one object's bytes; `commit` stores them only if they hash to the given name."""

    def __init__(self, store: ObjectStore, hash: str) -> None:
        self.hash = check_hash(hash)
        self._store = store
        self._tmp = store.root / "tmp" / f"obj-{uuid.uuid4().hex}"
        self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed by commit or abort
        self._hasher = new_hasher()
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hasher.update(data)
        self.size += len(data)

    def commit(self) -> bool:
        """Store the object; False when the store had it already. A mismatch raises SyncError."""
        self._done = True
        self._file.close()
        try:
            if self._hasher.hexdigest() != self.hash:
                raise SyncError(f"content ({self.size} bytes) does not match its hash", self.hash)
            return self._store._adopt(self._tmp, self.hash)
        finally:
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._file.close()
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ObjectStore:
    def __init__(
        self, root: Path, grace_s: float = 3600.0, owner: tuple[int, int] | None = None
    ) -> None:
        """`owner`: (uid, gid) to give every snapshot (and so its objects) to, when runs execute
        as another user than the agent's (agent/policy.py); None: left as made."""
        self.root = Path(root).resolve()
        self.grace_s = grace_s
        self.owner = owner
        for sub in ("objects", "revisions", "manifests", "leases", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        spread_subfolders(str(self.root / "objects"))  # object folders made from now on
        self._lock = threading.RLock()
        self._asked: dict[str, float] = {}  # hash -> when missing() found it present
        # Over _asked, and over collect's look at it and its unlink of an object: an object
        # found present here is either kept by collect or, already gone, reported missing.
        self._asked_lock = threading.Lock()
        self._objects = str(self.root / "objects")
        self._folders: set[str] = set()  # object folders known to exist
        self._parsed: dict[str, list[ManifestRow]] = {}  # revision -> its manifest, recent few
        self.plans = Plans(self)  # snapshots begun before their objects arrived (plans.py)
        self._recover_journals()

    # -- objects -----------------------------------------------------------------------------

    def path_of(self, hash: str) -> Path:
        """The stored file holding this content (to read it, never to write it)."""
        for executable in (False, True):
            p = self._obj(check_hash(hash), executable)
            if os.path.exists(p):
                return Path(p)
        raise SyncError("missing object", hash)

    def _has_object(self, hash: str) -> bool:
        return os.path.exists(self._obj(hash)) or os.path.exists(self._obj(hash, True))

    def missing(self, hashes: Iterable[str]) -> list[str]:
        """The hashes the store lacks, once each, in the order given. A hash whose folder
        (named by its first two digits) does not exist is missing without looking further:
        asking a new host about 10,000 objects then costs 256 lookups, not 20,000."""
        out: list[str] = []
        seen: set[str] = set()
        folders: dict[str, bool] = {}
        now = time.time()
        with self._asked_lock:
            for h in hashes:
                if h in seen:
                    continue
                seen.add(check_hash(h))
                folder = folders.get(h[:2])
                if folder is None:
                    folder = folders[h[:2]] = os.path.isdir(f"{self._objects}/{h[:2]}")
                if folder and self._has_object(h):
                    self._asked[h] = now
                else:
                    out.append(h)
        return out

    def _present(self, h: str, dest: str) -> bool:
        """Whether an object file found existing is still there, noting that a sync is about
        to link it (so collect keeps it); False when collect removed it meanwhile."""
        with self._asked_lock:
            if os.path.exists(dest):
                self._asked[h] = time.time()
                return True
        return False

    def writer(self, hash: str) -> ObjectWriter:
        return ObjectWriter(self, hash)

    def put_file(self, path: str | os.PathLike[str], hash: str) -> bool:
        """Store a copy of a file said to hash to `hash`; False when the store had it. The
        kernel copies (shutil.copyfile uses sendfile on Linux), then the copy is hashed, so a
        file changed since it was hashed raises SyncError. Measured on ext4 for 100 MB:
        0.035-0.04 s against 0.18-0.21 s through Python's buffers."""
        tmp = self.root / "tmp" / f"obj-{uuid.uuid4().hex}"
        try:
            shutil.copyfile(path, tmp)
            if hash_file(tmp) != check_hash(hash):
                raise SyncError("changed since it was hashed", os.fspath(path))
            return self._adopt(tmp, hash)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, hash: str, data: bytes) -> bool:
        """Store one whole object held in memory; False when the store had it."""
        return self.put_many([(hash, data)]) == 1

    def put_many(self, objects: Sequence[tuple[str, bytes]]) -> int:
        """Store whole objects held in memory (the common, small case); the number new.

        Each is verified in memory, then written straight under its final name: a temporary
        name and a link cost two more file system operations per object, which is most of the
        time on these disks (0.25 s for 10,000 objects, against 0.8-2 s). What that gives up,
        an object cut short by a crash while it was written, the journal takes back: the
        batch's hashes are noted before writing, and on the next start every object noted and
        not cleared is checked, and removed if its content does not match.
        """
        for h, data in objects:
            check_hash(h)
            if hash_bytes(data) != h:
                raise SyncError(f"content ({len(data)} bytes) does not match its hash", h)
        journal = self.root / "tmp" / f"receiving-{uuid.uuid4().hex}"
        journal.write_text("".join(f"{h}\n" for h, _ in objects))
        stored = 0
        try:
            for h, data in objects:
                dest = self._obj(h)
                folder = os.path.dirname(dest)
                if folder not in self._folders:
                    os.makedirs(folder, exist_ok=True)
                    self._folders.add(folder)
                if _write_new(dest, data) or (
                    not self._present(h, dest) and _write_new(dest, data)
                ):
                    stored += 1
        except OSError:  # a full disk: the object cut short is gone again, the others whole
            journal.unlink(missing_ok=True)
            raise
        journal.unlink()  # every object of the batch is whole
        self.plans.arrived(h for h, _ in objects)
        return stored

    def _recover_journals(self) -> None:
        """Check the objects of batches a crash interrupted; remove those cut short."""
        for journal in (self.root / "tmp").glob("receiving-*"):
            for h in set(journal.read_text().split()):
                try:
                    path = self._obj(check_hash(h))
                except SyncError:
                    continue
                with suppress(FileNotFoundError), open(path, "rb") as f:
                    if hash_bytes(f.read()) != h:
                        os.unlink(path)
            journal.unlink()

    def _adopt(self, tmp: Path, hash: str) -> bool:
        """Give a verified file its name in the store; False when the store had it already."""
        os.chmod(tmp, 0o644)
        dest = self._obj(hash)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        new = False
        for _ in range(2):  # a second time when collect removed the one found meanwhile
            try:
                os.link(tmp, dest)  # never replaces: snapshots may link the existing one
                new = True
                break
            except FileExistsError:
                if self._present(hash, dest):
                    break
        self.plans.arrived((hash,))
        return new

    def _object_for(self, hash: str, executable: bool) -> str | None:
        """The object file with the wanted mode, copied from the other mode when only that one
        is stored; None when neither is."""
        want = self._obj(hash, executable)
        if os.path.exists(want):
            return want
        other = self._obj(hash, not executable)
        if not os.path.exists(other):
            return None
        tmp = str(self.root / "tmp" / f"obj-{uuid.uuid4().hex}")
        copy_object(other, tmp, EXECUTABLE if executable else FILE)
        with suppress(FileExistsError):
            os.link(tmp, want)
        os.unlink(tmp)
        return want

    def _obj(self, hash: str, executable: bool = False) -> str:
        return f"{self._objects}/{hash[:2]}/{hash[2:]}{'x' if executable else ''}"

    # -- revisions ---------------------------------------------------------------------------

    def _revision_path(self, revision: str) -> Path:
        if not isinstance(revision, str) or _REVISION_RE.fullmatch(revision) is None:
            raise SyncError("not a revision id", repr(revision)[:80])
        return self.root / "revisions" / revision

    def has_revision(self, revision: str) -> bool:
        return self._revision_path(revision).is_dir()

    def revision_dir(self, revision: str) -> Path:
        """The snapshot of a revision this store has (for a run: hold a lease while it runs)."""
        path = self._revision_path(revision)
        if not path.is_dir():
            raise RevisionMissing("no such revision on this host", revision)
        return path

    def make_revision(self, revision: str, entries: Sequence[EntryLike]) -> Path:
        """Materialise a revision as an immutable snapshot; an existing one is returned as is."""
        final = self._revision_path(revision)
        with self._lock:
            if final.is_dir():
                self._touch(revision)
                return final
            want = check_entries(entries)
            if revision_id(e for e, _ in want.values()) != revision:
                raise SyncError("the entries do not hash to the revision id", revision)
            staging = self.root / "tmp" / f"rev-{revision}-{uuid.uuid4().hex}"
            try:
                absent = self._build(str(staging), want)
                if absent:
                    raise lacking(absent, revision)
                return self._seal(staging, revision, want)
            except BaseException:
                rmtree_quiet(staging)
                raise

    def _seal(self, staging: Path, revision: str, want: dict[str, Checked]) -> Path:
        """Check a built snapshot's symlinks, record its manifest and rename it into place
        (holding the lock). The caller removes `staging` if this raises."""
        final = self._revision_path(revision)
        check_links(staging, want)
        own_tree(staging, self.owner)
        self._write_manifest(revision, want)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
            rmtree_quiet(staging)  # another process made it first: the same tree
        return final

    def make_layered(
        self, revision: str, base: str, entries: Sequence[EntryLike], changed: Sequence[EntryLike]
    ) -> Path | None:
        """Make `revision` as a layer holding only `changed`, over `base`'s layers, so a small
        edit costs its own files rather than a link per file of the tree. None when it cannot
        be layered (no base, too deep, or a file and a folder trading places): the caller then
        makes it whole. `entries` is the whole revision, checked against its id as usual.
        """
        final = self._revision_path(revision)
        with self._lock:
            if final.is_dir():
                self._touch(revision)
                return final
            if not self.has_revision(base):
                return None
            chain = [revision, *self.layers(base)]
            if len(chain) > MAX_LAYERS:
                return None
            # The base's entries were checked when it was made: only the new ones are here.
            layer = check_entries(changed)
            if revision_id(entries) != revision:
                raise SyncError("the entries do not hash to the revision id", revision)
            if kinds_clash(set(layer), {row.path for row in self.manifest(base)}):
                return None
            if any(kind == LINK for _, kind in layer.values()):
                # A link through another link can leave the tree (check_links), and the two may
                # be in different layers: a revision adding symlinks is built whole and checked
                # whole. Without new ones, its links are some of the base's, already checked.
                return None
            staging = self.root / "tmp" / f"rev-{revision}-{uuid.uuid4().hex}"
            try:
                absent = self._build(str(staging), layer)
                if absent:
                    raise lacking(absent, revision)
                rows = [ManifestRow(e.path, e.mode, e.size, e.hash, e.target) for e in entries]
                self._write_rows(revision, rows)
                chain_file = self.root / "layers" / revision
                chain_file.parent.mkdir(exist_ok=True)
                chain_file.write_text(json.dumps(chain))
                own_tree(staging, self.owner)
                os.rename(staging, final)
            except BaseException:
                rmtree_quiet(staging)
                raise
            return final

    def give_all(self) -> int:
        """Give every snapshot to the store's owner (once, when that changed: the store keeps
        whose it last made them in `owner`); the number of entries changed."""
        if self.owner is None:
            return 0
        mark = self.root / "owner"
        want = f"{self.owner[0]}:{self.owner[1]}"
        with suppress(OSError):
            if mark.read_text().strip() == want:
                return 0
        changed = sum(own_tree(self.root / sub, self.owner) for sub in ("revisions", "flat")
                      if (self.root / sub).is_dir())  # fmt: skip
        mark.write_text(want + "\n")
        return changed

    def layers(self, revision: str) -> list[str]:
        """The revisions whose folders, top first, make up `revision` (itself alone when whole)."""
        try:
            return list(json.loads((self.root / "layers" / revision).read_text()))
        except (OSError, ValueError):
            return [revision]

    def revision_layers(self, revision: str) -> list[Path]:
        """Folders to stack (top first) as an overlay's lower layers for `revision`."""
        return [self.revision_dir(r) for r in self.layers(revision)]

    def full_dir(self, revision: str) -> Path:
        """A folder holding the whole revision (for a copy workspace or a read-only mount):
        its snapshot, or for a layered revision a flattened copy made of hard links once."""
        chain = self.layers(revision)
        if len(chain) == 1:
            return self.revision_dir(revision)
        flat = self.root / "flat" / revision
        with self._lock:
            if flat.is_dir():
                return flat
            staging = self.root / "tmp" / f"flat-{revision}-{uuid.uuid4().hex}"
            try:
                for layer in reversed(self.revision_layers(revision)):  # bottom first
                    link_tree(layer, staging)
                own_tree(staging, self.owner)
                flat.parent.mkdir(exist_ok=True)
                os.rename(staging, flat)
            except BaseException:
                rmtree_quiet(staging)
                raise
        return flat

    def _build(self, staging: str, want: dict[str, Checked]) -> list[str]:
        """Folders, then a hard link per file, then symlinks (last, so that no file is ever
        written through one); the hashes of objects the store lacks, sorted."""
        os.mkdir(staging, 0o755)
        for d in sorted(folders_of(want)):
            os.mkdir(f"{staging}/{d}", 0o755)
        link = self._link
        absent = {
            e.hash
            for path, (e, kind) in want.items()
            if kind != LINK and not link(e.hash, kind, f"{staging}/{path}")
        }
        self._add_symlinks(staging, want)
        return sorted(absent)

    def _link(self, h: str, kind: int, dst: str) -> bool:
        """Hard-link an object into a snapshot being built (a copy past the file system's link
        limit); False when the store lacks it."""
        obj = f"{self._objects}/{h[:2]}/{h[2:]}x" if kind else f"{self._objects}/{h[:2]}/{h[2:]}"
        try:
            os.link(obj, dst)  # the cost of a build: about 6 us each, as in `cp -al`
        except FileNotFoundError:
            found = self._object_for(h, kind == EXECUTABLE)
            if found is None:
                return False
            link_or_copy(found, dst, kind)
        except OSError as err:
            if err.errno != errno.EMLINK:
                raise
            copy_object(obj, dst, kind)
        return True

    @staticmethod
    def _add_symlinks(staging: str, want: dict[str, Checked]) -> None:
        for path, (e, kind) in want.items():
            if kind == LINK:
                os.symlink(e.target, f"{staging}/{path}")

    def manifest(self, revision: str) -> list[ManifestRow]:
        """The entries of a revision this store has; SyncError when it has none. The last few
        are kept parsed: the next revision is usually sent as a difference from one of them."""
        cached = self._parsed.get(revision)
        if cached is not None:
            return cached
        try:
            rows = json.loads(self._manifest_path(revision).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SyncError(f"no revision {revision} on this host") from e
        return self._remember(revision, [ManifestRow(*row) for row in rows])

    def _remember(self, revision: str, rows: list[ManifestRow]) -> list[ManifestRow]:
        self._parsed[revision] = rows
        while len(self._parsed) > PARSED_MANIFESTS:
            self._parsed.pop(next(iter(self._parsed)))
        return rows

    def _manifest_path(self, revision: str) -> Path:
        return self.root / "manifests" / f"{revision}.json"

    def _write_manifest(self, revision: str, want: dict[str, Checked]) -> None:
        self._write_rows(revision, [ManifestRow(p, e.mode, e.size, e.hash, e.target)
                                    for p, (e, _) in want.items()])  # fmt: skip

    def _write_rows(self, revision: str, entries: list[ManifestRow]) -> None:
        self._remember(revision, entries)
        rows = [[e.path, e.mode, e.size, e.hash, e.target] for e in entries]
        tmp = self.root / "tmp" / f"manifest-{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(rows), encoding="utf-8")
        os.replace(tmp, self._manifest_path(revision))

    def _touch(self, revision: str) -> None:
        with suppress(FileNotFoundError):
            os.utime(self._manifest_path(revision))

    # -- leases ------------------------------------------------------------------------------

    def acquire(self, revision: str, holder: str) -> Path:
        """Mark the revision in use by `holder` (an attempt id) until `release`; leases are
        files, so they outlive an agent restart: the agent releases those of finished runs."""
        path = self._revision_path(revision)
        check_relpath(holder)
        if "/" in holder:
            raise SyncError("a lease holder is one path segment", holder)
        with self._lock:
            if not path.is_dir():
                raise RevisionMissing("no such revision on this host", revision)
            lease = self.root / "leases" / revision / holder
            lease.parent.mkdir(exist_ok=True)
            lease.write_text(f"{os.getpid()} {time.time()}\n")
            self._touch(revision)
        return path

    def release(self, revision: str, holder: str) -> None:
        with self._lock:
            folder = self.root / "leases" / self._revision_path(revision).name
            (folder / holder).unlink(missing_ok=True)
            with suppress(OSError):
                folder.rmdir()
            self._touch(revision)

    @contextmanager
    def use(self, revision: str, holder: str | None = None) -> Iterator[Path]:
        """The revision's snapshot, kept from collection while the block runs."""
        holder = holder or f"use-{uuid.uuid4().hex}"
        path = self.acquire(revision, holder)
        try:
            yield path
        finally:
            self.release(revision, holder)

    def in_use(self, revision: str) -> bool:
        folder = self.root / "leases" / self._revision_path(revision).name
        return folder.is_dir() and any(folder.iterdir())

    # -- collection (collect.py) ------------------------------------------------------------

    def collect(self, max_age_s: float, max_bytes: int, now: float | None = None) -> CollectReport:
        """Remove revisions unused for max_age_s, then more (oldest first) until the objects
        fit in max_bytes, never one in use; then the objects no snapshot links."""
        return collect(self, max_age_s, max_bytes, time.time() if now is None else now)


PARSED_MANIFESTS = 4
MAX_LAYERS = 8  # deeper, a revision is made whole (an overlay mount names every layer)


def _write_new(dest: str, data: bytes) -> bool:
    """Write `data` to a new file `dest`; False when it exists (never replaced: snapshots
    may link it). A write that fails (a full disk) removes what it began before raising, so
    no object is left cut short under its hash."""
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # may fail too, the data not written after all
    except BaseException:
        with suppress(OSError):
            os.unlink(dest)
        raise
    return True
