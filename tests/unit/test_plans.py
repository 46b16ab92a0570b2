"""Unit tests for agent.plans: snapshots begun before their objects arrive, finished after."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from convoy.agent import plans
from convoy.agent.objects import ObjectStore
from convoy.agent.plans import MAX_PLANS, PlanMissing
from convoy.content import SyncError, hash_bytes
from convoy.manifest import Entry
from tests.unit.test_objects import EXE, f, link, make, put, revid


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "store", grace_s=3600.0)


def files(n: int) -> dict[str, bytes]:
    return {f"d{i % 3}/f{i}.txt": os.urandom(20 + i) for i in range(n)}


def begin(store: ObjectStore, entries: list[Entry], absent: set[str]) -> str:
    rev = revid(entries)
    store.plans.prepare(store.plans.begin(rev), entries, frozenset(absent))
    return rev


def tree(root: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_symlink():
            out[p.relative_to(root).as_posix()] = (st.st_mode, os.readlink(p))
        elif p.is_file():
            out[p.relative_to(root).as_posix()] = (st.st_mode, p.read_bytes())
    return out


def test_objects_stored_after_the_plan_are_linked_as_they_arrive(store: ObjectStore) -> None:
    """The plan's files are hard links made when each object is stored, before finish; the
    finished snapshot is the tree make_revision builds from the same entries."""
    content = files(30)
    entries = [f(p, d) for p, d in content.items()]
    entries += [f("run.sh", b"#!/bin/sh\n", EXE), link("latest", "d1")]
    rev = begin(store, entries, {e.hash for e in entries if e.hash})
    staged = Path(store.plans.stagings().pop())
    assert not (staged / "d0" / "f0.txt").exists()  # nothing stored yet
    store.put_many([(hash_bytes(d), d) for d in content.values()])
    assert os.path.samefile(
        staged / "d0" / "f0.txt", store.path_of(hash_bytes(content["d0/f0.txt"]))
    )
    put(store, b"#!/bin/sh\n")  # through a writer, as a large object comes
    assert (staged / "run.sh").stat().st_mode & 0o777 == 0o755
    assert store.plans.finish(rev) == store.revision_dir(rev)
    assert not staged.exists()
    built = tree(store.revision_dir(rev))
    other = ObjectStore(store.root.parent / "other")
    other.put_many([(hash_bytes(d), d) for d in [*content.values(), b"#!/bin/sh\n"]])
    assert built == tree(make(other, entries))
    assert [r.path for r in store.manifest(rev)] == sorted(e.path for e in entries)


def test_objects_present_at_the_start_or_stored_while_it_was_prepared_are_linked(
    store: ObjectStore,
) -> None:
    content = files(12)
    entries = [f(p, d) for p, d in content.items()]
    items = list(content.values())
    store.put_many([(hash_bytes(d), d) for d in items[:4]])  # the host had these
    rev = revid(entries)
    plan = store.plans.begin(rev)
    store.put_many([(hash_bytes(d), d) for d in items[4:8]])  # arrive before prepare ran
    absent = frozenset(hash_bytes(d) for d in items[4:])
    store.plans.prepare(plan, entries, absent)
    store.put_many([(hash_bytes(d), d) for d in items[8:]])
    assert tree(store.plans.finish(rev)) == {p: (0o100644, d) for p, d in content.items()}


def test_finish_without_a_plan_is_plan_missing_unless_the_revision_exists(
    store: ObjectStore,
) -> None:
    entries = [f("a", b"x")]
    with pytest.raises(PlanMissing):
        store.plans.finish(revid(entries))
    put(store, b"x")
    made = make(store, entries)
    assert store.plans.finish(revid(entries)) == made


def test_a_plan_lacking_objects_or_with_bad_entries_fails_at_finish_and_leaves_nothing(
    store: ObjectStore,
) -> None:
    entries = [f("a", b"here"), f("b", b"never sent")]
    put(store, b"here")
    rev = begin(store, entries, {hash_bytes(b"never sent")})
    with pytest.raises(SyncError, match="missing objects"):
        store.plans.finish(rev)
    bad = [f("../escape", b"here")]
    rev_bad = begin(store, bad, set())
    with pytest.raises(SyncError, match=r"segment '\.\.' not allowed"):
        store.plans.finish(rev_bad)
    wrong = store.plans.begin("0" * 20)
    store.plans.prepare(wrong, entries, frozenset())
    with pytest.raises(SyncError, match="do not hash to the revision id"):
        store.plans.finish("0" * 20)
    assert not store.has_revision(rev) and not store.has_revision(rev_bad)
    assert not [p for p in (store.root / "tmp").iterdir() if p.name.startswith("rev-")]


def test_a_symlink_through_another_out_of_the_tree_is_refused_at_finish(
    store: ObjectStore,
) -> None:
    entries = [link("up", ".."), link("d/out", "../up/..")]
    rev = begin(store, entries, set())
    with pytest.raises(SyncError):
        store.plans.finish(rev)
    assert not store.has_revision(rev)


def test_beginning_more_than_max_plans_drops_the_oldest(store: ObjectStore) -> None:
    revs = []
    for i in range(MAX_PLANS + 1):
        entries = [f(f"f{i}", b"same")]
        revs.append(begin(store, entries, {hash_bytes(b"same")}))
    assert len(store.plans.stagings()) == MAX_PLANS
    put(store, b"same")
    with pytest.raises(PlanMissing):
        store.plans.finish(revs[0])
    for rev in revs[1:]:
        store.plans.finish(rev)
    assert not [p for p in (store.root / "tmp").iterdir() if p.name.startswith("rev-")]


def test_a_plan_dropped_while_it_is_prepared_removes_its_folder(store: ObjectStore) -> None:
    entries = [f(f"f{i}", b"y") for i in range(50)]
    rev = revid(entries)
    plan = store.plans.begin(rev)
    store.plans.begin(rev)  # begun again: the first is dropped before it was prepared
    store.plans.prepare(plan, entries, frozenset())
    assert not Path(plan.staging).exists()
    assert plan.ready.is_set()


def test_collect_leaves_a_live_plan_alone_and_drops_one_past_the_grace_period(
    store: ObjectStore,
) -> None:
    entries = [f("a", b"kept")]
    put(store, b"kept")
    rev = begin(store, entries, set())
    staging = Path(store.plans.stagings().pop())
    old = time.time() - 2 * store.grace_s
    os.utime(staging, (old, old))
    store.collect(max_age_s=1e9, max_bytes=1 << 40)
    assert staging.is_dir()  # live: not taken for a crash's leftover
    store.collect(max_age_s=1e9, max_bytes=1 << 40, now=time.time() + 2 * store.grace_s)
    assert not staging.exists()
    assert store.missing([hash_bytes(b"kept")])  # linked by that build alone: collected with it
    with pytest.raises(PlanMissing):
        store.plans.finish(rev)


def test_finish_while_the_plan_is_being_prepared_waits_for_it(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = files(200)
    entries = [f(p, d) for p, d in content.items()]
    store.put_many([(hash_bytes(d), d) for d in content.values()])
    rev = revid(entries)
    plan = store.plans.begin(rev)
    go = threading.Event()
    real = store._link

    def held(*args: object) -> bool:
        go.wait(10)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_link", held)
    preparing = threading.Thread(target=store.plans.prepare, args=(plan, entries, frozenset()))
    preparing.start()
    built: list[Path] = []
    finishing = threading.Thread(target=lambda: built.append(store.plans.finish(rev)))
    finishing.start()
    try:
        finishing.join(0.2)
        assert finishing.is_alive()  # waiting for prepare
    finally:
        go.set()
        preparing.join()
        finishing.join()
    assert tree(built[0]) == {p: (0o100644, d) for p, d in content.items()}


def test_a_plan_never_prepared_is_given_up_and_one_abandoned_says_why(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plans, "PREPARE_WAIT_S", 0.05)
    entries = [f("a", b"x")]
    store.plans.begin(revid(entries))  # its prepare never runs
    with pytest.raises(PlanMissing, match="not prepared in time"):
        store.plans.finish(revid(entries))
    plan = store.plans.begin(revid(entries))
    store.plans.abandon(plan, "cannot begin the build: shutting down")
    with pytest.raises(SyncError, match="shutting down"):
        store.plans.finish(revid(entries))


def test_an_unexpected_error_while_preparing_is_raised_by_finish_not_a_hang(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [f("a", b"x")]
    rev = revid(entries)
    plan = store.plans.begin(rev)

    def broken(*_: object) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "_link", broken)
    store.plans.prepare(plan, entries, frozenset())
    with pytest.raises(RuntimeError, match="a bug"):
        store.plans.finish(rev)
