"""The agent's build folders: which are kept, which are collected (no Docker needed)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from agent.builds import BuildResult, Builds, tail_of
from agent.objects import ObjectStore
from convoy.content import hash_bytes, revision_id
from coordinator.manifest import Entry


def _revision(store: ObjectStore, text: bytes) -> str:
    store.put_bytes(hash_bytes(text), text)
    entries = [Entry("model.c", 0o100644, len(text), hash_bytes(text))]
    rev = revision_id(entries)
    store.make_revision(rev, entries)
    return rev


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
