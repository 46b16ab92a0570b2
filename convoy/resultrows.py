"""An experiment's results table as the Results RPC streams it: a row per run, with its
parameters and metrics. `convoy results` (convoy/cli/results.py), the TUI's results view and
scripts (AsyncClient.results) read it through here, so all see the same rows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convoy.client.convert import run_of
from convoy.client.types import Run
from convoy.errors import UsageError
from convoy.metrics import Value
from convoy.spec import ParamValue
from convoy.v1 import coordinator_pb2 as pb

if TYPE_CHECKING:
    import pandas

PARAM_COLUMN, METRIC_COLUMN = "param.", "metric."  # a column's prefix: never one of convoy's


@dataclass(frozen=True)
class Row:
    run: Run
    params: dict[str, ParamValue]
    metrics: dict[str, Value | None]
    missing: dict[str, str]  # metric -> why its value is None


@dataclass(frozen=True)
class Results:
    experiment: str
    params: list[str]
    metrics: list[str]
    rows: list[Row]

    def columns(self) -> list[str]:
        """The columns of the CSV, Parquet and DataFrame forms, in order."""
        return ["run", "submission", "index", *(PARAM_COLUMN + p for p in self.params),
                *(METRIC_COLUMN + m for m in self.metrics), "state", "code", "exit_code",
                "reason", "duration_s", "host", "revision", "reused_from"]  # fmt: skip

    def cells(self, row: Row) -> list[Any]:
        """A row's values, in columns' order: parameters and metrics as they are (None:
        none)."""
        r = row.run
        return [
            r.id, r.submission_id, r.index, *(row.params.get(p) for p in self.params),
            *(row.metrics.get(m) for m in self.metrics), r.state, r.code or None, r.exit_code,
            r.reason, r.duration_s, r.host or None, r.revision, r.reused_from or None,
        ]  # fmt: skip

    def dataframe(self) -> pandas.DataFrame:
        """The table as a pandas DataFrame: a row per run, the columns of columns() (so
        `df["metric.mean_wait"]`, `df.groupby("param.rho")`). Needs pandas, which convoy
        does not install."""
        try:
            import pandas
        except ImportError:
            raise UsageError("Results.dataframe() needs pandas, which is not installed here "
                             "(pip install pandas)") from None  # fmt: skip
        return pandas.DataFrame([self.cells(r) for r in self.rows], columns=self.columns())


def row_of(r: pb.ResultRow) -> Row:
    return Row(run_of(r.run), json.loads(r.run.params_json or "{}"),
               json.loads(r.metrics_json or "{}"), dict(r.metrics_missing))  # fmt: skip


async def gather(experiment: str, chunks: AsyncIterable[pb.ResultsChunk]) -> Results:
    """The whole table from a Results stream: its columns from the first chunk (only it names
    them), its rows from every chunk."""
    params: list[str] = []
    metrics: list[str] = []
    rows: list[Row] = []
    first = True
    async for chunk in chunks:
        if first:
            params, metrics, first = list(chunk.params), list(chunk.metrics), False
        rows.extend(row_of(r) for r in chunk.rows)
    return Results(experiment, params, metrics, rows)


def metric_text(value: Value | None, short: bool = False) -> str:
    """A metric's cell: empty for none (a table shows '-'), numbers as Python writes them
    (every digit; six significant ones in a table)."""
    if value is None:
        return "-" if short else ""
    if isinstance(value, float) and short:
        return f"{value:.6g}"
    return str(value)
