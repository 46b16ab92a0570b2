"""A run's `progress:` pattern, read beside its output log.

The container writes its output log itself (agent/runtime/), so the agent looks at what was
appended now and then (Attempts' progress loop, once a second) rather than at every write.
Only what was appended since the last look is read, line by line from the end until the pattern
matches, so a look costs what the run printed since, not its whole log. The last match wins: a
percent printed later replaces one printed earlier.

Lines end at "\\n" or "\\r" (a bar redrawn in place, as tqdm draws it, is a line per redraw).
A line still being written is left for the next look: "4" of a "45%" still to come is not 4%.
A line is matched on its first MAX_LINE bytes at most; a look reads at most READ_AT_MOST
bytes, the newest, so that a run printing a flood is not read whole every second.
"""

from __future__ import annotations

import math
import os
import re
import stat

MAX_LINE = 4096
READ_AT_MOST = 1 << 20
_ENDS = re.compile(rb"[\r\n]")


def percent_of(match: re.Match[str]) -> float | None:
    """The match's `percent` group as a number from 0 to 100 (clamped), or None when it is
    not a number."""
    try:
        value = float(match.group("percent"))
    except (IndexError, TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return max(0.0, min(100.0, value))


class ProgressReader:
    """Follows one output log for one pattern; `look()` says the newest percent, if any."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        self.offset = 0  # how far the log has been read
        self.partial = b""  # the start of a line still being written (at most MAX_LINE bytes)
        self.cut = False  # the partial line is the end of a longer one: its start was skipped

    def feed(self, data: bytes) -> float | None:
        """The percent of the last complete line in `data` (joined to what was left of the
        line before) that matches, or None when none does."""
        parts = _ENDS.split(data)
        first = parts[0]
        if len(parts) == 1:  # no line ended: keep the start of this one
            self._keep(first)
            return None
        lines = [b"" if self.cut else (self.partial + first)[:MAX_LINE], *parts[1:-1]]
        self.partial, self.cut = b"", False
        self._keep(parts[-1])
        for line in reversed(lines):
            if not line:
                continue
            text = line[:MAX_LINE].decode(errors="replace")
            found = None
            for m in self.pattern.finditer(text):
                if (p := percent_of(m)) is not None:
                    found = p
            if found is not None:
                return found
        return None

    def _keep(self, piece: bytes) -> None:
        room = MAX_LINE - len(self.partial)
        if room > 0:
            self.partial += piece[:room]

    def look(self, path: str | os.PathLike[str]) -> float | None:
        """Read what `path` gained since the last look; the newest percent in it, or None.
        The log is opened without following a symbolic link (the run can replace it); one
        that is not a regular file, or is gone, reads as nothing new."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            size = st.st_size
            if size < self.offset:  # cut short: read again from its start
                self.offset, self.partial, self.cut = 0, b"", False
            if size - self.offset > READ_AT_MOST:  # a flood: only its newest part
                self.offset, self.partial, self.cut = size - READ_AT_MOST, b"", True
            data = os.pread(fd, size - self.offset, self.offset) if size > self.offset else b""
        except OSError:
            return None
        finally:
            os.close(fd)
        self.offset += len(data)
        return self.feed(data) if data else None
