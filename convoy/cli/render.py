"""Turning API messages into what a person or a script reads: tables, JSON, durations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from convoy.client import Run
from convoy.spec import param_text


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def params_text(run: Run) -> str:
    return " ".join(f"{k}={param_text(v)}" for k, v in run.params.items())


def state_counts(states: Iterable[str]) -> str:
    """ "3 failed, 9 succeeded": how many runs ended in each state, states in name order."""
    return ", ".join(f"{n} {s}" for s, n in sorted(Counter(states).items()))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def percent_text(run: Run) -> str:
    """ "45%": a running run's progress ("-" when it shows none)."""
    return "-" if run.progress is None else f"{run.progress:.0f}%"


def runs_table(runs: Sequence[Run]) -> str:
    """The runs, one a row; a PROGRESS column when one of them shows a percent, and WAITING FOR
    (last, as it is long) when one of them is queued with a reason."""
    progress = any(r.progress is not None for r in runs)
    waiting = any(r.waiting_for for r in runs)
    rows = [
        [
            r.id, r.state, "-" if r.exit_code is None else str(r.exit_code), r.host or "-",
            human_duration(r.duration_s), *([percent_text(r)] if progress else []),
            params_text(r), *([r.waiting_for or "-"] if waiting else []),
        ]
        for r in runs
    ]  # fmt: skip
    headers = ["RUN", "STATE", "EXIT", "HOST", "DURATION", *(["PROGRESS"] if progress else []),
               "PARAMS", *(["WAITING FOR"] if waiting else [])]  # fmt: skip
    return table(headers, rows)
