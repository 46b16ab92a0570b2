"""`convoy watch` against a real coordinator and agent: one rerun per burst of saves, the
superseded runs cancelled with their partial results, no rerun from convoy's own writes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker


class Watch:
    """`convoy watch FILE` in the background, its output lines collected as they come."""

    def __init__(self, env: ConvoyEnv, spec: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convoy.cli.main", "watch", str(spec)], env=env.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, test: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if test(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no such line within {timeout} s; got:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture
def watching(convoy_env: ConvoyEnv) -> Iterator[Callable[[Path], Watch]]:
    started: list[Watch] = []

    def start(spec: Path) -> Watch:
        w = Watch(convoy_env, spec)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def _submissions(env: ConvoyEnv) -> set[str]:
    return {r["submission"] for r in env.runs()}


def test_a_burst_of_saves_is_one_rerun_and_the_superseded_runs_are_cancelled(
    convoy_env: ConvoyEnv, watching: Callable[[Path], Watch], tmp_path: Path
) -> None:
    (tmp_path / "model.txt").write_text("v0\n")
    spec = write_experiment(tmp_path, """
        name: edits
        image: convoy/busybox:1
        command: 'echo "model $(cat model.txt)"; sleep 30'
        matrix:
          n: [1, 2]
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    w = watching(spec)
    w.wait_line(lambda ln: ln.endswith("model v0"))
    for i in range(1, 51):  # 50 saves within one second
        (tmp_path / "model.txt").write_text(f"v{i}\n")
        time.sleep(0.005)
    w.wait_line(lambda ln: ln.startswith("watch: edits-2: 2 runs") and "changed: model.txt" in ln)
    w.wait_line(lambda ln: ln == "[edits-2.00] model v50" or ln == "[edits-2.01] model v50")
    time.sleep(2)
    assert _submissions(convoy_env) == {"edits-1", "edits-2"}  # exactly one rerun
    for run_id in ("edits-1.00", "edits-1.01"):
        run = convoy_env.wait_for(run_id, {"cancelled", "succeeded", "failed"}, timeout=30)
        assert run["state"] == "cancelled"
        out = tmp_path / "convoy-results/edits/edits-1" / run_id / "output.log"
        assert out.read_text() == "model v0\n"  # its partial results are kept

    # Ctrl-C stops watching and leaves the coordinator consistent: the new runs go on.
    assert w.stop() == 130
    assert any("stopped watching" in ln for ln in w.lines)
    assert {r["state"] for r in convoy_env.runs("edits-2")} <= {"running", "starting"}
    assert convoy_env.cli("cancel", "edits-2", "--grace", "0").returncode == 0


def test_writes_by_runs_builds_and_convoy_and_same_content_saves_do_not_rerun(
    convoy_env: ConvoyEnv, watching: Callable[[Path], Watch], tmp_path: Path
) -> None:
    (tmp_path / "model.txt").write_text("same\n")
    spec = write_experiment(tmp_path, """
        name: quiet
        image: convoy/busybox:1
        build: echo generated > generated.txt; mkdir -p obj; echo o > obj/model.o
        command: cat generated.txt; echo made > made.txt; mkdir -p out; echo r > out/r.txt
        matrix:
          n: [1, 2]
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    w = watching(spec)
    w.wait_line(lambda ln: ln.startswith("watch: quiet-1: 2 succeeded"))
    # The results landed inside the watched folder, and the runs and the build wrote files.
    assert (tmp_path / "convoy-results/quiet/quiet-1/quiet-1.00/made.txt").exists()
    (tmp_path / "model.txt").write_text("same\n")  # saved with the same content
    w.wait_line(lambda ln: "same revision: no rerun" in ln, timeout=10)
    time.sleep(2)
    assert _submissions(convoy_env) == {"quiet-1"}
    assert not (tmp_path / "generated.txt").exists()  # the build wrote on the host, not here
    for run_json in (tmp_path / "convoy-results/quiet/quiet-1").glob("*/run.json"):
        files = json.loads(run_json.read_text())["files"]  # what the run wrote, not the build
        assert set(files) == {"made.txt", "out/r.txt"}


def test_the_tui_toggles_watch_mode_on_a_submission(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """`w` on a run watches its experiment: a save makes a new submission; `w` again stops."""
    import asyncio

    from textual.widgets import DataTable

    from convoy.tui.app import ConvoyApp

    (tmp_path / "model.txt").write_text("one\n")
    spec = write_experiment(tmp_path, """
        name: toggled
        image: convoy/busybox:1
        command: cat model.txt
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    assert convoy_env.cli("run", "-q", str(spec)).returncode == 0

    async def scenario() -> None:
        app = ConvoyApp(convoy_env.home)
        async with app.run_test(size=(140, 30)) as pilot:

            async def until(what: Callable[[], bool], timeout: float = 30) -> None:
                deadline = time.monotonic() + timeout
                while not what():
                    assert time.monotonic() < deadline
                    await pilot.pause(0.1)

            table = app.screen.query_one(DataTable)
            await until(lambda: table.row_count == 1 and "toggled-1" in app.subs)
            await pilot.press("w")
            await until(lambda: bool(app.watches))
            await pilot.pause(0.5)  # the observer is up
            (tmp_path / "model.txt").write_text("two\n")
            await until(lambda: "toggled-2.00" in app.model.rows)
            await until(lambda: app.model.rows["toggled-2.00"].state == "succeeded")
            await pilot.press("w")
            await until(lambda: not app.watches)
            await pilot.pause(0.5)
            (tmp_path / "model.txt").write_text("three\n")
            await pilot.pause(1.5)
            assert "toggled-3.00" not in app.model.rows  # no longer watching

    asyncio.run(scenario())
    out = tmp_path / "convoy-results/toggled/toggled-2/toggled-2.00/output.log"
    assert out.read_text() == "two\n"


def test_smoke_runs_go_first_and_the_rest_only_after_they_succeed(
    convoy_env: ConvoyEnv, watching: Callable[[Path], Watch], tmp_path: Path
) -> None:
    (tmp_path / "fail.txt").write_text("no\n")
    spec = write_experiment(tmp_path, """
        name: smoky
        image: convoy/busybox:1
        command: 'echo rep ${rep}; test "$(cat fail.txt)" = no'
        matrix:
          rep: [0, 1, 2]
        resources: {cpus: 1, memory: 64MiB}
        watch:
          smoke: {rep: [0]}
    """)  # fmt: skip
    w = watching(spec)
    w.wait_line(lambda ln: ln.startswith("watch: smoky-1: 1 runs"))
    w.wait_line(lambda ln: ln.startswith("watch: smoky-2: 2 runs"))  # the rest, after it
    w.wait_line(lambda ln: ln.startswith("watch: smoky-2: 2 succeeded"))
    runs = {r["run"]: r for r in convoy_env.runs()}
    assert set(runs) == {"smoky-1.00", "smoky-2.01", "smoky-2.02"}
    assert runs["smoky-2.01"]["revision"] == runs["smoky-1.00"]["revision"]

    (tmp_path / "fail.txt").write_text("yes\n")  # now the smoke run fails: the rest waits
    w.wait_line(lambda ln: ln.startswith("watch: smoky-3: 1 runs"))
    w.wait_line(lambda ln: "smoke runs did not succeed (smoky-3.00)" in ln)
    time.sleep(1)
    assert not any(r["submission"] == "smoky-4" for r in convoy_env.runs())
