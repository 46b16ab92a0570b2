"""Keeps a source tree's manifest fresh between submissions: watchdog reports changed paths,
so learning that nothing changed costs nothing and a change costs only its own files.

The first scan of a tree is a full one; the watcher starts before it, so no change is missed
between the two. When the watcher cannot vouch for the tree (its observer died, or it has not
started), `drain()` answers None and the caller falls back to a full stat walk.

Events reach the handler through watchdog's threads, a few milliseconds after the change (half
a second for a move, held back to pair it): a file saved just before a submit could have made
no event yet. So `drain()` first creates a marker file in the root (a "cookie", as watchman
does) and waits for its event: the kernel reports a folder's events in order, so every change
made before the marker has been handled by then. The marker is removed at once, and neither
it nor its events count as a change (convoy.paths.COOKIE_PREFIX).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from convoy.paths import COOKIE_PREFIX

COOKIE_WAIT_S = 2.0  # longer (an overloaded machine): the caller walks the tree instead
_cookies = itertools.count()

# Attrib: a chmod (+x is part of a revision) changes no content and makes no other event.
CHANGES: list[type[FileSystemEvent]] = [
    DirAttribEvent, DirCreatedEvent, DirDeletedEvent, DirModifiedEvent, DirMovedEvent,
    FileAttribEvent, FileClosedEvent, FileCreatedEvent, FileDeletedEvent, FileModifiedEvent,
    FileMovedEvent,
]  # fmt: skip


class _Overflows(logging.Handler):
    """Counts the kernel's inotify queue overflows, which watchdog only logs (it rebuilds its
    watches, and the events lost are lost): after one, no watcher can vouch for its tree."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.count += 1


OVERFLOWS = _Overflows()
for _name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
    logging.getLogger(_name).addHandler(OVERFLOWS)
    logging.getLogger(_name).setLevel(logging.WARNING)  # the warning must reach the counter


def _remove_stale_cookies(root: Path) -> None:
    """Remove the markers a coordinator killed inside drain() left in the root: those whose
    process (named in them) is gone. Those of a live one, ours or another home's watching the
    same tree, stay."""
    names: list[str] = []
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        names = [e.name for e in entries if e.name.startswith(COOKIE_PREFIX)]
    for name in names:
        pid = name[len(COOKIE_PREFIX) :].partition("-")[0]
        if not (pid.isascii() and pid.isdigit()) or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive
        except PermissionError:
            continue  # alive, another user's
        except (ProcessLookupError, OverflowError):
            pass
        with contextlib.suppress(OSError):
            os.unlink(root / name)


class TreeWatcher(FileSystemEventHandler):
    def __init__(self, root: Path, ignore: Sequence[str] = ()) -> None:
        """Watch `root`; paths under the relative folders in `ignore` (results, convoy's state,
        .git) are dropped at once, so a sweep writing its results in the tree costs little."""
        self.root = root.resolve()
        self._prefix = str(self.root) + "/"
        self._ignore = tuple(ignore)
        self._changed: set[str] = set()
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}  # cookie name -> its event arrived
        st = os.stat(self.root)
        self._root_id = (st.st_dev, st.st_ino)  # the folder watched, not a new one of its name
        self._overflows = OVERFLOWS.count
        self._observer = Observer()
        # Changes only: reading a file (as the coordinator's own hashing does) makes no event.
        self._observer.schedule(self, str(self.root), recursive=True, event_filter=CHANGES)
        self._observer.start()
        _remove_stale_cookies(self.root)

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Only CHANGES arrive: the observer drops other events (opened, closed_no_write).
        for p in (event.src_path, getattr(event, "dest_path", "")):
            p = os.fsdecode(p)
            if not p.startswith(self._prefix):
                continue
            rel = p[len(self._prefix) :]
            if rel.startswith(COOKIE_PREFIX):
                with self._lock:
                    arrived = self._waiting.get(rel)
                if arrived is not None:
                    arrived.set()
                continue
            if any(rel == i or rel.startswith(i + "/") for i in self._ignore):
                continue
            with self._lock:
                self._changed.add(rel)

    def drain(self) -> list[str] | None:
        """The paths changed since the last drain; None when a full scan is needed: the
        observer or its reader died (the root was deleted), the root was replaced (moved
        away, or deleted and made again: the watches follow the old folder), or the kernel
        dropped events (an inotify queue overflow)."""
        if not self._observer.is_alive() or OVERFLOWS.count != self._overflows:
            return None
        if not all(e.is_alive() for e in self._observer.emitters):
            return None
        try:
            st = os.stat(self.root)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != self._root_id:
            return None
        if not self._barrier():
            return None
        with self._lock:
            changed, self._changed = sorted(self._changed), set()
        return changed

    def _barrier(self) -> bool:
        """Whether every change made before now has reached the handler (see the module's
        docstring); False when that cannot be known (a read-only tree, or no event in
        COOKIE_WAIT_S)."""
        name = f"{COOKIE_PREFIX}{os.getpid()}-{next(_cookies)}"
        arrived = threading.Event()
        with self._lock:
            self._waiting[name] = arrived
        path = self.root / name
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return arrived.wait(COOKIE_WAIT_S)
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            with self._lock:
                del self._waiting[name]

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
