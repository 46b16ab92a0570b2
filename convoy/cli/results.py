"""`convoy results EXP`: an experiment's results table across its submissions (the Results RPC,
or its store while no coordinator runs), as a table, CSV, JSON or Parquet, or drawn (plot.py).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convoy.client import AsyncClient
from convoy.client.channel import resolve_target
from convoy.errors import CoordinatorUnavailable, UsageError
from convoy.metrics import declared_in
from convoy.resultrows import Results, metric_text, row_of
from convoy.runjson import run_fields
from convoy.spec import param_text

from .render import human_duration, table
from .safetext import inert

FORMATS = ("table", "csv", "json", "parquet")
SHOWN_NOTES = 8  # why metrics are missing: lines printed under a table
SHOWN_RUNS = 3  # run ids named in one such line
REVISION_SHOWN = 12  # characters of a revision in a table


async def fetch(home: Path, experiment: str, latest: bool, where: Sequence[str]) -> Results:
    """The table from the coordinator, or from its store while none runs (said on stderr)."""
    try:
        client = await AsyncClient.connect(home)
    except CoordinatorUnavailable:
        if resolve_target(None):  # not this machine's store: say the coordinator is away
            raise
        return _stored(home, experiment, latest, where)
    async with client:
        return await client.results(experiment, latest=latest, where=where)


def _stored(home: Path, experiment: str, latest: bool, where: Sequence[str]) -> Results:
    """The Results RPC answered here, from the coordinator's store and the results folders."""
    import sqlite3

    from convoy.coordinator.results.table import rows, select
    from convoy.coordinator.runs.store import STATE_DB, stored_runs, stored_submissions
    from convoy.coordinator.wire import result_row_to_pb

    path = home / STATE_DB
    try:
        subs = stored_submissions(path)
        runs = stored_runs(path, experiment=experiment)
    except sqlite3.Error as e:
        raise UsageError(f"no coordinator runs, and its store {path} cannot be read: {e}"
                         ) from None  # fmt: skip
    print(f"convoy: no coordinator runs ({home}); the runs as its store last had them",
          file=sys.stderr)  # fmt: skip
    declared = {s.id: declared_in(s.spec_yaml, s.spec_path) for s in subs
                if s.experiment == experiment}  # fmt: skip
    chosen = select(experiment, runs, subs, declared.__getitem__, latest, list(where))
    got = [row_of(result_row_to_pb(r)) for r in rows(chosen, chosen.runs)]
    return Results(experiment, chosen.params, chosen.metrics, got)


# ---- formats -----------------------------------------------------------------------------------


def csv_text(res: Results) -> str:
    """One row per run: run, submission, index, `param.NAME`s, `metric.NAME`s, state, code,
    exit_code, reason, duration_s, host, revision, reused_from. A missing value is empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(res.columns())
    for row in res.rows:
        w.writerow(["" if v is None else param_text(v) for v in res.cells(row)])
    return buf.getvalue()


def json_text(res: Results) -> str:
    """A JSON array: each run with run.json's fields (as `convoy runs --json`), its metrics
    (null when missing) and metrics_missing (metric -> why)."""
    return json.dumps([{**run_fields(row.run), "metrics": row.metrics,
                        "metrics_missing": row.missing} for row in res.rows], indent=2)  # fmt: skip


def table_text(res: Results, safe: bool) -> str:
    """For people: run, parameters, metrics (six significant digits), state, duration, host,
    revision (its first 12 characters), reason. `safe`: what runs wrote made inert."""
    shown = inert if safe else str
    headers = ["RUN", *res.params, *res.metrics, "STATE", "DURATION", "HOST", "REVISION",
               "REASON"]  # fmt: skip
    rows = [
        [row.run.id, *(param_text(row.params[p]) if p in row.params else "-" for p in res.params),
         *(shown(metric_text(row.metrics.get(m), short=True)) for m in res.metrics),
         row.run.state, human_duration(row.run.duration_s), row.run.host or "-",
         row.run.revision[:REVISION_SHOWN], shown(row.run.reason)]
        for row in res.rows
    ]  # fmt: skip
    return table(headers, rows)


def missing_notes(res: Results) -> list[str]:
    """Why metrics are missing, a line per metric and reason (the most frequent first), for
    under a table: "mean_wait: 2 runs: results/summary.json: no such file ... (a-1.00, a-1.01)"."""
    runs_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in res.rows:
        for metric, why in row.missing.items():
            runs_of[metric, why].append(row.run.id)
    ordered = sorted(runs_of.items(), key=lambda kv: -len(kv[1]))
    notes = []
    for (metric, why), ids in ordered[:SHOWN_NOTES]:
        named = ", ".join(ids[:SHOWN_RUNS]) + (", ..." if len(ids) > SHOWN_RUNS else "")
        notes.append(f"{metric}: {len(ids)} run{'s' * (len(ids) != 1)}: {why} ({named})")
    if len(ordered) > SHOWN_NOTES:
        notes.append(f"and {len(ordered) - SHOWN_NOTES} more reasons (--format json says all)")
    return notes


def write_parquet(res: Results, path: Path) -> None:
    """The CSV's columns, each typed: booleans, integers, numbers (integers and numbers
    mixed) or text (anything else mixed, numbers written as text)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(_missing("--format parquet", "pyarrow")) from None
    names = res.columns()
    cells = [res.cells(row) for row in res.rows]
    arrays = [_arrow_column(pa, [c[i] for c in cells]) for i in range(len(names))]
    pq.write_table(pa.table(dict(zip(names, arrays, strict=True))), str(path))


INT64 = 2**63


def _arrow_column(pa: Any, values: list[Any]) -> Any:
    given = [v for v in values if v is not None]
    if given and all(isinstance(v, bool) for v in given):
        return pa.array(values, pa.bool_())
    if given and all(isinstance(v, int) and not isinstance(v, bool) and -INT64 <= v < INT64
                     for v in given):  # fmt: skip
        return pa.array(values, pa.int64())
    if given and all(isinstance(v, int | float) and not isinstance(v, bool) for v in given):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else param_text(v) for v in values], pa.string())


def _missing(what: str, package: str) -> str:
    return (f"{what} needs {package}, which is not installed here; install it with "
            f"{sys.executable} -m pip install {package}")  # fmt: skip
