"""The logs screen with a fake API: search, the first error of a submission, merged runs, and
scrolling back while lines arrive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Log

from convoy.tui.app import ConvoyApp
from convoy.tui.logs_screen import LogsScreen, lines_of
from convoy.v1 import coordinator_pb2 as pb
from tests.tui_fake import FakeClient

HOME_LINES = 60


def run(index: int, state: str = "succeeded") -> pb.Run:
    return pb.Run(id=f"exp-1.{index:02d}", submission_id="exp-1", experiment="exp", index=index,
                  state=state, params_json=json.dumps({"i": index}))  # fmt: skip


def client() -> FakeClient:
    logs = {
        "exp-1.00": [b"".join(f"line {i} of run 0\n".encode() for i in range(HOME_LINES))],
        "exp-1.01": [b"starting\n", b"computing\n", b"Traceback (most recent call last):\n",
                     b"ValueError: bad input\n"],
        "exp-1.02": [b"never failed\n"],
    }  # fmt: skip
    subs = [pb.Submission(id="exp-1", experiment="exp", total=3)]
    return FakeClient(runs=[run(0), run(1, "failed"), run(2)], submissions=subs, logs=logs)


async def until(pilot: Pilot[None], what: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def open_logs(pilot: Pilot[None], app: ConvoyApp, run_id: str) -> LogsScreen:
    """The logs screen of `run_id`, once the runs list knows it."""
    await until(pilot, lambda: run_id in app.model.rows)
    app.show_logs(run_id)
    await until(pilot, lambda: isinstance(app.screen, LogsScreen))
    assert isinstance(app.screen, LogsScreen)
    return app.screen


def test_search_first_error_and_merged_view() -> None:
    async def scenario() -> None:
        app = ConvoyApp(FakeClient().home, client=client())
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: len(app.model.rows) == 3)
            app.show_logs("exp-1.00")
            await until(pilot, lambda: isinstance(app.screen, LogsScreen))
            logs = app.screen
            assert isinstance(logs, LogsScreen)
            await until(pilot, lambda: len(logs.lines) == HOME_LINES)

            # Search: the next line holding the text, from the top, then the one after.
            assert logs.find("line 4") == 4
            assert logs.find("line 4") == 40
            assert logs.find("no such text") is None
            assert not logs.query_one(Log).auto_scroll  # scrolled to a match: no jumping

            # The first line of the submission's runs matching the error pattern.
            await pilot.press("e")
            await until(pilot, lambda: logs.run_id == "exp-1.01" and len(logs.lines) == 4)
            assert logs.lines[2].startswith("Traceback")

            # Every run of the submission, merged, each line with its run.
            await pilot.press("m")
            await until(pilot, lambda: len(logs.lines) == HOME_LINES + 4 + 1)
            assert "[exp-1.02] never failed" in logs.lines
            assert "[exp-1.01] ValueError: bad input" in logs.lines
            assert all(line.startswith("[exp-1.0") for line in logs.lines)

    asyncio.run(scenario())


def test_a_retry_begins_on_a_line_of_its_own_marked_with_its_attempt() -> None:
    """Attempt 1 ended mid-line: attempt 2's first line is not joined to it, and a line says
    where attempt 2 begins, in the run's view and in the merged one."""
    logs = {"exp-1.00": [(1, b"step 1\nprogress 40%"), (2, b"step 1 again\n"), (2, b"done\n")]}
    fake = FakeClient(runs=[run(0, "running")], submissions=[], logs=logs)

    async def scenario() -> None:
        app = ConvoyApp(fake.home, client=fake)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_logs(pilot, app, "exp-1.00")
            await until(pilot, lambda: len(screen.lines) == 5)
            assert screen.lines == ["step 1", "progress 40%", "[convoy: attempt 2]",
                                    "step 1 again", "done"]  # fmt: skip
            await pilot.press("m")
            await until(pilot, lambda: screen.lines[:1] == ["[exp-1.00] step 1"]
                        and len(screen.lines) == 5)  # fmt: skip
            assert screen.lines[2] == "[exp-1.00] [convoy: attempt 2]"

    asyncio.run(scenario())


def test_the_view_search_and_first_error_count_the_same_rows() -> None:
    """Blank lines and `\\r` progress bars: the log widget shows one row per line (the bar's
    last state, a space for an empty line), the same rows search and the first error count,
    so `e` and `/` land on the line they found."""
    text = b"start\n\nepoch 1\r 50%\r100%\nERROR: boom\r\nform\x0cfeed\nlast"
    assert lines_of(text.decode()) == ["start", " ", "100%", "ERROR: boom", "form feed", "last"]
    fake = FakeClient(runs=[run(0, "failed")], submissions=[], logs={"exp-1.00": [text]})

    async def scenario() -> None:
        app = ConvoyApp(fake.home, client=fake)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_logs(pilot, app, "exp-1.00")
            await until(pilot, lambda: len(screen.lines) == 6)
            assert screen.lines == lines_of(text.decode())
            assert screen.query_one(Log).line_count == len(screen.lines)
            assert screen.find("boom") == 3

    asyncio.run(scenario())
