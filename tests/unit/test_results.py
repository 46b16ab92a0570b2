"""coordinator.results.folders: receiving result files, committing, run.json, runs.csv."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from convoy.coordinator.results.folders import (
    FilePiece,
    ResultError,
    RunResult,
    output_attempt,
    record_unstarted,
    run_json,
    write_runs_csv,
)
from convoy.coordinator.runs.records import RunRecord
from convoy.runjson import iso
from convoy.spec import Resources
from convoy.states import Reason, RunState

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def make_run(tmp_path: Path, index: int = 0, **changes: Any) -> RunRecord:
    sub = "exp-1"
    run_id = f"{sub}.{index}"
    base = RunRecord(
        id=run_id,
        submission_id=sub,
        experiment="exp",
        index=index,
        params={"rate": 0.5, "rep": index},
        command="./sim --rate ${rate}",
        env={"A": "1"},
        image="convoy/python:3.11",
        resources=Resources(cpus=0.5, memory_bytes=256 * 1024**2, gpus=0),
        retries=1,
        timeout_seconds=0.0,
        network="none",
        outputs=(),
        revision="abc123",
        results_path=str(tmp_path / "results" / "exp" / sub / run_id),
        priority=0,
        seq=1,
    )
    return replace(base, **changes)


def pieces_of(
    files: Iterable[tuple[str, bytes]], chunk: int = 4, mode: int = 0o644
) -> list[FilePiece]:
    """Split files into pieces the way an agent streams them: path only on the first piece."""
    out: list[FilePiece] = []
    for path, data in files:
        digest = hashlib.sha256(data).hexdigest()
        chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1
            out.append(
                FilePiece(
                    path=path if i == 0 else "",
                    mode=mode,
                    data=c,
                    last=last,
                    sha256=digest if last else "",
                )
            )
    return out


async def agen(pieces: Iterable[FilePiece]) -> AsyncIterator[FilePiece]:
    for p in pieces:
        yield p


def receive(result: RunResult, pieces: Iterable[FilePiece], announced: int | None = None) -> None:
    asyncio.run(result.receive(agen(pieces), announced))


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def finished(run: RunRecord) -> RunRecord:
    return replace(
        run, state=RunState.SUCCEEDED, exit_code=0, host="local", attempt=1,
        created_at=T0, started_at=T0 + 1, ended_at=T0 + 3.5,
    )  # fmt: skip


def committed(
    run: RunRecord, log: bytes, files: Iterable[tuple[str, bytes]], ended: RunRecord
) -> Path:
    """The run's results folder after an attempt that printed `log` and wrote `files`."""
    r = RunResult(run)
    r.open()
    with r.log_file() as f:
        f.write(log)
    receive(r, pieces_of(files))
    r.commit(ended)
    return Path(run.results_path)


# ---- receive and commit ----------------------------------------------------------------------


def test_receive_writes_files_with_checksums(tmp_path: Path) -> None:
    """Received pieces are joined into files in staging and recorded with size and sha256."""
    run = make_run(tmp_path)
    data = {"a.txt": b"hello world", "sub/dir/b.bin": bytes(range(256)), "empty": b""}
    r = RunResult(run)
    r.open()
    receive(r, pieces_of(data.items()))
    for path, content in data.items():
        assert (r.staging / path).read_bytes() == content
        assert r.files[path] == {
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }


def test_commit_moves_files_beside_run_json_and_log(tmp_path: Path) -> None:
    """After commit the run folder holds output.log, run.json and the results at their paths."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    with r.log_file() as log:
        log.write(b"line 1\nline 2\n")
    receive(r, pieces_of([("out/result.csv", b"x,y\n1,2\n"), ("top.txt", b"top")]))
    r.commit(finished(run))
    final = Path(run.results_path)
    assert files_under(final) == {"output.log", "run.json", "out/result.csv", "top.txt"}
    assert (final / "output.log").read_bytes() == b"line 1\nline 2\n"
    assert (final / "out" / "result.csv").read_bytes() == b"x,y\n1,2\n"
    assert not r.staging.exists()
    body = json.loads((final / "run.json").read_text())
    assert body["files"]["top.txt"] == {"size": 3, "sha256": hashlib.sha256(b"top").hexdigest()}
    assert body["state"] == "succeeded"


def test_a_later_end_rewrites_run_json_and_keeps_the_earlier_attempt_s_files(
    tmp_path: Path,
) -> None:
    """A failed attempt's results stay when its retry is cancelled before it starts; only
    run.json changes, to the run's final state, still listing those files."""
    run = make_run(tmp_path)
    final = committed(
        run,
        b"attempt 1\n",
        [("partial.csv", b"1,2\n")],
        replace(finished(run), state=RunState.FAILED, exit_code=3),
    )
    cancelled = replace(finished(run), state=RunState.CANCELLED, exit_code=3, attempt=1)
    record_unstarted(cancelled)
    assert files_under(final) == {"output.log", "run.json", "partial.csv"}
    assert (final / "output.log").read_bytes() == b"attempt 1\n"
    body = json.loads((final / "run.json").read_text())
    assert body["state"] == "cancelled"
    assert set(body["files"]) == {"partial.csv"}
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no temporary left


def test_run_json_says_which_attempt_output_log_is_of(tmp_path: Path) -> None:
    """output_attempt names the attempt whose output output.log holds: the committed one, the
    earlier one still there after a retry that never started ended the run, none (0) in a
    folder made for a run that never started; a run.json written before the field counts as
    its own attempt's when that attempt started."""
    run = make_run(tmp_path)
    final = committed(run, b"attempt 1\n", [], replace(finished(run), state=RunState.FAILED))
    assert json.loads((final / "run.json").read_text())["output_attempt"] == 1
    retry_failed = replace(finished(run), state=RunState.FAILED, attempt=2, started_at=0.0)
    record_unstarted(retry_failed)
    body = json.loads((final / "run.json").read_text())
    assert (body["attempt"], body["output_attempt"]) == (2, 1)
    assert (final / "output.log").read_bytes() == b"attempt 1\n"

    never = make_run(tmp_path, index=1)
    record_unstarted(replace(never, state=RunState.CANCELLED, attempt=0))
    assert json.loads((Path(never.results_path) / "run.json").read_text())["output_attempt"] == 0

    assert output_attempt({"attempt": 3, "started_at": "2026-01-01T00:00:00Z"}) == 3
    assert output_attempt({"attempt": 3, "started_at": None}) == 0


def test_receive_keeps_file_mode(tmp_path: Path) -> None:
    """An executable result stays executable (and always owner-readable/writable)."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    receive(r, pieces_of([("tool.sh", b"#!/bin/sh\n")], mode=0o100755))
    receive(r, pieces_of([("ro.txt", b"ro")], mode=0o100444))
    assert (r.staging / "tool.sh").stat().st_mode & 0o777 == 0o755
    assert (r.staging / "ro.txt").stat().st_mode & 0o777 == 0o644


def test_a_checksum_mismatch_leaves_that_file_out_and_the_others_in(tmp_path: Path) -> None:
    """A file whose bytes do not match its sha256 is removed and said (the collector fetches
    again); the files around it are kept."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    bad = pieces_of([("a.txt", b"hello world")])
    bad[-1] = replace(bad[-1], sha256=hashlib.sha256(b"something else").hexdigest())
    receive(r, pieces_of([("before", b"1")]) + bad + pieces_of([("after", b"2")]))
    assert set(r.files) == {"before", "after"} and r.mismatched == {"a.txt"}
    assert "checksum did not match" in r.left_out["a.txt"]
    assert files_under(r.staging) == {"before", "after"}


def test_cut_short_raises(tmp_path: Path) -> None:
    """A stream that ends before a file's last piece raises ResultError."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    with pytest.raises(ResultError, match="cut short"):
        receive(r, pieces_of([("a.txt", b"hello world")])[:-1])


def test_new_file_before_last_piece_raises(tmp_path: Path) -> None:
    """A new file starting before the previous one ended raises ResultError."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    first = pieces_of([("a.txt", b"hello world")])[:-1]
    second = pieces_of([("b.txt", b"b")])
    with pytest.raises(ResultError):
        receive(r, first + second)


def test_piece_without_file_raises(tmp_path: Path) -> None:
    """A piece with no path when no file is open raises ResultError."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    with pytest.raises(ResultError):
        receive(r, [FilePiece(path="", mode=0o644, data=b"x", last=True, sha256="")])


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "../../../../tmp/evil"])
def test_unsafe_path_is_refused_and_writes_nothing_outside(tmp_path: Path, path: str) -> None:
    """A result path leaving the run is refused and said, writes nothing outside staging, and
    the genuine files sent with it are kept (the whole transfer was dropped before)."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    before = {p for p in tmp_path.rglob("*")}
    receive(r, pieces_of([("good.txt", b"genuine"), (path, b"evil" * 9), ("z", b"z")]))
    after = {p for p in tmp_path.rglob("*")}
    assert all(p.is_relative_to(r.staging) for p in after - before)
    assert not Path("/tmp/evil").exists() or Path("/tmp/evil").read_bytes() != b"evil"
    assert set(r.files) == {"good.txt", "z"}
    assert "not a relative path inside the run" in r.left_out[path]


def test_a_host_sending_more_than_it_announced_is_stopped_there(tmp_path: Path) -> None:
    """A compromised host announced 0 bytes and sent 300 MiB, all accepted. Now the file that
    overflows the announced size is left out, said, and nothing after it is read."""
    r = RunResult(make_run(tmp_path))
    r.open()
    read = []

    async def pieces() -> AsyncIterator[FilePiece]:
        for p in pieces_of([("a", b"12345"), ("big", b"x" * 100), ("c", b"c")]):
            read.append(p)
            yield p

    asyncio.run(r.receive(pieces(), announced=10))
    assert set(r.files) == {"a"} and files_under(r.staging) == {"a"}
    assert "sent more than the 10 bytes of results it announced" in r.left_out["big"]
    assert len(read) < len(pieces_of([("a", b"12345"), ("big", b"x" * 100)]))  # stopped


def test_second_commit_replaces_first_wholly(tmp_path: Path) -> None:
    """A later attempt's commit replaces the whole folder: files of the first attempt are gone."""
    run1 = make_run(tmp_path, attempt=1)
    r1 = RunResult(run1)
    r1.open()
    with r1.log_file() as log:
        log.write(b"attempt 1\n")
    receive(r1, pieces_of([("only_first.txt", b"1"), ("both.txt", b"first")]))
    r1.commit(finished(run1))

    run2 = make_run(tmp_path, attempt=2)
    r2 = RunResult(run2)
    assert r2.staging != r1.staging
    r2.open()
    with r2.log_file() as log:
        log.write(b"attempt 2\n")
    receive(r2, pieces_of([("both.txt", b"second")]))
    r2.commit(replace(finished(run2), attempt=2))

    final = Path(run2.results_path)
    assert files_under(final) == {"output.log", "run.json", "both.txt"}
    assert (final / "both.txt").read_bytes() == b"second"
    assert (final / "output.log").read_bytes() == b"attempt 2\n"
    assert json.loads((final / "run.json").read_text())["attempt"] == 2
    leftovers = sorted(p.name for p in final.parent.iterdir())
    assert leftovers == [final.name]


def test_result_named_output_log_does_not_clobber_log(tmp_path: Path) -> None:
    """Result files named output.log or run.json are kept aside; the real log and run.json win."""
    run = make_run(tmp_path)
    final = committed(
        run,
        b"the real log\n",
        [("output.log", b"the run's own file"), ("run.json", b"not json")],
        finished(run),
    )
    assert (final / "output.log").read_bytes() == b"the real log\n"
    assert json.loads((final / "run.json").read_text())["run"] == run.id
    assert (final / "output.log.result").read_bytes() == b"the run's own file"
    assert (final / "run.json.result").read_bytes() == b"not json"


def test_result_folders_named_run_json_or_output_log_step_aside_with_their_files(
    tmp_path: Path,
) -> None:
    """`mkdir run.json; touch run.json/x` made commit fail (KeyError): the run failed with a
    coordinator error and its results were discarded. A result already named
    output.log.result is not overwritten by the one stepping aside."""
    run = make_run(tmp_path)
    final = committed(
        run, b"log",
        [("run.json/x", b"x"), ("output.log", b"own"), ("output.log.result", b"other")],
        finished(run),
    )  # fmt: skip
    assert (final / "run.json.result" / "x").read_bytes() == b"x"
    assert (final / "output.log.result").read_bytes() == b"other"
    assert (final / "output.log.result1").read_bytes() == b"own"
    files = json.loads((final / "run.json").read_text())["files"]
    assert sorted(files) == ["output.log.result", "output.log.result1", "run.json.result/x"]


def test_others_never_get_write_access_to_a_result(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    receive(r, pieces_of([("open.txt", b"x")], mode=0o100777))
    assert (r.staging / "open.txt").stat().st_mode & 0o777 == 0o755


def test_nested_output_log_is_kept_at_its_path(tmp_path: Path) -> None:
    """A result at sub/output.log is not confused with the run's log."""
    run = make_run(tmp_path)
    final = committed(run, b"log", [("sub/output.log", b"mine")], finished(run))
    assert (final / "output.log").read_bytes() == b"log"
    assert (final / "sub" / "output.log").read_bytes() == b"mine"


def test_result_folder_named_files_commits(tmp_path: Path) -> None:
    """A run whose results include a top-level folder called 'files' commits normally."""
    run = make_run(tmp_path)
    final = committed(
        run, b"log", [("files/data.txt", b"data"), ("other.txt", b"o")], finished(run)
    )
    assert (final / "files" / "data.txt").read_bytes() == b"data"
    assert (final / "other.txt").read_bytes() == b"o"


def test_commit_without_files_or_log(tmp_path: Path) -> None:
    """A run with no results still commits a folder with run.json and no files key entries."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    r.commit(finished(run))
    final = Path(run.results_path)
    assert files_under(final) == {"run.json"}
    assert json.loads((final / "run.json").read_text())["files"] == {}


def test_discard_removes_staging(tmp_path: Path) -> None:
    """discard removes the staging folder and leaves no run folder."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    receive(r, pieces_of([("a.txt", b"a")]))
    r.discard()
    assert not r.staging.exists()
    assert not Path(run.results_path).exists()


def test_open_clears_old_staging(tmp_path: Path) -> None:
    """Opening again starts from an empty staging folder."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    receive(r, pieces_of([("stale.txt", b"old")]))
    r2 = RunResult(run)
    r2.open()
    assert list(r2.staging.iterdir()) == []


# ---- run.json --------------------------------------------------------------------------------

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_run_json_fields(tmp_path: Path) -> None:
    """run.json carries the run's identity, params, state, exit code, host, image and times."""
    run = finished(make_run(tmp_path))
    body = run_json(run)
    for key in (
        "run", "experiment", "submission", "params", "state", "exit_code",
        "host", "image", "started_at", "ended_at",
    ):  # fmt: skip
        assert key in body, key
    assert body["run"] == "exp-1.0"
    assert body["experiment"] == "exp"
    assert body["submission"] == "exp-1"
    assert body["params"] == {"rate": 0.5, "rep": 0}
    assert body["state"] == "succeeded"
    assert body["exit_code"] == 0
    assert body["host"] == "local"
    assert body["image"] == "convoy/python:3.11"
    assert body["started_at"] == "2023-11-14T22:13:21.000Z"
    assert body["ended_at"] == "2023-11-14T22:13:23.500Z"
    assert ISO_Z.match(body["created_at"])
    assert body["duration_s"] == 2.5
    assert "files" not in body
    json.dumps(body)  # serialisable as is


def test_run_json_unset_values_are_null(tmp_path: Path) -> None:
    """A queued run's host, exit code, times and duration are null in run.json."""
    body = run_json(make_run(tmp_path))
    assert body["host"] is None
    assert body["exit_code"] is None
    assert body["started_at"] is None and body["ended_at"] is None
    assert body["duration_s"] is None


def test_run_json_argv_command_is_a_list(tmp_path: Path) -> None:
    """An argv command is written as a JSON list."""
    body = run_json(make_run(tmp_path, command=("./sim", "-r", "1")))
    assert body["command"] == ["./sim", "-r", "1"]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0.0, None),
        (1.0, "1970-01-01T00:00:01.000Z"),
        (T0 + 0.25, "2023-11-14T22:13:20.250Z"),
    ],
)
def test_iso(ts: float, expected: str | None) -> None:
    """iso() gives ISO 8601 UTC with milliseconds ending in 'Z', or None for an unset time."""
    assert iso(ts) == expected


# ---- runs.csv --------------------------------------------------------------------------------


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_write_runs_csv_rows_sorted_by_index(tmp_path: Path) -> None:
    """One row per run, sorted by index, with blank exit code when unknown."""
    runs = [
        replace(
            finished(make_run(tmp_path, 2)),
            exit_code=3,
            state=RunState.FAILED,
            code=Reason.EXIT_CODE,
        ),
        make_run(tmp_path, 0),
        replace(finished(make_run(tmp_path, 1)), code=Reason.EXIT_CODE),
    ]
    path = tmp_path / "out" / "runs.csv"
    write_runs_csv(path, runs)
    rows = read_csv(path)
    header = rows[0]
    assert header == [
        "run", "index", "param.rate", "param.rep", "state", "code", "exit_code", "duration_s",
        "host", "attempt",
    ]  # fmt: skip
    body = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    assert [r["index"] for r in body] == ["0", "1", "2"]
    assert [r["run"] for r in body] == ["exp-1.0", "exp-1.1", "exp-1.2"]
    assert [r["exit_code"] for r in body] == ["", "0", "3"]
    assert [r["state"] for r in body] == ["queued", "succeeded", "failed"]
    assert [r["code"] for r in body] == ["", "exit_code", "exit_code"]
    assert [r["duration_s"] for r in body] == ["", "2.500", "2.500"]
    assert [r["param.rep"] for r in body] == ["0", "1", "2"]
    assert not (tmp_path / "out" / "runs.csv.tmp").exists()


def test_write_runs_csv_param_columns_first_seen_order(tmp_path: Path) -> None:
    """Parameter columns appear in first-seen order; a run lacking one gets a blank cell."""
    runs = [
        make_run(tmp_path, 1, params={"b": 1, "a": 2}),
        make_run(tmp_path, 0, params={"c": "x", "b": 3}),
    ]
    path = tmp_path / "runs.csv"
    write_runs_csv(path, runs)
    rows = read_csv(path)
    assert rows[0][2:5] == ["param.b", "param.a", "param.c"]
    assert rows[1][:5] == ["exp-1.0", "0", "3", "", "x"]
    assert rows[2][:5] == ["exp-1.1", "1", "1", "2", ""]


def test_runs_csv_parameters_named_as_convoy_s_columns_keep_their_own(tmp_path: Path) -> None:
    """A parameter named `run` (ns-3's RngRun), `state` or `index` is a column of its own,
    and convoy's columns of those names still hold convoy's values."""
    runs = [
        replace(finished(make_run(tmp_path, i)), params={"run": 7 + i, "state": s, "index": 9})
        for i, s in enumerate(["idle", "busy"])
    ]
    path = tmp_path / "runs.csv"
    write_runs_csv(path, runs)
    rows = read_csv(path)
    header = rows[0]
    assert header == [
        "run", "index", "param.run", "param.state", "param.index", "state", "code", "exit_code",
        "duration_s", "host", "attempt",
    ]  # fmt: skip
    assert len(set(header)) == len(header)
    body = list(csv.DictReader(path.open()))
    assert [(r["run"], r["index"], r["state"]) for r in body] == [
        ("exp-1.0", "0", "succeeded"),
        ("exp-1.1", "1", "succeeded"),
    ]
    assert [(r["param.run"], r["param.state"], r["param.index"]) for r in body] == [
        ("7", "idle", "9"),
        ("8", "busy", "9"),
    ]


def test_write_runs_csv_replaces_previous(tmp_path: Path) -> None:
    """Writing again replaces the file rather than appending."""
    path = tmp_path / "runs.csv"
    write_runs_csv(path, [make_run(tmp_path, 0), make_run(tmp_path, 1)])
    write_runs_csv(path, [make_run(tmp_path, 0)])
    assert len(read_csv(path)) == 2


# ---- what did not come back ------------------------------------------------------------------


def left(path: str, why: str) -> FilePiece:
    """The agent's chunk for a result it could not send."""
    return FilePiece(path=path, mode=0, data=b"", last=True, sha256="", left_out=why)


def test_results_left_out_by_the_agent_are_named_in_run_json_with_why(tmp_path: Path) -> None:
    """The agent left a result out (unreadable, a name not UTF-8, a folder it could not look
    into) and said so only in its own log: run.json listed the rest as if that were all."""
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    receive(r, [
        left("d/", "a folder the run made unreadable: what it holds is not collected"),
        *pieces_of([("a.txt", b"fine")]),
        left("out", "the run made it unreadable"),
        left("bad\\xff", "its name is not UTF-8"),
    ])  # fmt: skip
    r.commit(finished(run))
    meta = json.loads((Path(run.results_path) / "run.json").read_text())
    assert list(meta["files"]) == ["a.txt"]
    assert meta["not_collected"] == {
        "bad\\xff": "its name is not UTF-8",
        "d/": "a folder the run made unreadable: what it holds is not collected",
        "out": "the run made it unreadable",
    }
    assert files_under(Path(run.results_path)) == {"a.txt", "run.json"}


def test_nothing_missing_is_an_empty_not_collected(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    final = committed(run, b"log", [("a", b"a")], finished(run))
    assert json.loads((final / "run.json").read_text())["not_collected"] == {}


def test_declared_outputs_no_result_matches_are_named(tmp_path: Path) -> None:
    """outputs: [summary.csv] and the run wrote summary.txt: nothing said the file never came.
    An output a left-out result matches is named by that result; one that a folder the run made
    unreadable may hold is not named (it may be there)."""
    outputs = ("summary.csv", "plots/", "*.dat", "logs", "hidden/x", "other/y")
    run = make_run(tmp_path, outputs=outputs)
    r = RunResult(run)
    r.open()
    receive(r, [*pieces_of([("plots/a.png", b"png")]), left("logs/x", "the run made it "
            "unreadable"), left("hidden/", "a folder the run made unreadable")])  # fmt: skip
    r.commit(finished(run))
    missed = json.loads((Path(run.results_path) / "run.json").read_text())["not_collected"]
    none = "declared in outputs: the run created or changed no file that matches"
    assert missed == {
        "hidden/": "a folder the run made unreadable",
        "logs/x": "the run made it unreadable",
        "other/y": none,
        "summary.csv": none,
    }
    bare = make_run(tmp_path, index=1, outputs=outputs)
    final = committed(bare, b"", [("plots/a.png", b"png")], finished(bare))
    missed = json.loads((final / "run.json").read_text())["not_collected"]
    assert missed == dict.fromkeys(["*.dat", "hidden/x", "logs", "other/y", "summary.csv"], none)


def test_a_left_out_result_named_run_json_steps_aside_like_a_sent_one(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    receive(r, [left("run.json", "the run made it unreadable"), left("output.log/", "hidden")])
    r.commit(finished(run))
    missed = json.loads((Path(run.results_path) / "run.json").read_text())["not_collected"]
    assert missed == {"output.log.result/": "hidden", "run.json.result": "the run made it "
                      "unreadable"}  # fmt: skip


def test_an_output_the_run_replaced_is_named_and_survives_a_later_unstarted_end(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path)
    r = RunResult(run)
    r.open()
    r.output_missing = "the run replaced its output log with a symbolic link"
    receive(r, [left("./", "a folder the run made unreadable")])
    r.commit(finished(run))
    record_unstarted(replace(finished(run), state=RunState.CANCELLED, attempt=2))
    missed = json.loads((Path(run.results_path) / "run.json").read_text())["not_collected"]
    assert missed == {
        "./": "a folder the run made unreadable",
        "output.log": "the run replaced its output log with a symbolic link",
    }


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "/"])
def test_a_left_out_name_outside_the_run_is_refused(tmp_path: Path, path: str) -> None:
    r = RunResult(make_run(tmp_path))
    r.open()
    receive(r, [left(path, "why")])
    assert "refusing result path" in r.left_out[path]


def test_a_left_out_chunk_inside_a_file_is_refused(tmp_path: Path) -> None:
    r = RunResult(make_run(tmp_path))
    r.open()
    first = pieces_of([("a", b"abcdefgh")])[0]
    with pytest.raises(ResultError, match="ended without its last piece"):
        receive(r, [first, left("b", "why")])


def test_a_run_that_never_started_does_not_say_its_outputs_are_missing(tmp_path: Path) -> None:
    """Cancelled while queued (or its build failed): run.json said every declared output was
    not made, and `convoy run` printed that under the reason the run never ran."""
    run = make_run(tmp_path, outputs=("summary.csv",))
    record_unstarted(replace(run, state=RunState.CANCELLED, reason="cancelled before it started"))
    meta = json.loads((Path(run.results_path) / "run.json").read_text())
    assert meta["not_collected"] == {} and meta["output_attempt"] == 0


def test_two_reasons_for_one_name_are_both_kept(tmp_path: Path) -> None:
    """A declared output named output.log that nothing matched, and an output log the run
    replaced; two names not UTF-8 that print alike."""
    run = make_run(tmp_path, outputs=("output.log",))
    r = RunResult(run)
    r.open()
    r.output_missing = "the run replaced its output log with a symbolic link"
    receive(r, [left("a\\xff", "its name is not UTF-8"), left("a\\xff", "its name is not UTF-8")])
    r.commit(finished(run))
    missed = json.loads((Path(run.results_path) / "run.json").read_text())["not_collected"]
    assert missed == {
        "a\\xff": "its name is not UTF-8; its name is not UTF-8",
        "output.log": "declared in outputs: the run created or changed no file that matches; "
        "the run replaced its output log with a symbolic link",
    }


def test_a_commit_that_cannot_take_the_place_keeps_the_earlier_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier attempt's folder was moved aside, then the new one could not take its place
    (a full disk): the earlier results stayed in .old-<run> for good, and the run had none."""
    run = make_run(tmp_path)
    final = committed(run, b"first", [("a", b"1")], finished(run))
    real = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(src).name.startswith(".staging-"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    r = RunResult(replace(run, attempt=2))
    r.open()
    receive(r, pieces_of([("a", b"2")]))
    with pytest.raises(OSError, match="No space left"):
        r.commit(replace(finished(run), attempt=2))
    assert (final / "a").read_bytes() == b"1" and (final / "output.log").read_bytes() == b"first"
    assert not final.with_name(f".old-{final.name}").exists()


def test_an_earlier_result_a_crash_left_aside_is_removed_by_the_next_commit(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path)
    aside = Path(run.results_path).with_name(f".old-{Path(run.results_path).name}")
    aside.mkdir(parents=True)
    (aside / "a").write_text("from before the crash")
    committed(run, b"log", [("a", b"new")], finished(run))
    assert not aside.exists()
