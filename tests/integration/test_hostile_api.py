"""Malformed and hostile calls to the coordinator's API (a real server, its real store, the
fake runtime): each gets INVALID_ARGUMENT or NOT_FOUND with a sentence, never UNKNOWN, and
changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
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

from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

from .conftest import write_experiment

HUGE = [0, 10**20]
SPEC = """
name: small
image: any/image:1
command: ignored
env: {CONVOY_FAKE_DURATION: "0.1"}
resources: {cpus: 0.25, memory: 16MiB}
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """A coordinator with a fake-runtime local host; everything it started is gone after."""
    folder = Path(tempfile.mkdtemp(prefix="cvh-", dir="/tmp"))
    home = folder / "home"
    env = dict(os.environ, CONVOY_HOME=str(home), CONVOY_AGENT_RUNTIME="fake",
               DOCKER_HOST=f"unix://{folder}/no-docker.sock",
               CONVOY_MAX_TREE_BYTES=str(1 << 20))  # fmt: skip
    log = open(folder / "up.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "convoy.cli.main", "up", "--cpus", "2", "--memory", "1GiB"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (home / "coordinator.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((folder / "up.log").read_text())
            time.sleep(0.05)
        yield home
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((home / "agent" / "agent.pid").read_text().split()[0]), signal.SIGKILL)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    """The status a call ends with (OK when it ends well), and its details."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:  # type: ignore[attr-defined]
                pass
        else:
            await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def test_bad_calls_are_refused_with_a_sentence_and_change_nothing(home: Path) -> None:
    spec = write_experiment(home.parent / "exp", SPEC)
    text = spec.read_text()
    big = write_experiment(home.parent / "big", SPEC)
    (big.parent / "data.bin").write_bytes(os.urandom(3 << 19))  # 1.5 MiB: over the 1 MiB set

    async def main() -> None:
        async with grpc.aio.insecure_channel(f"unix://{home}/coordinator.sock") as ch:
            stub = pb_grpc.CoordinatorStub(ch)

            def submit(**kw: object) -> object:
                args: dict[str, object] = {"spec_path": str(spec), "spec_yaml": text, **kw}
                return stub.Submit(pb.SubmitRequest(**args), timeout=30)  # type: ignore[arg-type]

            ok = await submit()
            run_id = ok.runs[0].id
            before = len((await stub.ListSubmissions(pb.ListSubmissionsRequest())).submissions)
            refused = {
                "relative results_dir": submit(results_dir="rel/out"),
                "NUL in results_dir": submit(results_dir="/tmp/a\0b"),
                "NUL in spec_path": submit(spec_path=f"{spec}\0x"),
                "lone surrogate": submit(spec_yaml=text + 'matrix: {x: ["\\ud800"]}\n'),
                "NUL in a value": submit(spec_yaml=text + 'matrix: {x: ["a\\0b"]}\n'),
                "10^7 runs": submit(spec_yaml=text + "matrix: {i: {range: [0, 10000000]}}\n"),
                "range beyond int": submit(spec_yaml=text + f"matrix: {{i: {{range: {HUGE}}}}}\n"),
                "negative log offset": stub.Logs(pb.LogsRequest(run_id=run_id, offset=-1)),
                "negative limit": stub.ListRuns(pb.ListRunsRequest(limit=-1)),
                "sources over the limit": submit(spec_path=str(big)),
                "garbage Submit": ch.unary_unary("/convoy.v1.Coordinator/Submit")(
                    b"\xff\xfe\x00garbage" * 10, timeout=10
                ),
                "garbage Logs": ch.unary_stream("/convoy.v1.Coordinator/Logs")(
                    b"\x0a\xff\xff\xff\xff\x0f", timeout=10
                ),
            }
            for what, call in refused.items():
                code, details = await _code(call)
                assert code is grpc.StatusCode.INVALID_ARGUMENT, (what, code, details)
                assert details and "Unexpected" not in details, (what, details)
                if what == "sources over the limit":
                    assert "over the 1.0MiB convoy takes (CONVOY_MAX_TREE_BYTES" in details
            code, details = await _code(submit(spec_yaml=text.replace("cpus: 0.25", "cpus: 64")))
            assert code is grpc.StatusCode.INVALID_ARGUMENT
            assert details.startswith(
                f"{spec}:6:12: cannot run anywhere: a run asks for 64 cpus, 16.0MiB of memory"
            )  # at its resources, sizes readable
            code, details = await _code(
                stub.Events(pb.EventsRequest(submission_id="nope-1"), timeout=20)
            )
            assert (code, details) == (grpc.StatusCode.NOT_FOUND, "no submission 'nope-1'")
            far = [c async for c in stub.Logs(pb.LogsRequest(run_id=run_id, offset=2**62))]
            assert far == []  # past the end: nothing, not an error
            after = len((await stub.ListSubmissions(pb.ListSubmissionsRequest())).submissions)
            assert after == before  # nothing refused was stored

    asyncio.run(main())
