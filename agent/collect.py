"""Collection of a host's object store (see objects.py for its layout and rules).

Revisions unused for longest go first, never one in use or one another revision is layered
on; then the objects no snapshot links (st_nlink == 1), except those a sync on its way may
still link (reported present by missing(), or received, within the store's grace period);
then the leftovers of crashes in tmp/.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .trees import rmtree_quiet

if TYPE_CHECKING:
    from .objects import ObjectStore


@dataclass(frozen=True)
class CollectReport:
    revisions: tuple[str, ...]  # removed, oldest first
    objects: int  # object files removed
    bytes_freed: int
    bytes_total: int  # the objects' size after collection


def collect(store: ObjectStore, max_age_s: float, max_bytes: int, now: float) -> CollectReport:
    """Remove revisions unused for max_age_s, then more (oldest first) until the objects fit
    in max_bytes, never one in use; then the objects no snapshot links."""
    removed: list[str] = []
    count = freed = 0
    with store._lock:
        total = sum(os.lstat(p).st_size for p in _all_objects(store))
        below = _lower_layers(store)
        for used, rev in _revisions_by_use(store):
            if store.in_use(rev) or rev in below:
                continue
            if now - used <= max_age_s and total <= max_bytes:
                break
            objs = _objects_of(store, rev)
            _remove_revision(store, rev)
            removed.append(rev)
            n, size = _remove_unlinked(store, objs, now, received_grace=False)
            count, freed, total = count + n, freed + size, total - size
        # Abandoned builds first: the objects only their folders linked can then go too.
        store.plans.drop_begun_before(now - store.grace_s)
        n, size = _remove_unlinked(store, _all_objects(store), now, received_grace=True)
        _clean_tmp(store, now)
        with store._asked_lock:
            for h in [h for h, t in store._asked.items() if now - t >= store.grace_s]:
                del store._asked[h]
    return CollectReport(tuple(removed), count + n, freed + size, total - size)


def _revisions_by_use(store: ObjectStore) -> list[tuple[float, str]]:
    out = []
    for d in (store.root / "revisions").iterdir():
        try:
            used = store._manifest_path(d.name).stat().st_mtime
        except FileNotFoundError:
            used = d.lstat().st_mtime
        out.append((used, d.name))
    return sorted(out)


def _objects_of(store: ObjectStore, revision: str) -> set[str]:
    """The object files a revision's manifest links (empty when it has none)."""
    try:
        rows = json.loads(store._manifest_path(revision).read_text(encoding="utf-8"))
        return {
            store._obj(digest, bool(mode & 0o111))
            for _path, mode, _size, digest, _target in rows
            if stat.S_ISREG(mode)
        }
    except (OSError, ValueError, TypeError):
        return set()


def _remove_revision(store: ObjectStore, revision: str) -> None:
    root = store.root
    trash = root / "tmp" / f"gc-{revision}-{uuid.uuid4().hex}"
    os.rename(root / "revisions" / revision, trash)  # gone at once, deleted after
    rmtree_quiet(trash)
    store._manifest_path(revision).unlink(missing_ok=True)
    store._parsed.pop(revision, None)  # a base asked for by name is gone, not remembered
    (root / "layers" / revision).unlink(missing_ok=True)
    rmtree_quiet(root / "flat" / revision)
    with suppress(OSError):
        (root / "leases" / revision).rmdir()


def _lower_layers(store: ObjectStore) -> set[str]:
    """Revisions another revision is layered on: kept while that one exists."""
    below: set[str] = set()
    folder = store.root / "layers"
    if folder.is_dir():
        for f in folder.iterdir():
            if store.has_revision(f.name):
                below.update(store.layers(f.name)[1:])
    return below


def _all_objects(store: ObjectStore) -> Iterator[str]:
    with os.scandir(store._objects) as subs:
        for sub in subs:
            if not sub.is_dir(follow_symlinks=False):
                continue
            with os.scandir(sub.path) as objs:
                yield from (o.path for o in objs)


def _remove_unlinked(
    store: ObjectStore, paths: Iterable[str], now: float, received_grace: bool
) -> tuple[int, int]:
    """Remove the object files no snapshot links, unless asked about lately (or, with
    received_grace, received lately)."""
    count = size = 0
    for p in paths:
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if st.st_nlink != 1:
            continue
        head, _, tail = p.rpartition("/")
        h = head[-2:] + tail.removesuffix("x")
        with store._asked_lock:  # missing() finds it present, or not, wholly before or after
            last = max(st.st_mtime if received_grace else 0.0, store._asked.get(h, 0.0))
            if now - last < store.grace_s:
                continue
            os.unlink(p)
        count, size = count + 1, size + st.st_size
    return count, size


def _clean_tmp(store: ObjectStore, now: float) -> None:
    """Leftovers of a crash: unfinished objects and snapshots older than the grace period
    (not the folders of builds begun, which the plans remove when they drop them)."""
    building = store.plans.stagings()
    for p in (store.root / "tmp").iterdir():
        with suppress(FileNotFoundError):
            if now - p.lstat().st_mtime <= store.grace_s or str(p) in building:
                continue
            if p.is_dir() and not p.is_symlink():
                rmtree_quiet(p)
            else:
                p.unlink()
