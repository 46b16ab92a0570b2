"""`convoy watch` against a stand-in coordinator: every save that changes the content reruns,
however soon after the last rerun it comes (a person saving as soon as the output ends)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from convoy.cli import watch
from convoy.v1 import coordinator_pb2 as pb

SAVES = 40
QUICK_S = 1.0  # each save comes within this long of the rerun before it
RERUN_TIMEOUT_S = 10.0


class Snapshot:
    """A submission's runs, each already succeeded (what a snapshot of a quick run shows)."""

    def __init__(self, runs: list[pb.Run]) -> None:
        self.runs = runs

    async def __aiter__(self) -> AsyncIterator[pb.RunEvent]:
        for run in self.runs:
            done = pb.Run(id=run.id, state="succeeded", results_path=run.results_path)
            yield pb.RunEvent(run=done, snapshot=True)

    def cancel(self) -> None:
        pass


class Coordinator:
    """Answers Submit with a new revision each time (every save changes model.py)."""

    def __init__(self, results: Path) -> None:
        self.results = results
        self.submitted_at: list[float] = []
        self.runs: dict[str, list[pb.Run]] = {}

    async def Submit(self, req: pb.SubmitRequest) -> pb.SubmitResponse:
        n = len(self.submitted_at) + 1
        self.submitted_at.append(time.monotonic())
        sub = f"quick-{n}"
        self.runs[sub] = [pb.Run(id=f"{sub}.00", submission_id=sub, state="queued",
                                 results_path=str(self.results / sub))]  # fmt: skip
        return pb.SubmitResponse(submission_id=sub, revision=f"{n:012d}", runs=self.runs[sub],
                                 changed=["model.py"] if req.unless_revision else [])  # fmt: skip

    async def Cancel(self, req: pb.CancelRequest) -> pb.CancelResponse:
        return pb.CancelResponse()

    def Events(self, req: pb.EventsRequest) -> Snapshot:
        return Snapshot(self.runs[req.submission_id])


class Channel:
    async def __aenter__(self) -> Channel:
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

    async def connect(home: Path) -> tuple[Any, Any]:
        return Channel(), coordinator

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
