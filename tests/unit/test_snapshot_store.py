"""Unit tests for Syncer.snapshot's storing: every object of a revision is in the coordinator's
stores when it returns (small ones in packs, large ones as files), stored while the scan goes
on, and a large file changed between its hash and its copy is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from convoy import manifest
from convoy.agent.objects import ObjectStore
from convoy.content import SyncError, hash_bytes
from convoy.coordinator.sources import sync
from convoy.coordinator.sources.sync import SMALL, Syncer


@pytest.fixture
def syncer(tmp_path: Path) -> Iterator[Syncer]:
    s = Syncer(tmp_path / "home")
    yield s
    s.close()


def tree(root: Path, small: int = 50, large: int = 3) -> dict[str, bytes]:
    files = {f"d{i % 5}/f{i}.txt": f"small file {i}\n".encode() * 10 for i in range(small)}
    files.update({f"big{j}.bin": bytes([j]) * (SMALL + 1 + j) for j in range(large)})
    files["dup.txt"] = files["d0/f0.txt"]  # the same object twice: stored once
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def stored(s: Syncer, data: bytes) -> bytes:
    h = hash_bytes(data)
    if len(data) <= SMALL:
        return s.packs.read(h)
    return Path(s.store.path_of(h)).read_bytes()


def after_hashing(monkeypatch: pytest.MonkeyPatch, action: Callable[[str], object]) -> None:
    """Do `action` to each large file the scan hashes, after its hash, before the store's copy."""
    real = manifest.hash_file

    def hash_then_act(path: str) -> str:
        digest = real(path)
        action(path)
        return digest

    monkeypatch.setattr(manifest, "hash_file", hash_then_act)


def test_every_object_is_stored_where_its_size_says(syncer: Syncer, tmp_path: Path) -> None:
    files = tree(tmp_path / "src")
    rev = syncer.snapshot(tmp_path / "src")
    assert {e.path for e in rev.manifest.entries} == set(files)
    for data in files.values():
        assert stored(syncer, data) == data
    assert all(hash_bytes(d) not in syncer.packs for d in files.values() if len(d) > SMALL)


def test_small_contents_appended_as_the_scan_goes_are_all_stored(
    syncer: Syncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holding little before appending to packs loses nothing, and stores a duplicate once."""
    monkeypatch.setattr(sync._StoreWhileScanning, "FLUSH", 100)
    files = tree(tmp_path / "src", small=200, large=4)
    syncer.snapshot(tmp_path / "src")
    for data in files.values():
        assert stored(syncer, data) == data
    index = (tmp_path / "home" / "packs" / "index").read_text().splitlines()
    assert len(index) == len({d for d in files.values() if len(d) <= SMALL})


def test_a_restarted_coordinator_copies_no_large_object_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tree(tmp_path / "src", small=3, large=2)
    first = Syncer(tmp_path / "home")
    first.snapshot(tmp_path / "src")
    first.close()
    (tmp_path / "src" / "big0.bin").touch()  # hashed again by the next scan
    copied: list[str] = []
    monkeypatch.setattr(ObjectStore, "put_file", lambda self, path, h: copied.append(h))
    again = Syncer(tmp_path / "home")
    try:
        again.snapshot(tmp_path / "src")
        assert copied == []
        assert stored(again, files["big0.bin"]) == files["big0.bin"]
    finally:
        again.close()


def test_a_large_file_changed_after_its_hash_is_refused(
    syncer: Syncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    tree(src, small=3, large=1)

    def edit(path: str) -> None:
        with open(path, "ab") as f:
            f.write(b"edited")

    after_hashing(monkeypatch, edit)
    with pytest.raises(SyncError, match="changed since it was hashed"):
        syncer.snapshot(src)


def test_a_large_file_gone_before_its_copy_is_a_sync_error(
    syncer: Syncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file removed between its hash and its copy fails the snapshot with its name, as a
    SyncError (which a submission reports as bad input), not as an internal error."""
    src = tmp_path / "src"
    tree(src, small=3, large=1)
    after_hashing(monkeypatch, os.unlink)
    with pytest.raises(SyncError, match="cannot store"):
        syncer.snapshot(src)


def test_a_failed_append_to_packs_fails_the_snapshot(
    syncer: Syncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends run on the packing thread; their error still reaches the snapshot's caller."""
    tree(tmp_path / "src", small=20, large=1)

    def disk_full(*_: object, **__: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(syncer.packs, "put_many", disk_full)
    with pytest.raises(OSError, match="No space left"):
        syncer.snapshot(tmp_path / "src")


def test_the_stat_cache_written_after_the_snapshot_spares_the_next_coordinator_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(tmp_path / "src", small=30, large=2)
    time.sleep(2 * manifest.RACY_NS / 1e9)  # no file racily clean: each is cached when hashed
    first = Syncer(tmp_path / "home")
    rev = first.snapshot(tmp_path / "src")
    monkeypatch.setattr(manifest.Scanner, "save", lambda self: None)  # as if it crashed
    first.close()  # waits for the cache the snapshot had written beside
    monkeypatch.undo()
    hashed: list[str] = []

    def read(path: str, *_: object) -> bytes:
        hashed.append(path)
        return b""

    monkeypatch.setattr(manifest, "hash_file", read)
    monkeypatch.setattr(manifest, "read_file", read)
    again = Syncer(tmp_path / "home")
    try:
        assert again.snapshot(tmp_path / "src").id == rev.id
        assert hashed == []
    finally:
        again.close()


def test_a_tree_s_stat_cache_has_the_same_name_in_every_coordinator_process(
    tmp_path: Path,
) -> None:
    """str's hash differs from process to process: a cache named by it was never found again."""
    src = tmp_path / "src"
    src.mkdir()
    here = Syncer(tmp_path / "home")
    try:
        mine = here.scanner(src).cache_file
    finally:
        here.close()
    code = (
        "import sys; from pathlib import Path; from convoy.coordinator.sources.sync import Syncer; "
        "s = Syncer(Path(sys.argv[1])); print(s.scanner(Path(sys.argv[2])).cache_file); s.close()"
    )
    root = Path(__file__).resolve().parents[2]
    theirs = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "home"), str(src)],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert theirs == str(mine)
    lost = tmp_path / "home" / "scans" / "4047884621443208344.json"  # named the old way
    lost.write_text("{}")
    Syncer(tmp_path / "home").close()
    assert not lost.exists() and mine is not None and mine.exists()


def test_snapshots_of_one_tree_take_turns_and_of_two_trees_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent submissions of one source shared its scanner (its stat cache, its storing
    hook) between threads; now they wait for each other, and other trees do not wait."""
    for name in ("a", "b"):
        tree(tmp_path / name, small=5, large=0)
    syncer = Syncer(tmp_path / "home")
    inside: dict[str, int] = {}
    most: dict[str, int] = {}
    guard = threading.Lock()
    a_scanning, b_saw_it = threading.Event(), threading.Event()
    real = manifest.Scanner.scan

    def scan(self: manifest.Scanner, changed: list[str] | None = None) -> manifest.Manifest:
        key = self.root.name
        with guard:
            inside[key] = inside.get(key, 0) + 1
            most[key] = max(most.get(key, 0), inside[key])
        try:
            if key == "a" and not a_scanning.is_set():
                a_scanning.set()  # the first "a" scan waits until "b" scans beside it
                assert b_saw_it.wait(10), "the other tree's snapshot waited for this one"
            elif key == "b":
                assert a_scanning.wait(10)
                b_saw_it.set()
            time.sleep(0.02)
            return real(self, changed)
        finally:
            with guard:
                inside[key] -= 1

    monkeypatch.setattr(manifest.Scanner, "scan", scan)
    try:
        with ThreadPoolExecutor(4) as pool:
            runs = [pool.submit(syncer.snapshot, tmp_path / "a") for _ in range(3)]
            runs.append(pool.submit(syncer.snapshot, tmp_path / "b"))
            ids = {f.result().id for f in runs[:3]}
            runs[3].result()
    finally:
        syncer.close()
    assert len(ids) == 1
    assert most["a"] == 1
