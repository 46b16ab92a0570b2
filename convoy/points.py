"""The points of a metric against a parameter: at each of the parameter's values, the mean of
the metric over the runs there and its 95% confidence interval (Student's t: the runs at a
value are taken as replications), one line per value of a hue parameter.

Pure, without numpy or scipy: `convoy results --plot` draws these points with matplotlib
(convoy/cli/plot.py), the TUI's results view in characters (tui/textplot.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from convoy.errors import ConvoyError
from convoy.resultrows import Results
from convoy.spec import ParamValue, param_text

# Student's t 0.975 quantiles for 1..30 degrees of freedom (a 95% two-sided interval);
# beyond, the Cornish-Fisher expansion about the normal quantile (within 1e-5 there).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


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
    hue: ParamValue | None  # None: no hue
    points: list[Point]  # by x, ascending


def value_order(v: ParamValue) -> tuple[int, float, str]:
    """Numbers by value first, then the rest by text (booleans are no numbers here)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, param_text(v))


def value_key(v: ParamValue) -> str:
    """A value as a group key: 1, 1.0 and true differ."""
    return f"{type(v).__name__}:{v!r}"


def lines(res: Results, metric: str, by: str, hue: str | None) -> tuple[list[Line], list[str]]:
    """The points to draw, and what was left out, said for people: runs that did not
    succeed, and those whose metric is no number. `metric`, `by` and `hue` name columns of
    the table (`convoy results --plot` checks its options first); a run without `by` or `hue`
    (its submission's matrix lacked it) is passed over."""
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
        key = ("" if h is None else value_key(h), value_key(x))
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
    """A group's place: by hue value, then by x (both as value_order has them)."""
    h, x, _ = item[1]
    return ((0, 0.0, "") if h is None else value_order(h), value_order(x))
