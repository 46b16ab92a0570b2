"""The agent's receiving end of an object stream: batches of chunks into the object store."""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from convoy.agent.objects import ObjectStore
from convoy.agent.receiver import Receiver
from convoy.content import SyncError, hash_bytes
from convoy.objstream import Chunk


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as p:
        yield p


def _feed(receiver: Receiver, batches: list[list[Chunk]]) -> None:
    q: queue.Queue[Sequence[Chunk] | None] = queue.Queue()
    for b in batches:
        q.put(b)
    q.put(None)
    receiver.drain(q)
    receiver.finish()


def test_small_and_chunked_objects_across_batches_are_stored(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    """Whole small objects and one object split over two batches all land in the store."""
    store = ObjectStore(tmp_path)
    big = b"x" * 3000
    batches = [
        [Chunk(hash_bytes(b"a"), b"a", True),
         Chunk(hash_bytes(big), big[:1000], False)],
        [Chunk("", big[1000:], True)],
    ]  # fmt: skip
    r = Receiver(store, pool)
    _feed(r, batches)
    assert (r.stored, r.size) == (2, 3001)
    assert store.missing([hash_bytes(b"a"), hash_bytes(big)]) == []


def test_a_corrupt_object_fails_the_stream_after_it_is_drained(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    """Content not matching its hash raises SyncError, stores nothing under that hash, and the
    queue is still emptied (the sender is never left blocked)."""
    store = ObjectStore(tmp_path)
    bad = [[Chunk(hash_bytes(b"right"), b"wrong", True)]]
    q: queue.Queue[Sequence[Chunk] | None] = queue.Queue()
    for b in [*bad, [Chunk(hash_bytes(b"b"), b"b", True)]]:
        q.put(b)
    q.put(None)
    with pytest.raises(SyncError):
        Receiver(store, pool).drain(q)
    assert q.empty()
    assert store.missing([hash_bytes(b"right")]) == [hash_bytes(b"right")]


def test_an_object_cut_short_is_an_error(tmp_path: Path, pool: ThreadPoolExecutor) -> None:
    """A stream ending in the middle of an object fails instead of storing part of it."""
    r = Receiver(ObjectStore(tmp_path), pool)
    with pytest.raises(SyncError, match="cut short"):
        _feed(r, [[Chunk(hash_bytes(b"xy"), b"x", False)]])


def test_many_batches_stored_side_by_side_all_land(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    """Batches handed to the pool (more than it holds pending) are all stored by drain's end;
    a corrupt object in a middle batch fails the stream and is not stored."""
    store = ObjectStore(tmp_path)
    datas = [f"object {i}".encode() for i in range(200)]
    batches = [
        [Chunk(hash_bytes(d), d, True) for d in datas[i : i + 10]] for i in range(0, 200, 10)
    ]
    r = Receiver(store, pool)
    _feed(r, batches)
    assert r.stored == 200 and store.missing([hash_bytes(d) for d in datas]) == []

    store2 = ObjectStore(tmp_path / "two")
    batches[7][3] = Chunk(hash_bytes(b"right"), b"wrong", True)
    with pytest.raises(SyncError, match="does not match"):
        _feed(Receiver(store2, pool), batches)
    assert store2.missing([hash_bytes(b"right")]) == [hash_bytes(b"right")]


def test_whole_objects_between_a_large_objects_chunks(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    """The coordinator interleaves small objects with a large one's chunks: both are stored."""
    store = ObjectStore(tmp_path)
    big = bytes(range(256)) * 20
    batches = [
        [Chunk(hash_bytes(big), big[:2000], False),
         Chunk(hash_bytes(b"s1"), b"s1", True)],
        [Chunk("", big[2000:4000], False),
         Chunk(hash_bytes(b"s2"), b"s2", True),
         Chunk("", big[4000:], True)],
    ]  # fmt: skip
    r = Receiver(store, pool)
    _feed(r, batches)
    assert r.stored == 3
    assert store.missing([hash_bytes(big), hash_bytes(b"s1"), hash_bytes(b"s2")]) == []


def test_a_large_object_starting_inside_another_is_an_error(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    big = b"y" * 5000
    batches = [
        [Chunk(hash_bytes(big), big[:100], False),
         Chunk(hash_bytes(b"other"), b"oth", False)],
    ]  # fmt: skip
    with pytest.raises(SyncError, match="without its last chunk"):
        _feed(Receiver(ObjectStore(tmp_path), pool), batches)


def test_a_full_disk_leaves_no_object_cut_short_and_does_not_block_the_sender(
    tmp_path: Path, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC in the middle of a small object's write: the file begun under its hash is
    removed (the store would have trusted it), the stream is taken to its end (the sender
    is never left blocked), and drain raises the OSError; the objects written before it
    are whole and stored."""
    import errno
    import os

    import convoy.agent.objects

    store = ObjectStore(tmp_path)
    first, doomed = b"first object\n" * 50, b"doomed object\n" * 5000
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        if bytes(data[:14]) == doomed[:14]:
            real_write(fd, bytes(data[:4096]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(convoy.agent.objects.os, "write", write)
    q: queue.Queue[Sequence[Chunk] | None] = queue.Queue()
    q.put([Chunk(hash_bytes(first), first, True),
           Chunk(hash_bytes(doomed), doomed, True)])  # fmt: skip
    for _ in range(20):  # more than the receiver holds pending: all are taken
        q.put([Chunk(hash_bytes(b"later"), b"later", True)])
    q.put(None)
    with pytest.raises(OSError, match="No space left"):
        Receiver(store, pool).drain(q)
    assert q.empty()
    assert store.missing([hash_bytes(first), hash_bytes(doomed)]) == [hash_bytes(doomed)]
    assert not list((tmp_path / "tmp").glob("receiving-*"))
