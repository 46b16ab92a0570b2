"""Metrics: the experiment file's `metrics:` (convoy.spec), reading them from a run's results
folder (convoy.metrics), and run.json keeping them (coordinator.results.folders)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from convoy.coordinator.results.folders import RunResult, record_unstarted
from convoy.errors import SpecError
from convoy.metrics import (
    MetricsRead,
    Unread,
    from_run_json,
    metrics_of_folder,
    read_metrics,
    value_of,
)
from convoy.spec import MetricSpec, load_spec
from convoy.states import RunState
from tests.unit.test_results import finished, make_run, pieces_of, receive

HEAD = "name: exp\nimage: img\ncommand: run\n"


def metrics(text: str) -> tuple[MetricSpec, ...]:
    return load_spec(HEAD + "metrics:\n" + text, "exp.yaml").metrics


def error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        metrics(text)
    return info.value


# ---- the experiment file -----------------------------------------------------------------------


def test_the_three_forms_load_in_file_order() -> None:
    got = metrics(
        "  wait: {file: ./results/summary.json, key: a.b.0}\n"
        "  served: {file: out.csv, column: served}\n"
        "  util: {output: 'utilisation (?P<value>[0-9.]+)'}\n"
        "  loss: {output: 'loss=(\\S+)'}\n"
    )
    assert got == (
        MetricSpec("wait", file="results/summary.json", key="a.b.0"),
        MetricSpec("served", file="out.csv", column="served"),
        MetricSpec("util", output="utilisation (?P<value>[0-9.]+)"),
        MetricSpec("loss", output="loss=(\\S+)"),
    )
    assert got[0].declared() == {"file": "results/summary.json", "key": "a.b.0"}
    assert load_spec(HEAD, "exp.yaml").metrics == ()


@pytest.mark.parametrize(
    ("text", "line", "column", "says"),
    [
        ("  a: {file: x.json}\n", 5, 6, "a file needs 'key'"),
        ("  a: {key: b}\n", 5, 7, "'key' needs 'file'"),
        ("  a: {file: x, key: b, column: c}\n", 5, 24, "not both"),
        ("  a: {output: x, file: y}\n", 5, 18, "it takes no 'file'"),
        ("  a: {output: '(x)(y)'}\n", 5, 15, "a group named 'value', or with exactly one"),
        ("  a: {output: 'x'}\n", 5, 15, "a group named 'value'"),
        ("  a: {output: '(x'}\n", 5, 15, "invalid regular expression"),
        ("  a: {file: ../x.json, key: b}\n", 5, 13, "without '..'"),
        ("  a: {file: /x.json, key: b}\n", 5, 13, "without '..'"),
        ("  a: {file: x.json, key: b..c}\n", 5, 26, "a key path such as a.b.c"),
        ("  a: {file: x.json, kee: b}\n", 5, 21, "did you mean 'key'?"),
        ("  2a: {output: '(x)'}\n", 5, 3, "a metric name matching"),
        ("  a: results/x.json\n", 5, 6, "expected {file, key} (JSON)"),
        ("  a: {}\n", 5, 6, "expected {file, key} (JSON)"),
        ("  - a\n", 5, 3, "metrics: expected a mapping"),
    ],
)
def test_a_bad_metric_is_an_error_at_its_place(text: str, line: int, column: int,
                                               says: str) -> None:  # fmt: skip
    e = error(text)
    assert (e.file, e.line, e.column) == ("exp.yaml", line, column), str(e)
    assert says in e.message


# ---- reading them ------------------------------------------------------------------------------


def folder_with(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "run"
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def test_a_json_key_path_walks_objects_and_lists(tmp_path: Path) -> None:
    doc = {"mean": 1.5, "n": 7, "theory": {"mean": 2.0, "nested": {"x": "0.25"}},
           "series": [1, 2, {"last": 3}], "flag": True, "name": "mm1"}  # fmt: skip
    folder = folder_with(tmp_path, {"r/s.json": json.dumps(doc)})
    specs = [MetricSpec(n, file="r/s.json", key=k) for n, k in [
        ("mean", "mean"), ("n", "n"), ("theory", "theory.mean"), ("text", "theory.nested.x"),
        ("item", "series.1"), ("last", "series.-1.last"), ("flag", "flag"), ("name", "name"),
    ]]  # fmt: skip
    read = read_metrics(folder, specs)
    assert read.values == {"mean": 1.5, "n": 7, "theory": 2.0, "text": 0.25, "item": 2,
                           "last": 3, "flag": "true", "name": "mm1"}  # fmt: skip
    assert read.missing == {}
    assert type(read.values["n"]) is int and type(read.values["item"]) is int


def test_a_csv_column_is_its_last_row_s(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, {
        "out.csv": "t, served,state\n1,10,warm\n2,20,steady\n\n",
        "out.tsv": "a\tb\n1\t2.5\n", "short.csv": "a,b\n1\n", "head.csv": "a,b\n",
    })  # fmt: skip
    read = read_metrics(folder, [
        MetricSpec("served", file="out.csv", column="served"),
        MetricSpec("state", file="out.csv", column="state"),
        MetricSpec("b", file="out.tsv", column="b"),
        MetricSpec("gone", file="out.csv", column="nope"),
        MetricSpec("short", file="short.csv", column="b"),
        MetricSpec("norows", file="head.csv", column="a"),
    ])  # fmt: skip
    assert read.values == {"served": 20, "state": "steady", "b": 2.5, "gone": None,
                           "short": None, "norows": None}  # fmt: skip
    assert read.missing == {
        "gone": "out.csv: no column 'nope' (its columns: t, served, state)",
        "short": "short.csv: its last row has no 'b' cell",
        "norows": "head.csv: no row under its header",
    }


def test_an_output_regex_takes_the_last_line_that_matches(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, {"output.log": (
        "utilisation 0.5\nloss=0.1 loss=0.2\nutilisation 0.75\r\nnothing here\n"
        "maybe=\n"
    )})  # fmt: skip
    read = read_metrics(folder, [
        MetricSpec("util", output=r"utilisation (?P<value>[0-9.]+)$"),
        MetricSpec("loss", output=r"loss=(\S+)"),
        MetricSpec("maybe", output=r"maybe=(\d+)?"),
        MetricSpec("absent", output=r"accuracy (?P<value>\S+)"),
    ])  # fmt: skip
    assert read.values == {"util": 0.75, "loss": 0.2, "maybe": None, "absent": None}
    assert read.missing["absent"] == "no line of output.log matches 'accuracy (?P<value>\\\\S+)'"
    assert read.missing["maybe"].startswith("no line of output.log matches")


def test_what_cannot_be_read_is_none_with_why(tmp_path: Path) -> None:
    """Never an error: a missing or broken file, a missing key, no output.log, a value that
    is no number or text, a link that leads out of the folder."""
    (tmp_path / "secret.json").write_text('{"a": 1}')
    folder = folder_with(tmp_path, {"bad.json": "{not json", "s.json": json.dumps(
        {"a": {"b": 1}, "list": [1], "none": None, "obj": {}, "nan": float("nan")})})  # fmt: skip
    os.symlink(tmp_path / "secret.json", folder / "link.json")
    (folder / "dir.json").mkdir()
    read = read_metrics(folder, [
        MetricSpec("gone", file="nope.json", key="a"),
        MetricSpec("bad", file="bad.json", key="a"),
        MetricSpec("key", file="s.json", key="a.c"),
        MetricSpec("deep", file="s.json", key="a.b.c"),
        MetricSpec("index", file="s.json", key="list.x"),
        MetricSpec("past", file="s.json", key="list.3"),
        MetricSpec("null", file="s.json", key="none"),
        MetricSpec("obj", file="s.json", key="obj"),
        MetricSpec("nan", file="s.json", key="nan"),
        MetricSpec("out", file="link.json", key="a"),
        MetricSpec("dir", file="dir.json", key="a"),
        MetricSpec("csv", file="nope.csv", column="a"),
        MetricSpec("log", output="(x)"),
    ])  # fmt: skip
    assert set(read.values.values()) == {None}
    assert read.missing == {
        "gone": "nope.json: no such file in the run's results",
        "bad": "bad.json: not JSON (Expecting property name enclosed in double quotes at "
               "line 1 column 2)",
        "key": "s.json: no key 'a.c'",
        "deep": "s.json: a.b is neither an object nor a list: no key 'c' in it",
        "index": "s.json: list is a list: 'x' is not an index of it",
        "past": "s.json: list is a list of 1: no item 3",
        "null": "s.json: none: it is null",
        "obj": "s.json: obj: it is an object, not a number or text",
        "nan": "s.json: nan: nan is not a finite number",
        "out": "link.json: it leads out of the run's results folder",
        "dir": "dir.json: not a file",
        "csv": "nope.csv: no such file in the run's results",
        "log": "output.log: no such file in the run's results",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("given", "value"),
    [("12", 12), (" -3 ", -3), ("1.5e-3", 0.0015), (".5", 0.5), ("1_000", "1_000"),
     ("0x10", "0x10"), ("abc", "abc"), (7, 7), (2.5, 2.5), (False, "false")],
)  # fmt: skip
def test_a_value_is_a_number_when_it_reads_as_one(given: object, value: object) -> None:
    got = value_of(given)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("given", ["nan", "-inf", "Infinity", "1e999", "", None, [1], {}])
def test_values_no_table_can_use_are_not_values(given: object) -> None:
    with pytest.raises(Unread, match=r"finite|empty|null|not a number"):
        value_of(given)


def test_a_run_s_folder_reached_through_a_link_gives_its_metrics(tmp_path: Path) -> None:
    """A run already done: its folder is a link to the earlier run's."""
    folder = folder_with(tmp_path, {"s.json": '{"a": 4}'})
    link = tmp_path / "later"
    link.symlink_to(folder, target_is_directory=True)
    assert read_metrics(link, [MetricSpec("a", file="s.json", key="a")]).values == {"a": 4}


def test_run_json_s_metrics_count_only_if_read_as_declared_now(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, {"s.json": '{"a": 4, "b": 5}'})
    a = [MetricSpec("a", file="s.json", key="a")]
    kept = {**MetricsRead({"a": 99}, {}, {"a": {"file": "s.json", "key": "a"}}).fields()}
    (folder / "run.json").write_text(json.dumps(kept))
    assert from_run_json(kept, a) == MetricsRead({"a": 99}, {}, kept["metrics_declared"])
    assert metrics_of_folder(folder, a).values == {"a": 99}  # as run.json says
    other = [MetricSpec("a", file="s.json", key="b")]  # the same name, read otherwise
    assert from_run_json(kept, other) is None
    assert metrics_of_folder(folder, other).values == {"a": 5}  # read again
    assert from_run_json({"state": "succeeded"}, a) is None  # written before metrics


# ---- run.json keeps them -----------------------------------------------------------------------


def test_commit_writes_the_metrics_into_run_json(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    with r.log_file() as f:
        f.write(b"served 12 customers\n")
    receive(r, pieces_of([("results/summary.json", b'{"mean_wait": 0.5}')]))
    specs = (MetricSpec("wait", file="results/summary.json", key="mean_wait"),
             MetricSpec("served", output=r"served (\d+)"),
             MetricSpec("p90", file="results/summary.json", key="p90"))  # fmt: skip
    r.commit(finished(run), metrics=specs)
    body = json.loads((Path(run.results_path) / "run.json").read_text())
    assert body["metrics"] == {"wait": 0.5, "served": 12, "p90": None}
    assert body["metrics_missing"] == {"p90": "results/summary.json: no key 'p90'"}
    assert body["metrics_declared"]["served"] == {"output": r"served (\d+)"}


def test_a_run_that_never_started_has_none_of_its_metrics(tmp_path: Path) -> None:
    never = make_run(tmp_path)
    record_unstarted(replace(never, state=RunState.CANCELLED), (MetricSpec("a", output="(x)"),))
    body = json.loads((Path(never.results_path) / "run.json").read_text())
    assert body["metrics"] == {"a": None}
    assert body["metrics_missing"] == {"a": "no line of output.log matches '(x)'"}
