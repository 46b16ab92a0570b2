"""The results table of an experiment (`convoy results`, the Results RPC): one row per run
across its submissions, with its parameters and the metrics its experiment file declares.

Choosing the rows (which runs, `latest`, `where`) is pure; reading their metrics reads each
run's results folder (`rows`, blocking: a worker thread's).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from convoy.coordinator.runs.records import RunRecord, SubmissionRecord
from convoy.errors import NotFound, UsageError
from convoy.metrics import MetricsRead, Value, metrics_of_folder
from convoy.spec import MetricSpec, param_text

SHOWN_VALUES = 10  # of a parameter, in an error


@dataclass(frozen=True)
class Selection:
    """The runs of the table, in submission order then by index, and its columns."""

    experiment: str
    params: list[str]  # every parameter of its runs, in order of appearance
    metrics: list[str]  # every metric its submissions declare, the latest's first
    runs: list[RunRecord]
    declared: dict[str, tuple[MetricSpec, ...]]  # submission -> the metrics it declares


@dataclass(frozen=True)
class Row:
    run: RunRecord
    metrics: dict[str, Value | None]  # every metric of the table: its value, or None
    missing: dict[str, str]  # why each None is


def assignment(run: RunRecord) -> str:
    """A run's parameter values, as a key: 1, 1.0 and true differ, the order does not."""
    return json.dumps(run.params, sort_keys=True)


def latest_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Of each parameter assignment, its run in the latest submission that has one (whatever
    its state), in the order given (submission order, then index)."""
    last: dict[str, RunRecord] = {}
    for r in runs:
        last[assignment(r)] = r  # a later submission's replaces an earlier one's
    kept = {r.id for r in last.values()}
    return [r for r in runs if r.id in kept]


def where_runs(runs: Sequence[RunRecord], where: Sequence[str]) -> list[RunRecord]:
    """The runs whose parameters have the values `where` (NAME=VALUE, values as the experiment
    file writes them) names: values of one name are any of, different names all of."""
    wanted: dict[str, set[str]] = {}
    params = _params(runs)
    for item in where:
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name:
            raise UsageError(f"where {item!r}: expected NAME=VALUE")
        if name not in params:
            known = ", ".join(params) or "none"
            raise UsageError(f"where {item!r}: no parameter {name!r}; the parameters: {known}")
        values = {param_text(r.params[name]) for r in runs if name in r.params}
        if value not in values:
            shown = ", ".join(itertools.islice(sorted(values, key=_value_order), SHOWN_VALUES))
            more = " ..." if len(values) > SHOWN_VALUES else ""
            raise UsageError(f"where {item!r}: no run has {name}={value}; its values: "
                             f"{shown}{more}")  # fmt: skip
        wanted.setdefault(name, set()).add(value)
    return [
        r for r in runs
        if all(name in r.params and param_text(r.params[name]) in values
               for name, values in wanted.items())
    ]  # fmt: skip


def _value_order(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _params(runs: Sequence[RunRecord]) -> list[str]:
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r.params))
    return list(names)


def select(
    experiment: str, runs: Sequence[RunRecord], submissions: Sequence[SubmissionRecord],
    metrics_of: Callable[[str], Sequence[MetricSpec]], latest: bool = False,
    where: Sequence[str] = (),
) -> Selection:  # fmt: skip
    """The table's runs and columns, from the experiment's `runs` (in submission order, then
    index) and the store's `submissions` (in order); `where` first, then `latest`."""
    if not runs:
        known = sorted({s.experiment for s in submissions})
        raise NotFound(f"no runs of experiment {experiment!r}; the experiments: "
                       f"{', '.join(known) or 'none yet'}")  # fmt: skip
    chosen = where_runs(runs, where) if where else list(runs)
    if latest:
        chosen = latest_runs(chosen)
    in_table = {r.submission_id for r in chosen}
    declared = {s.id: tuple(metrics_of(s.id)) for s in submissions if s.id in in_table}
    names: dict[str, None] = {}
    for s in reversed(submissions):  # the latest submission's declaration first
        names.update(dict.fromkeys(m.name for m in declared.get(s.id, ())))
    return Selection(experiment, _params(chosen), list(names), chosen, declared)


def rows(selection: Selection, runs: Sequence[RunRecord]) -> list[Row]:
    """The rows of some of the selection's runs, their metrics read (blocking)."""
    return [row_of(r, selection.declared.get(r.submission_id, ()), selection.metrics)
            for r in runs]  # fmt: skip


def row_of(run: RunRecord, metrics: Sequence[MetricSpec], names: Sequence[str]) -> Row:
    """A run's row: the metrics its submission declares, as its results folder gives them
    (read through the link, for a run already done); None for the others, and why."""
    declared = {m.name for m in metrics}
    missing = {n: f"{run.submission_id}'s experiment file does not declare it"
               for n in names if n not in declared}  # fmt: skip
    read = MetricsRead()
    if not metrics:
        pass
    elif not run.state.terminal:
        why = f"the run is {run.state.value}: its metrics are read when it ends"
        missing.update(dict.fromkeys(declared, why))
    elif not Path(run.results_path).is_dir():
        missing.update(dict.fromkeys(declared, f"its results folder {run.results_path} is "
                                     "not there"))  # fmt: skip
    else:
        read = metrics_of_folder(Path(run.results_path), metrics)
        missing.update({n: why for n, why in read.missing.items() if n in declared})
    values = {n: read.values.get(n) if n in declared else None for n in names}
    for n in declared:
        if values[n] is None and n not in missing:  # a run.json edited by hand
            missing[n] = "run.json has no value for it"
    return Row(run, values, {n: missing[n] for n in names if n in missing})
