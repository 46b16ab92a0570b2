"""`convoy watch` against a stand-in coordinator: every save that changes the content reruns,
however soon after the last rerun it comes (a person saving as soon as the output ends)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from convoy.cli import watch
from convoy.client import Run, RunEvent, Submitted

SAVES = 40
QUICK_S = 1.0  # each save comes within this long of the rerun before it
RERUN_TIMEOUT_S = 10.0


class Coordinator:
    """An AsyncClient stand-in: answers submit with a new revision each time (every save
    changes model.py); each submission's run has succeeded by its first event."""

    def __init__(self, results: Path) -> None:
        self.results = results
        self.submitted_at: list[float] = []
        self.runs: dict[str, list[Run]] = {}

    async def submit(self, experiment: Any, *_: Any, unless_revision: str = "",
                     **__: Any) -> Submitted:  # fmt: skip
        n = len(self.submitted_at) + 1
        self.submitted_at.append(time.monotonic())
        sub = f"quick-{n}"
        self.runs[sub] = [
            Run(
                id=f"{sub}.00",
                submission_id=sub,
                experiment="quick",
                index=0,
                params={},
                state="queued",
                results_path=str(self.results / sub),
            )
        ]
        return Submitted(submission_id=sub, revision=f"{n:012d}", runs=self.runs[sub],
                         changed=["model.py"] if unless_revision else [])  # fmt: skip

    async def cancel(self, target: str, grace: float = 0.0) -> list[str]:
        return []

    async def events(self, submission: str = "", snapshot: bool = True
                     ) -> AsyncGenerator[RunEvent, None]:  # fmt: skip
        for run in self.runs[submission]:
            yield RunEvent(replace(run, state="succeeded"), "", True, 0.0)

    async def __aenter__(self) -> Coordinator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


async def reruns(coordinator: Coordinator, n: int, task: asyncio.Task[int]) -> None:
    """Until the n-th submission; fails if watching stops or waits instead."""
    deadline = time.monotonic() + RERUN_TIMEOUT_S
    while len(coordinator.submitted_at) < n:
        if task.done():
            task.result()  # what stopped it (a pause without a terminal exited with status 1)
            pytest.fail(f"watching ended after {len(coordinator.submitted_at)} submissions")
        if time.monotonic() > deadline:
            pytest.fail(f"no submission {n} within {RERUN_TIMEOUT_S:g} s of the save: watching "
                        "no longer reruns")  # fmt: skip
        await asyncio.sleep(0.005)


def test_forty_quick_saves_each_rerun_and_watching_never_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "experiment.yaml").write_text("name: quick\nimage: i\ncommand: python3 model.py\n")
    model = exp / "model.py"
    model.write_text("print(0)\n")
    coordinator = Coordinator(tmp_path / "results")

    async def connect(home: Path) -> Coordinator:
        return coordinator

    monkeypatch.setattr(watch, "connect_or_start", connect)

    async def scenario() -> list[float]:
        task = asyncio.ensure_future(watch.watch_experiment(
            tmp_path / "home", str(exp / "experiment.yaml"), None, True, 0.05))  # fmt: skip
        try:
            await reruns(coordinator, 1, task)  # the first submission: the observer is up
            gaps = []
            for n in range(1, SAVES + 1):
                await asyncio.sleep(0.02)  # the output has been read
                model.write_text(f"print({n})\n")
                gaps.append(time.monotonic() - coordinator.submitted_at[-1])
                await reruns(coordinator, n + 1, task)
            return gaps
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    gaps = asyncio.run(scenario())
    assert len(coordinator.submitted_at) == SAVES + 1  # one submission per save, and the first
    assert max(gaps) < QUICK_S, gaps  # each save came quickly after the rerun before it
    said = capsys.readouterr()
    assert "pause" not in said.out + said.err
