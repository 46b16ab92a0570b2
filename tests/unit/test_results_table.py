"""coordinator.results.table: which runs an experiment's results table has (`latest`, `where`),
its columns, and each row's metrics as the run's folder gives them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from convoy.coordinator.results.table import latest_runs, row_of, rows, select, where_runs
from convoy.coordinator.runs.records import RunRecord, SubmissionRecord
from convoy.errors import NotFound, UsageError
from convoy.metrics import MetricsRead
from convoy.spec import MetricSpec, Resources
from convoy.states import RunState

WAIT = MetricSpec("wait", file="s.json", key="wait")
UTIL = MetricSpec("util", output=r"util (\S+)")


def run(sub: str, index: int, params: dict[str, Any], tmp_path: Path, seq: int = 1,
        **changes: Any) -> RunRecord:  # fmt: skip
    run_id = f"{sub}.{index:02d}"
    return RunRecord(
        id=run_id, submission_id=sub, experiment="exp", index=index, params=params,
        command="sim", env={}, image="img", resources=Resources(), retries=0,
        timeout_seconds=0.0, network="none", outputs=(), revision="rev", priority=0, seq=seq,
        results_path=str(tmp_path / "exp" / sub / run_id),
        **{"state": RunState.SUCCEEDED, **changes},
    )  # fmt: skip


def submission(sub_id: str, seq: int, experiment: str = "exp") -> SubmissionRecord:
    return SubmissionRecord(id=sub_id, experiment=experiment, seq=seq, spec_path="/e.yaml",
                            spec_yaml="", source_dir="/", results_dir="/r", revision="rev",
                            priority=0, created_at=0.0, total=0)  # fmt: skip


def ids(runs: list[RunRecord]) -> list[str]:
    return [r.id for r in runs]


def two_submissions(tmp_path: Path) -> list[RunRecord]:
    """exp-1: rho 0.5 and 0.8, reps 0 and 1; exp-2: rho 0.8 again and 0.9, rep 0; exp-3:
    rho 1 (an integer: another assignment than 1.0) and true."""
    first = [run("exp-1", i, {"rho": rho, "rep": rep}, tmp_path)
             for i, (rho, rep) in enumerate([(0.5, 0), (0.5, 1), (0.8, 0), (0.8, 1)])]  # fmt: skip
    second = [run("exp-2", i, {"rep": 0, "rho": rho}, tmp_path, seq=2)  # another order
              for i, rho in enumerate([0.8, 0.9])]  # fmt: skip
    third = [run("exp-3", i, {"rho": rho, "rep": 0}, tmp_path, seq=3)
             for i, rho in enumerate([1, 1.0, True])]  # fmt: skip
    return first + second + third


def test_latest_keeps_each_assignment_s_run_of_the_latest_submission_that_has_one(
    tmp_path: Path,
) -> None:
    """Whatever its state (a failed or queued latest run stands for its assignment); the
    order of the parameters does not matter, their types do (1, 1.0 and true differ)."""
    runs = two_submissions(tmp_path)
    runs[4] = replace(runs[4], state=RunState.FAILED)  # exp-2.00: rho 0.8, rep 0
    assert ids(latest_runs(runs)) == [
        "exp-1.00", "exp-1.01", "exp-1.03", "exp-2.00", "exp-2.01", "exp-3.00", "exp-3.01",
        "exp-3.02",
    ]  # fmt: skip


def test_where_takes_values_as_the_file_writes_them(tmp_path: Path) -> None:
    runs = two_submissions(tmp_path)
    assert ids(where_runs(runs, ["rho=0.8"])) == ["exp-1.02", "exp-1.03", "exp-2.00"]
    assert ids(where_runs(runs, ["rho=0.5", "rho=0.9"])) == ["exp-1.00", "exp-1.01", "exp-2.01"]
    assert ids(where_runs(runs, ["rho=0.8", "rep=1"])) == ["exp-1.03"]  # names: all of
    assert ids(where_runs(runs, ["rho=true"])) == ["exp-3.02"]
    assert ids(where_runs(runs, ["rho=1"])) == ["exp-3.00"]  # 1.0 is written 1.0


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("rho", "expected NAME=VALUE"),
        ("=1", "expected NAME=VALUE"),
        ("mu=1", "no parameter 'mu'; the parameters: rho, rep"),
        ("rho=.5", "no run has rho=.5; its values: 0.5, 0.8, 0.9, 1, 1.0, true"),
    ],
)
def test_a_where_that_can_match_nothing_says_why(tmp_path: Path, where: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        where_runs(two_submissions(tmp_path), [where])
    assert says in str(info.value)


def test_select_names_the_columns_the_latest_declaration_first(tmp_path: Path) -> None:
    runs = two_submissions(tmp_path)
    subs = [submission("exp-1", 1), submission("other-1", 2, "other"), submission("exp-2", 2),
            submission("exp-3", 3)]  # fmt: skip
    declared = {"exp-1": (WAIT,), "exp-2": (UTIL, WAIT), "exp-3": ()}
    chosen = select("exp", runs, subs, declared.__getitem__, where=["rho=0.8"])
    assert chosen.params == ["rho", "rep"]
    assert chosen.metrics == ["util", "wait"]
    assert ids(chosen.runs) == ["exp-1.02", "exp-1.03", "exp-2.00"]
    assert chosen.declared == {"exp-1": (WAIT,), "exp-2": (UTIL, WAIT)}
    latest = select("exp", runs, subs, declared.__getitem__, latest=True, where=["rho=0.8"])
    assert ids(latest.runs) == ["exp-1.03", "exp-2.00"]
    with pytest.raises(NotFound, match="no runs of experiment 'nope'; the experiments: exp, "
                       "other"):  # fmt: skip
        select("nope", [], subs, declared.__getitem__)


def write_folder(r: RunRecord, files: dict[str, str]) -> Path:
    folder = Path(r.results_path)
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_a_row_has_its_submission_s_metrics_as_its_folder_gives_them(tmp_path: Path) -> None:
    done = run("exp-1", 0, {"rho": 0.5}, tmp_path)
    folder = write_folder(done, {"s.json": '{"wait": 1.25}', "output.log": "util 0.5\n"})
    read = MetricsRead({"wait": 7.0}, {}, {"wait": WAIT.declared()})  # as the coordinator did
    (folder / "run.json").write_text(json.dumps(read.fields()))
    row = row_of(done, (WAIT,), ["util", "wait"])
    assert row.metrics == {"util": None, "wait": 7.0}  # run.json's, read as declared now
    assert row.missing == {"util": "exp-1's experiment file does not declare it"}
    both = row_of(done, (UTIL, WAIT), ["util", "wait"])  # declared otherwise: read again
    assert both.metrics == {"util": 0.5, "wait": 1.25} and both.missing == {}


def test_a_run_already_done_reads_the_earlier_run_s_folder_through_its_link(
    tmp_path: Path,
) -> None:
    origin = run("exp-1", 0, {"rho": 0.5}, tmp_path)
    write_folder(origin, {"s.json": '{"wait": 2}'})
    reused = run("exp-2", 0, {"rho": 0.5}, tmp_path, seq=2)
    Path(reused.results_path).parent.mkdir(parents=True)
    Path(reused.results_path).symlink_to(Path("..") / "exp-1" / origin.id)
    assert row_of(reused, (WAIT,), ["wait"]).metrics == {"wait": 2}


def test_runs_without_their_metrics_say_why(tmp_path: Path) -> None:
    going = run("exp-1", 0, {}, tmp_path, state=RunState.RUNNING)
    gone = run("exp-1", 1, {}, tmp_path)  # its folder deleted by hand
    broken = run("exp-1", 2, {}, tmp_path, state=RunState.FAILED)
    write_folder(broken, {"s.json": "{", "output.log": ""})
    names = ["wait", "util"]
    why = "the run is running: its metrics are read when it ends"
    assert row_of(going, (WAIT, UTIL), names).missing == dict.fromkeys(names, why)
    assert row_of(gone, (WAIT,), ["wait"]).missing == {
        "wait": f"its results folder {gone.results_path} is not there"}  # fmt: skip
    row = row_of(broken, (WAIT, UTIL), names)
    assert row.metrics == {"wait": None, "util": None}
    assert row.missing == {
        "wait": "s.json: not JSON (Expecting property name enclosed in double quotes at line 1 "
                "column 2)",
        "util": "no line of output.log matches 'util (\\\\S+)'",
    }  # fmt: skip


def test_rows_reads_each_run_with_its_own_submission_s_declaration(tmp_path: Path) -> None:
    a = run("exp-1", 0, {"rho": 0.5}, tmp_path)
    b = run("exp-2", 0, {"rho": 0.5}, tmp_path, seq=2)
    write_folder(a, {"s.json": '{"wait": 1}', "output.log": "util 0.25\n"})
    write_folder(b, {"s.json": '{"wait": 2}', "output.log": "util 0.75\n"})
    subs = [submission("exp-1", 1), submission("exp-2", 2)]
    declared = {"exp-1": (WAIT,), "exp-2": (UTIL,)}
    chosen = select("exp", [a, b], subs, declared.__getitem__)
    got = rows(chosen, chosen.runs)
    assert [r.metrics for r in got] == [{"util": None, "wait": 1}, {"util": 0.75, "wait": None}]
