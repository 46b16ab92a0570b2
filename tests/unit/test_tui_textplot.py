"""The plot of the TUI's results view, drawn in characters (tui/textplot.py): exact text for
small cases, and what the pane says when it leaves runs out or has nothing to draw."""

from __future__ import annotations

import json

from convoy.points import Point
from convoy.resultrows import Results, row_of
from convoy.tui.textplot import chart, pane
from convoy.v1 import coordinator_pb2 as pb


def test_a_chart_is_a_row_per_value_with_its_numbers_and_a_whisker_on_one_scale() -> None:
    """40 cells: the label, count and numbers columns take 21, the scale the other 19, from
    0.5 (the lowest interval's end) to 4.5 (the highest mean): a value v sits at column
    round(4.5 * (v - 0.5)). One run: its mean alone, no interval. Values that are text are
    labels like any."""
    points = [Point(0.5, 2.0, 1.5, 3), Point(0.8, 4.5, None, 1), Point("high", 3.0, 0.5, 2)]
    assert chart(points, "rho", 40) == [
        "rho   n  mean ± 95%  0.5             4.5",
        "0.5   3  2 ± 1.5     ├──────●──────┤",
        "0.8   1  4.5                           ●",
        "high  2  3 ± 0.5              ├─●──┤",
    ]


def test_one_value_everywhere_goes_in_the_middle_of_a_scale_around_it() -> None:
    assert chart([Point(1, 7.0, None, 1)], "rep", 34) == [
        "rep  n  mean ± 95%  6.3        7.7",
        "1    1  7                 ●",
    ]


def row(index: int, rho: object, state: str, wait: object, sub: str = "sweep-1",
        missing: dict[str, str] | None = None) -> pb.ResultRow:  # fmt: skip
    run = pb.Run(id=f"{sub}.{index:02d}", submission_id=sub, experiment="sweep", index=index,
                 state=state, params_json=json.dumps({"rho": rho}))  # fmt: skip
    return pb.ResultRow(run=run, metrics_json=json.dumps({"wait": wait}),
                        metrics_missing=missing or {})  # fmt: skip


def results(rows: list[pb.ResultRow], params: list[str] | None = None,
            metrics: list[str] | None = None) -> Results:  # fmt: skip
    return Results("sweep", ["rho"] if params is None else params,
                   ["wait"] if metrics is None else metrics, [row_of(r) for r in rows])  # fmt: skip


def test_the_pane_says_what_it_left_out_and_why_it_draws_nothing() -> None:
    """Runs that failed and values that are no numbers are counted under the chart; a table
    without metrics, without parameters, or without a number to draw says so."""
    mixed = [row(0, 0.5, "succeeded", 10.0), row(1, 0.5, "succeeded", "n/a"),
             row(2, 0.5, "failed", None)]  # fmt: skip
    assert pane(results(mixed), "wait", "rho", 61).splitlines() == [
        "wait by rho, the latest run of each assignment: mean and 95%",
        "interval",
        "rho  n  mean ± 95%  9" + " " * 38 + "11",  # a scale of 41 cells: 9 to 11
        "0.5  1  10        " + " " * 22 + "●",  # its middle, column 20
        "left out: 1 run that did not succeed; 1 run whose wait is not",
        "a number (such as sweep-1.01: 'n/a' is not a number)",
    ]
    assert pane(results(mixed, metrics=[]), "", "rho", 60) == (
        "sweep declares no metrics: nothing to plot (declare them in\n"
        "its experiment file's metrics:)"
    )
    assert pane(results(mixed, params=[]), "wait", "", 80) == (
        "sweep has no parameters: nothing to plot its metrics against"
    )
    assert pane(results([]), "wait", "rho", 80) == (
        "nothing to plot: no run of sweep that succeeded has a number for wait"
    )
    assert pane(results(mixed[1:]), "wait", "rho", 200) == (
        "nothing to plot: no run of sweep that succeeded has a number for wait (1 run that did "
        "not succeed; 1 run whose wait is not a number (such as sweep-1.01: 'n/a' is not a "
        "number))"
    )
