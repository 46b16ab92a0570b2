"""A watched tree's snapshots (coordinator/sources/watcher.py through Syncer.snapshot): what the
watcher reports is what changed, and where it cannot vouch for the tree, a full walk is made.
Each test waits for the change to show (file events arrive on watchdog's threads), up to a
deadline: a change the watcher misses never shows, and the test fails."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent

from convoy.coordinator.sources import sync
from convoy.coordinator.sources.sync import Syncer
from convoy.paths import COOKIE_PREFIX


@pytest.fixture
def syncer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Syncer]:
    monkeypatch.setattr(sync, "WATCH_MIN_FILES", 1)  # watch even these small trees
    s = Syncer(tmp_path / "home")
    yield s
    s.close()


def _files(root: Path, n: int = 5) -> None:
    for i in range(n):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"f{i}.txt").write_text(f"file {i}\n")


def _modes(s: Syncer, root: Path) -> dict[str, int]:
    return {e.path: e.mode for e in s.snapshot(root).manifest.entries}


def _until(what: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "the change never showed in a snapshot"
        time.sleep(0.05)


def test_a_watched_tree_is_watched(syncer: Syncer, tmp_path: Path) -> None:
    """The fixture's premise: after its first snapshot the tree has a live watcher."""
    root = tmp_path / "src"
    _files(root)
    syncer.snapshot(root)
    assert root.resolve() in syncer._watchers


def test_a_chmod_alone_makes_a_new_revision(syncer: Syncer, tmp_path: Path) -> None:
    """`chmod +x run.sh` changes no content and no size: only an attribute event says so."""
    root = tmp_path / "src"
    _files(root)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    before = syncer.snapshot(root)
    assert stat.S_IMODE(_modes(syncer, root)["run.sh"]) & 0o111 == 0
    (root / "run.sh").chmod(0o755)
    _until(lambda: stat.S_IMODE(_modes(syncer, root)["run.sh"]) & 0o100 != 0)
    assert syncer.snapshot(root).id != before.id


def test_a_root_deleted_and_made_again_is_walked_again(syncer: Syncer, tmp_path: Path) -> None:
    """The watches followed the old folder: a new one of the same name is walked in full."""
    root = tmp_path / "src"
    _files(root)
    syncer.snapshot(root)
    shutil.rmtree(root)
    root.mkdir()
    (root / "new.txt").write_text("new\n")
    _until(lambda: set(_modes(syncer, root)) == {"new.txt"})


def test_a_root_moved_away_and_replaced_is_walked_again(syncer: Syncer, tmp_path: Path) -> None:
    """`mv src src.old; mkdir src`: the watches follow src.old; the new src is what counts."""
    root = tmp_path / "src"
    _files(root)
    syncer.snapshot(root)
    root.rename(tmp_path / "src.old")
    root.mkdir()
    (root / "only.txt").write_text("only\n")
    _until(lambda: set(_modes(syncer, root)) == {"only.txt"})


def test_after_an_inotify_overflow_the_tree_is_walked_again(syncer: Syncer, tmp_path: Path) -> None:
    """The kernel dropped events (watchdog only logs the overflow): the next snapshot walks
    the tree in full, finding a change no event reported, and a new watcher takes over."""
    root = tmp_path / "src"
    _files(root)
    syncer.snapshot(root)
    old = syncer._watchers[root.resolve()]
    real = old.on_any_event

    def lossy(event: FileSystemEvent) -> None:  # the change's events are lost, as in an overflow
        if os.fsdecode(event.src_path).rpartition("/")[2].startswith(COOKIE_PREFIX):
            real(event)

    old.on_any_event = lossy  # type: ignore[method-assign]
    (root / "d0" / "f0.txt").write_text("changed, with no event\n")
    assert syncer.snapshot(root).manifest.entries[0].size == len("file 0\n")  # not seen
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )  # what watchdog 7 says
    sizes = {e.path: e.size for e in syncer.snapshot(root).manifest.entries}
    assert sizes["d0/f0.txt"] == len("changed, with no event\n")
    assert syncer._watchers[root.resolve()] is not old


def test_a_change_made_just_before_a_snapshot_is_in_it(syncer: Syncer, tmp_path: Path) -> None:
    """No waiting between the change and the snapshot: a file rewritten, and a file moved
    out of the tree (whose event watchdog holds back half a second to pair it), are in the
    very next snapshot; the watcher's markers are in none, and none is left behind."""
    root = tmp_path / "src"
    _files(root)
    syncer.snapshot(root)
    for i in range(20):
        (root / "d1" / "f1.txt").write_text(f"version {i}\n" + "x" * i)
        sizes = {e.path: e.size for e in syncer.snapshot(root).manifest.entries}
        assert sizes["d1/f1.txt"] == len(f"version {i}\n") + i, i
    (root / "d0" / "f2.txt").rename(tmp_path / "f2.txt")
    paths = {e.path for e in syncer.snapshot(root).manifest.entries}
    assert "d0/f2.txt" not in paths
    assert not any(p.startswith(COOKIE_PREFIX) for p in paths)
    assert not list(root.glob(f"{COOKIE_PREFIX}*"))


def test_markers_a_killed_coordinator_left_are_removed_when_the_tree_is_watched_again(
    tmp_path: Path,
) -> None:
    """A coordinator killed inside drain() leaves its marker file in the user's tree: the next
    watcher of the tree removes it, but not the marker of a live process (another home's
    coordinator watching the same tree, in the middle of its drain)."""
    import subprocess

    from convoy.coordinator.sources.watcher import TreeWatcher

    root = tmp_path / "src"
    _files(root, 2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    try:
        stale = root / f"{COOKIE_PREFIX}{dead.pid}-7"
        live = root / f"{COOKIE_PREFIX}{alive.pid}-3"
        stale.touch()
        live.touch()
        (root / f"{COOKIE_PREFIX}notapid").touch()
        watcher = TreeWatcher(root)
        try:
            assert not stale.exists()
            assert live.exists() and (root / f"{COOKIE_PREFIX}notapid").exists()
        finally:
            watcher.stop()
    finally:
        alive.kill()
        alive.wait()


def test_a_root_gone_before_the_markers_are_looked_for_is_no_error(tmp_path: Path) -> None:
    """The root deleted between the watch's start and the look for stale markers."""
    from convoy.coordinator.sources.watcher import _remove_stale_cookies

    _remove_stale_cookies(tmp_path / "gone")  # raised UnboundLocalError
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / f"{COOKIE_PREFIX}\u00b2-1").touch()  # '²'.isdigit(), int() refuses it
    _remove_stale_cookies(tmp_path / "src")
