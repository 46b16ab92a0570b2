"""Unit tests for agent.objects: the host's object store, revision snapshots and collection."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from convoy.agent.objects import ObjectStore, RevisionMissing
from convoy.content import SyncError, hash_bytes, revision_id
from convoy.manifest import Entry, Manifest

FILE, EXE, LINK = 0o100644, 0o100755, 0o120777
LATER = 10 * 3600.0  # past the store's grace period


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "store", grace_s=3600.0)


def put(store: ObjectStore, data: bytes) -> str:
    h = hash_bytes(data)
    with store.writer(h) as w:
        w.write(data[: len(data) // 2])
        w.write(data[len(data) // 2 :])
        w.commit()
    return h


def f(path: str, data: bytes, mode: int = FILE) -> Entry:
    return Entry(path, mode, len(data), hash_bytes(data))


def link(path: str, target: str) -> Entry:
    return Entry(path, LINK, len(target), "", target)


def make(store: ObjectStore, entries: list[Entry]) -> Path:
    return store.make_revision(revid(entries), entries)


def revid(entries: list[Entry]) -> str:
    return revision_id(sorted(entries, key=lambda e: e.path))


def age(store: ObjectStore, revision: str, seconds: float) -> None:
    """Pretend the revision was last used `seconds` ago."""
    t = time.time() - seconds
    os.utime(store.root / "manifests" / f"{revision}.json", (t, t))


# -- objects -----------------------------------------------------------------------------------


def test_missing_lists_absent_hashes_once_in_order(store: ObjectStore) -> None:
    """missing() returns the hashes the store lacks, deduplicated, in the order asked."""
    have = put(store, b"have")
    a, b = hash_bytes(b"a"), hash_bytes(b"b")
    assert store.missing([b, have, a, b]) == [b, a]
    assert store.missing([]) == []


def test_missing_looks_inside_folders_that_exist_only(store: ObjectStore) -> None:
    """An object beside others in its folder, an absent one in the same folder, one in a folder
    that does not exist, and an executable-only object are each answered right."""
    have = put(store, b"have")
    same_folder = next(
        h for i in range(10_000) if (h := hash_bytes(str(i).encode()))[:2] == have[:2]
    )
    other_folder = next(
        h for i in range(10_000) if (h := hash_bytes(str(i).encode()))[:2] != have[:2]
    )
    exe = hash_bytes(b"run me")
    os.makedirs(os.path.dirname(store._obj(exe)), exist_ok=True)
    Path(store._obj(exe, executable=True)).write_bytes(b"run me")
    assert store.missing([have, same_folder, other_folder, exe]) == [same_folder, other_folder]


def test_a_revision_the_store_lacks_is_named_as_such(store: ObjectStore) -> None:
    """The agent tells a start that failed for want of its revision from other errors."""
    with pytest.raises(RevisionMissing, match="no such revision"):
        store.acquire("0" * 20, "attempt-1")
    with pytest.raises(RevisionMissing):
        store.revision_dir("0" * 20)


def test_missing_refuses_what_is_not_a_hash(store: ObjectStore) -> None:
    """A 'hash' that could name another file (../x, uppercase, short) is refused."""
    for bad in ["../" + "a" * 61, "A" * 64, "abc", ""]:
        with pytest.raises(SyncError):
            store.missing([bad])


def test_commit_stores_a_read_only_object(store: ObjectStore) -> None:
    """A committed object is stored under its hash; a second copy is not stored again."""
    h = put(store, b"hello")
    p = store.path_of(h)
    assert p.read_bytes() == b"hello" and stat.S_IMODE(p.stat().st_mode) == 0o644
    with store.writer(h) as w:
        w.write(b"hello")
        assert w.commit() is False
    assert store.missing([h]) == []


def test_corrupt_object_is_refused_and_nothing_stored(store: ObjectStore) -> None:
    """Bytes that do not hash to the announced name raise SyncError and leave no file behind."""
    h = hash_bytes(b"expected")
    w = store.writer(h)
    w.write(b"tampered")
    with pytest.raises(SyncError, match=h):
        w.commit()
    assert store.missing([h]) == [h]
    assert list((store.root / "tmp").iterdir()) == []


def test_aborted_writer_stores_nothing(store: ObjectStore) -> None:
    """Leaving the writer's block without commit (a broken stream) stores nothing."""
    h = hash_bytes(b"data")
    with store.writer(h) as w:
        w.write(b"da")
    assert store.missing([h]) == [h] and list((store.root / "tmp").iterdir()) == []


# -- revisions ---------------------------------------------------------------------------------


def test_make_revision_builds_the_tree(store: ObjectStore) -> None:
    """Files (content and executable bit), nested folders 0755 and symlinks, as listed."""
    for data in (b"main", b"#!/bin/sh\n", b"lib"):
        put(store, data)
    entries = [
        f("main.py", b"main"),
        f("bin/run.sh", b"#!/bin/sh\n", EXE),
        f("src/pkg/lib.py", b"lib"),
        f("src/pkg/same_as_run.txt", b"#!/bin/sh\n"),  # same object, not executable
        link("src/pkg/up", "../../main.py"),
        link("latest", "bin"),
    ]
    root = make(store, entries)
    assert store.has_revision(revid(entries))
    assert (root / "main.py").read_bytes() == b"main"
    assert stat.S_IMODE((root / "main.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "bin/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "src/pkg/same_as_run.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "src/pkg").stat().st_mode) == 0o755
    assert os.readlink(root / "src/pkg/up") == "../../main.py"
    assert (root / "src/pkg/up").read_bytes() == b"main"
    assert (root / "latest" / "run.sh").exists()
    assert os.stat(root / "main.py").st_ino == store.path_of(hash_bytes(b"main")).stat().st_ino


def test_make_revision_is_idempotent(store: ObjectStore) -> None:
    """Making an existing revision again returns it untouched."""
    put(store, b"x")
    entries = [f("a", b"x")]
    first = make(store, entries)
    ino = os.stat(first / "a").st_ino
    assert make(store, entries) == first and os.stat(first / "a").st_ino == ino


@pytest.mark.parametrize(
    "entry",
    [
        Entry("../x", FILE, 1, hash_bytes(b"x")),
        Entry("/abs", FILE, 1, hash_bytes(b"x")),
        Entry("a/./b", FILE, 1, hash_bytes(b"x")),
        Entry("dev", 0o020644, 0, ""),  # a character device
        link("esc", "../outside"),
        link("abs", "/etc/passwd"),
        Entry("a", FILE, 1, "../" + "0" * 61),
    ],
)
def test_make_revision_refuses_unsafe_entries(store: ObjectStore, entry: Entry) -> None:
    """Unsafe paths, non-regular files, escaping links and bad hashes are refused; nothing built."""
    put(store, b"x")
    with pytest.raises(SyncError):
        make(store, [entry])
    assert list((store.root / "revisions").iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_make_revision_refuses_a_link_escaping_through_a_link(store: ObjectStore) -> None:
    """Each link is inside by its text, but one climbs out through the other; refused, named."""
    entries = [link("a/b/top", "../.."), link("a/b/esc", "top/..")]
    with pytest.raises(SyncError, match="a/b/esc"):
        make(store, entries)
    assert list((store.root / "revisions").iterdir()) == []


def test_make_revision_refuses_inconsistent_listings(store: ObjectStore) -> None:
    """A path twice, a file that is also a folder, or a name that is not the entries' hash."""
    put(store, b"x")
    with pytest.raises(SyncError, match="twice"):
        make(store, [f("a", b"x"), f("a", b"x")])
    with pytest.raises(SyncError, match="folder"):
        make(store, [f("a", b"x"), f("a/b", b"x")])
    with pytest.raises(SyncError, match="revision id"):
        store.make_revision("0" * 20, [f("a", b"x")])
    with pytest.raises(SyncError, match="revision id"):
        store.make_revision("../evil", [f("a", b"x")])


def test_make_revision_names_a_missing_object(store: ObjectStore) -> None:
    """A listed object the store lacks fails the build with its hash; nothing is left behind."""
    put(store, b"here")
    entries = [f("a", b"here"), f("b", b"not sent")]
    with pytest.raises(SyncError, match=hash_bytes(b"not sent")):
        make(store, entries)
    assert not store.has_revision(revid(entries))
    assert list((store.root / "tmp").iterdir()) == []


def test_revisions_coexist(store: ObjectStore) -> None:
    """Making revision 2 leaves revision 1's files exactly as they were."""
    put(store, b"v1")
    put(store, b"v2")
    put(store, b"same")
    r1 = make(store, [f("x", b"v1"), f("s", b"same")])
    r2 = make(store, [f("x", b"v2"), f("s", b"same"), f("new", b"v2")])
    assert r1 != r2
    assert (r1 / "x").read_bytes() == b"v1" and not (r1 / "new").exists()
    assert (r2 / "x").read_bytes() == b"v2"
    assert os.stat(r1 / "s").st_ino == os.stat(r2 / "s").st_ino  # one object, linked twice


# -- leases and collection ---------------------------------------------------------------------


def three_revisions(store: ObjectStore) -> list[str]:
    """Revisions a (oldest), b, c; each has 1,000 bytes of its own and shares one object."""
    shared = put(store, b"s" * 100)
    revs = []
    for i, name in enumerate("abc"):
        data = name.encode() * 1000
        put(store, data)
        entries = [f("own", data), Entry("shared", FILE, 100, shared)]
        make(store, entries)
        revs.append(revid(entries))
        age(store, revs[-1], 1000 * (3 - i))
    return revs


def test_collect_removes_old_revisions_and_their_objects(store: ObjectStore) -> None:
    """Revisions unused for max_age_s go, with the objects only they linked; shared ones stay."""
    a, b, c = three_revisions(store)
    report = store.collect(max_age_s=1500, max_bytes=10**9, now=time.time())
    assert report.revisions == (a, b)
    assert [store.has_revision(r) for r in (a, b, c)] == [False, False, True]
    assert report.objects == 2 and report.bytes_freed == 2000
    assert store.missing([hash_bytes(b"a" * 1000), hash_bytes(b"c" * 1000)]) == [
        hash_bytes(b"a" * 1000)
    ]
    assert store.missing([hash_bytes(b"s" * 100)]) == []
    assert report.bytes_total == 1100


def test_collect_shrinks_to_max_bytes_oldest_first(store: ObjectStore) -> None:
    """Over max_bytes, the least recently used revisions go first until the objects fit."""
    a, b, c = three_revisions(store)
    report = store.collect(max_age_s=10**6, max_bytes=2500, now=time.time())
    assert report.revisions == (a,) and report.bytes_total == 2100
    assert store.has_revision(b) and store.has_revision(c)


def test_collect_never_removes_a_revision_in_use(store: ObjectStore) -> None:
    """A leased revision survives any age and size limit; released, it can go."""
    a, b, c = three_revisions(store)
    with store.use(a) as path:
        report = store.collect(max_age_s=0, max_bytes=0, now=time.time() + 10)
        assert report.revisions == (b, c) and (path / "own").read_bytes() == b"a" * 1000
    assert store.collect(max_age_s=0, max_bytes=0, now=time.time() + 10).revisions == (a,)


def test_leases_outlive_the_store_object(store: ObjectStore) -> None:
    """A lease is a file: a restarted agent's store still sees the revision in use."""
    (a, *_) = three_revisions(store)
    store.acquire(a, "attempt-7")
    again = ObjectStore(store.root)
    assert again.in_use(a)
    assert a not in again.collect(max_age_s=0, max_bytes=0).revisions
    again.release(a, "attempt-7")
    assert not again.in_use(a)


def test_use_marks_a_revision_recently_used(store: ObjectStore) -> None:
    """Using a revision counts as use: max_age_s is measured from its last use."""
    a, b, _ = three_revisions(store)
    with store.use(a):
        pass
    assert store.collect(max_age_s=1500, max_bytes=10**9).revisions == (b,)


def test_collect_keeps_fresh_unreferenced_objects(store: ObjectStore) -> None:
    """An object no revision links yet is kept within the grace period (its revision may be on
    its way), then removed; objects a revision links are never removed."""
    put(store, b"linked")
    make(store, [f("x", b"linked")])
    orphan = put(store, b"orphan")
    assert store.collect(max_age_s=10**6, max_bytes=10**9).objects == 0
    report = store.collect(max_age_s=10**6, max_bytes=10**9, now=time.time() + LATER)
    assert report.objects == 1 and store.missing([orphan]) == [orphan]
    assert store.missing([hash_bytes(b"linked")]) == []


def test_collect_keeps_objects_a_sync_was_told_exist(store: ObjectStore) -> None:
    """Objects that missing() reported present are kept for the grace period, even if the
    revision that linked them is removed meanwhile."""
    (a, *_) = three_revisions(store)
    own = hash_bytes(b"a" * 1000)
    assert store.missing([own]) == []
    store.collect(max_age_s=1500, max_bytes=10**9)
    assert not store.has_revision(a) and store.missing([own]) == []


# --- layered revisions: a small change costs its own files -----------------------------------


def _layer_setup(tmp_path: Path) -> tuple[ObjectStore, list[Entry], str]:
    store = ObjectStore(tmp_path / "store")
    files = {f"d/f{i}.txt": f"content {i}\n".encode() for i in range(20)}
    entries = []
    for path, data in files.items():
        h = hash_bytes(data)
        store.put_bytes(h, data)
        entries.append(Entry(path, 0o100644, len(data), h))
    rev = Manifest(tuple(sorted(entries, key=lambda e: e.path))).revision
    store.make_revision(rev, entries)
    return store, entries, rev


def test_a_small_change_is_a_layer_holding_only_the_changed_file(tmp_path: Path) -> None:
    """make_layered links only the changed file; the layers, stacked, give the whole new tree."""
    store, entries, base = _layer_setup(tmp_path)
    new_data = b"changed\n"
    h = hash_bytes(new_data)
    store.put_bytes(h, new_data)
    changed = [Entry("d/f3.txt", 0o100644, len(new_data), h)]
    full = sorted([e for e in entries if e.path != "d/f3.txt"] + changed, key=lambda e: e.path)
    rev = Manifest(tuple(full)).revision
    top = store.make_layered(rev, base, full, changed)
    assert top is not None
    assert sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()) == [
        "d/f3.txt"
    ]
    assert store.layers(rev) == [rev, base]
    flat = store.full_dir(rev)
    assert (flat / "d/f3.txt").read_bytes() == new_data
    assert (flat / "d/f4.txt").read_bytes() == b"content 4\n"
    assert (store.revision_dir(base) / "d/f3.txt").read_bytes() == b"content 3\n"


def test_a_file_becoming_a_folder_is_not_layered(tmp_path: Path) -> None:
    """When a path changes kind, make_layered declines and the revision is made whole."""
    store, entries, base = _layer_setup(tmp_path)
    data = b"x"
    h = hash_bytes(data)
    store.put_bytes(h, data)
    changed = [Entry("d/f3.txt/inner", 0o100644, 1, h)]
    full = sorted([e for e in entries if e.path != "d/f3.txt"] + changed, key=lambda e: e.path)
    assert store.make_layered(Manifest(tuple(full)).revision, base, full, changed) is None


def test_a_layer_adding_symlinks_is_built_whole_where_a_chain_that_escapes_is_refused(
    tmp_path: Path,
) -> None:
    """Each of d/x -> .., d/y -> x/.. and d/z -> y/.. stays inside by itself, but together
    they lead out of the tree. make_layered resolved no link: it now declines a layer that
    adds symlinks, and the whole build refuses this one."""
    store, entries, base = _layer_setup(tmp_path)
    changed = [link("d/x", ".."), link("d/y", "x/.."), link("d/z", "y/..")]
    full = sorted([*entries, *changed], key=lambda e: e.path)
    rev = Manifest(tuple(full)).revision
    assert store.make_layered(rev, base, full, changed) is None
    with pytest.raises(SyncError, match="resolves outside the tree"):
        store.make_revision(rev, full)
    assert not store.has_revision(rev)


def test_a_collected_base_is_not_remembered(tmp_path: Path) -> None:
    """After collect removed a revision, its manifest is not served from memory: a layered
    build over it declines (the coordinator then sends the whole manifest)."""
    store, _, base = _layer_setup(tmp_path)
    assert store.manifest(base)  # parsed, so remembered
    store.collect(max_age_s=0, max_bytes=0, now=time.time() + 10_000)
    assert not store.has_revision(base)
    with pytest.raises(SyncError):
        store.manifest(base)


def test_a_lower_layer_is_not_collected_while_a_revision_stands_on_it(tmp_path: Path) -> None:
    """collect keeps a base revision as long as a layered revision uses it."""
    store, entries, base = _layer_setup(tmp_path)
    data = b"new"
    h = hash_bytes(data)
    store.put_bytes(h, data)
    changed = [Entry("d/new.txt", 0o100644, 3, h)]
    full = sorted([*entries, *changed], key=lambda e: e.path)
    rev = Manifest(tuple(full)).revision
    assert store.make_layered(rev, base, full, changed) is not None
    store.acquire(rev, "run-1")
    store.collect(max_age_s=0, max_bytes=0, now=time.time() + 10_000)
    assert store.has_revision(base) and store.has_revision(rev)


def test_an_object_cut_short_by_a_crash_is_removed_at_the_next_start(tmp_path: Path) -> None:
    """Objects are written under their final names; a batch a crash interrupted is checked when
    the store opens again, and an object whose content is cut short is removed."""
    store = ObjectStore(tmp_path / "store")
    whole, cut = b"whole object", b"object that will be cut short"
    store.put_many([(hash_bytes(whole), whole), (hash_bytes(cut), cut)])
    path = store.path_of(hash_bytes(cut))
    path.write_bytes(cut[:5])  # as a crash mid-write would leave it
    (tmp_path / "store/tmp/receiving-crashed").write_text(
        f"{hash_bytes(whole)}\n{hash_bytes(cut)}\n"
    )
    again = ObjectStore(tmp_path / "store")
    assert again.missing([hash_bytes(whole), hash_bytes(cut)]) == [hash_bytes(cut)]
    assert not list((tmp_path / "store/tmp").glob("receiving-*"))


def test_put_file_stores_a_copy_that_later_edits_do_not_reach(
    store: ObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one copy_file_range step may take
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    h = hash_bytes(data)
    assert store.put_file(src, h) is True
    src.write_bytes(b"edited in place")  # same inode: a hard link would have changed too
    assert store.path_of(h).read_bytes() == data
    src.write_bytes(data)
    assert store.put_file(src, h) is False  # stored already
    assert list((store.root / "tmp").iterdir()) == []


def test_put_file_refuses_a_file_changed_since_it_was_hashed(
    store: ObjectStore, tmp_path: Path
) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"what was hashed")
    h = hash_bytes(b"what was hashed")
    src.write_bytes(b"what is there now")
    with pytest.raises(SyncError, match="changed since it was hashed"):
        store.put_file(src, h)
    assert store.missing([h]) == [h]
    assert list((store.root / "tmp").iterdir()) == []


def test_put_file_copies_through_memory_where_the_kernel_refuses(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def refuse(*args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "sendfile", refuse)
    data = os.urandom(2 * 1024 * 1024 + 5)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    assert store.put_file(src, hash_bytes(data)) is True
    assert store.path_of(hash_bytes(data)).read_bytes() == data


def test_an_object_reported_present_is_not_collected_before_it_is_noted(tmp_path: Path) -> None:
    """missing() finds an object and notes that a sync will link it; collect removing it in
    between (it links nothing yet) would leave the coordinator told "present" about an object
    that is gone. Collect now waits for missing() to finish, then sees the note and keeps it."""
    from convoy.agent.collect import _remove_unlinked

    store = ObjectStore(tmp_path / "store", grace_s=60)
    data = b"unlinked, but about to be\n"
    h = hash_bytes(data)
    store.put_bytes(h, data)
    real = store._has_object

    def look_then_collect(hash: str) -> bool:
        found = real(hash)
        t = threading.Thread(
            target=_remove_unlinked, args=(store, [store._obj(h)], time.time(), False)
        )
        t.start()
        t.join(0.2)  # collect runs now, between the look and the note (or waits for them)
        looked.append(t)
        return found

    looked: list[threading.Thread] = []
    store._has_object = look_then_collect  # type: ignore[method-assign]
    assert store.missing([h]) == []
    looked[0].join()
    assert os.path.exists(store._obj(h))
