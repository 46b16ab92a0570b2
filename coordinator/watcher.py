"""Keeps a source tree's manifest fresh between submissions: watchdog reports changed paths,
so learning that nothing changed costs nothing and a change costs only its own files.

The first scan of a tree is a full one; the watcher starts before it, so no change is missed
between the two. When the watcher cannot vouch for the tree (its observer died, or it has not
started), `drain()` answers None and the caller falls back to a full stat walk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

CHANGES: list[type[FileSystemEvent]] = [
    DirCreatedEvent, DirDeletedEvent, DirModifiedEvent, DirMovedEvent, FileClosedEvent,
    FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent,
]  # fmt: skip


class TreeWatcher(FileSystemEventHandler):
    def __init__(self, root: Path, ignore: Sequence[str] = ()) -> None:
        """Watch `root`; paths under the relative folders in `ignore` (results, convoy's state,
        .git) are dropped at once, so a sweep writing its results in the tree costs little."""
        self.root = root.resolve()
        self._prefix = str(self.root) + "/"
        self._ignore = tuple(ignore)
        self._changed: set[str] = set()
        self._lock = threading.Lock()
        self._observer = Observer()
        # Changes only: reading a file (as the coordinator's own hashing does) makes no event.
        self._observer.schedule(self, str(self.root), recursive=True, event_filter=CHANGES)
        self._observer.start()

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Only CHANGES arrive: the observer drops other events (opened, closed_no_write).
        for p in (event.src_path, getattr(event, "dest_path", "")):
            p = os.fsdecode(p)
            if not p.startswith(self._prefix):
                continue
            rel = p[len(self._prefix) :]
            if any(rel == i or rel.startswith(i + "/") for i in self._ignore):
                continue
            with self._lock:
                self._changed.add(rel)

    def drain(self) -> list[str] | None:
        """The paths changed since the last drain; None when a full scan is needed."""
        if not self._observer.is_alive():
            return None
        with self._lock:
            changed, self._changed = sorted(self._changed), set()
        return changed

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
