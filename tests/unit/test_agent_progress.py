"""The agent reads a run's `progress:` pattern beside its output log (agent/progress.py), and
reports the percent on WatchAttempts."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

import convoy.agent.attempts as attempts_module
import convoy.agent.progress as progress_module
from convoy.agent.progress import MAX_LINE, ProgressReader
from convoy.v1 import agent_pb2 as pb

from .test_agent_watch import _agent, _events, request

PATTERN = r"\((?P<percent>[\d.]+)%\)"


def test_the_last_match_wins_and_percent_is_clamped() -> None:
    r = ProgressReader(PATTERN)
    assert r.feed(b"start\n(10%)\nwork\n(45%) and (46%)\nmore\n") == 46.0
    assert r.feed(b"(250%)\n") == 100.0
    assert r.feed(b"no percent here\n") is None  # nothing new: the caller keeps 100


def test_a_line_still_being_written_waits_for_its_end() -> None:
    """ "(4" of a "(45%)" still to come is not matched; once the line ends, it is, whole."""
    r = ProgressReader(PATTERN)
    assert r.feed(b"(10%)\n(4") == 10.0
    assert r.feed(b"5%)") is None
    assert r.feed(b"\n") == 45.0


def test_a_carriage_return_ends_a_line_as_a_redrawn_bar_does() -> None:
    r = ProgressReader(r"(?P<percent>\d+)%\|")
    assert r.feed(b"\r 12%|##   \r 13%|###  \r 14%|") == 13.0


def test_a_percent_that_is_not_a_number_is_passed_over() -> None:
    r = ProgressReader(r"at (?P<percent>\S+)%")
    assert r.feed(b"at 30%\nat nan%\nat x%\n") == 30.0


def test_a_long_line_is_matched_on_its_start_only() -> None:
    r = ProgressReader(PATTERN)
    assert r.feed(b"(20%)" + b"x" * (MAX_LINE + 10) + b"(90%)\n") == 20.0
    r = ProgressReader(PATTERN)
    assert r.feed(b"y" * (2 * MAX_LINE)) is None
    assert len(r.partial) == MAX_LINE  # what is kept of a line is bounded
    assert r.feed(b"(70%)\n") is None  # past MAX_LINE: not looked at


def test_look_reads_only_what_was_appended(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(b"(10%)\n")
    r = ProgressReader(PATTERN)
    assert r.look(log) == 10.0
    assert r.look(log) is None  # nothing new
    with log.open("ab") as f:
        f.write(b"(60%)\n")
    assert r.look(log) == 60.0
    assert r.offset == log.stat().st_size


def test_a_log_cut_short_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(b"(10%)\n(20%)\n")
    r = ProgressReader(PATTERN)
    assert r.look(log) == 20.0
    log.write_bytes(b"(5%)\n")
    assert r.look(log) == 5.0


def test_a_flood_is_read_from_its_newest_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than READ_AT_MOST appended since the last look: only the newest READ_AT_MOST bytes
    are read, and the line they begin inside of is not taken for a whole one."""
    monkeypatch.setattr(progress_module, "READ_AT_MOST", 64)
    log = tmp_path / "output.log"
    log.write_bytes(b"(30%)\n" + b"z" * 100 + b"(99%)\nnothing\n")  # the last 64: z * 50...
    r = ProgressReader(PATTERN)
    assert r.look(log) is None  # (30%) is not read; (99%) is in a line cut at its start
    with log.open("ab") as f:
        f.write(b"(40%)\n")
    assert r.look(log) == 40.0


def test_a_log_replaced_by_a_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"(77%)\n")
    log = tmp_path / "output.log"
    os.symlink(target, log)
    assert ProgressReader(PATTERN).look(log) is None
    assert ProgressReader(PATTERN).look(tmp_path / "gone") is None


def test_watch_reports_a_running_attempt_s_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt started with a progress pattern: its percent comes on WatchAttempts as a
    change of the running attempt; one without a pattern never has one."""
    monkeypatch.setattr(attempts_module, "PROGRESS_S", 0.02)

    async def main() -> None:
        attempts, server, stub = await _agent(tmp_path)
        try:
            with_pattern = request(0, CONVOY_FAKE_DURATION="1.5",
                                   CONVOY_FAKE_OUTPUT="go\n(10%)\nmid\n(50%)\nend")  # fmt: skip
            stream = _events(stub, "c1")
            await anext(stream)  # the snapshot
            await attempts.start(replace(with_pattern, progress=PATTERN))
            await attempts.start(request(1, CONVOY_FAKE_DURATION="0.3",
                                         CONVOY_FAKE_OUTPUT="(20%)\n(30%)"))  # fmt: skip
            seen: dict[str, list[float]] = {}
            async for ev in stream:
                if ev.WhichOneof("kind") != "changed":
                    continue
                a = ev.changed
                if a.has_progress:
                    assert a.state == pb.ATTEMPT_RUNNING or a.attempt_id == "r.00-a1"
                    seen.setdefault(a.attempt_id, []).append(a.progress)
                if a.attempt_id == "r.00-a1" and a.state == pb.ATTEMPT_EXITED:
                    break
            assert seen["r.00-a1"][-1] == 50.0
            assert set(seen["r.00-a1"]) <= {10.0, 50.0}
            assert "r.01-a1" not in seen
            status = attempts.get("r.00-a1").status
            assert status.progress == 50.0  # kept with its status (status.json)
        finally:
            await server.stop(0)
            await attempts.close()

    asyncio.run(asyncio.wait_for(main(), 30))
