"""An SSH connection's TCP socket written once per event-loop turn, not once per SSH packet.

asyncssh writes each packet to its transport as it makes it, and before every packet of data
it makes an empty SSH_MSG_IGNORE packet (a hardening of asyncssh's). A channel's data
goes in packets of at most 32 KB (what OpenSSH's sshd accepts), so 100 MB of objects became
about 6,400 writes and, with TCP_NODELAY, as many TCP segments, half of them 36-byte ones,
each one for sshd to wake for, read and decrypt on its own. Here the packets made in one turn
of the event loop go out in one write at its end: the same bytes in the same order.

asyncssh connects through anything that has its tunnel's `create_connection`; `BatchingTunnel`
makes the TCP connection itself and gives asyncssh the batching transport.
"""

from __future__ import annotations

import asyncio
from typing import Any


class BatchingTransport(asyncio.Transport):
    """Gathers writes and hands them to the socket's transport at the end of the loop's turn.
    What asyncssh's connection calls of its transport: write, abort, get_extra_info."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class _Between(asyncio.Protocol):
    """The socket's protocol: passes everything to asyncssh's, with the batching transport."""

    def __init__(self, inner: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._inner.connection_made(BatchingTransport(transport, self._loop))

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class BatchingTunnel:
    """For asyncssh.connect(tunnel=...): a direct TCP connection with batched writes."""

    def __init__(self, family: int = 0, local_addr: tuple[str, int] | None = None) -> None:
        self._family = family
        self._local_addr = local_addr

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[asyncio.Transport, Any]:
        loop = asyncio.get_running_loop()
        inner = session_factory()
        transport, _ = await loop.create_connection(
            lambda: _Between(inner, loop), remote_host, remote_port,
            family=self._family, local_addr=self._local_addr,
        )  # fmt: skip
        return transport, inner

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass
