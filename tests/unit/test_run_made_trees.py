"""What a run leaves in its workspace and log folder is untrusted: unreadable files and
folders, names that are not UTF-8, trees deeper than Python recurses, a log it removed, folders
swapped for links. The agent sends what it can, leaves the rest out, removes it all at release,
and never follows a link out of the tree. (No Docker: attempts as the agent keeps them.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from convoy.agent.attempts import Attempt, AttemptRequest, Attempts, AttemptState, AttemptStatus
from convoy.agent.server import AgentService
from convoy.agent.trees import rmtree_quiet
from convoy.files import write_json
from convoy.footprint import disk_footprint
from convoy.v1 import agent_pb2 as pb
from tests.unit.users import as_nobody


def _ended_overlay_attempt(home: Path, revision: str = "") -> tuple[Attempts, Attempt]:
    attempts = Attempts(home, runtime=None, agent_id="x", overlay=True)  # type: ignore[arg-type]
    req = AttemptRequest(
        attempt_id="r-1.00", run_id="r-1.00", submission_id="s", experiment="e", image="i",
        argv=("true",), env={}, cpus=1, memory_bytes=1 << 20, network="none",
        timeout_seconds=0, source_path="", revision=revision,
    )  # fmt: skip
    d = attempts.root / req.attempt_id
    (d / "upper").mkdir(parents=True)
    (d / "log").mkdir()
    (d / "log" / "output.log").write_text("printed\n")
    write_json(d / "workspace.json", {"mode": "overlay"})
    a = Attempt(req, d, AttemptStatus(req.attempt_id, req.run_id, AttemptState.EXITED))
    a.done.set()
    attempts._attempts[req.attempt_id] = a
    return attempts, a


class _Aborted(Exception):
    pass


class _Context:
    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Aborted(code, details)


def _service(attempts: Any) -> AgentService:
    service = AgentService.__new__(AgentService)
    service.attempts = attempts
    return service


def _fetch_all(
    attempts: Attempts, attempt_id: str, max_bytes: int | None = None
) -> tuple[dict[str, bytes], dict[str, str]]:
    """What FetchResults sends: the files' contents, and the results left out with why."""

    async def go() -> tuple[dict[str, bytes], dict[str, str]]:
        got: dict[str, bytes] = {}
        left: dict[str, str] = {}
        path = ""
        req = pb.FetchResultsRequest(attempt_id=attempt_id, max_bytes=max_bytes)
        async for c in _service(attempts).FetchResults(req, _Context()):  # type: ignore[arg-type]
            if c.left_out:
                assert c.path and c.last and not c.data and c.path not in left
                left[c.path] = c.left_out
                continue
            path = c.path or path
            got[path] = got.get(path, b"") + c.data
        return got, left

    return asyncio.run(go())


def _fetch(attempts: Attempts, attempt_id: str) -> dict[str, bytes]:
    got, left = _fetch_all(attempts, attempt_id)
    assert not left, left
    return got


def _deep(root: Path, depth: int = 1100) -> Path:
    """`for i in $(seq 1100); do mkdir a; cd a; done; echo x > x` in the run."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("a", dir_fd=fd)
        nxt = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    with open(os.open("x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
        f.write("x")
    os.close(fd)
    return root / ("a/" * depth + "x")


def test_a_name_that_is_not_utf8_is_left_out_and_the_rest_sent(tmp_path: Path) -> None:
    attempts, a = _ended_overlay_attempt(tmp_path)
    (a.dir / "upper" / "ok.txt").write_text("fine\n")
    with open(os.path.join(os.fsencode(a.dir / "upper"), b"bad\xff"), "wb") as f:
        f.write(b"x")
    got, left = _fetch_all(attempts, a.request.attempt_id)
    assert got == {"ok.txt": b"fine\n"}
    assert left == {"bad\\xff": "its name is not UTF-8"}


def test_a_deep_tree_is_sent_and_released_and_its_lease_dropped(tmp_path: Path) -> None:
    """Python 3.11's os.walk and shutil.rmtree recurse: a RecursionError failed the fetch and
    the release, which then kept the workspace and the revision's lease for good."""
    attempts, a = _ended_overlay_attempt(tmp_path, revision="rev")
    lease = attempts.objects.root / "leases" / "rev" / a.request.attempt_id
    lease.parent.mkdir(parents=True)
    lease.write_text("held\n")
    _deep(a.dir / "upper")
    got = _fetch(attempts, a.request.attempt_id)
    assert list(got.values()) == [b"x"] and next(iter(got)).count("a/") == 1100
    attempts.release(a.request.attempt_id)
    assert not (a.dir / "upper").exists() and not lease.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_results_the_agent_cannot_read_are_left_out_and_the_rest_sent() -> None:
    """`chmod 000 out` or a folder that can be listed but not entered: FetchResults raised
    (gRPC UNKNOWN, which the coordinator retried for a minute, then called the run lost)."""
    base = Path(tempfile.mkdtemp(prefix="cvr-"))
    base.chmod(0o777)

    def as_the_agent() -> None:
        attempts, a = _ended_overlay_attempt(base / "home")
        upper = a.dir / "upper"
        (upper / "ok.txt").write_text("fine\n")
        (upper / "out").write_text("x")
        (upper / "out").chmod(0)
        (upper / "d").mkdir()
        (upper / "d" / "f").write_text("x")
        (upper / "d").chmod(0o644)  # listable, not searchable
        (upper / "e" / "f").mkdir(parents=True)
        (upper / "e" / "f" / "g").write_text("x")
        (upper / "e" / "f").chmod(0o311)  # searchable, not listable
        got, left = _fetch_all(attempts, a.request.attempt_id)
        assert got == {"ok.txt": b"fine\n"}
        hidden = "a folder the run made unreadable: what it holds is not collected"
        assert left == {"out": "the run made it unreadable", "d/": hidden, "e/f/": hidden}
        a.request = replace(a.request, outputs=("e/", "ok.txt"))
        assert _fetch_all(attempts, a.request.attempt_id) == (got, {"e/f/": hidden})
        a.request = replace(a.request, outputs=("*.txt",))  # a glob: e/f may hold one
        assert _fetch_all(attempts, a.request.attempt_id) == (got, {"d/": hidden, "e/f/": hidden})
        (upper / "e" / "f").chmod(0o755)
        (upper / "d").chmod(0o755)
        (upper).chmod(0o311)  # the workspace itself
        assert _fetch_all(attempts, a.request.attempt_id) == ({}, {"./": hidden})
        (upper).chmod(0o755)
        attempts.release(a.request.attempt_id)
        assert not upper.exists()

    try:
        as_nobody(as_the_agent)
    finally:
        shutil.rmtree(base)


def test_a_log_the_run_removed_is_failed_precondition_not_unknown(tmp_path: Path) -> None:
    """`rm /.convoy/output.log` (or chmod 000): ReadLog raised FileNotFoundError, gRPC UNKNOWN,
    which the coordinator takes for a host that stopped answering."""
    attempts, a = _ended_overlay_attempt(tmp_path)
    a.log_path.unlink()

    async def read() -> list[Any]:
        req = SimpleNamespace(attempt_id=a.request.attempt_id, offset=0, follow=False)
        return [c async for c in _service(attempts).ReadLog(req, _Context())]  # type: ignore[arg-type]

    with pytest.raises(_Aborted) as e:
        asyncio.run(read())
    assert e.value.args[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot be read" in e.value.args[1]


def test_rmtree_quiet_removes_a_deep_tree(tmp_path: Path) -> None:
    (tmp_path / "upper").mkdir()
    _deep(tmp_path / "upper")
    rmtree_quiet(tmp_path / "upper")
    assert not (tmp_path / "upper").exists()


def test_rmtree_quiet_follows_no_folder_swapped_for_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run still writing the tree (an agent restarted mid-build) swaps a folder for a link
    to the agent user's home between the listing and the chmod: the home keeps its modes."""
    victim = tmp_path / "home-of-the-agent-user"
    (victim / "shared").mkdir(parents=True)
    victim.chmod(0o755)
    (victim / "shared").chmod(0o2775)
    tree = tmp_path / "upper"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "keep").write_text("x")
    real_rmtree, real_scandir = shutil.rmtree, os.scandir
    monkeypatch.setattr(shutil, "rmtree", lambda p, ignore_errors=False: None)  # "not empty"
    monkeypatch.setattr("subprocess.run", lambda *a, **k: None)  # rm -rf: not the point here

    class Listed(list[Any]):
        def __enter__(self) -> Listed:
            return self

        def __exit__(self, *_: object) -> None:
            pass

    def scandir(where: Any) -> Any:  # the run's move, just after the top is listed
        with real_scandir(where) as it:
            entries = Listed(it)
        if not (tree / "d").is_symlink():
            os.rename(tree / "d", tree / "d.old")
            os.symlink(victim, tree / "d")
        return entries

    monkeypatch.setattr(os, "scandir", scandir)
    rmtree_quiet(tree)
    monkeypatch.undo()
    assert victim.stat().st_mode & 0o7777 == 0o755
    assert (victim / "shared").stat().st_mode & 0o7777 == 0o2775
    real_rmtree(tree)


def test_the_host_s_own_trouble_is_not_taken_for_the_run_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE or EIO opening the log or a result is the agent's trouble, not the run's: it is
    raised (the coordinator asks again) rather than the log or the result left out for good."""
    import errno

    import convoy.agent.attempts
    import convoy.agent.server
    from convoy.agent.attempts import open_output

    attempts, a = _ended_overlay_attempt(tmp_path)
    (a.dir / "upper" / "out.txt").write_text("x")

    def exhausted(*_: Any, **__: Any) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(convoy.agent.attempts.os, "open", exhausted)
    with pytest.raises(OSError, match="Too many open files"):
        open_output(a.log_path)
    monkeypatch.undo()
    monkeypatch.setattr(convoy.agent.server, "open_regular", lambda _p: exhausted())
    with pytest.raises(OSError, match="Too many open files"):
        _fetch(attempts, a.request.attempt_id)


def test_rmtree_quiet_holds_a_bounded_number_of_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One descriptor per level of a 1,100-deep tree would take most of a 1,024 limit from
    the agent's other work; at most _LEVELS are held."""
    import convoy.agent.trees

    (tmp_path / "upper").mkdir()
    _deep(tmp_path / "upper")
    held, most = set(), 0
    real_open, real_close = os.open, os.close

    def tracked_open(*args: Any, **kw: Any) -> int:
        nonlocal most
        fd = real_open(*args, **kw)
        held.add(fd)
        most = max(most, len(held))
        return fd

    def tracked_close(fd: int) -> None:
        held.discard(fd)
        real_close(fd)

    monkeypatch.setattr(convoy.agent.trees.os, "open", tracked_open)
    monkeypatch.setattr(convoy.agent.trees.os, "close", tracked_close)
    monkeypatch.setattr(shutil, "rmtree", lambda p, ignore_errors=False: None)  # the pass itself
    convoy.agent.trees._make_removable(str(tmp_path / "upper"))
    monkeypatch.undo()
    assert 100 < most <= convoy.agent.trees._LEVELS + 1 and not held
    rmtree_quiet(tmp_path / "upper")
    assert not (tmp_path / "upper").exists()


def test_files_are_sent_only_while_they_fit_in_the_room_given(tmp_path: Path) -> None:
    """The coordinator's disk has room for two small files (a block and a little each): a,
    then c fit; b does not, and is said."""
    attempts, a = _ended_overlay_attempt(tmp_path)
    upper = a.dir / "upper"
    (upper / "a").write_bytes(b"x" * 10)
    (upper / "b").write_bytes(b"y" * 5000)  # two blocks
    (upper / "c").write_bytes(b"z" * 10)
    room = 2 * disk_footprint(10)
    got, left = _fetch_all(attempts, a.request.attempt_id, max_bytes=room)
    assert got == {"a": b"x" * 10, "c": b"z" * 10}
    assert left == {
        "b": f"does not fit: 5,000 bytes (8,704 on disk), where the coordinator's disk had "
        f"room for {room - disk_footprint(10):,} more"
    }
    assert _fetch_all(attempts, a.request.attempt_id, max_bytes=0)[0] == {}
    assert _fetch_all(attempts, a.request.attempt_id) == (  # no limit
        {"a": b"x" * 10, "b": b"y" * 5000, "c": b"z" * 10},
        {},
    )


def test_results_size_counts_the_disk_what_would_be_sent_takes_and_the_log(
    tmp_path: Path,
) -> None:
    attempts, a = _ended_overlay_attempt(tmp_path)
    upper = a.dir / "upper"
    (upper / "d").mkdir()
    (upper / "d" / "a").write_bytes(b"x" * 10)
    with open(upper / "sparse", "wb") as f:
        f.truncate(1 << 40)  # a terabyte, in no blocks: it would arrive written in full
    (upper / "link").symlink_to("d/a")  # not a result
    with open(os.path.join(os.fsencode(upper), b"bad\xff"), "wb") as f:
        f.write(b"left out: not counted")
    resp = asyncio.run(
        _service(attempts).ResultsSize(
            pb.AttemptRef(attempt_id=a.request.attempt_id),
            _Context(),  # type: ignore[arg-type]
        )
    )
    files = disk_footprint(10) + disk_footprint(1 << 40)
    assert (resp.files, resp.disk_bytes) == (2, files)
    assert resp.log_bytes == disk_footprint(len("printed\n")) == 4096 + 512
    (a.dir / "log" / "output.log").unlink()
    (a.dir / "log" / "output.log").symlink_to("/etc/passwd")  # not followed
    assert attempts.results_size(a.request.attempt_id) == (2, files, 0, 0)


def test_results_size_of_an_unknown_attempt_is_not_found(tmp_path: Path) -> None:
    attempts, _ = _ended_overlay_attempt(tmp_path)
    with pytest.raises(_Aborted) as e:
        asyncio.run(_service(attempts).ResultsSize(pb.AttemptRef(attempt_id="nope"), _Context()))  # type: ignore[arg-type]
    assert e.value.args[0] == grpc.StatusCode.NOT_FOUND
