"""`convoy run`'s progress: the numbers (RunsProgress), plain lines off a terminal, and a
status line on one that other writes to the terminal clear first and draw again after."""

from __future__ import annotations

import io
from typing import Any

from convoy.cli.progress import RunsProgress, StatusLine
from convoy.cli.run import Printer
from convoy.client import Run
from convoy.client.convert import run_of
from convoy.v1 import coordinator_pb2 as pb


def running(run_id: str, percent: float | None = None, started: float = 100.0) -> Run:
    return _run(id=run_id, state="running", started_at=started, progress=percent or 0.0,
                  has_progress=percent is not None)  # fmt: skip


def test_a_plain_line_is_said_each_time_a_percent_enters_another_tenth() -> None:
    p = RunsProgress("e-1", 2)
    said = [line for pct in (5, 7, 12, 12.5, 19, 20, 100) for line in p.seen(running("e-1.0", pct))]
    assert said == ["convoy: e-1.0 5%", "convoy: e-1.0 12%", "convoy: e-1.0 20%",
                    "convoy: e-1.0 100%"]  # fmt: skip
    assert p.seen(running("e-1.1")) == []  # running, no percent: nothing to say


def test_the_status_line_has_the_bar_the_runs_percents_and_the_time_left() -> None:
    p = RunsProgress("e-1", 4)
    p.seen(_run(id="e-1.0", state="succeeded", started_at=100.0))
    p.seen(running("e-1.1", 50.0, started=100.0))
    p.seen(running("e-1.2", 50.0, started=110.0))
    p.seen(_run(id="e-1.3", state="queued"))
    assert p.fraction() == 0.5  # one ended, two half way, of four
    text = p.text(now=160.0, width=200)
    assert text == (
        "convoy: e-1 ██████████░░░░░░░░░░ 1/4 done, 2 running, about 1m00s left: "
        "e-1.1 50%, e-1.2 50%"
    )
    assert len(p.text(now=160.0, width=30)) == 30  # cut to the terminal's width


def test_the_pace_is_from_the_first_run_to_start_even_once_it_ended() -> None:
    p = RunsProgress("e-1", 2)
    p.seen(running("e-1.0", 50.0, started=100.0))
    p.seen(_run(id="e-1.0", state="succeeded", started_at=100.0, ended_at=140.0))
    p.seen(running("e-1.1", None, started=140.0))
    assert p.fraction() == 0.5
    assert p.left_s(now=160.0) == 60.0  # 60 s for the first half: as much again


def test_runs_already_done_count_as_done_but_not_toward_the_pace() -> None:
    p = RunsProgress("e-2", 3)
    p.seen(_run(id="e-2.0", state="succeeded", reused_from="e-1.0", started_at=5.0))
    p.seen(_run(id="e-2.1", state="succeeded", reused_from="e-1.1"))
    p.seen(running("e-2.2", 25.0))
    assert p.fraction() == 0.25
    assert "2/3 done, 1 running" in p.text(now=130.0, width=200)
    assert p.first_start == 100.0  # not the reused runs' (theirs were the earlier runs')


def test_a_run_that_stops_running_leaves_the_line() -> None:
    p = RunsProgress("e-1", 1)
    p.seen(running("e-1.0", 80.0))
    p.seen(_run(id="e-1.0", state="queued"))  # retried
    assert p.percent == {} and p.running == {} and p.left_s(200.0) is None


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_output_on_the_terminal_clears_the_status_line_first_and_draws_it_after() -> None:
    term = Tty()
    printer = Printer(term, quiet=False, err=term)
    line = printer.status_line()
    assert isinstance(line, StatusLine)
    line.set("convoy: e-1 50%")
    printer.output("e-1.0", b"hello\n")
    printer.status("convoy: [1/2] e-1.0 succeeded")
    printer.end_status_line()
    clear = "\r\x1b[K"
    assert term.getvalue() == (
        f"{clear}convoy: e-1 50%"
        f"{clear}[e-1.0] hello\n{clear}convoy: e-1 50%"
        f"{clear}convoy: [1/2] e-1.0 succeeded\n{clear}convoy: e-1 50%"
        f"{clear}"
    )


def test_off_a_terminal_there_is_no_status_line() -> None:
    printer = Printer(io.StringIO(), quiet=False, err=io.StringIO())
    assert printer.status_line() is None


def _run(**fields: Any) -> Run:
    """A run as the client makes it of the coordinator's Run message."""
    return run_of(pb.Run(**fields))
