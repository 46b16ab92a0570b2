"""The agent's receiving end of a sync: chunks of objects (convoy/objstream.py) into its store."""

from __future__ import annotations

import collections
import queue
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from convoy.content import SyncError
from convoy.objstream import Chunk

from .objects import ObjectStore, ObjectWriter

MAX_PENDING_BATCHES = 4  # received batches of small objects waiting to be stored


class Receiver:
    """Objects arriving in batches of chunks: large ones are written through a writer across
    chunks (and batches) by the draining thread, their chunks in order (whole small objects may
    come between them), while each batch's whole small objects are
    stored by the pool's threads. Creating a file is kernel work done with the GIL released,
    so the creates of two batches, and the writes of a large object, proceed side by side."""

    def __init__(self, store: ObjectStore, pool: ThreadPoolExecutor) -> None:
        self.store = store
        self.pool = pool
        self.pending: collections.deque[Future[int]] = collections.deque()
        self.writer: ObjectWriter | None = None
        self.stored = 0
        self.size = 0

    def take(self, chunks: Iterable[Chunk]) -> None:
        whole: list[tuple[str, bytes]] = []  # small objects, stored together
        for chunk in chunks:
            self.size += len(chunk.data)
            if chunk.hash and chunk.last:  # a whole object, maybe between a large one's chunks
                whole.append((chunk.hash, chunk.data))
                continue
            if chunk.hash:
                if self.writer is not None:
                    raise SyncError(f"object {self.writer.hash} ended without its last chunk")
                self.writer = self.store.writer(chunk.hash)
            if self.writer is None:
                raise SyncError("object data before any object hash")
            self.writer.write(chunk.data)
            if chunk.last:
                self.writer.commit()
                self.writer = None
                self.stored += 1
        if whole:
            while len(self.pending) >= MAX_PENDING_BATCHES:  # bounds the memory held
                self.pending.popleft().result()
            self.pending.append(self.pool.submit(self.store.put_many, whole))
            self.stored += len(whole)

    def drain(self, batches: queue.Queue[Sequence[Chunk] | None]) -> None:
        """Store batches until None; on an error (a bad object, OSError: a full disk, or any
        other: the pool shut down with the agent), keep taking them (unstored) so the sender
        is never blocked, then raise it once every batch handed to the pool is done."""
        error: Exception | None = None
        while (chunks := batches.get()) is not None:
            if error is None:
                try:
                    self.take(chunks)
                except Exception as e:  # raised below, once the queue is empty
                    error = e
        while self.pending:
            try:
                self.pending.popleft().result()
            except Exception as e:  # as above
                error = error or e
        if error is not None:
            raise error

    def finish(self) -> None:
        if self.writer is not None:
            raise SyncError(f"object {self.writer.hash} was cut short")

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
