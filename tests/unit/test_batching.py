"""The SSH connection's batching transport: one socket write per event-loop turn."""

from __future__ import annotations

import asyncio
from typing import Any

from convoy.coordinator.hosts.batching import BatchingTransport


class _Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.2", 22)}.get(name, default)


def test_writes_of_one_turn_go_out_as_one_in_order() -> None:
    async def main() -> list[bytes]:
        inner = _Recording()
        t = BatchingTransport(inner, asyncio.get_running_loop())
        for part in (b"ignore", b"data-1", bytearray(b"data-2"), memoryview(b"data-3")):
            t.write(part)
        assert inner.writes == []  # nothing before the turn ends
        await asyncio.sleep(0)
        t.write(b"next turn")
        await asyncio.sleep(0)
        assert t.get_extra_info("peername") == ("127.0.0.2", 22)
        return inner.writes

    assert asyncio.run(main()) == [b"ignoredata-1data-2data-3", b"next turn"]


def test_close_sends_what_is_pending_and_abort_drops_it() -> None:
    async def main() -> tuple[_Recording, _Recording]:
        loop = asyncio.get_running_loop()
        closed, aborted = _Recording(), _Recording()
        a, b = BatchingTransport(closed, loop), BatchingTransport(aborted, loop)
        a.write(b"disconnect")
        a.close()
        b.write(b"lost")
        b.abort()
        await asyncio.sleep(0)  # the scheduled flushes find nothing, or a closed transport
        return closed, aborted

    closed, aborted = asyncio.run(main())
    assert (closed.writes, closed.closed) == ([b"disconnect"], True)
    assert (aborted.writes, aborted.aborted) == ([], True)


def test_the_tunnel_connects_and_hands_its_session_the_batching_transport() -> None:
    """Through a real TCP socket: asyncssh's side gets the batching transport, what it writes
    in one turn arrives whole and in order, and what arrives is handed to it."""
    from convoy.coordinator.hosts.batching import BatchingTunnel

    class Session(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: asyncio.BaseTransport | None = None
            self.received = b""
            self.lost = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.received += data

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set_result(exc)

    async def main() -> tuple[bytes, bytes, bool]:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"SSH-2.0-test\r\n")
            await writer.drain()
            got.set_result(await reader.read())  # up to the client's close
            writer.close()

        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        _, session = await BatchingTunnel().create_connection(Session, "127.0.0.1", port)
        assert isinstance(session.transport, BatchingTransport)
        for i in range(100):
            session.transport.write(b"packet %d;" % i)
        await asyncio.sleep(0.2)
        session.transport.close()
        await asyncio.wait_for(session.lost, 5)
        data = await asyncio.wait_for(got, 5)
        srv.close()
        await srv.wait_closed()
        return data, session.received, session.transport.is_closing()

    got, received, closing = asyncio.run(main())
    assert got == b"".join(b"packet %d;" % i for i in range(100))
    assert received == b"SSH-2.0-test\r\n" and closing
