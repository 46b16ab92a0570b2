"""The TUI against a real coordinator and agent (convoy up), driven by Textual's Pilot."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from convoy.tui.app import ConvoyApp
from convoy.tui.logs_screen import LogsScreen
from convoy.tui.runs_screen import RunsScreen

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker

SWEEP = """
    name: tuisweep
    image: convoy/busybox:1
    command: 'i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo "step $i ($((i*5))%)"; sleep 0.3; done'
    matrix:
      n: {range: [0, 4]}
    resources: {cpus: 1, memory: 64MiB}
    progress: '\\((?P<percent>\\d+)%\\)'
"""


async def until(pilot: Pilot[None], what: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__ or what}"
        await pilot.pause(0.1)


def test_runs_logs_allocations_and_cancel_from_the_keyboard(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    spec = write_experiment(tmp_path, SWEEP)
    assert convoy_env.cli("run", "--detach", str(spec)).returncode == 0

    async def scenario() -> None:
        app = ConvoyApp(convoy_env.home)
        async with app.run_test(size=(150, 40)) as pilot:
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            table = runs.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 4)
            # States change live in the table; progress comes from the runs' output.
            await until(pilot, lambda: "running" in {
                str(table.get_cell(f"tuisweep-1.0{i}", "state")) for i in range(4)})  # fmt: skip
            await until(pilot, lambda: any(r.progress for r in app.model.rows.values()))
            await until(pilot, lambda: "%" in "".join(str(table.get_cell(r, "progress"))
                                                      for r in app.model.rows), 5)  # fmt: skip

            # Cancel the running run under the cursor from the keyboard.
            running = next(
                r for r in sorted(app.model.rows) if app.model.rows[r].state == "running"
            )
            table.move_cursor(row=table.get_row_index(running))
            await pilot.press("c")  # asks first
            await until(pilot, lambda: isinstance(app.screen, ModalScreen), 5)
            await pilot.press("y")
            await until(pilot, lambda: app.model.rows[running].state == "cancelled", 30)
            await until(pilot, lambda: str(table.get_cell(running, "state")) == "cancelled", 5)

            # Its log, on the logs screen.
            other = next(r for r in sorted(app.model.rows) if r != running)
            table.move_cursor(row=table.get_row_index(other))
            await pilot.press("enter")
            logs = app.screen
            assert isinstance(logs, LogsScreen)
            await until(pilot, lambda: any("step 1 (5%)" in ln for ln in logs.lines), 30)

            # The host's allocations.
            await pilot.press("a")
            await until(pilot, lambda: bool(app.screen.query("#host-local")), 10)
            card = str(app.screen.query_one("#host-local", Static).render())
            assert "cpus" in card and "memory" in card

            # The coordinator goes away: said plainly; it comes back: the app reconnects.
            convoy_env.coordinator.send_signal(signal.SIGTERM)
            convoy_env.coordinator.wait(20)
            await until(pilot, lambda: not app.connected, 20)
            assert "not running" in app.status_line()
            log = open(convoy_env.home / "up2.log", "wb")  # noqa: SIM115 - closed below
            try:
                convoy_env.coordinator = subprocess.Popen(
                    [sys.executable, "-m", "convoy.cli.main", "up"], env=convoy_env.env(),
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                await until(pilot, lambda: app.connected, 30)
            finally:
                log.close()
            await until(pilot, lambda: all(r.state in ("succeeded", "cancelled")
                                           for r in app.model.rows.values()), 60)  # fmt: skip

    asyncio.run(scenario())


def test_a_tui_without_a_coordinator_says_how_to_start_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = ConvoyApp(tmp_path / "nohome")
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "not running" in app.status_line(), 10)
            assert "convoy up" in app.status_line()
            status = app.screen.query_one("#status", Static)
            await until(pilot, lambda: "not running" in str(status.render()), 5)

    asyncio.run(scenario())
