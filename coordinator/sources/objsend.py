"""The coordinator's end of an object stream (convoy/objstream.py) to a host's store socket.

Frames are gathered into writes of WRITE_BYTES: a write is one pass through the SSH channel
(32 KB packets) or one system call on this machine, where one per small object would cost a
packet or a call each.

Failures come back as gRPC statuses, as from the agent's other calls: UNAVAILABLE when the
stream could not be opened or broke (retried once the host answers again, hosts/session.py),
INVALID_ARGUMENT for an object the host refused, RESOURCE_EXHAUSTED when it could not store,
UNKNOWN (also retried) when the agent failed otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc

from convoy.objstream import (
    AGENT,
    END_FRAME,
    FULL,
    HEADER,
    INVALID,
    MAX_REPLY,
    StreamError,
    frame_header,
    parse_reply,
)
from convoy.sshlib import asyncssh

WRITE_BYTES = 256 * 1024


class StreamWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...


class StreamReader(Protocol):
    async def readline(self) -> Any: ...


StoreOpener = Callable[[], Awaitable[tuple[StreamReader, StreamWriter]]]

_BROKEN = (OSError, EOFError, asyncio.IncompleteReadError, asyncssh.Error)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


async def send_objects(
    open_store: StoreOpener, chunks: AsyncIterator[tuple[str, bytes, bool]]
) -> tuple[int, int]:
    """Stream objects (hash, data, last) to the host's store: (bytes it stored, bytes sent).
    A large object's chunks come in order; whole small objects may come between them."""
    try:
        reader, writer = await open_store()
    except _BROKEN as e:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"cannot reach the host's store: {e}") from e
    sent = 0
    try:
        parts: list[bytes] = [HEADER]
        pending = len(HEADER)
        current = ""  # the large object whose chunks are under way
        whole = True  # every write went out (a store that hangs up early may have answered)
        async for h, data, last in chunks:  # a failure to read an object ends the stream cut
            head = frame_header(h if h != current else "", len(data), last)
            if h == current and last:
                current = ""
            elif h != current and not last:
                current = h  # a large object starts
            parts += (head, data)
            pending += len(head) + len(data)
            if pending >= WRITE_BYTES:
                whole = await _put(writer, parts)
                if not whole:
                    break
                sent += pending
                parts, pending = [], 0
        if whole:
            parts.append(END_FRAME)
            if await _put(writer, parts):
                sent += pending + len(END_FRAME)
        try:
            line = await reader.readline()
        except _BROKEN as e:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"the object stream broke: {e}") from e
    finally:
        writer.close()
    try:
        reply = parse_reply(bytes(line[:MAX_REPLY]))
    except StreamError as e:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, str(e)) from None
    if reply.error_kind == FULL:
        raise rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, reply.message)
    if reply.error_kind == INVALID:
        raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, reply.message)
    if reply.error_kind == AGENT:  # retried, like any call to an agent that failed
        raise rpc_error(grpc.StatusCode.UNKNOWN, reply.message)
    if reply.error_kind:
        raise rpc_error(grpc.StatusCode.UNKNOWN, f"{reply.error_kind}: {reply.message}")
    return reply.size, sent


async def _put(writer: StreamWriter, parts: list[bytes]) -> bool:
    """Write and drain; False when the stream broke (its answer may still be read)."""
    try:
        writer.write(b"".join(parts))
        await writer.drain()
    except _BROKEN:
        return False
    return True


def unix_store(path: str) -> StoreOpener:
    """The store socket of an agent on this machine."""

    async def open_store() -> tuple[StreamReader, StreamWriter]:
        return await asyncio.open_unix_connection(path, limit=2 * MAX_REPLY)

    return open_store
