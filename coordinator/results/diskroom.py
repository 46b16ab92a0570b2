"""Room on the coordinator's disk for the results being collected, granted before they travel.

A run can leave more than the coordinator's disk holds (a trace that grew all night, a sparse
file of a terabyte, which arrives written in full). Filling that disk would stop every run's
record and log, not only this run's results, so each collection first asks the agent how many
bytes it has, is granted what fits, and the agent sends files only while they fit in the grant;
the others are left out and named in run.json with why.

What fits: the file system's free bytes (for an unprivileged user) less a reserve (5% of its
size, at most 1 GiB) for SQLite, the logs and the object store, less what collections in flight
were granted and have not written yet (the free bytes already show what they wrote). Sizes are
disk footprints (convoy/footprint.py), which a collection's count of the bytes it wrote falls
short of: room is underestimated while collections overlap, never overestimated. Another
process writing to the disk meanwhile can still take the room granted.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from types import TracebackType

RESERVE_MAX = 1 << 30


def reserve_of(total: int) -> int:
    """Bytes kept free on a file system of `total` bytes."""
    return min(RESERVE_MAX, total // 20)


def _existing(folder: Path) -> Path:
    """The folder, or its nearest ancestor that exists (a results folder is made as results
    arrive, on the file system of that ancestor)."""
    for p in (folder, *folder.parents):
        if p.exists():
            return p
    return Path("/")


class Grant:
    """Bytes granted to one collection; give them back with `with` or release()."""

    def __init__(self, room: DiskRoom, device: int, size: int, wanted: int | None = None) -> None:
        self._room = room
        self.device = device
        self.size = size
        # what was asked for: more than `size` when the disk is short
        self.wanted = size if wanted is None else wanted
        self.written = 0  # of it, by the collection (which says so: wrote())
        self._released = False

    def wrote(self, n: int) -> None:
        self.written += n

    @property
    def unwritten(self) -> int:
        return max(0, self.size - self.written)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._room._give_back(self)

    def __enter__(self) -> Grant:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class DiskRoom:
    """The grants of collections in flight, per file system (by device number)."""

    def __init__(self) -> None:
        self._grants: dict[int, list[Grant]] = {}
        self._lock = threading.Lock()

    def grant(self, folder: Path, wanted: int) -> Grant:
        """Up to `wanted` bytes for files written under `folder` (0 when there is no room)."""
        where = _existing(folder)
        device = os.stat(where).st_dev
        usage = shutil.disk_usage(where)
        with self._lock:
            grants = self._grants.setdefault(device, [])
            room = usage.free - reserve_of(usage.total) - sum(g.unwritten for g in grants)
            grant = Grant(self, device, max(0, min(wanted, room)), wanted)
            grants.append(grant)
        return grant

    def promised(self, folder: Path) -> int:
        """Bytes granted on the file system of `folder` and not written yet."""
        device = os.stat(_existing(folder)).st_dev
        with self._lock:
            return sum(g.unwritten for g in self._grants.get(device, []))

    def _give_back(self, grant: Grant) -> None:
        with self._lock:
            grants = self._grants.get(grant.device, [])
            grants.remove(grant)
            if not grants:
                self._grants.pop(grant.device, None)
