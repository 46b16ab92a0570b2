"""Unit tests for agent.attempts.Attempt.layout: where a run's results are read from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convoy.agent.attempts import Attempt, AttemptRequest, AttemptState, AttemptStatus, write_json
from tests.unit.users import as_nobody


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


def test_an_output_log_the_run_replaced_is_not_followed_nor_waited_on(tmp_path: Path) -> None:
    """The run can replace /.convoy/output.log: a symlink (to any file of the agent's user)
    is refused, not read, and so is a FIFO, at once rather than blocking in open()."""
    from convoy.agent.attempts import OutputReplaced, open_output
    from convoy.agent.builds import tail_of

    secret = tmp_path / "secret"
    secret.write_text("PRIVATE KEY\n")
    log = tmp_path / "output.log"
    log.symlink_to(secret)
    with pytest.raises(OutputReplaced, match="symbolic link"):
        open_output(log)
    assert tail_of(log) == ""
    log.unlink()
    os.mkfifo(log)
    with pytest.raises(OutputReplaced, match="not a file"):
        open_output(log)  # no writer: a plain open() would wait for one for ever
    assert tail_of(log) == ""
    log.unlink()
    log.write_text("one\ntwo\n")
    with open_output(log) as f:
        assert f.read() == b"one\ntwo\n"
    assert tail_of(log) == "one\ntwo"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_tree_a_run_made_unwritable_is_removed_all_the_same() -> None:
    """A run or build may leave folders without write or search permission (a Go module
    cache is read-only; `chmod 000`): rmtree_quiet, as the agent's own (non-root) user,
    removes them instead of leaving them on the host for good."""
    import shutil
    import tempfile

    from convoy.agent.trees import rmtree_quiet

    base = Path(tempfile.mkdtemp(prefix="cvt-"))
    try:
        base.chmod(0o755)
        top = base / "upper"
        (top / "pkg/mod/cache").mkdir(parents=True)
        (top / "pkg/mod/cache/x.go").write_text("package x\n")
        (top / "secret").mkdir()
        (top / "secret/f").write_text("x")
        (top / "pkg/link").symlink_to(base)  # not followed
        for p in [top, *top.rglob("*")]:
            os.chown(p, 65534, 65534, follow_symlinks=False)
        os.chown(base, 65534, 65534)
        (top / "pkg/mod").chmod(0o555)
        (top / "pkg/mod/cache").chmod(0o555)
        (top / "secret").chmod(0o000)
        as_nobody(lambda: rmtree_quiet(top))
        assert not top.exists()
        assert base.stat().st_mode & 0o777 == 0o755  # the link's target was not touched
    finally:
        shutil.rmtree(base)
