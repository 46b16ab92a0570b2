"""Snapshots built while their objects arrive.

A host's first sync of a revision takes three requests: which objects it lacks, those objects,
then the snapshot (a hard link per file, see objects.py). Built only at the third request, the
snapshot's whole build came after the last byte: for 10,000 files, 0.15-0.25 s of a 1.2-1.9 s
first sync here, with one of the two cores idle. When the first request carries the revision's
entries, the store begins the build at once: a thread checks the entries, makes the folders and
links the objects the store has while the missing ones travel, and each of those is linked as
soon as it is stored. The third request then links what is left (objects that arrived while the
entries were being checked), adds the symlinks and renames the snapshot into place.

A plan is only a head start. The snapshot is sealed by `finish` alone, after the checks that
ObjectStore.make_revision makes; a plan that is gone (the agent restarted, too many were begun,
or it was begun more than the store's grace period ago) makes `finish` raise PlanMissing, and
the coordinator then sends the entries again.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from convoy.content import (
    LINK,
    Checked,
    EntryLike,
    SyncError,
    check_entries,
    folders_of,
    revision_id,
)

from .trees import lacking, rmtree_quiet

if TYPE_CHECKING:
    from .objects import ObjectStore

MAX_PLANS = 4  # builds begun and not finished; beginning one more drops the oldest
PREPARE_WAIT_S = 600.0  # finish waits this long for prepare, then the entries are sent again


class PlanMissing(SyncError):
    """No build of the revision was begun here, or it was dropped since."""


@dataclass(eq=False)
class _Plan:
    revision: str
    staging: str
    begun: float
    ready: threading.Event = field(default_factory=threading.Event)  # prepare is over (set
    # under Plans._lock, so that a plan dropped is removed by exactly one of prepare and drop)
    want: dict[str, Checked] = field(default_factory=dict)
    waiting: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # hash -> (dst, kind)
    error: Exception | None = None  # from prepare or a link, raised by finish
    dropped: bool = False
    doomed: list[str] = field(default_factory=list)  # folders of plans this one displaced


class Plans:
    """The builds a store has begun. `prepare` links the objects the store has without a lock
    (each link names a file of its own plan's folder); objects that arrive later are linked
    under this one's lock by the thread that stored them; `finish` seals a build under the
    store's lock. Locks are taken in that order only (store, then plans), never the other."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._plans: dict[str, _Plan] = {}  # by revision, oldest first

    def begin(self, revision: str) -> _Plan:
        """Register a build of `revision` (quickly: the caller is an event loop); objects
        stored from the end of `prepare` on are linked into it as they arrive. A build of the
        same revision begun before is dropped, and so is the oldest past MAX_PLANS; `prepare`
        removes their folders."""
        self._store._revision_path(revision)  # a well-formed id, or SyncError
        staging = f"{self._store.root}/tmp/rev-{revision}-{uuid.uuid4().hex}"
        plan = _Plan(revision, staging, time.time())
        with self._lock:
            gone = [self._plans.pop(revision)] if revision in self._plans else []
            while len(self._plans) + 1 > MAX_PLANS:
                gone.append(self._plans.pop(next(iter(self._plans))))
            self._plans[revision] = plan
            plan.doomed = [p.staging for p in gone if self._mark_dropped(p)]
        return plan

    def abandon(self, plan: _Plan, why: str) -> None:
        """A plan that will not be prepared (its thread could not be had): finish says why."""
        plan.error = SyncError(why, plan.revision)
        with self._lock:
            plan.ready.set()

    def prepare(self, plan: _Plan, entries: Sequence[EntryLike], absent: Collection[str]) -> None:
        """Check the entries, make the folders, link the objects the store has and note the
        others (`absent`: those it was found to lack) to be linked as they arrive. An error is
        kept for `finish` to raise."""
        for folder in plan.doomed:
            rmtree_quiet(Path(folder))
        later: list[tuple[str, str, int]] = []
        want: dict[str, Checked] = {}
        try:
            want = check_entries(entries)
            if revision_id(e for e, _ in want.values()) != plan.revision:
                raise SyncError("the entries do not hash to the revision id", plan.revision)
            os.mkdir(plan.staging, 0o755)
            for d in sorted(folders_of(want)):
                os.mkdir(f"{plan.staging}/{d}", 0o755)
            link = self._store._link
            for path, (e, kind) in want.items():
                dst = f"{plan.staging}/{path}"
                if kind != LINK and (e.hash in absent or not link(e.hash, kind, dst)):
                    later.append((e.hash, dst, kind))
        except SyncError as e:
            plan.error = e
        except OSError as e:
            plan.error = SyncError(f"cannot build the revision: {e.strerror}", plan.revision)
        except Exception as e:  # a bug: finish raises it, and nothing waits forever
            plan.error = e
        finally:
            with self._lock:
                plan.want = want
                for h, dst, kind in later:
                    plan.waiting.setdefault(h, []).append((dst, kind))
                plan.ready.set()
                dropped = plan.dropped
            if dropped:
                rmtree_quiet(Path(plan.staging))

    def arrived(self, hashes: Iterable[str]) -> None:
        """Objects just stored (or found stored): link them into the builds waiting for them."""
        if not self._plans:
            return
        with self._lock:
            waiting = [p for p in self._plans.values() if p.waiting and p.error is None]
            if not waiting:
                return
            for h in hashes:
                for plan in waiting:
                    for dst, kind in plan.waiting.pop(h, ()):
                        try:
                            linked = self._store._link(h, kind, dst)
                        except OSError as e:
                            plan.error = SyncError(f"cannot link {h}: {e.strerror}", plan.revision)
                            break
                        if not linked:  # gone again already: finish will say
                            plan.waiting.setdefault(h, []).append((dst, kind))

    def finish(self, revision: str) -> Path:
        """Seal the build begun for `revision`: link what is left, add the symlinks, check them,
        record the manifest and rename the snapshot into place. PlanMissing when no build of it
        was begun (or it was dropped) and the store does not have it either."""
        store = self._store
        final = store._revision_path(revision)
        with self._lock:
            plan = self._plans.pop(revision, None)
        if plan is None:
            with store._lock:
                if final.is_dir():
                    store._touch(revision)
                    return final
            raise PlanMissing("no build of this revision was begun here", revision)
        if not plan.ready.wait(PREPARE_WAIT_S):
            with self._lock:
                mine = self._mark_dropped(plan)  # else prepare, should it end, removes it
            if mine:
                rmtree_quiet(Path(plan.staging))
            raise PlanMissing("the build begun was not prepared in time", revision)
        staging = Path(plan.staging)
        with store._lock:
            try:
                if final.is_dir():  # made meanwhile by a whole MakeRevision: the same tree
                    rmtree_quiet(staging)
                    store._touch(revision)
                    return final
                if plan.error is not None:
                    raise plan.error
                link = store._link
                absent = sorted(
                    {h for h, dsts in plan.waiting.items() for d, k in dsts if not link(h, k, d)}
                )
                if absent:
                    raise lacking(absent, revision)
                store._add_symlinks(plan.staging, plan.want)
                return store._seal(staging, revision, plan.want)
            except BaseException:
                rmtree_quiet(staging)
                raise

    def drop_begun_before(self, when: float) -> None:
        """Drop builds begun before `when` (their sync is most likely abandoned)."""
        with self._lock:
            old = [r for r, p in self._plans.items() if p.begun < when]
            doomed = [p for p in (self._plans.pop(r) for r in old) if self._mark_dropped(p)]
        for p in doomed:
            rmtree_quiet(Path(p.staging))

    def stagings(self) -> set[str]:
        """The folders of the builds in progress (for the store's cleaning to leave alone)."""
        with self._lock:
            return {p.staging for p in self._plans.values()}

    @staticmethod
    def _mark_dropped(plan: _Plan) -> bool:
        """Mark a plan dropped (holding the lock); True when its folder is the caller's to
        remove, False when `prepare` is still running and will remove it."""
        plan.dropped = True
        return plan.ready.is_set()
