"""The end of a sweep's summary: its failed runs grouped by the last line of their output
("37 runs failed the same way: ERROR: bad value ..."), so a thousand failures of one cause
read as one line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from convoy.client import Run

TAIL_BYTES = 8192  # of output.log read for its last line
LINE_CHARS = 200  # of a last line shown
IDS_SHOWN = 5


def last_line(results_path: str) -> str:
    """The last non-empty line of a run's output.log ("" when it has none or it cannot be
    read here)."""
    try:
        with open(Path(results_path) / "output.log", "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.decode(errors="replace").splitlines()]
    found = next((ln for ln in reversed(lines) if ln), "")
    return found[:LINE_CHARS] + ("..." if len(found) > LINE_CHARS else "")


def grouped(failed: Sequence[tuple[str, str]]) -> list[str]:
    """(run id, how it ended) pairs, as lines: runs that ended the same way together, the
    largest group first, each naming some of its runs."""
    groups: dict[str, list[str]] = {}
    for run_id, how in failed:
        groups.setdefault(how, []).append(run_id)
    out = []
    for how, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0])):
        named = ", ".join(ids[:IDS_SHOWN]) + (f" and {len(ids) - IDS_SHOWN} more"
                                              if len(ids) > IDS_SHOWN else "")  # fmt: skip
        if len(ids) == 1:
            out.append(f"{ids[0]} failed: {how}")
        else:
            out.append(f"{len(ids)} runs failed the same way: {how} ({named})")
    return out


def failure_lines(runs: Sequence[Run]) -> list[str]:
    """grouped() for the runs that failed: each by its output's last line, or by its code and
    reason when it printed nothing (or its output cannot be read here)."""
    failed = [r for r in runs if r.state == "failed"]
    return grouped([(r.id, last_line(r.results_path) or f"[{r.code}] {r.reason}")
                    for r in failed])  # fmt: skip
