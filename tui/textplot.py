"""A metric against a parameter in characters, for the TUI's results view: a row per value of
the parameter with its runs' count, their mean and its 95% interval as numbers, and a whisker on
one scale shared by every row, `├───●───┤` (a `●` alone: one run, no interval).

The points are convoy.points', the ones `convoy results --plot` draws: only the drawing differs.
Rows rather than a scatter of dots: a sweep has few values, and each keeps its label and its
numbers legible in 80 columns, whatever the parameter's type (values that are text too).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size

from convoy.errors import ConvoyError
from convoy.points import Point, lines
from convoy.resultrows import Results
from convoy.spec import param_text

MEAN, LOW, HIGH, SPAN = "●", "├", "┤", "─"
LABEL_MAX = 16  # cells of a value's label (and of the parameter's name) before it is cut
BAR_MIN = 10  # cells of the whisker's scale, however narrow the pane
GAP = "  "
STAT_HEADER = "mean ± 95%"


def pane(res: Results, metric: str, by: str, width: int) -> str:
    """What the plot pane says in `width` cells: the chart of `metric` by `by` (columns of
    `res`, the latest run of each parameter assignment) and what was left out of it, or why
    there is nothing to draw."""
    width = max(width, 20)

    def said(text: str) -> list[str]:
        return textwrap.wrap(text, width, break_on_hyphens=False)

    if not res.metrics:
        return "\n".join(said(f"{res.experiment} declares no metrics: nothing to plot (declare "
                               "them in its experiment file's metrics:)"))  # fmt: skip
    if not res.params:
        return "\n".join(said(f"{res.experiment} has no parameters: nothing to plot its metrics "
                               "against"))  # fmt: skip
    try:
        (line,), left = lines(res, metric, by, None)  # no hue: one line
    except ConvoyError as e:
        return "\n".join(said(str(e)))
    title = said(f"{metric} by {by}, the latest run of each assignment: mean and 95% interval")
    notes = said(f"left out: {'; '.join(left)}") if left else []
    return "\n".join([*title, *chart(line.points, by, width), *notes])


def chart(points: Sequence[Point], by: str, width: int) -> list[str]:
    """A header (the scale's ends over the whisker column), then a row per point, in `width`
    cells (more when that is too narrow for BAR_MIN cells of scale), no trailing spaces."""
    labels = [clip(param_text(p.x)) for p in points]
    counts = [str(p.n) for p in points]
    stats = [stat(p) for p in points]
    head = clip(by)
    xw = max(cell_len(s) for s in [head, *labels])
    nw = max(len(s) for s in ["n", *counts])
    sw = max(cell_len(s) for s in [STAT_HEADER, *stats])
    bw = max(BAR_MIN, width - (xw + nw + sw + 3 * len(GAP)))
    spans = [(p.mean - (p.half or 0.0), p.mean + (p.half or 0.0)) for p in points]
    drawn = [all(math.isfinite(v) for v in e) for e in spans]
    lo = min((e[0] for e, ok in zip(spans, drawn, strict=True) if ok), default=0.0)
    hi = max((e[1] for e, ok in zip(spans, drawn, strict=True) if ok), default=0.0)
    if hi == lo:  # one value everywhere: it goes in the middle
        lo, hi = lo - (abs(lo) / 10 or 1.0), hi + (abs(hi) / 10 or 1.0)

    def at(v: float) -> int:
        return round((v - lo) / (hi - lo) * (bw - 1))

    def whisker(p: Point, ok: bool) -> str:
        if not ok:  # no finite mean or interval (values near the float's limits)
            return ""
        cells = [" "] * bw
        if p.half is not None:
            left, right = at(p.mean - p.half), at(p.mean + p.half)
            cells[left : right + 1] = SPAN * (right - left + 1)
            cells[left], cells[right] = LOW, HIGH
        cells[at(p.mean)] = MEAN
        return "".join(cells)

    low_text, high_text = ends(lo, hi)
    room = bw - len(low_text) - len(high_text)  # too narrow: past the column, whole
    scale = low_text + " " * max(1, room) + high_text
    rows = [[head, "n", STAT_HEADER, scale]]
    rows += [
        [label, count, s, whisker(p, ok)]
        for label, count, s, p, ok in zip(labels, counts, stats, points, drawn, strict=True)
    ]
    return [
        GAP.join([set_cell_size(label, xw), count.rjust(nw), set_cell_size(s, sw), bar]).rstrip()
        for label, count, s, bar in rows
    ]


def ends(lo: float, hi: float) -> tuple[str, str]:
    """The scale's ends as text: four significant digits, more while those say the same."""
    for digits in range(4, 18):
        low, high = f"{lo:.{digits}g}", f"{hi:.{digits}g}"
        if low != high:
            break
    return low, high


def stat(p: Point) -> str:
    """The mean and the interval's half-width, as numbers: "2.5 ± 1.2", or "4.5" (one run)."""
    return f"{p.mean:.4g}" if p.half is None else f"{p.mean:.4g} ± {p.half:.3g}"


def clip(text: str) -> str:
    """At most LABEL_MAX cells of `text`, "…" where it was cut."""
    if cell_len(text) <= LABEL_MAX:
        return text
    return set_cell_size(text, LABEL_MAX - 1) + "…"
