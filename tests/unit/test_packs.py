"""The coordinator's pack store of small objects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convoy.content import SyncError, hash_bytes
from convoy.coordinator.sources.packs import PackStore


def _objs(*contents: bytes) -> list[tuple[str, bytes]]:
    return [(hash_bytes(c), c) for c in contents]


def test_objects_put_are_read_back_and_no_longer_missing(tmp_path: Path) -> None:
    """put_many stores each object once; read returns its exact bytes."""
    store = PackStore(tmp_path)
    objs = _objs(b"a", b"bb", b"", b"a")
    assert store.put_many(objs) == 3
    for h, c in objs:
        assert store.read(h) == c
    assert store.missing([h for h, _ in objs] + ["f" * 64]) == ["f" * 64]


def test_a_reopened_store_knows_its_objects(tmp_path: Path) -> None:
    """The index survives a new PackStore on the same folder."""
    objs = _objs(b"one", b"two")
    PackStore(tmp_path).put_many(objs)
    again = PackStore(tmp_path)
    assert [again.read(h) for h, _ in objs] == [b"one", b"two"]


def test_content_not_matching_its_hash_is_refused(tmp_path: Path) -> None:
    """A file that changed after it was hashed is not stored under the old hash."""
    store = PackStore(tmp_path)
    with pytest.raises(SyncError):
        store.put_many([(hash_bytes(b"old"), b"new")])
    assert store.missing([hash_bytes(b"old")]) == [hash_bytes(b"old")]


def test_a_batch_refused_midway_stores_none_of_it(tmp_path: Path) -> None:
    """An object failing its check stops the batch: the good ones before it are not indexed
    (at offsets the next append reuses, they would have read as other bytes), and a later
    batch stores and reads them back right."""
    store = PackStore(tmp_path)
    good = _objs(b"AAAAA", b"BBBBB")
    with pytest.raises(SyncError):
        store.put_many([*good, (hash_bytes(b"old"), b"new")])
    assert store.missing([h for h, _ in good]) == sorted(h for h, _ in good)
    assert store.put_many(_objs(b"CCCCC")) == 1
    assert store.put_many(good) == 2
    assert [store.read(h) for h, _ in good] == [b"AAAAA", b"BBBBB"]
    assert [PackStore(tmp_path).read(h) for h, _ in good] == [b"AAAAA", b"BBBBB"]


def test_an_index_line_naming_bytes_the_pack_lacks_is_ignored(tmp_path: Path) -> None:
    """After a crash that lost the pack's tail, the index's line for it does not count."""
    store = PackStore(tmp_path)
    [(h, _)] = _objs(b"0123456789")
    store.put_many([(h, b"0123456789")])
    pack = tmp_path / "0.pack"
    pack.write_bytes(pack.read_bytes()[:4])
    with (tmp_path / "index").open("a") as f:
        f.write("garbage line\n")
    assert PackStore(tmp_path).missing([h]) == [h]


def test_short_writes_and_many_objects_lose_no_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects are written gathered, a thousand and more per call; a write that takes only
    part of them (a full disk's first sign) goes on from the byte where it stopped."""
    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, bufs: real(fd, [bytes(bufs[0][:3])]))
    objects = [(hash_bytes(d), d) for d in (f"object {i}".encode() for i in range(1500))]
    packs = PackStore(tmp_path / "packs")
    assert packs.put_many(objects) == 1500
    packs.close()
    again = PackStore(tmp_path / "packs")
    assert all(again.read(h) == d for h, d in objects)
