"""`convoy results`: its formats (convoy.cli.results), its plot (convoy.cli.plot), its options,
and the table read from the store while no coordinator runs."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from convoy import points
from convoy.cli import plot
from convoy.cli.main import main
from convoy.cli.results import csv_text, json_text, missing_notes, table_text
from convoy.client.convert import run_of
from convoy.coordinator.runs.records import RunRecord, SubmissionRecord
from convoy.coordinator.runs.store import STATE_DB, Store
from convoy.coordinator.wire import run_to_pb
from convoy.errors import ConvoyError, UsageError
from convoy.metrics import Value
from convoy.resultrows import Results, Row
from convoy.states import Reason, RunState
from tests.unit.test_results_table import run

EXPERIMENT = """name: exp
image: img
command: sim
matrix: {rho: [0.5, 0.8], rep: [0, 1]}
metrics:
  wait: {file: s.json, key: wait}
  util: {output: 'util (\\S+)'}
"""


def result(tmp_path: Path, index: int, rho: float, rep: int, wait: Value | None,
           state: RunState = RunState.SUCCEEDED, **changes: Any) -> Row:  # fmt: skip
    r = run("exp-1", index, {"rho": rho, "rep": rep}, tmp_path, state=state, host="local",
            started_at=100.0, ended_at=101.5, exit_code=0, code=Reason.EXIT_CODE,
            reason="exited with code 0", **changes)  # fmt: skip
    missing = {} if wait is not None else {"wait": "s.json: no such file in the run's results"}
    return Row(run_of(run_to_pb(r)), dict(r.params), {"wait": wait, "util": "high"}, missing)


def table(tmp_path: Path) -> Results:
    rows = [result(tmp_path, 0, 0.5, 0, 1.0), result(tmp_path, 1, 0.5, 1, 3),
            result(tmp_path, 2, 0.8, 0, 4.5), result(tmp_path, 3, 0.8, 1, None),
            result(tmp_path, 4, 0.8, 2, 7.25, RunState.FAILED)]  # fmt: skip
    return Results("exp", ["rho", "rep"], ["wait", "util"], rows)


# ---- formats -----------------------------------------------------------------------------------


def test_csv_has_a_row_per_run_with_its_parameters_and_metrics(tmp_path: Path) -> None:
    got = list(csv.DictReader(io.StringIO(csv_text(table(tmp_path)))))
    assert list(got[0]) == [
        "run", "submission", "index", "param.rho", "param.rep", "metric.wait", "metric.util",
        "state", "code", "exit_code", "reason", "duration_s", "host", "revision", "reused_from",
    ]  # fmt: skip
    assert [(r["run"], r["param.rho"], r["param.rep"], r["metric.wait"]) for r in got] == [
        ("exp-1.00", "0.5", "0", "1.0"), ("exp-1.01", "0.5", "1", "3"),
        ("exp-1.02", "0.8", "0", "4.5"), ("exp-1.03", "0.8", "1", ""),
        ("exp-1.04", "0.8", "2", "7.25"),
    ]  # fmt: skip
    assert got[0]["metric.util"] == "high" and got[4]["state"] == "failed"
    assert (got[0]["duration_s"], got[0]["host"], got[0]["code"]) == ("1.5", "local", "exit_code")
    assert got[0]["reused_from"] == ""


def test_json_has_run_json_s_fields_and_the_metrics(tmp_path: Path) -> None:
    got = json.loads(json_text(table(tmp_path)))
    assert len(got) == 5
    assert got[3]["run"] == "exp-1.03" and got[3]["params"] == {"rho": 0.8, "rep": 1}
    assert got[3]["metrics"] == {"wait": None, "util": "high"}
    assert got[3]["metrics_missing"] == {"wait": "s.json: no such file in the run's results"}
    assert got[0]["metrics"]["wait"] == 1.0 and got[0]["duration_s"] == 1.5


def test_a_table_for_people_and_why_metrics_are_missing(tmp_path: Path) -> None:
    res = table(tmp_path)
    res.rows[0].metrics["util"] = "\x1b]0;owned\x07"  # a run's text, shown on a terminal
    lines = table_text(res, safe=True).splitlines()
    assert lines[0].split() == ["RUN", "rho", "rep", "wait", "util", "STATE", "DURATION",
                                "HOST", "REVISION", "REASON"]  # fmt: skip
    assert lines[3].split()[:6] == ["exp-1.02", "0.8", "0", "4.5", "high", "succeeded"]
    assert lines[4].split()[3] == "-"
    assert "^[]0;owned^G" in lines[1] and "\x1b" not in "\n".join(lines)
    assert missing_notes(res) == ["wait: 1 run: s.json: no such file in the run's results "
                                  "(exp-1.03)"]  # fmt: skip


def test_parquet_keeps_each_column_s_type(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is optional")
    from convoy.cli.results import write_parquet

    out = tmp_path / "t.parquet"
    write_parquet(table(tmp_path), out)
    got = pq.read_table(out)
    assert str(got.schema.field("param.rho").type) == "double"
    assert str(got.schema.field("param.rep").type) == "int64"
    assert str(got.schema.field("metric.wait").type) == "double"  # 3 and 1.0 together
    assert got.column("metric.wait").to_pylist() == [1.0, 3.0, 4.5, None, 7.25]
    assert got.column("metric.util").to_pylist() == ["high"] * 5


# ---- the plot ----------------------------------------------------------------------------------


def test_t_quantiles_and_intervals() -> None:
    assert points.t_975(1) == 12.7062 and points.t_975(30) == 2.0423
    assert points.t_975(31) == pytest.approx(2.03951, abs=1e-5)
    assert points.t_975(120) == pytest.approx(1.97993, abs=1e-5)
    p = points.interval([1.0, 2.0, 3.0, 4.0])
    assert p.mean == 2.5 and p.n == 4
    assert p.half == pytest.approx(3.1824 * statistics.stdev([1, 2, 3, 4]) / 2)
    assert points.interval([5.0]).half is None  # one run: no interval


def test_the_points_are_the_mean_over_the_runs_that_succeeded_at_each_value(
    tmp_path: Path,
) -> None:
    drawn, left = plot.lines(table(tmp_path), "wait", "rho", None)
    assert len(drawn) == 1 and drawn[0].hue is None
    (a, b) = drawn[0].points
    assert (a.x, a.mean, a.n) == (0.5, 2.0, 2)
    assert a.half == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2))
    assert (b.x, b.mean, b.n, b.half) == (0.8, 4.5, 1, None)  # 1.03 has none, 1.04 failed
    assert left == ["1 run that did not succeed", "1 run whose wait is not a number (such as "
                    "exp-1.03: s.json: no such file in the run's results)"]  # fmt: skip


def test_hue_makes_a_line_per_value(tmp_path: Path) -> None:
    drawn, _ = plot.lines(table(tmp_path), "wait", "rho", "rep")
    assert [(line.hue, [(p.x, p.mean) for p in line.points]) for line in drawn] == [
        (0, [(0.5, 1.0), (0.8, 4.5)]), (1, [(0.5, 3.0)]),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "by", "hue", "says"),
    [
        ("nope", "rho", None, "exp has no metric 'nope'; its metrics: wait, util"),
        ("wait", "mu", None, "--by mu: exp has no parameter 'mu'; its parameters: rho, rep"),
        ("wait", "rho", "rho", "--hue rho: the same parameter as --by"),
    ],
)
def test_plotting_what_is_not_there_says_what_is(
    tmp_path: Path, metric: str, by: str, hue: str | None, says: str
) -> None:
    with pytest.raises(UsageError) as info:
        plot.lines(table(tmp_path), metric, by, hue)
    assert says in str(info.value)


def test_nothing_to_plot_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConvoyError, match="nothing to plot: no run of exp that succeeded has a "
                       "number for util"):  # fmt: skip
        plot.lines(table(tmp_path), "util", "rho", None)


def test_the_figure_s_x_axis_is_the_parameter_with_a_point_per_value(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is optional: the plot needs it")
    drawn, _ = plot.lines(table(tmp_path), "wait", "rho", None)
    fig = plot.figure(drawn, "exp", "wait", "rho", None)
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("rho", "wait")
    (drawn_line,) = ax.containers  # one line: its means, and an error bar at each
    means, _, (bars,) = drawn_line
    assert list(means.get_xdata()) == [0.5, 0.8] and list(means.get_ydata()) == [2.0, 4.5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.8"]
    low, high = bars.get_segments()[0]  # 0.5's interval (0.8 has one run: a bar of length 0)
    assert (low[1], high[1]) == pytest.approx((2.0 - 12.7062, 2.0 + 12.7062))
    out = tmp_path / "plot.png"
    plot.save(fig, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_parameter_that_is_no_number_is_placed_evenly_and_named(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is optional: the plot needs it")
    given = zip(table(tmp_path).rows, ["mm1", "md1", "mm1"], [1.0, 2.0, 3.0], strict=False)
    rows = [Row(r.run, {"model": m}, {"wait": w}, {}) for r, m, w in given]
    drawn, _ = plot.lines(Results("exp", ["model"], ["wait"], rows), "wait", "model", None)
    (ax,) = plot.figure(drawn, "exp", "wait", "model", None).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["md1", "mm1"]
    assert list(ax.containers[0][0].get_ydata()) == [2.0, 2.0]


# ---- the command -------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir(mode=0o700)
    monkeypatch.setenv("CONVOY_HOME", str(h))
    return h


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--plot", "wait"], "--plot METRIC needs --by PARAM"),
        (["--plot", "wait", "--by", "rho"], "and -o FILE"),
        (["--by", "rho"], "--by and --hue go with --plot"),
        (["--plot", "wait", "--by", "rho", "-o", "x.png", "--format", "csv"], "--format does not"),
        (["--format", "parquet"], "--format parquet needs -o FILE"),
    ],
)
def test_options_that_do_not_go_together_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["results", "exp", *args]) == 2
    assert says in capsys.readouterr().err


def stored(home: Path, tmp_path: Path) -> list[RunRecord]:
    """exp-1 in a store as a coordinator leaves it, each run's folder written."""
    runs = [run("exp-1", i, {"rho": rho, "rep": rep}, tmp_path)
            for i, (rho, rep) in enumerate([(0.5, 0), (0.5, 1), (0.8, 0), (0.8, 1)])]  # fmt: skip
    for r, wait in zip(runs, [1.0, 1.5, 4.0, 4.5], strict=True):
        folder = Path(r.results_path)
        folder.mkdir(parents=True)
        (folder / "s.json").write_text(json.dumps({"wait": wait}))
        (folder / "output.log").write_text(f"util {wait / 10}\n")
    sub = SubmissionRecord(id="exp-1", experiment="exp", seq=1, spec_path="/x/e.yaml",
                           spec_yaml=EXPERIMENT, source_dir="/x", results_dir="/r",
                           revision="rev", priority=0, created_at=0.0, total=4)  # fmt: skip
    store = Store(home / STATE_DB)
    store.add_submission(sub, runs)
    store.close()
    return runs


def test_without_a_coordinator_the_table_is_read_from_its_store(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored(home, tmp_path)
    assert main(["results", "exp", "--format", "csv", "--where", "rho=0.8"]) == 0
    out, err = capsys.readouterr()
    got = list(csv.DictReader(io.StringIO(out)))
    assert [(r["run"], r["metric.wait"], r["metric.util"]) for r in got] == [
        ("exp-1.02", "4.0", "0.4"), ("exp-1.03", "4.5", "0.45")]  # fmt: skip
    assert "no coordinator runs" in err
    assert main(["results", "nope"]) == 2
    assert "no runs of experiment 'nope'; the experiments: exp" in capsys.readouterr().err


def test_plot_writes_a_png(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is optional: the plot needs it")
    stored(home, tmp_path)
    out = tmp_path / "plot.png"
    assert main(["results", "exp", "--plot", "wait", "--by", "rho", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}: wait by rho, 2 points" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "module", "says"),
    [
        (["--format", "parquet"], "pyarrow", "--format parquet needs pyarrow, which is not "
         "installed here; install it with"),
        (["--plot", "wait", "--by", "rho"], "matplotlib", "--plot needs matplotlib, which is not "
         "installed here; install it with"),
    ],
)  # fmt: skip
def test_an_optional_package_missing_is_said_with_how_to_install_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, args: list[str], module: str, says: str,
) -> None:  # fmt: skip
    stored(home, tmp_path)
    for name in (module, f"{module}.parquet", f"{module}.figure", f"{module}.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    out = tmp_path / "out"
    assert main(["results", "exp", *args, "-o", str(out)]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()
