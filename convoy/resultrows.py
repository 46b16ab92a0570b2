"""An experiment's results table as the Results RPC streams it: a row per run, with its
parameters and metrics. `convoy results` (convoy/cli/results.py) and the TUI's results view
read it through here, so both see the same rows; nothing here reaches the coordinator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from dataclasses import dataclass

from convoy.metrics import Value
from convoy.spec import ParamValue
from convoy.v1 import coordinator_pb2 as pb


@dataclass(frozen=True)
class Row:
    run: pb.Run
    params: dict[str, ParamValue]
    metrics: dict[str, Value | None]
    missing: dict[str, str]


@dataclass(frozen=True)
class Results:
    experiment: str
    params: list[str]
    metrics: list[str]
    rows: list[Row]


def row_of(r: pb.ResultRow) -> Row:
    return Row(r.run, json.loads(r.run.params_json or "{}"), json.loads(r.metrics_json or "{}"),
               dict(r.metrics_missing))  # fmt: skip


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
