"""A real agent process on `--runtime fake`, over gRPC: it runs attempts with no Docker engine,
and a SIGKILLed agent's fake containers are adopted by the next as Docker's would be. And the
fake takes an image shipped from a real engine under that engine's id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from convoy.agent.runtime import DockerRuntime, FakeRuntime
from convoy.v1 import agent_pb2 as pb
from convoy.v1 import agent_pb2_grpc as pb_grpc
from convoy.v1 import common_pb2

ROOT = Path(__file__).resolve().parents[2]


class FakeAgent:
    """`python -m convoy.agent --runtime fake` on a unix socket; no Docker engine reachable."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="cvf-", dir="/tmp"))  # short: a socket path
        self.home, self.sock = self.work / "agent", self.work / "a.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.work}/no-docker.sock")
        self.proc = proc = subprocess.Popen(
            [sys.executable, "-m", "convoy.agent", "--home", str(self.home), "--socket",
             str(self.sock), "--runtime", "fake"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self.sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stub(self) -> pb_grpc.AgentStub:
        return pb_grpc.AgentStub(grpc.insecure_channel(f"unix:{self.sock}"))


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    a = FakeAgent()
    try:
        a.start()
        yield a
    finally:
        a.kill()
        shutil.rmtree(a.work, ignore_errors=True)


def start_request(agent: FakeAgent, attempt: str, env: dict[str, str]) -> pb.StartAttemptRequest:
    source = agent.work / "src"
    source.mkdir(exist_ok=True)
    (source / "input.txt").write_text("in\n")
    return pb.StartAttemptRequest(
        attempt_id=attempt, run_id=attempt, submission_id="s1", experiment="fake",
        image="convoy/never-built:1", argv=["/bin/sh", "-c", "exit 99"], env=env,
        resources=common_pb2.Resources(cpus=1, memory_bytes=1 << 28), network="none",
        source_path=str(source),
    )  # fmt: skip


def log_of(stub: pb_grpc.AgentStub, attempt: str) -> str:
    chunks = stub.ReadLog(pb.ReadLogRequest(attempt_id=attempt, offset=0, follow=False))
    return b"".join(c.data for c in chunks).decode()


def test_an_agent_on_the_fake_runtime_runs_an_attempt_as_its_env_says(agent: FakeAgent) -> None:
    """Describe says "fake"; the attempt ends with the env's exit code, output and files."""
    stub = agent.stub()
    assert stub.Describe(pb.DescribeRequest(), timeout=10).docker_version == "fake"
    env = {"CONVOY_FAKE_DURATION": "0.3", "CONVOY_FAKE_LINES": "3", "CONVOY_FAKE_EXIT": "3",
           "CONVOY_FAKE_FILES": json.dumps({"out/result.txt": "42\n"})}  # fmt: skip
    stub.StartAttempt(start_request(agent, "fa-1", env), timeout=30)
    status = stub.WaitAttempt(pb.AttemptRef(attempt_id="fa-1"), timeout=30)
    assert (status.state, status.exit_code) == (pb.ATTEMPT_EXITED, 3)
    assert status.image_id.startswith("sha256:fake")
    assert log_of(stub, "fa-1") == "line 1\nline 2\nline 3\n"
    for far in (21, 2**62):  # past the end (2**62: past what a file system seeks to) is nothing
        req = pb.ReadLogRequest(attempt_id="fa-1", offset=far, follow=True)
        assert list(stub.ReadLog(req, timeout=10)) == []
    chunks = list(stub.FetchResults(pb.FetchResultsRequest(attempt_id="fa-1"), timeout=30))
    assert [(c.path, c.data) for c in chunks] == [("out/result.txt", b"42\n")]


def test_a_sigkilled_fake_agent_is_replaced_and_its_run_ends_whole(agent: FakeAgent) -> None:
    """SIGKILL mid-run; the run ends while no agent lives; the next agent adopts it, and its
    log is complete and in order."""
    env = {"CONVOY_FAKE_DURATION": "1.5", "CONVOY_FAKE_LINES": "10"}
    agent.stub().StartAttempt(start_request(agent, "fa-2", env), timeout=30)
    time.sleep(0.4)
    agent.kill()
    assert 1 <= len((agent.home / "attempts/fa-2/log/output.log").read_text().splitlines()) < 10
    time.sleep(1.5)
    agent.start()
    status = agent.stub().WaitAttempt(pb.AttemptRef(attempt_id="fa-2"), timeout=30)
    assert (status.state, status.exit_code) == (pb.ATTEMPT_EXITED, 0), status.reason
    assert log_of(agent.stub(), "fa-2") == "".join(f"line {i}\n" for i in range(1, 11))
    assert list((agent.home / "fake-runtime").iterdir()) == []  # removed once it was recorded


def test_cancel_stops_a_fake_run(agent: FakeAgent) -> None:
    """CancelAttempt ends a long fake run at once: cancelled, exit code 143."""
    stub = agent.stub()
    stub.StartAttempt(start_request(agent, "fa-3", {"CONVOY_FAKE_DURATION": "600"}), timeout=30)
    stub.CancelAttempt(pb.CancelAttemptRequest(attempt_id="fa-3", grace_seconds=30), timeout=30)
    status = stub.WaitAttempt(pb.AttemptRef(attempt_id="fa-3"), timeout=10)
    assert (status.state, status.exit_code) == (pb.ATTEMPT_CANCELLED, 143)


@pytest.mark.docker
def test_a_fake_host_shipped_an_image_reports_the_engines_id_for_it(
    docker_runtime: DockerRuntime, busybox_image: str, tmp_path: Path
) -> None:
    """After loading a real `docker save` stream, the fake has the image under Docker's id
    (which the coordinator compares to decide the host has it)."""
    fake = FakeRuntime(tmp_path / "fake-runtime", images=())
    assert fake.has_image(busybox_image) == ""
    chunks = docker_runtime.api.get_image(busybox_image, chunk_size=1 << 16)
    assert fake.load_image(iter(chunks)) == [busybox_image]
    assert fake.has_image(busybox_image) == docker_runtime.image_id(busybox_image)
