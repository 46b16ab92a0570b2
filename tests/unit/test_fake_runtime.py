"""FakeRuntime where Docker has no counterpart to compare with: faults it is told to make,
time that runs on while no agent is alive, its configuration. What it shares with Docker is
in tests/contract/test_runtime_contract.py."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from convoy.agent.runtime import ContainerSpec, DiskFull, RuntimeFailure
from convoy.agent.runtime.fake import FakeRuntime
from convoy.agent.runtime.fake_images import fake_image_id

AGENT = "agent-1"


def make_spec(tmp_path: Path, attempt: str = "a1", **env: str) -> ContainerSpec:
    return ContainerSpec(
        attempt_id=attempt, run_id="r1", submission_id="s1", experiment="exp", agent_id=AGENT,
        image="convoy/busybox:1", argv=("true",), env=dict(env), cpus=1.0, memory_bytes=1 << 26,
        network="none", workdir=tmp_path / attempt / "work", logdir=tmp_path / attempt / "log",
    )  # fmt: skip


def output_of(spec: ContainerSpec) -> str:
    return (spec.logdir / "output.log").read_text()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "fake-runtime"


@pytest.fixture
def rt(state_dir: Path) -> FakeRuntime:
    return FakeRuntime(state_dir)


def test_disk_full_makes_start_raise_disk_full_and_leave_no_container(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """CONVOY_FAKE_DISK_FULL=1: start raises DiskFull (a RuntimeFailure); nothing is left."""
    with pytest.raises(DiskFull, match="no space left on device"):
        rt.start(make_spec(tmp_path, CONVOY_FAKE_DISK_FULL="1"))
    assert rt.recover(AGENT) == []


def test_start_error_makes_start_raise_runtime_failure_with_its_message(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """CONVOY_FAKE_START_ERROR: start raises RuntimeFailure (not DiskFull) with the message."""
    with pytest.raises(RuntimeFailure, match="the engine is on fire") as caught:
        rt.start(make_spec(tmp_path, CONVOY_FAKE_START_ERROR="the engine is on fire"))
    assert not isinstance(caught.value, DiskFull)
    assert rt.recover(AGENT) == []


def test_output_lines_due_during_a_gap_are_written_by_the_next_runtime_in_order(
    state_dir: Path, tmp_path: Path
) -> None:
    """Lines that fell due while no runtime looked are written later: complete, once, in order."""
    first = FakeRuntime(state_dir)
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="0.8", CONVOY_FAKE_LINES="8")
    handle = first.start(spec)
    time.sleep(0.25)
    assert first.state(handle).running
    early = output_of(spec).splitlines()
    assert 2 <= len(early) <= 5  # line i of 8 is due at 0.1 * i s
    del first  # the agent dies; its container goes on
    time.sleep(0.3)
    assert output_of(spec).splitlines() == early  # nobody wrote meanwhile
    second = FakeRuntime(state_dir)
    (recovered,) = second.recover(AGENT)
    assert second.wait(recovered).exit_code == 0
    assert output_of(spec) == "".join(f"line {i}\n" for i in range(1, 9))


def test_time_runs_on_while_no_runtime_exists(state_dir: Path, tmp_path: Path) -> None:
    """A container started at T with duration D has ended at T + D, with its exit and files,
    when the next runtime on its folder first looks after that."""
    files = json.dumps({"out/result.txt": "42\n"})
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="0.3", CONVOY_FAKE_EXIT="4",
                     CONVOY_FAKE_OUTPUT="one\ntwo\n", CONVOY_FAKE_FILES=files)  # fmt: skip
    handle = FakeRuntime(state_dir).start(spec)
    time.sleep(0.5)
    later = FakeRuntime(state_dir)
    (recovered,) = later.recover(AGENT)
    state = later.state(recovered)
    assert recovered == handle
    assert (state.status, state.running) == ("exited", False)
    assert state.exit is not None and state.exit.exit_code == 4
    assert state.exit.ended_at == pytest.approx(state.exit.started_at + 0.3)
    assert output_of(spec) == "one\ntwo\n"
    assert (spec.workdir / "out" / "result.txt").read_text() == "42\n"


def test_a_line_cut_short_by_a_killed_agent_is_completed_not_repeated(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """What was written is read from the log's size, so a half-written line is finished."""
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="0", CONVOY_FAKE_LINES="3")
    handle = rt.start(spec)
    rt.wait(handle)
    with open(spec.logdir / "output.log", "r+b") as f:
        f.truncate(len("line 1\nli"))
    rt.state(handle)
    assert output_of(spec) == "line 1\nline 2\nline 3\n"


def test_output_is_appended_after_what_the_log_held_before_the_start(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """Like Docker's `>>`, a start keeps what output.log already held."""
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="0", CONVOY_FAKE_OUTPUT="new\n")
    spec.logdir.mkdir(parents=True)
    (spec.logdir / "output.log").write_text("old\n")
    rt.wait(rt.start(spec))
    assert output_of(spec) == "old\nnew\n"


def test_a_stopped_container_prints_nothing_more_and_writes_no_files(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """stop ends it at once with 143: later lines and its end-of-run files never come."""
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="10", CONVOY_FAKE_LINES="100",
                     CONVOY_FAKE_FILES='{"f.txt": "x"}')  # fmt: skip
    handle = rt.start(spec)
    rt.stop(handle, 30)
    ex = rt.wait(handle)
    time.sleep(0.2)
    assert (ex.exit_code, ex.oom_killed) == (143, False)
    assert ex.ended_at - ex.started_at < 5
    assert output_of(spec).splitlines() == ["line 1"]
    assert rt.state(handle).exit == ex
    assert not (spec.workdir / "f.txt").exists()


def test_files_go_to_the_overlays_upper_folder_when_there_is_one(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """With an overlay, the run's files land in its upper folder (what results are read from)."""
    upper = tmp_path / "upper"
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="0", CONVOY_FAKE_FILES='{"a/b.txt": "b"}')
    spec = replace(spec, work_overlay=("/lower", str(upper), "/ovl"))
    rt.wait(rt.start(spec))
    assert (upper / "a" / "b.txt").read_text() == "b"
    assert not (spec.workdir / "a").exists()


def test_constructor_defaults_apply_where_the_runs_env_is_silent(
    state_dir: Path, tmp_path: Path
) -> None:
    """Defaults fill in; a run's own CONVOY_FAKE_* wins over them."""
    rt = FakeRuntime(state_dir, {"CONVOY_FAKE_DURATION": "0", "CONVOY_FAKE_EXIT": "7"})
    assert rt.wait(rt.start(make_spec(tmp_path, "a1"))).exit_code == 7
    assert rt.wait(rt.start(make_spec(tmp_path, "a2", CONVOY_FAKE_EXIT="0"))).exit_code == 0


def test_lines_replace_the_output_text(rt: FakeRuntime, tmp_path: Path) -> None:
    """CONVOY_FAKE_LINES=N prints "line 1".."line N" instead of CONVOY_FAKE_OUTPUT."""
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="0", CONVOY_FAKE_OUTPUT="text\n",
                     CONVOY_FAKE_LINES="2")  # fmt: skip
    rt.wait(rt.start(spec))
    assert output_of(spec) == "line 1\nline 2\n"


@pytest.mark.parametrize(("name", "value"), [
    ("CONVOY_FAKE_DURATION", "soon"),
    ("CONVOY_FAKE_DURATION", "-1"),
    ("CONVOY_FAKE_EXIT", "1.5"),
    ("CONVOY_FAKE_EXIT", "256"),
    ("CONVOY_FAKE_LINES", "many"),
    ("CONVOY_FAKE_OOM", "yes"),
    ("CONVOY_FAKE_FILES", "[1]"),
    ("CONVOY_FAKE_FILES", '{"../escape": "x"}'),
    ("CONVOY_FAKE_FILES", '{"/abs": "x"}'),
])  # fmt: skip
def test_a_malformed_value_fails_the_start_naming_the_variable(
    rt: FakeRuntime, tmp_path: Path, name: str, value: str
) -> None:
    """A value not of its variable's form is a RuntimeFailure naming the variable."""
    with pytest.raises(RuntimeFailure, match=name):
        rt.start(make_spec(tmp_path, **{name: value}))
    assert rt.recover(AGENT) == []


def test_a_malformed_default_fails_the_constructor(state_dir: Path) -> None:
    """A bad default is refused at once, not at every start."""
    with pytest.raises(RuntimeFailure, match="CONVOY_FAKE_EXIT"):
        FakeRuntime(state_dir, {"CONVOY_FAKE_EXIT": "x"})


def test_an_infinite_duration_runs_until_stopped(rt: FakeRuntime, tmp_path: Path) -> None:
    """CONVOY_FAKE_DURATION=inf prints its output at once and runs until stopped."""
    spec = make_spec(tmp_path, CONVOY_FAKE_DURATION="inf", CONVOY_FAKE_LINES="3")
    handle = rt.start(spec)
    assert output_of(spec) == "line 1\nline 2\nline 3\n"
    assert rt.state(handle).running
    rt.stop(handle, 1)
    assert rt.wait(handle).exit_code == 143


def test_images_are_a_set_that_pulls_and_loads_add_to(state_dir: Path, tmp_path: Path) -> None:
    """Only the images given exist; a pull adds one, a missing one cannot be pulled."""
    rt = FakeRuntime(state_dir, images={"a:1"}, missing_images={"gone:1"})
    assert rt.has_image("a:1") == rt.image_id("a:1") == fake_image_id("a:1")
    assert rt.has_image("b:1") == ""
    with pytest.raises(RuntimeFailure, match="'b:1'"):
        rt.start(replace(make_spec(tmp_path), image="b:1"))
    assert rt.pull_image("b:1") == fake_image_id("b:1") == rt.has_image("b:1")
    with pytest.raises(RuntimeFailure, match="gone:1"):
        rt.pull_image("gone:1")


def _docker_save(tags: list[str], config: str) -> Iterator[bytes]:
    """A `docker save`-shaped tar (layer, config, manifest.json) in small chunks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        manifest = [{"Config": config, "RepoTags": tags, "Layers": ["l/layer.tar"]}]
        for name, data in [("l/layer.tar", b"\0" * 5000), (config, b"{}"),
                           ("manifest.json", json.dumps(manifest).encode())]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    return iter([data[i : i + 1000] for i in range(0, len(data), 1000)])


def test_a_loaded_image_is_present_with_the_id_of_its_tar(state_dir: Path) -> None:
    """load_image reads the tags and the config digest from the stream and takes it all."""
    rt = FakeRuntime(state_dir, images=(), missing_images={"m:1"})
    chunks = _docker_save(["m:1", "n:2"], "blobs/sha256/" + "ab" * 32)
    assert rt.load_image(chunks) == ["m:1", "n:2"]
    assert next(chunks, None) is None  # the stream was taken to its end
    assert rt.image_id("m:1") == rt.has_image("n:2") == "sha256:" + "ab" * 32


def test_a_stream_that_is_not_an_image_fails_the_load(rt: FakeRuntime) -> None:
    """A stream with no manifest.json is a RuntimeFailure, as Docker's load refuses it."""
    with pytest.raises(RuntimeFailure, match="cannot load image"):
        rt.load_image(iter([b"not a tar at all" * 100]))


def test_containers_of_many_threads_at_once_each_end_with_their_own_output(
    rt: FakeRuntime, tmp_path: Path
) -> None:
    """Thread-safe: 20 threads starting and waiting at once each get their own exit and log."""
    results: dict[int, tuple[int, str]] = {}

    def one(i: int) -> None:
        spec = make_spec(tmp_path, f"a{i}", CONVOY_FAKE_DURATION="0.3",
                         CONVOY_FAKE_EXIT=str(i), CONVOY_FAKE_LINES=str(i))  # fmt: skip
        ex = rt.wait(rt.start(spec))
        results[i] = (ex.exit_code, output_of(spec))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: (i, "".join(f"line {n}\n" for n in range(1, i + 1))) for i in range(20)}
    assert len(rt.recover(AGENT)) == 20


def test_version_is_fake(rt: FakeRuntime) -> None:
    """The host reports docker_version "fake"."""
    assert rt.version() == "fake"
