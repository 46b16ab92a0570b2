"""The agent's store socket: object streams (convoy/objstream.py) into its object store.

Each connection is read on a thread of its own through a large buffer (a frame's fields are
then reads from memory, not system calls), and its chunks go, a batch at a time, to a second
thread that stores them (agent/receiver.py), so reading the socket and writing the files
overlap. The reply is sent only when every object of the stream is stored, or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

from convoy.content import SyncError
from convoy.objstream import (
    AGENT,
    FULL,
    INVALID,
    Chunk,
    StreamCut,
    StreamError,
    read_frames,
    read_header,
    reply_error,
    reply_ok,
)

from .objects import ObjectStore
from .receiver import Receiver

log = logging.getLogger("convoy.agent")

READ_BUFFER = 1024 * 1024
BATCH_BYTES = 1024 * 1024  # chunks handed to the storing thread at a time, by size
BATCHES_AHEAD = 8  # batches read but not yet taken by the storing thread, at most
# A stream silent this long is taken as cut (its sender's host vanished, leaving the SSH
# channel open); a live sender writes far more often, and a slow store does not count: while
# the stream's reader waits for the storing thread, no read is pending.
IDLE_S = 300.0
ACCEPT_RETRY_S = 0.5  # after accept() fails (EMFILE, ENFILE, ENOMEM)
CLOSE_WAIT_S = 10.0  # streams cut by close() end within this (their objects are stored whole)


class StoreSocket:
    """Listens on `path` until closed; every stream goes into `store`."""

    def __init__(self, path: Path, store: ObjectStore) -> None:
        self.path = path
        self.store = store
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="store")  # see Receiver
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._conns: dict[socket.socket, threading.Thread] = {}  # streams in progress
        self._lock = threading.Lock()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o600)  # before listen(): no one else ever connects
            listener.listen(16)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._accepting = asyncio.ensure_future(self._accept_forever(listener))

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as e:  # out of descriptors or memory: this socket must go on
                log.warning("cannot accept an object stream: %s", e)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            conn.settimeout(IDLE_S)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="store-stream", daemon=True
            )
            with self._lock:
                self._conns[conn] = thread
            thread.start()

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        if self._listener is not None:
            self._listener.close()
            self.path.unlink(missing_ok=True)
        with self._lock:
            streams = dict(self._conns)
        for conn in streams:  # streams in progress end as cut short
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

        def finish() -> None:
            deadline = time.monotonic() + CLOSE_WAIT_S
            for thread in streams.values():
                thread.join(max(0.0, deadline - time.monotonic()))
            self.pool.shutdown()

        await asyncio.to_thread(finish)

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                answer = self._receive(conn)
                if answer is not None:
                    conn.sendall(answer)
        except OSError as e:  # the coordinator went away: it will send these objects again
            log.info("an object stream ended early: %s", e)
        finally:
            with self._lock:
                self._conns.pop(conn, None)

    def _receive(self, conn: socket.socket) -> bytes | None:
        """The stream's objects into the store; the reply, or None for a stream cut short."""
        started = time.perf_counter()
        receiver = Receiver(self.store, self.pool)
        batches: queue.Queue[Sequence[Chunk] | None] = queue.Queue(maxsize=BATCHES_AHEAD)
        stored: list[BaseException | None] = [None]

        def store() -> None:
            try:
                receiver.drain(batches)
                receiver.finish()
            except BaseException as e:
                stored[0] = e

        storing = threading.Thread(target=store, name="store-drain", daemon=True)
        storing.start()
        cut_short: StreamError | None = None  # or a StreamCut
        try:
            with cast(BinaryIO, conn.makefile("rb", buffering=READ_BUFFER)) as f:
                read_header(f)
                batch: list[Chunk] = []
                size = 0
                for chunk in read_frames(f):
                    batch.append(chunk)
                    size += len(chunk.data)
                    if size >= BATCH_BYTES:
                        batches.put(batch)
                        batch, size = [], 0
                if batch:
                    batches.put(batch)
        except StreamError as e:
            cut_short = e
        except OSError as e:  # the connection broke
            cut_short = StreamCut(str(e))
        finally:
            batches.put(None)
            storing.join()
        error = stored[0]
        if cut_short is not None or error is not None:
            receiver.abort()
        if isinstance(cut_short, StreamCut):
            return None  # nobody to answer
        if cut_short is not None:
            return reply_error(INVALID, str(cut_short))
        if isinstance(error, SyncError):
            return reply_error(INVALID, str(error))
        if isinstance(error, OSError):
            why = f"cannot store objects on this host: {error.strerror or error}"
            return reply_error(FULL, why)
        if error is not None:  # retried by the coordinator, like a call to an agent that failed
            log.error("storing an object stream failed", exc_info=error)
            return reply_error(AGENT, f"the agent could not store objects: {error!r}")
        log.info("received %d objects, %d bytes in %.2f s", receiver.stored, receiver.size,
                 time.perf_counter() - started)  # fmt: skip
        return reply_ok(receiver.stored, receiver.size)
