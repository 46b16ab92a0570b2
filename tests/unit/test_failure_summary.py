"""The end-of-sweep summary's failures, grouped by the last line of each run's output."""

from __future__ import annotations

from pathlib import Path

from convoy.cli.failures import failure_lines, grouped, last_line
from convoy.v1 import coordinator_pb2 as pb


def test_runs_that_ended_the_same_way_are_one_line_largest_first() -> None:
    failed = [(f"q-1.{i:02d}", "ERROR: bad value") for i in range(7)] + [("q-1.09", "Killed")]
    assert grouped(failed) == [
        "7 runs failed the same way: ERROR: bad value (q-1.00, q-1.01, q-1.02, q-1.03, q-1.04 "
        "and 2 more)",
        "q-1.09 failed: Killed",
    ]


def test_the_last_line_is_the_last_that_is_not_blank(tmp_path: Path) -> None:
    (tmp_path / "output.log").write_bytes(b"x\n" * 10000 + b"Traceback\nValueError: rho\n\n  \n")
    assert last_line(str(tmp_path)) == "ValueError: rho"
    assert last_line(str(tmp_path / "none")) == ""


def test_a_run_without_output_is_grouped_by_its_code_and_reason(tmp_path: Path) -> None:
    runs = [
        pb.Run(id="q-1.00", state="failed", code="timeout", reason="ran past 5s",
               results_path=str(tmp_path / "a")),
        pb.Run(id="q-1.01", state="succeeded", results_path=str(tmp_path / "b")),
    ]  # fmt: skip
    assert failure_lines(runs) == ["q-1.00 failed: [timeout] ran past 5s"]
