"""Snapshots of the TUI's screens as plain text, at 120x30, fed by a FakeClient.

Each test drives ConvoyApp headless (Textual's run_test) with fixed data, waits until the
screen shows it, and compares the screen's text (no colours, no ANSI) with a golden file in
tests/unit/snapshots/. A missing or different golden file fails; to write them (after a change
meant to alter a screen; review the diff):

    CONVOY_UPDATE_SNAPSHOTS=1 python -m pytest -q tests/unit/test_tui_snapshots.py

The text comes from App.export_screenshot() (public; an SVG of the whole screen, composed as
the terminal shows it): each <text> element sits on one screen line (its clip path names the
line) at a column given by its x, so the screen is a grid filled back from them. Wall-clock
time is pinned where cells depend on it (running runs' durations).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import DataTable

import convoy.tui.runs_screen
from convoy.tui.app import ConvoyApp
from convoy.v1 import common_pb2
from convoy.v1 import coordinator_pb2 as pb
from tests.tui_fake import FakeClient

SIZE = (120, 30)
HOME = Path("/srv/convoy")
NOW = 1_760_000_000.0  # "now" for the runs screen: running runs' durations are fixed
SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_VAR = "CONVOY_UPDATE_SNAPSHOTS"
PROGRESS = r"\((?P<percent>\d+)%\)"
GIB = 1024**3

# Rich's SVG export: a cell is 20 * 0.61 units wide; each text element is clipped to its line.
CELL_WIDTH = 20 * 0.61
LINE_RE = re.compile(r"-line-(\d+)\)$")
SVG = "{http://www.w3.org/2000/svg}"


def screen_text(app: ConvoyApp) -> str:
    """The screen as plain text: one line per terminal row, trailing spaces removed."""
    width, height = app.size
    grid = [[" "] * width for _ in range(height)]
    for el in ElementTree.fromstring(app.export_screenshot()).iter(f"{SVG}text"):
        line = LINE_RE.search(el.get("clip-path", ""))
        if line is None or not el.text:  # the window title, not a screen line
            continue
        row, col = int(line.group(1)), round(float(el.get("x", "0")) / CELL_WIDTH)
        for ch in el.text.rstrip("\n").replace("\xa0", " "):
            if 0 <= row < height and col < width:
                grid[row][col] = ch
                if cell_len(ch) == 2 and col + 1 < width:
                    grid[row][col + 1] = ""
            col += cell_len(ch)
    return "\n".join("".join(cells).rstrip() for cells in grid) + "\n"


def check_snapshot(name: str, text: str, directory: Path = SNAPSHOTS) -> None:
    """`text` must equal the golden file `directory/name.txt`; with CONVOY_UPDATE_SNAPSHOTS=1
    the file is written instead."""
    golden = directory / f"{name}.txt"
    if os.environ.get(UPDATE_VAR) == "1":
        directory.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    if not golden.exists():
        pytest.fail(f"no golden file {golden}: write it with {UPDATE_VAR}=1, then review it.\n"
                    f"The screen was:\n{text}")  # fmt: skip
    want = golden.read_text(encoding="utf-8")
    if text != want:
        diff = "\n".join(difflib.unified_diff(
            want.splitlines(), text.splitlines(), f"{golden.name} (golden)", "screen", lineterm=""
        ))  # fmt: skip
        pytest.fail(f"the screen differs from {golden} ({UPDATE_VAR}=1 rewrites it):\n{diff}")


async def until(pilot: Pilot[None], what: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__ or what}"
        await pilot.pause(0.05)


async def settled(pilot: Pilot[None]) -> None:
    """A couple of flushes and a render after the state waited for."""
    await pilot.pause(0.25)
    await pilot.pause()


def run(sub: str, index: int, state: str, **fields: object) -> pb.Run:
    return pb.Run(id=f"{sub}.{index:02d}", submission_id=sub, experiment=sub.split("-")[0],
                  index=index, state=state, params_json=json.dumps({"seed": index, "rate": 0.25}),
                  **fields)  # type: ignore[arg-type]  # fmt: skip


def sweep() -> FakeClient:
    """Two submissions; runs in every kind of state; one running run reporting 40%."""
    t = NOW - 600
    runs = [
        run("sweep-1", 0, "succeeded", host="local", started_at=t, ended_at=t + 65,
            has_exit_code=True, exit_code=0, code="exit_code", reason="exited with code 0"),
        run("sweep-1", 1, "failed", host="local", started_at=t, ended_at=t + 72.5,
            has_exit_code=True, exit_code=2, code="exit_code", reason="exited with code 2"),
        run("sweep-1", 2, "running", host="local", started_at=NOW - 42.5, progress=40.0,
            has_progress=True),
        run("sweep-1", 3, "building", host="gpu-a"),
        run("sweep-1", 4, "queued"),
        run("sweep-1", 5, "cancelled", host="gpu-a", started_at=t, ended_at=t + 3725,
            has_exit_code=True, exit_code=137, code="cancelled", reason="cancelled on request"),
        run("sweep-1", 6, "lost", host="gpu-a", started_at=t, ended_at=t + 10, code="host_lost",
            reason="its host gpu-a stopped answering and did not come back within 60 s"),
        run("des-2", 0, "succeeded", host="local", started_at=t, ended_at=t + 1.25,
            has_exit_code=True, exit_code=0),
        run("des-2", 1, "queued"),
    ]  # fmt: skip
    subs = [pb.Submission(id="sweep-1", experiment="sweep", total=7, progress_pattern=PROGRESS),
            pb.Submission(id="des-2", experiment="des", total=2)]  # fmt: skip
    return FakeClient(runs=runs, submissions=subs, home=HOME)


@pytest.fixture
def pinned_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs screen's clock (and only its) stands still at NOW."""
    monkeypatch.setattr(convoy.tui.runs_screen, "time", SimpleNamespace(time=lambda: NOW))


def test_runs_screen(pinned_time: None) -> None:
    client = sweep()

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 9)
            await until(pilot, lambda: "40%" in str(table.get_cell("sweep-1.02", "progress")))
            await settled(pilot)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "sweep-1.02  running" in text  # what the golden file is about, said plainly
    check_snapshot("runs", text)


def test_runs_screen_after_updates_filtered_to_active(pinned_time: None) -> None:
    """Events change rows in place; a filter typed in keeps only active runs."""
    client = sweep()

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 9)
            client.push(run("sweep-1", 3, "running", host="gpu-a", started_at=NOW - 5))
            client.push(run("sweep-1", 4, "syncing", host="local"))
            client.push(run("des-2", 1, "failed", host="local", started_at=NOW - 30,
                            ended_at=NOW - 20, has_exit_code=True, exit_code=1))  # fmt: skip
            await until(pilot, lambda: str(table.get_cell("des-2.01", "state")) == "failed")
            await pilot.press("slash", *"state:active")
            await until(pilot, lambda: table.row_count == 3)
            await settled(pilot)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "sweep-1.04  syncing" in text and "des-2.01" not in text
    check_snapshot("runs_active", text)


def test_runs_screen_without_a_coordinator() -> None:
    client = FakeClient(home=HOME)
    client.down = True

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "not running" in app.status_line())
            await settled(pilot)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "convoy up" in text
    check_snapshot("runs_no_coordinator", text)


def test_hosts_screen() -> None:
    host = pb.Host(
        name="local", state="up", address="127.0.0.1", agent_version="0.1.0", accepting=True,
        capacity=common_pb2.Resources(cpus=8, memory_bytes=16 * GIB, gpus=2),
        allocated=common_pb2.Resources(cpus=3, memory_bytes=6 * GIB, gpus=1),
        runs=["sweep-1.02", "sweep-1.03", "des-2.00"],
    )  # fmt: skip
    client = FakeClient(hosts=[host], home=HOME)

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            await until(pilot, lambda: bool(app.screen.query("#host-local")))
            await settled(pilot)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "local" in text and "3/8" in text
    check_snapshot("hosts", text)


# -- the snapshot check itself -------------------------------------------------------------------


def test_a_missing_golden_file_fails_and_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPDATE_VAR, raising=False)
    with pytest.raises(pytest.fail.Exception, match="no golden file"):
        check_snapshot("absent", "some screen\n", tmp_path)
    assert not (tmp_path / "absent.txt").exists()


def test_a_different_screen_fails_with_a_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UPDATE_VAR, raising=False)
    (tmp_path / "s.txt").write_text("line one\nline two\n")
    check_snapshot("s", "line one\nline two\n", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)-line two.*\+line 2"):
        check_snapshot("s", "line one\nline 2\n", tmp_path)


def test_the_update_variable_writes_golden_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPDATE_VAR, "1")
    check_snapshot("new", "a screen\n", tmp_path / "snaps")
    assert (tmp_path / "snaps" / "new.txt").read_text() == "a screen\n"


def test_the_results_key_names_what_did_not_come_back(tmp_path: Path) -> None:
    """`o` showed the results folder only; a run whose results did not all come back now also
    says what is missing and why (from its run.json, as `convoy run` prints it)."""
    whole, partial = tmp_path / "whole", tmp_path / "partial"
    missed_there = {"out[/]": "the run made it unreadable"}  # not markup: it would raise
    for folder, missed in ((whole, {}), (partial, missed_there)):
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"not_collected": missed}))
    client = FakeClient(runs=[
        run("r-1", 0, "succeeded", results_path=str(whole)),
        run("r-1", 1, "succeeded", results_path=str(partial)),
    ], submissions=[pb.Submission(id="r-1", experiment="r", total=2)], home=HOME)  # fmt: skip

    async def scenario() -> list[tuple[str, str]]:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE, notifications=True) as pilot:  # toasts drawn
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 2)
            for row in (0, 1):
                table.move_cursor(row=row)
                await pilot.press("o")
            await settled(pilot)
            return [(n.message, n.severity) for n in app._notifications]

    shown = asyncio.run(scenario())
    assert (str(whole), "information") in shown
    assert (f"{partial}\nnot collected: out[/] (the run made it unreadable)", "warning") in shown
