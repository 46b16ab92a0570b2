"""DockerRuntime against the real Docker engine: what only Docker has (hardened defaults, the
output wrapper, engine timeouts, docker's times). What every runtime must do is in
tests/contract/test_runtime_contract.py, run against Docker too."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker.errors
import pytest
import requests

from convoy.agent.runtime import ContainerSpec, DockerRuntime, container_name, parse_docker_time
from convoy.errors import DiskFull, RuntimeFailure

pytestmark = pytest.mark.docker

MiB = 1 << 20


@pytest.fixture
def spec(agent_id: str, busybox_image: str, tmp_path: Path) -> ContainerSpec:
    attempt = uuid.uuid4().hex[:12]
    return ContainerSpec(
        attempt_id=attempt,
        run_id="r1",
        submission_id="s1",
        experiment="exp",
        agent_id=agent_id,
        image=busybox_image,
        argv=("true",),
        env={},
        cpus=0.5,
        memory_bytes=64 * MiB,
        network="none",
        workdir=tmp_path / "work",
        logdir=tmp_path / "log",
    )


def run(rt: DockerRuntime, spec: ContainerSpec, *argv: str) -> tuple[int, str]:
    handle = rt.start(replace(spec, argv=argv))
    exit_ = rt.wait(handle)
    return exit_.exit_code, (spec.logdir / "output.log").read_text()


def test_stdout_and_stderr_land_in_output_log_in_order(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    script = "for i in 1 2 3 4 5 6 7 8; do echo out $i; echo err $i >&2; done"
    code, log = run(docker_runtime, spec, "sh", "-c", script)
    expected = [f"{stream} {i}" for i in range(1, 9) for stream in ("out", "err")]
    assert (code, log.splitlines()) == (0, expected)


def test_output_log_exists_as_soon_as_start_returns(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    handle = docker_runtime.start(replace(spec, argv=("sleep", "5")))
    assert (spec.logdir / "output.log").read_text() == ""
    docker_runtime.stop(handle, 0)


def test_exit_code_and_times_are_reported(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    before = time.time()
    handle = docker_runtime.start(replace(spec, argv=("sh", "-c", "sleep 0.5; exit 3")))
    ex = docker_runtime.wait(handle)
    assert ex.exit_code == 3
    assert before - 2 < ex.started_at < ex.ended_at < time.time() + 2
    # Docker's times, not ours: StartedAt is taken once the process runs, so under load the
    # span may fall a little short of the sleep (0.198 s for a 0.2 s sleep was seen); half of
    # it still tells the container's times from the request's.
    assert ex.ended_at - ex.started_at >= 0.25
    assert not ex.oom_killed
    assert ex.image_id == docker_runtime.image_id(spec.image)
    state = docker_runtime.state(handle)
    assert (state.status, state.running, state.exit) == ("exited", False, ex)


def test_container_has_hardened_defaults(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    handle = docker_runtime.start(replace(spec, argv=("sleep", "5"), pids_limit=123))
    info = docker_runtime.api.inspect_container(handle.container_id)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert "ALL" in host["CapDrop"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 123
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == host["MemorySwap"] == 64 * MiB
    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert host["LogConfig"]["Type"] == "none"
    assert host["Tmpfs"]["/tmp"].endswith(f"size={64 * MiB}")
    assert info["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    assert info["Config"]["Labels"]["convoy.managed"] == "1"
    assert info["Name"] == f"/{container_name(spec.attempt_id)}"
    docker_runtime.stop(handle, 0)


def test_root_is_read_only_and_tmp_and_home_are_writable(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    script = 'test "$HOME" = /tmp && touch /tmp/x "$HOME/y" && ! touch /x 2>/dev/null && echo ok'
    assert run(docker_runtime, spec, "sh", "-c", script) == (0, "ok\n")


def test_files_written_to_work_appear_in_workdir_owned_by_the_agent(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    code, _ = run(docker_runtime, spec, "sh", "-c", "mkdir -p d && echo hi > d/out.txt")
    out = spec.workdir / "d" / "out.txt"
    assert code == 0
    assert out.read_text() == "hi\n"
    assert (out.stat().st_uid, out.stat().st_gid) == (os.getuid(), os.getgid())


def test_env_is_passed_and_cwd_is_work(docker_runtime: DockerRuntime, spec: ContainerSpec) -> None:
    spec = replace(spec, env={"GREETING": "hello there", "HOME": "/work"})
    assert run(docker_runtime, spec, "sh", "-c", 'echo "$GREETING $HOME $(pwd)"') == (
        0,
        "hello there /work /work\n",
    )


def test_stop_kills_a_process_ignoring_term_after_the_grace(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    handle = docker_runtime.start(replace(spec, argv=("sh", "-c", "trap '' TERM; sleep 1000")))
    t0 = time.monotonic()
    docker_runtime.stop(handle, 1)
    assert time.monotonic() - t0 < 1 + 5
    assert docker_runtime.wait(handle).exit_code == 137


def test_stop_delivers_term_to_the_command(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    handle = docker_runtime.start(replace(spec, argv=("sleep", "1000")))
    t0 = time.monotonic()
    docker_runtime.stop(handle, 30)
    assert time.monotonic() - t0 < 5
    assert docker_runtime.wait(handle).exit_code == 143  # 128 + SIGTERM: not the SIGKILL


def test_docker_error_at_start_raises_and_leaves_no_container(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    with pytest.raises(RuntimeFailure, match="no-such-network"):
        docker_runtime.start(replace(spec, network="convoy-no-such-network"))
    assert docker_runtime.recover(spec.agent_id) == []


def test_a_full_disk_at_start_raises_disk_full_and_leaves_no_container(
    docker_runtime: DockerRuntime, spec: ContainerSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's ENOSPC (here its words, as dockerd gives them when it cannot write the
    container's folder) is DiskFull, a RuntimeFailure, and the created container goes."""

    def full(container: str) -> None:
        response = requests.Response()
        response.status_code = 500
        raise docker.errors.APIError(
            "500 Server Error", response,
            explanation="mkdir /var/lib/docker/overlay2/x/merged: no space left on device",
        )  # fmt: skip

    monkeypatch.setattr(docker_runtime.api, "start", full)
    with pytest.raises(DiskFull, match="no space left on device"):
        docker_runtime.start(spec)
    assert docker_runtime.recover(spec.agent_id) == []


def test_a_created_but_unstarted_attempt_is_started_by_start(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    handle = docker_runtime.start(replace(spec, argv=("sh", "-c", "echo ran")))
    docker_runtime.wait(handle)
    # Simulate an agent that died between create and start: a created twin under the name.
    docker_runtime.remove(handle)
    created = docker_runtime.client.containers.create(
        spec.image,
        ["sh", "-c", "echo late >>/.convoy/output.log"],
        name=container_name(spec.attempt_id),
        labels=handle.labels,
        volumes={str(spec.logdir.resolve()): {"bind": "/.convoy", "mode": "rw"}},
        network_mode="none",
    )
    again = docker_runtime.start(spec)
    assert again.container_id == created.id
    assert docker_runtime.wait(again).exit_code == 0
    assert (spec.logdir / "output.log").read_text() == "ran\nlate\n"


def test_a_missing_command_exits_127_and_says_so_in_output_log(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    code, log = run(docker_runtime, spec, "no-such-command")
    assert code == 127
    assert "no-such-command: not found" in log


@pytest.fixture
def image_without_sh(docker_runtime: DockerRuntime, tmp_path: Path) -> Iterator[str]:
    tag = f"convoy/test-nosh:{uuid.uuid4().hex[:8]}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    docker_runtime.api.import_image_from_data(buf.getvalue(), repository=tag)
    yield tag
    docker_runtime.api.remove_image(tag, force=True)


def test_an_image_without_sh_exits_127(
    docker_runtime: DockerRuntime, spec: ContainerSpec, image_without_sh: str
) -> None:
    handle = docker_runtime.start(replace(spec, image=image_without_sh, argv=("/README",)))
    assert docker_runtime.wait(handle).exit_code == 127
    docker_runtime.remove(handle)  # before the fixture removes the image


def test_wait_outlasts_docker_read_timeouts(
    docker_runtime: DockerRuntime, spec: ContainerSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_runtime, "wait_poll_seconds", 0.3)
    handle = docker_runtime.start(replace(spec, argv=("sh", "-c", "sleep 1.5; exit 4")))
    ex = docker_runtime.wait(handle)
    assert ex.exit_code == 4  # five polls timed out before the container ended


def test_200000_lines_all_arrive_in_order(
    docker_runtime: DockerRuntime, spec: ContainerSpec
) -> None:
    code, log = run(docker_runtime, spec, "seq", "1", "200000")
    assert code == 0
    assert log == "".join(f"{i}\n" for i in range(1, 200001))


def test_docker_times_with_nanoseconds_parse_to_unix_seconds() -> None:
    assert parse_docker_time("1970-01-01T00:00:01.500000000Z") == 1.5
    assert parse_docker_time("2024-01-02T03:04:05.123456789+01:00") == pytest.approx(
        1704161045.123456789
    )
    assert parse_docker_time("0001-01-01T00:00:00Z") == 0.0


def test_version_is_the_engines(docker_runtime: DockerRuntime) -> None:
    assert docker_runtime.version() == docker_runtime.client.version()["Version"]
