"""Object streams: the framing, and a real store socket taking streams into a real store."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import grpc
import pytest

import convoy.agent.objects
from convoy.agent.objects import ObjectStore
from convoy.agent.storesock import StoreSocket
from convoy.content import hash_bytes
from convoy.coordinator.sources.objsend import WRITE_BYTES, send_objects, unix_store
from convoy.objstream import (
    END_FRAME,
    HEADER,
    Chunk,
    StreamCut,
    StreamError,
    frame_header,
    parse_reply,
    read_frames,
    read_header,
    reply_error,
    reply_ok,
    store_socket_beside,
)


def _stream(chunks: Iterable[Chunk], end: bool = True) -> bytes:
    out = [HEADER]
    for c in chunks:
        out += [frame_header(c.hash, len(c.data), c.last), c.data]
    if end:
        out.append(END_FRAME)
    return b"".join(out)


def _read(data: bytes) -> list[Chunk]:
    f = io.BytesIO(data)
    read_header(f)
    return list(read_frames(f))


def test_frames_read_back_as_written() -> None:
    chunks = [Chunk("a" * 64, b"small", True), Chunk("b" * 64, b"x" * 10, False),
              Chunk("", b"", False), Chunk("", b"y" * 7, True)]  # fmt: skip
    assert _read(_stream(chunks)) == chunks


@pytest.mark.parametrize(
    ("data", "cut"),
    [
        (b"", True),  # nothing at all
        (b"GET / HTTP/1.1\r\n\r\n", False),  # not a stream
        (_stream([Chunk("a" * 64, b"data", True)], end=False), True),  # no end frame
        (_stream([Chunk("a" * 64, b"data", True)])[:-12], True),  # ends within a frame
        (HEADER + bytes([4, 0, 0, 0, 0, 0]), False),  # unknown flags
        (HEADER + bytes([1, 1, 0, 0, 0, 1]) + b"\xff" + b"d", False),  # a name not ASCII
        (HEADER + bytes([1, 0, 0x7F, 0xFF, 0xFF, 0xFF]), False),  # 2 GB in one frame
    ],
)
def test_bad_or_cut_streams_are_refused(data: bytes, cut: bool) -> None:
    with pytest.raises(StreamError) as raised:
        _read(data)
    assert isinstance(raised.value, StreamCut) is cut


def test_replies_read_back_and_anything_else_is_refused() -> None:
    assert parse_reply(reply_ok(3, 4096)) == (3, 4096, "", "")
    r = parse_reply(reply_error("full", "cannot store:\n  No space left"))
    assert (r.error_kind, r.message) == ("full", "cannot store: No space left")
    assert len(reply_error("invalid", "x" * 10_000)) <= 4096
    for bad in (b"", b"ok\n", b"ok 1 two\n", b"hello\n"):
        with pytest.raises(StreamError):
            parse_reply(bad)


def test_the_store_socket_sits_beside_the_agent_socket_with_a_name_as_long() -> None:
    beside = store_socket_beside("/home/u/.convoy/agent/agent.sock")
    assert beside == "/home/u/.convoy/agent/agent.objs"
    assert len(beside) == len("/home/u/.convoy/agent/agent.sock")
    # Agents with sockets of other names in one folder do not share one.
    assert store_socket_beside("/run/a/one") != store_socket_beside("/run/a/two")


# -- a real store socket ---------------------------------------------------------------------


async def _objects(
    items: Iterable[tuple[str, bytes, bool]],
) -> AsyncIterator[tuple[str, bytes, bool]]:
    for item in items:
        yield item


def _serve(tmp_path: Path, body: object) -> object:
    """Run `body(store, path)` (a coroutine function) against a StoreSocket on a real socket."""
    store = ObjectStore(tmp_path / "store")
    path = tmp_path / "agent.objs"

    async def main() -> object:
        server = StoreSocket(path, store)
        await server.start()
        try:
            return await body(store, path)  # type: ignore[operator]
        finally:
            await server.close()

    return asyncio.run(main())


def _refused(tmp_path: Path, items: list[tuple[str, bytes, bool]]) -> grpc.aio.AioRpcError:
    """The error sending `items` to a real store socket ends in (within 30 s: never a hang)."""

    async def body(store: ObjectStore, path: Path) -> None:
        await asyncio.wait_for(send_objects(unix_store(str(path)), _objects(items)), 30)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _serve(tmp_path, body)
    return raised.value


def test_small_and_large_objects_are_stored_and_counted(tmp_path: Path) -> None:
    small = [os.urandom(2048) for _ in range(300)]
    big = os.urandom(3 * WRITE_BYTES + 5)
    hb = hash_bytes(big)
    items = [(hb, big[:WRITE_BYTES], False)]
    items += [(hash_bytes(d), d, True) for d in small[:150]]  # between the large one's chunks
    items += [(hb, big[WRITE_BYTES:], True)]
    items += [(hash_bytes(d), d, True) for d in small[150:]]

    async def body(store: ObjectStore, path: Path) -> tuple[int, int]:
        return await send_objects(unix_store(str(path)), _objects(items))

    stored, sent = _serve(tmp_path, body)  # type: ignore[misc]
    assert stored == len(big) + sum(map(len, small))
    assert sent > stored  # the frames' own bytes too
    store = ObjectStore(tmp_path / "store")
    assert store.missing([hb, *map(hash_bytes, small)]) == []
    assert store.path_of(hb).read_bytes() == big


def test_the_socket_is_its_user_s_only(tmp_path: Path) -> None:
    async def body(store: ObjectStore, path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert _serve(tmp_path, body) == 0o600


def test_an_object_not_matching_its_hash_is_refused_and_not_stored(tmp_path: Path) -> None:
    good = b"good object"
    items = [(hash_bytes(good), good, True), (hash_bytes(b"right"), b"wrong", True)]
    error = _refused(tmp_path, items)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not match its hash" in (error.details() or "")
    assert ObjectStore(tmp_path / "store").missing([hash_bytes(b"right")]) == [hash_bytes(b"right")]


def test_a_full_disk_is_resource_exhausted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        if bytes(data[:6]) == b"doomed":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(convoy.agent.objects.os, "write", write)
    error = _refused(tmp_path, [(hash_bytes(b"doomed object"), b"doomed object", True)])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "No space left" in (error.details() or "")


def test_a_stream_cut_short_stores_no_part_of_an_object_and_the_socket_goes_on(
    tmp_path: Path,
) -> None:
    """A sender that goes away in the middle of a large object: nothing is stored under its
    hash, nothing is left in the store's tmp, and the next stream is taken as usual."""
    big = os.urandom(100_000)
    whole = b"a whole object"

    async def body(store: ObjectStore, path: Path) -> int:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(HEADER + frame_header(hash_bytes(big), 50_000, False) + big[:50_000])
        await writer.drain()
        writer.close()
        assert await reader.read() == b""  # no answer for a stream cut short
        for _ in range(100):  # the agent notices the end on its own thread
            if not list((store.root / "tmp").iterdir()):
                break
            await asyncio.sleep(0.05)
        stored, _ = await send_objects(
            unix_store(str(path)), _objects([(hash_bytes(whole), whole, True)])
        )
        return stored

    assert _serve(tmp_path, body) == len(whole)
    store = ObjectStore(tmp_path / "store")
    assert store.missing([hash_bytes(big)]) == [hash_bytes(big)]
    assert not list((tmp_path / "store" / "tmp").iterdir())


def test_a_stream_that_is_no_stream_is_answered_invalid(tmp_path: Path) -> None:
    async def body(store: ObjectStore, path: Path) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await writer.drain()
        answer = await reader.readline()
        writer.close()
        return answer

    answer = _serve(tmp_path, body)
    assert isinstance(answer, bytes) and answer.startswith(b"error invalid not an object stream")


def test_no_store_socket_is_unavailable(tmp_path: Path) -> None:
    """Retried across reconnects like any call to an agent that does not answer."""

    async def body() -> None:
        await send_objects(unix_store(str(tmp_path / "none.sock")), _objects([]))

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        asyncio.run(body())
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_failure_to_read_an_object_ends_the_stream_without_a_wait(tmp_path: Path) -> None:
    """The coordinator's own read error is raised as it is, and the agent's end of the
    stream finishes (cut short) while the socket still listens."""
    store = ObjectStore(tmp_path / "store")
    path = tmp_path / "agent.objs"

    async def failing() -> AsyncIterator[tuple[str, bytes, bool]]:
        yield hash_bytes(b"one"), b"one", True
        raise OSError(errno.EIO, "cannot read the pack")

    async def main() -> int:
        server = StoreSocket(path, store)
        await server.start()
        try:
            with pytest.raises(OSError, match="cannot read the pack"):
                await asyncio.wait_for(send_objects(unix_store(str(path)), failing()), 10)
            for _ in range(200):
                if not server._conns:
                    return 0
                await asyncio.sleep(0.025)
            return len(server._conns)
        finally:
            await server.close()

    assert asyncio.run(main()) == 0


def test_an_unexpected_failure_of_the_agent_is_answered_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a bad object nor a full disk: the stream is still taken to its end (the sender is
    never left blocked) and answered, as UNKNOWN, which the coordinator retries."""

    def broken(self: ObjectStore, objects: object, *a: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ObjectStore, "put_many", broken)
    # More batches than the agent holds read ahead, so a stalled storing thread would block it.
    items = [(hash_bytes(d), d, True) for d in (os.urandom(2048) for _ in range(20_000))]
    error = _refused(tmp_path, items)
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert "a bug" in (error.details() or "")


def test_closing_the_socket_mid_stream_ends_the_stream_and_keeps_no_part(
    tmp_path: Path,
) -> None:
    """The agent stopping while a large object arrives: close() returns without waiting for
    the stream's end, and no part of the object is left."""
    store = ObjectStore(tmp_path / "store")
    path = tmp_path / "agent.objs"
    big = os.urandom(8 << 20)
    sent_half = asyncio.Event()

    async def slow() -> AsyncIterator[tuple[str, bytes, bool]]:
        yield hash_bytes(big), big[: 4 << 20], False
        sent_half.set()
        await asyncio.sleep(30)
        yield hash_bytes(big), big[4 << 20 :], True

    async def main() -> None:
        server = StoreSocket(path, store)
        await server.start()
        sending = asyncio.ensure_future(send_objects(unix_store(str(path)), slow()))
        await sent_half.wait()
        await asyncio.sleep(0.2)  # the half is read, its writer's file begun
        await asyncio.wait_for(server.close(), 15)
        assert not path.exists()
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending

    asyncio.run(main())
    assert store.missing([hash_bytes(big)]) == [hash_bytes(big)]
    assert not list((store.root / "tmp").iterdir())


def test_a_listener_left_by_a_killed_agent_is_replaced(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "agent.objs"))
    stale.close()

    async def body(store: ObjectStore, path: Path) -> int:
        stored, _ = await send_objects(
            unix_store(str(path)), _objects([(hash_bytes(b"z"), b"z", True)])
        )
        return stored

    assert _serve(tmp_path, body) == 1


def test_a_stream_gone_silent_is_taken_as_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender whose host vanished leaves the channel open and says nothing: after IDLE_S
    the agent drops the stream and what it had begun, and its thread ends."""
    import convoy.agent.storesock

    monkeypatch.setattr(convoy.agent.storesock, "IDLE_S", 0.3)
    big = os.urandom(100_000)
    store = ObjectStore(tmp_path / "store")
    path = tmp_path / "agent.objs"

    async def main() -> tuple[int, bytes]:
        server = StoreSocket(path, store)
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(HEADER + frame_header(hash_bytes(big), len(big), True) + big[:1000])
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # the agent hangs up
            writer.close()
            for _ in range(100):
                if not server._conns:
                    break
                await asyncio.sleep(0.05)
            return len(server._conns), answer
        finally:
            await server.close()

    assert asyncio.run(main()) == (0, b"")
    assert store.missing([hash_bytes(big)]) == [hash_bytes(big)]
    assert not list((store.root / "tmp").iterdir())
