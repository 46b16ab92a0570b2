"""`convoy results EXP --plot METRIC --by PARAM [--hue PARAM]`: the metric against a parameter,
the mean over the runs at each value and its 95% confidence interval (Student's t: the runs at
a value are taken as replications), one line per value of the hue parameter.

The points are computed here without numpy or scipy; drawing needs matplotlib (optional: a
clear message when it is missing), used through its Agg canvas, never pyplot's global state.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convoy.errors import ConvoyError, UsageError
from convoy.spec import ParamValue, param_text

from .results import Results, _missing

# Student's t 0.975 quantiles for 1..30 degrees of freedom (a 95% two-sided interval);
# beyond, the Cornish-Fisher expansion about the normal quantile (within 1e-5 there).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054
TICKED_VALUES = 15  # a numeric axis with at most this many values has a tick at each


def t_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))  # fmt: skip


@dataclass(frozen=True)
class Point:
    x: ParamValue
    mean: float
    half: float | None  # the 95% interval is mean +- half; None: one run, no interval
    n: int


def interval(values: Sequence[float]) -> Point:
    """The mean of `values` and the half-width of its 95% t interval (x left unset)."""
    n = len(values)
    mean = statistics.fmean(values)
    half = t_975(n - 1) * statistics.stdev(values) / math.sqrt(n) if n > 1 else None
    return Point(0, mean, half, n)


@dataclass(frozen=True)
class Line:
    hue: ParamValue | None  # None: no --hue
    points: list[Point]  # by x, ascending


def _order(v: ParamValue) -> tuple[int, float, str]:
    """Numbers by value first, then the rest by text (booleans are no numbers here)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, param_text(v))


def lines(res: Results, metric: str, by: str, hue: str | None) -> tuple[list[Line], list[str]]:
    """The points to draw, and what was left out, said for people: runs that did not
    succeed, and those whose metric is no number."""
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
    groups: dict[tuple[str, str], tuple[ParamValue | None, ParamValue, list[float]]] = {}
    unended = unnumbered = 0
    example = ""
    for row in res.rows:
        if row.run.state != "succeeded":
            unended += 1
            continue
        value = row.metrics.get(metric)
        if by not in row.params or (hue is not None and hue not in row.params):
            continue  # a submission whose matrix lacked the parameter
        if not isinstance(value, int | float) or isinstance(value, bool):
            unnumbered += 1
            why = row.missing.get(metric) or f"{value!r} is not a number"
            example = example or f"{row.run.id}: {why}"
            continue
        h = row.params[hue] if hue is not None else None
        x = row.params[by]
        key = ("" if h is None else _key(h), _key(x))
        groups.setdefault(key, (h, x, []))[2].append(float(value))
    left = []
    if unended:
        left.append(f"{unended} run{'s' * (unended != 1)} that did not succeed")
    if unnumbered:
        left.append(f"{unnumbered} run{'s' * (unnumbered != 1)} whose {metric} is not a "
                    f"number (such as {example})")  # fmt: skip
    by_hue: dict[str, Line] = {}
    for (hk, _), (h, x, values) in sorted(groups.items(), key=_place):
        p = interval(values)
        line = by_hue.setdefault(hk, Line(h, []))
        line.points.append(Point(x, p.mean, p.half, p.n))
    if not by_hue:
        said = f" ({'; '.join(left)})" if left else ""
        raise ConvoyError(f"nothing to plot: no run of {res.experiment} that succeeded has a "
                          f"number for {metric}{said}")  # fmt: skip
    return list(by_hue.values()), left


def _place(item: tuple[Any, tuple[ParamValue | None, ParamValue, Any]]) -> tuple[Any, ...]:
    """A group's place: by hue value, then by x (both as _order has them)."""
    h, x, _ = item[1]
    return ((0, 0.0, "") if h is None else _order(h), _order(x))


def _key(v: ParamValue) -> str:
    """A value as a group key: 1, 1.0 and true differ."""
    return f"{type(v).__name__}:{v!r}"


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
    named = sorted({_key(x): x for x in xs_all}.values(), key=_order)  # for a non-numeric axis
    places = {_key(x): i for i, x in enumerate(named)}
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for line in drawn:
        xs = [float(p.x) if numeric else places[_key(p.x)] for p in line.points]
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
