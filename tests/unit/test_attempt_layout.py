"""Unit tests for agent.attempts.Attempt.layout: where a run's results are read from."""

from __future__ import annotations

from pathlib import Path

from agent.attempts import Attempt, AttemptRequest, AttemptState, AttemptStatus, write_json


def _attempt(folder: Path) -> Attempt:
    req = AttemptRequest(
        attempt_id="a1", run_id="r1", submission_id="s1", experiment="e", image="i",
        argv=("true",), env={}, cpus=1, memory_bytes=1 << 20, network="none",
        timeout_seconds=0, source_path="",
    )  # fmt: skip
    return Attempt(req, folder, AttemptStatus("a1", "r1", AttemptState.STARTING))


def test_a_look_before_the_workspace_is_made_does_not_fix_the_results_folder(
    tmp_path: Path,
) -> None:
    a = _attempt(tmp_path)
    assert a.results_root == tmp_path / "work"  # no workspace.json yet: the copy layout
    write_json(tmp_path / "workspace.json", {"mode": "overlay"})
    assert a.results_root == tmp_path / "upper"
    (tmp_path / "workspace.json").unlink()
    assert a.results_root == tmp_path / "upper"  # read once, kept
