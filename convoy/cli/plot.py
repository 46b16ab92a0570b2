"""`convoy results EXP --plot METRIC --by PARAM [--hue PARAM]`: the metric against a parameter,
the mean over the runs at each value and its 95% confidence interval (Student's t: the runs at
a value are taken as replications), one line per value of the hue parameter.

The points are convoy.points' (computed without numpy or scipy; the TUI draws the same ones in
characters); drawing them needs matplotlib (optional: a clear message when it is missing), used
through its Agg canvas, never pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convoy import points
from convoy.errors import UsageError
from convoy.points import Line, value_key, value_order
from convoy.spec import ParamValue, param_text

from .results import Results, _missing

TICKED_VALUES = 15  # a numeric axis with at most this many values has a tick at each


def lines(res: Results, metric: str, by: str, hue: str | None) -> tuple[list[Line], list[str]]:
    """The points to draw (convoy.points.lines), and what was left out; an option that names
    no column of the table is refused, naming those there are."""
    if metric not in res.metrics:
        known = ", ".join(res.metrics) or "none (declare them in the experiment file's metrics:)"
        raise UsageError(f"--plot {metric}: {res.experiment} has no metric {metric!r}; its "
                         f"metrics: {known}")  # fmt: skip
    for option, name in (("--by", by), ("--hue", hue)):
        if name is not None and name not in res.params:
            known = ", ".join(res.params) or "none"
            raise UsageError(f"{option} {name}: {res.experiment} has no parameter {name!r}; "
                             f"its parameters: {known}")  # fmt: skip
    if hue == by:
        raise UsageError(f"--hue {hue}: the same parameter as --by")
    return points.lines(res, metric, by, hue)


def _numeric(values: Sequence[ParamValue]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def figure(drawn: Sequence[Line], experiment: str, metric: str, by: str,
           hue: str | None) -> Any:  # fmt: skip
    """A matplotlib Figure (on an Agg canvas): per line, a marker at each value's mean and an
    error bar over its 95% interval. A numeric parameter is an axis of numbers; any other's
    values are placed in order, evenly, and named."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(_missing("--plot", "matplotlib")) from None
    xs_all = [p.x for line in drawn for p in line.points]
    numeric = _numeric(xs_all)
    # for a non-numeric axis
    named = sorted({value_key(x): x for x in xs_all}.values(), key=value_order)
    places = {value_key(x): i for i, x in enumerate(named)}
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for line in drawn:
        xs = [float(p.x) if numeric else places[value_key(p.x)] for p in line.points]
        ax.errorbar(
            xs, [p.mean for p in line.points],
            yerr=[p.half if p.half is not None else 0.0 for p in line.points],
            marker="o", capsize=4,
            label=None if line.hue is None else param_text(line.hue),
        )  # fmt: skip
    if not numeric:
        ax.set_xticks(range(len(named)), [param_text(x) for x in named])
    elif len(named) <= TICKED_VALUES:  # a tick at each value: the sweep's own points
        ax.set_xticks([float(x) for x in named], [param_text(x) for x in named])
    counts = sorted({p.n for line in drawn for p in line.points})
    each = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    ax.set_xlabel(by)
    ax.set_ylabel(metric)
    ax.set_title(f"{experiment}: {metric}, mean and 95% interval of {each} run"
                 f"{'s' * (counts[-1] != 1)} per point")  # fmt: skip
    if hue is not None:
        ax.legend(title=hue)
    ax.grid(True, alpha=0.3)
    return fig


def save(fig: Any, path: Path) -> None:
    """Write the figure; its format from the file's extension (png, pdf, svg, ...)."""
    try:
        fig.savefig(str(path), dpi=120)
    except ValueError as e:  # an extension matplotlib does not write
        raise UsageError(f"-o {path}: {e}") from None
    except OSError as e:
        raise UsageError(f"-o {path}: cannot write it: {e.strerror}") from None
