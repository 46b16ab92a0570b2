"""Collecting the coordinator's store: revisions nothing keeps go, with the objects only they
named; kept revisions stay whole and readable. A real Syncer (packs, store files, manifests)
and a real SQLite store; no coordinator runs."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from convoy.coordinator.runs.store import STATE_DB, Store
from convoy.coordinator.sources.packs import PackStore
from convoy.coordinator.sources.retention import MARK, collect_unused
from convoy.coordinator.sources.sync import SMALL, Revision, RevisionGone, Syncer
from convoy.states import RunState
from tests.unit.test_store import make_runs, make_sub

DAY = 86400.0
NOW = 2_000_000_000.0


def tree(root: Path, name: str) -> Path:
    """A source tree: a file every tree shares, small and large files of its own."""
    root.mkdir(parents=True)
    (root / "shared.txt").write_text("the same in every tree\n")
    (root / f"{name}.txt").write_text(f"only in {name}\n")
    (root / f"{name}.bin").write_bytes(name.encode() * (SMALL // len(name) + 1000))  # large
    return root


def submitted(store: Store, n: int, revision: str, at: float, state: RunState) -> None:
    sub = replace(make_sub(n, total=1), revision=revision, created_at=at)
    [run] = make_runs(sub)[:1]
    run = replace(run, revision=revision, created_at=at, state=state, ended_at=at + 10)
    store.add_submission(sub, [run])


def age(home: Path, rev: Revision, days: float) -> None:
    manifest = home / "manifests" / f"{rev.id}.json"
    os.utime(manifest, (NOW - days * DAY, NOW - days * DAY))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def readable(home: Path, rev: Revision) -> bool:
    """Every object of the revision can be read from the store, as a sync reads it."""
    syncer = Syncer(home)
    try:
        for e in rev.manifest.entries:
            if e.size <= SMALL:
                syncer.packs.read(e.hash)
            else:
                syncer.store.path_of(e.hash).read_bytes()
        return True
    finally:
        syncer.close()


def two_revisions(home: Path, tmp_path: Path) -> tuple[Revision, Revision, Store]:
    """Snapshots of two trees that share a file (alpha's, beta's), and the SQLite store."""
    syncer = Syncer(home)
    alpha = syncer.snapshot(tree(tmp_path / "a", "alpha"))
    beta = syncer.snapshot(tree(tmp_path / "b", "beta"))
    syncer.close()
    return alpha, beta, Store(home / STATE_DB)


def test_a_revision_unused_for_the_keep_period_goes_with_the_objects_only_it_named(
    home: Path, tmp_path: Path
) -> None:
    old, new, store = two_revisions(home, tmp_path)
    submitted(store, 1, old.id, NOW - 60 * DAY, RunState.SUCCEEDED)
    submitted(store, 2, new.id, NOW - 2 * DAY, RunState.SUCCEEDED)
    age(home, old, 60)
    age(home, new, 60)  # kept by its recent submission, not by its mtime
    packs_before = sum(p.stat().st_size for p in (home / "packs").glob("*.pack"))
    large_before = sum(1 for _ in (home / "store" / "objects").rglob("*") if _.is_file())

    report = collect_unused(home, store, now=NOW)

    assert report is not None and report.revisions == 1
    assert report.objects == 2  # alpha.txt and alpha.bin; shared.txt is beta's too
    assert not (home / "manifests" / f"{old.id}.json").exists()
    assert (home / "manifests" / f"{new.id}.json").exists() and readable(home, new)
    packs = PackStore(home / "packs")
    alpha_small = next(e.hash for e in old.manifest.entries if e.path == "alpha.txt")
    shared = next(e.hash for e in old.manifest.entries if e.path == "shared.txt")
    assert alpha_small not in packs and shared in packs  # from the rewritten index, on disk
    packs.close()
    assert (
        sum(1 for _ in (home / "store" / "objects").rglob("*") if _.is_file()) == large_before - 1
    )
    assert sum(p.stat().st_size for p in (home / "packs").glob("*.pack")) < packs_before
    assert report.bytes >= SMALL
    with pytest.raises(RevisionGone, match=r"no longer kept.*submit the experiment again"):
        Syncer(home).revision(old.id)


def test_a_revision_collected_is_made_again_whole_by_the_next_snapshot(
    home: Path, tmp_path: Path
) -> None:
    """The tree's stat cache says its files are hashed already; the store lacks them now."""
    source = tree(tmp_path / "a", "alpha")
    syncer = Syncer(home)
    first = syncer.snapshot(source)
    syncer.close()
    store = Store(home / STATE_DB)
    age(home, first, 60)
    assert collect_unused(home, store, now=NOW) is not None
    assert not (home / "manifests" / f"{first.id}.json").exists()
    syncer = Syncer(home)
    again = syncer.snapshot(source)
    syncer.close()
    assert again.id == first.id and readable(home, again)


@pytest.mark.parametrize(
    ("created_days", "state", "mtime_days"),
    [
        (60, RunState.RUNNING, 60),  # a run not ended, however old
        (60, RunState.QUEUED, 60),
        (None, None, 1),  # a snapshot made again lately (a submission may be on its way)
        (10, RunState.FAILED, 60),  # a run of the last 30 days (a rerun may want it)
    ],
)
def test_what_keeps_a_revision(
    home: Path, tmp_path: Path, created_days: float | None, state: RunState | None,
    mtime_days: float,
) -> None:  # fmt: skip
    syncer = Syncer(home)
    rev = syncer.snapshot(tree(tmp_path / "a", "alpha"))
    syncer.close()
    store = Store(home / STATE_DB)
    if created_days is not None and state is not None:
        submitted(store, 1, rev.id, NOW - created_days * DAY, state)
    age(home, rev, mtime_days)
    report = collect_unused(home, store, now=NOW)
    assert report is not None and report.revisions == 0 and readable(home, rev)


def test_a_snapshot_that_finds_a_revision_again_keeps_it(home: Path, tmp_path: Path) -> None:
    """Submitted again unchanged, long after: its manifest is touched, so the collection that
    may run before the new submission is recorded does not take it."""
    source = tree(tmp_path / "a", "alpha")
    syncer = Syncer(home)
    rev = syncer.snapshot(source)
    manifest = home / "manifests" / f"{rev.id}.json"
    os.utime(manifest, (1_000_000_000, 1_000_000_000))
    before = time.time()
    syncer.snapshot(source)
    syncer.close()
    assert manifest.stat().st_mtime >= before - 1
    assert collect_unused(home, Store(home / STATE_DB), now=time.time()).revisions == 0  # type: ignore[union-attr]


def test_collected_at_most_daily_and_never_with_a_manifest_it_cannot_read(
    home: Path, tmp_path: Path
) -> None:
    old, kept, store = two_revisions(home, tmp_path)
    age(home, old, 60)
    (home / "manifests" / f"{kept.id}.json").write_text("[[cut short")
    age(home, kept, 1)  # kept by its mtime; what it names is unknown
    assert collect_unused(home, store, now=NOW) is None  # what it names is unknown: no object goes
    assert (home / "manifests" / f"{old.id}.json").exists()
    assert (home / MARK).stat().st_mtime == NOW  # not parsed again at every start today
    (home / MARK).touch()
    os.utime(home / MARK, (NOW - 3600, NOW - 3600))
    assert collect_unused(home, store, now=NOW) is None  # an hour ago: not again yet


def test_compact_keeps_live_objects_readable_and_drops_unnamed_packs(tmp_path: Path) -> None:
    packs = PackStore(tmp_path)
    objects = {f"{i:064x}": os.urandom(100 + i) for i in range(50)}
    from convoy.content import hash_bytes

    named = {hash_bytes(d): d for d in objects.values()}
    packs.put_many(list(named.items()))
    (tmp_path / "99.pack").write_bytes(b"left by a crash")
    live = set(list(named)[::3])
    dropped, freed = packs.compact(live)
    assert dropped == len(named) - len(live) and freed > 0
    assert not (tmp_path / "99.pack").exists() and not (tmp_path / "0.pack").exists()
    for h in live:
        assert packs.read(h) == named[h]
    packs.put_many([(hash_bytes(b"after"), b"after")])  # appends go on
    packs.close()
    again = PackStore(tmp_path)  # from the index on disk
    assert {h for h in named if h in again} == live and hash_bytes(b"after") in again
    for h in live:
        assert again.read(h) == named[h]
    again.close()


def test_watch_mode_s_changes_against_a_collected_revision_are_unknown_not_an_error(
    home: Path, tmp_path: Path
) -> None:
    """A watch session older than the keep period compares its next save with a revision
    collected since: no list of changed paths, and the rerun goes on."""
    from types import SimpleNamespace

    from convoy.coordinator.runs.submissions import Submissions

    source = tree(tmp_path / "a", "alpha")
    syncer = Syncer(home)
    old = syncer.snapshot(source)
    (source / "alpha.txt").write_text("changed\n")
    new = syncer.snapshot(source)
    this: Any = SimpleNamespace(syncer=syncer)
    assert Submissions.changed_paths(this, old.id, new.id) == ["alpha.txt"]
    syncer.close()
    (home / "manifests" / f"{old.id}.json").unlink()
    fresh: Any = SimpleNamespace(syncer=Syncer(home))
    assert Submissions.changed_paths(fresh, old.id, new.id) == []
    fresh.syncer.close()


def test_compact_keeps_an_empty_object_and_the_one_after_it_apart(tmp_path: Path) -> None:
    """An empty object shares its offset with the next: moved by place, both were given one
    entry, and an empty __init__.py read back as another file's content."""
    from convoy.content import hash_bytes

    packs = PackStore(tmp_path)
    dead, empty, after = b"dead content", b"", b"live content"
    packs.put_many([(hash_bytes(d), d) for d in (dead, empty, after)])
    packs.compact({hash_bytes(empty), hash_bytes(after)})
    assert packs.read(hash_bytes(empty)) == b"" and packs.read(hash_bytes(after)) == after
    packs.close()
    again = PackStore(tmp_path)
    assert again.read(hash_bytes(empty)) == b"" and again.read(hash_bytes(after)) == after
    again.close()


def test_compact_never_writes_into_a_pack_file_it_then_deletes(tmp_path: Path) -> None:
    """All of pack 0 dead: an empty 1.pack was made that no entry named; objects appended
    later were moved into it by the next compaction, which then deleted it as unnamed."""
    from convoy.content import hash_bytes

    packs = PackStore(tmp_path)
    packs.put_many([(hash_bytes(b"a"), b"a")])
    packs.compact(set())  # everything dead
    packs.close()
    packs = PackStore(tmp_path)  # the coordinator served: it appends to the pack it loaded
    b, c = b"b" * 10, b"c" * 10
    packs.put_many([(hash_bytes(b), b), (hash_bytes(c), c)])
    (tmp_path / "7.pack").write_bytes(b"left by a crash")
    packs.compact({hash_bytes(c)})
    assert packs.read(hash_bytes(c)) == c
    packs.close()
    again = PackStore(tmp_path)
    assert again.read(hash_bytes(c)) == c and hash_bytes(b) not in again
    assert not (tmp_path / "7.pack").exists()
    again.close()


def test_a_second_coordinator_on_one_home_is_refused(tmp_path: Path) -> None:
    """Collection runs before the socket is there: a start that took long enough was taken
    for a failure, and a second coordinator compacted the same packs beside the first."""
    from convoy.coordinator.server import _only_coordinator
    from convoy.errors import UsageError

    first, refused = _only_coordinator(tmp_path), pytest.raises(UsageError, match="another")
    with first, refused, _only_coordinator(tmp_path):
        pass
    with _only_coordinator(tmp_path):  # free again once the first is gone
        pass


def test_an_empty_object_whose_pack_is_gone_still_reads_and_compacts(tmp_path: Path) -> None:
    """After a power loss an index line `h N 0 0` can outlive N.pack (nothing is fsync-ed on
    append): reading it raised FileNotFoundError, and compaction failed at every start."""
    from convoy.content import hash_bytes

    empty, dead = hash_bytes(b""), hash_bytes(b"dead")
    (tmp_path / "index").write_text(f"{dead} 0 0 4\n{empty} 3 0 0\n")
    (tmp_path / "0.pack").write_bytes(b"dead")
    packs = PackStore(tmp_path)
    assert packs.read(empty) == b""
    assert packs.compact({empty}) == (1, 4)
    packs.close()
    again = PackStore(tmp_path)
    assert again.read(empty) == b"" and dead not in again
    again.close()
