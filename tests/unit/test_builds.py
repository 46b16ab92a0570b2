"""The agent's build folders: which are kept, which are collected (no Docker needed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from convoy.agent.attempts import AttemptRequest, AttemptState, AttemptStatus
from convoy.agent.builds import BuildResult, Builds, tail_of
from convoy.agent.objects import ObjectStore
from convoy.content import hash_bytes, revision_id
from convoy.manifest import Entry
from tests.unit.users import NOBODY, as_nobody


def _tree(store: ObjectStore, files: dict[str, bytes]) -> str:
    entries = []
    for path, text in sorted(files.items()):
        store.put_bytes(hash_bytes(text), text)
        entries.append(Entry(path, 0o100644, len(text), hash_bytes(text)))
    rev = revision_id(entries)
    store.make_revision(rev, entries)
    return rev


def _revision(store: ObjectStore, text: bytes) -> str:
    return _tree(store, {"model.c": text})


def _build(builds: Builds, key: str, revision: str, experiment: str, latest: bool) -> None:
    folder = builds.root / key
    (folder / "upper").mkdir(parents=True)
    result = BuildResult(key, True, 0, "", "", "build-x", True, 1.0, revision, experiment)
    (folder / "result.json").write_text(json.dumps(asdict(result)))
    (folder / "succeeded").touch()
    if latest:
        (builds.root / "latest" / experiment).write_text(
            json.dumps({"key": key, "revision": revision})
        )


def test_builds_of_collected_revisions_go_but_each_experiments_last_stays(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "store")
    builds = Builds(SimpleNamespace(home=tmp_path, objects=store))  # type: ignore[arg-type]
    kept_rev = _revision(store, b"int main(void) { return 0; }\n")
    a, b, c = ("a" * 64), ("b" * 64), ("c" * 64)
    _build(builds, a, kept_rev, "des", latest=False)  # its revision is still there
    _build(builds, b, "0" * 20, "des", latest=True)  # revision gone, but the experiment's last
    _build(builds, c, "1" * 20, "des", latest=False)  # revision gone: collected
    assert builds.collect() == 1
    assert sorted(p.name for p in builds.root.iterdir() if p.name != "latest") == [a, b]
    assert builds.result(a) is not None and builds.result(c) is None


def test_a_failed_build_is_recorded_but_is_no_starting_point(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "store")
    builds = Builds(SimpleNamespace(home=tmp_path, objects=store))  # type: ignore[arg-type]
    key = "d" * 64
    (builds.root / key).mkdir()
    failed = BuildResult(key, False, 2, "the build exited with code 2", "", "b", True, 0.1)
    (builds.root / key / "result.json").write_text(json.dumps(asdict(failed)))
    assert builds.result(key) == failed
    assert builds._latest("des") is None  # nothing to start the next build from


def test_tail_of_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail_of(log, 3) == "line 97\nline 98\nline 99"
    assert tail_of(tmp_path / "missing") == ""


class _FakeAttempts:
    """Attempts whose containers end at once with the next of `exit_codes`."""

    def __init__(self, home: Path, store: ObjectStore, exit_codes: list[int]) -> None:
        self.home, self.objects, self.exit_codes = home, store, exit_codes
        self.started: list[AttemptRequest] = []

    def known(self, attempt_id: str) -> bool:
        return any(r.attempt_id == attempt_id for r in self.started)

    async def start(self, req: AttemptRequest) -> AttemptStatus:
        self.started.append(req)
        code = self.exit_codes.pop(0)
        log = self.home / "logs" / req.attempt_id
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"building\nexit {code}\n")
        return AttemptStatus(req.attempt_id, req.run_id, AttemptState.EXITED, exit_code=code,
                             reason=f"exited with code {code}")  # fmt: skip

    async def wait(self, attempt_id: str) -> AttemptStatus:
        raise AssertionError("started attempts here have ended already")

    def get(self, attempt_id: str) -> SimpleNamespace:
        return SimpleNamespace(log_path=self.home / "logs" / attempt_id)

    def release(self, attempt_id: str) -> None:
        # It removes a workspace: never on the agent's event loop, which serves every RPC.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            raise AssertionError("release called on the event loop")


def _request(revision: str) -> AttemptRequest:
    return AttemptRequest(
        attempt_id="build-test", run_id="", submission_id="des-1", experiment="des",
        image="convoy/gcc:12", argv=("make",), env={}, cpus=1.0, memory_bytes=1 << 28,
        network="none", timeout_seconds=0.0, source_path="", revision=revision,
    )  # fmt: skip


def test_a_key_is_built_until_it_succeeds_then_never_again(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "store")
    rev = _revision(store, b"int main(void) { return 0; }\n")
    attempts = _FakeAttempts(tmp_path, store, [2, 0])
    builds = Builds(attempts)  # type: ignore[arg-type]
    key = "e" * 64

    async def scenario() -> list[BuildResult]:
        return [await builds.build(key, _request(rev)) for _ in range(3)]

    failed, made, reused = asyncio.run(scenario())
    assert (failed.succeeded, failed.exit_code, failed.built_now) == (False, 2, True)
    assert failed.reason == "the build exited with code 2" and failed.tail.endswith("exit 2")
    assert (made.succeeded, made.built_now) == (True, True)  # the failure was tried again
    assert (reused.succeeded, reused.built_now) == (True, False)
    assert len(attempts.started) == 2  # the third call started nothing
    assert attempts.started[0].upper == str(tmp_path / "builds" / key / "upper")
    assert builds._latest("des") == (key, rev)


def test_the_next_build_never_writes_or_deletes_through_a_link_the_last_one_left(
    tmp_path: Path,
) -> None:
    """A build's upper is what its container made: a symlink there in place of a source
    folder (to anywhere on the host) must not lead the next build's preparation out of the
    upper, neither to copy a changed source nor to delete one that is gone."""
    store = ObjectStore(tmp_path / "store")
    builds = Builds(SimpleNamespace(home=tmp_path, objects=store))  # type: ignore[arg-type]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "gone.c").write_text("the host's own file\n")
    old = _tree(store, {"src/main.c": b"v1\n", "lib/gone.c": b"x\n"})
    new = _tree(store, {"src/main.c": b"v2\n"})
    key = "e" * 64
    _build(builds, key, old, "des", latest=True)
    upper = builds.root / key / "upper"
    (upper / "src").symlink_to(outside)  # what a build's container can leave behind
    (upper / "lib").symlink_to(outside)
    target = builds.root / ("f" * 64)
    target.mkdir()
    builds._prepare(target / "upper", "des", new)
    assert sorted(p.name for p in outside.iterdir()) == ["gone.c"]  # nothing written, kept
    assert (target / "upper" / "src").is_dir() and not (target / "upper" / "src").is_symlink()
    assert (target / "upper" / "src" / "main.c").read_bytes() == b"v2\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_last_build_that_cannot_be_copied_is_built_anew_not_failed_for_ever() -> None:
    """A succeeded build left a folder its (non-root) owner cannot read: `cp -a` of it fails,
    which failed every later build of the experiment on that host. The next build now starts
    from an empty upper (make redoes it all), and such a folder is removed when collected."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="cvb-"))
    base.chmod(0o755)
    os.chown(base, NOBODY, NOBODY)

    def as_the_agent() -> None:
        store = ObjectStore(base / "store")
        builds = Builds(SimpleNamespace(home=base, objects=store))  # type: ignore[arg-type]
        old = _tree(store, {"src/main.c": b"v1\n"})
        new = _tree(store, {"src/main.c": b"v2\n"})
        key = "e" * 64
        _build(builds, key, old, "des", latest=True)
        locked = builds.root / key / "upper" / "cache"
        (locked / "deep").mkdir(parents=True)
        locked.chmod(0o000)
        target = builds.root / ("f" * 64)
        target.mkdir()
        builds._prepare(target / "upper", "des", new)
        assert list((target / "upper").iterdir()) == []  # from scratch
        # Its revision collected and no longer the experiment's last, the build goes, whole.
        store.collect(max_age_s=0, max_bytes=0, now=time.time() + 10**6)
        (builds.root / "latest" / "des").unlink()
        assert builds.collect() >= 1
        assert not (builds.root / key).exists()

    try:
        as_nobody(as_the_agent)
    finally:
        shutil.rmtree(base)
