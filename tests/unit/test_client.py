"""convoy.Client and AsyncClient against an in-process gRPC server with a scripted servicer:
what each call sends, what it returns (dataclasses), how failures come out (convoy's errors),
and the blocking flavour's streams. The real coordinator: tests/integration/test_client.py."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from convoy.client import AsyncClient, Client, Run
from convoy.client.convert import run_of
from convoy.client.errors import error_of
from convoy.errors import (
    ConvoyError,
    CoordinatorUnavailable,
    NotFound,
    SpecError,
    Unauthenticated,
    UsageError,
    WaitTimedOut,
)
from convoy.rpcwire import BUILD_REUSED
from convoy.v1 import common_pb2
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

SPEC = "name: e\nimage: i\ncommand: echo ${x}\nmatrix:\n  x: [1, 2]\n"


def _run(index: int, state: str, **fields: object) -> pb.Run:
    return pb.Run(id=f"e-1.{index}", submission_id="e-1", experiment="e", index=index,
                  state=state, params_json=f'{{"x": {index + 1}}}', **fields)  # type: ignore[arg-type]  # fmt: skip


class Scripted(pb_grpc.CoordinatorServicer):
    """Answers as a coordinator of one submission e-1 of two runs would; records requests."""

    def __init__(self) -> None:
        self.asked: list[object] = []
        self.ended = asyncio.Event()

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext
                     ) -> pb.SubmitResponse:  # fmt: skip
        self.asked.append(request)
        if "bad" in request.spec_yaml:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "x.yaml:1:1: no")
        return pb.SubmitResponse(submission_id="e-1", revision="r1",
                                 runs=[_run(0, "queued"), _run(1, "queued")])  # fmt: skip

    async def ListSubmissions(
        self, request: pb.ListSubmissionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubmissionsResponse:
        one = pb.Submission(id="e-1", experiment="e", total=2)
        return pb.ListSubmissionsResponse(submissions=[one])

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        if request.run_id != "e-1.0":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id!r}")
        return _run(0, "failed", has_exit_code=True, exit_code=0, started_at=1.0, ended_at=3.5)

    async def Events(self, request: pb.EventsRequest, context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[pb.RunEvent]:  # fmt: skip
        self.asked.append(request)
        yield pb.RunEvent(run=_run(0, "running", progress=50.0, has_progress=True), snapshot=True)
        yield pb.RunEvent(run=_run(0, "succeeded"), previous_state="running")
        if request.submission_id == "e-1" and not self.ended.is_set():
            await asyncio.sleep(3600)  # the second run never ends: a wait times out
        yield pb.RunEvent(run=_run(1, "failed"), previous_state="running")

    async def Logs(self, request: pb.LogsRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[common_pb2.LogChunk]:  # fmt: skip
        self.asked.append(request)
        yield common_pb2.LogChunk(offset=0, data=b"hello ", attempt=1)
        yield common_pb2.LogChunk(offset=6, data=b"world\n", attempt=2)
        if request.run_id.endswith("build@h1"):
            context.set_trailing_metadata(((BUILD_REUSED, "1"),))

    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext
                     ) -> pb.CancelResponse:  # fmt: skip
        self.asked.append(request)
        return pb.CancelResponse(cancelled=["e-1.1"])


@pytest.fixture
def served() -> Iterator[tuple[Path, Scripted]]:
    """The scripted servicer on home/coordinator.sock, served from a thread of its own."""
    home = Path(tempfile.mkdtemp(prefix="cvc-", dir="/tmp"))
    servicer = Scripted()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: list[grpc.aio.Server] = []

    async def serve() -> None:
        s = grpc.aio.server()
        pb_grpc.add_CoordinatorServicer_to_server(servicer, s)
        s.add_insecure_port(f"unix:{home / 'coordinator.sock'}")
        await s.start()
        server.append(s)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    try:
        yield home, servicer
    finally:
        asyncio.run_coroutine_threadsafe(server[0].stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        for f in home.iterdir():
            f.unlink()
        home.rmdir()


def test_a_submission_sends_the_file_as_read_and_returns_dataclasses(
    served: tuple[Path, Scripted], tmp_path: Path
) -> None:
    home, servicer = served
    spec = tmp_path / "e.yaml"
    spec.write_text(SPEC)
    with Client(home) as c:
        sub = c.submit(spec, results=tmp_path / "out", indexes=[1], force=True)
    (req,) = servicer.asked
    assert isinstance(req, pb.SubmitRequest)
    assert (req.spec_path, req.spec_yaml, req.results_dir) == (
        str(spec),
        SPEC,
        str(tmp_path / "out"),
    )
    assert (list(req.indexes), req.force) == ([1], True)
    assert sub.submission_id == "e-1" and [r.params for r in sub.runs] == [{"x": 1}, {"x": 2}]
    assert all(isinstance(r, Run) for r in sub.runs)


def test_an_experiment_given_as_a_dict_is_sent_as_yaml_named_in_its_sources(
    served: tuple[Path, Scripted], tmp_path: Path
) -> None:
    home, servicer = served
    with Client(home) as c:
        c.submit({"name": "e", "image": "i", "command": "true"}, sources=tmp_path)
        with pytest.raises(UsageError, match="needs `sources`"):
            c.submit({"name": "e", "image": "i", "command": "true"})
    (req,) = servicer.asked
    assert isinstance(req, pb.SubmitRequest)
    assert req.spec_path == str(tmp_path / "e.convoy.yaml")
    assert req.spec_yaml == "name: e\nimage: i\ncommand: 'true'\n"


def test_a_bad_experiment_is_refused_before_anything_is_sent(
    served: tuple[Path, Scripted], tmp_path: Path
) -> None:
    home, servicer = served
    spec = tmp_path / "e.yaml"
    spec.write_text("name: e\nimage: i\ncommand: true\nmatrix: [1]\n")
    with Client(home) as c, pytest.raises(SpecError) as e:
        c.submit(spec)
    assert (e.value.line, e.value.column) == (4, 9)
    assert servicer.asked == []


def test_a_refused_request_is_a_usage_error_with_the_coordinators_words(
    served: tuple[Path, Scripted], tmp_path: Path
) -> None:
    home, _ = served
    spec = tmp_path / "e.yaml"
    spec.write_text(SPEC + "# bad\n")
    with Client(home) as c, pytest.raises(UsageError, match=r"^x.yaml:1:1: no$"):
        c.submit(spec)


def test_a_run_comes_with_none_for_what_it_lacks_and_not_found_is_convoys(
    served: tuple[Path, Scripted],
) -> None:
    home, _ = served
    with Client(home) as c:
        r = c.run("e-1.0")
        with pytest.raises(NotFound, match=r"no run 'e-1\.9'"):
            c.run("e-1.9")
    assert (r.exit_code, r.progress, r.duration_s, r.terminal) == (0, None, 2.5, True)


def test_events_logs_and_cancel_through_the_blocking_client(served: tuple[Path, Scripted]) -> None:
    home, servicer = served
    with Client(home) as c:
        events = c.events("e-1")
        first = next(events)
        second = next(events)
        events.close()  # the stream is given up: its call is cancelled
        chunks = list(c.logs("e-1.0", follow=True))
        assert c.log("e-1.0") == b"hello world\n"
        assert c.cancel("e-1", grace=5) == ["e-1.1"]
    assert (first.snapshot, first.run.state, first.run.progress) == (True, "running", 50.0)
    assert (second.previous_state, second.run.state) == ("running", "succeeded")
    assert [(x.offset, x.attempt) for x in chunks] == [(0, 1), (6, 2)]
    cancel = servicer.asked[-1]
    assert isinstance(cancel, pb.CancelRequest) and cancel.grace_seconds == 5


def test_a_build_stream_says_when_its_host_already_had_the_build(
    served: tuple[Path, Scripted],
) -> None:
    home, _ = served

    async def read(entry: str) -> bool:
        async with AsyncClient(home) as c:
            stream = c.logs(entry, follow=True)
            assert [x.data async for x in stream] == [b"hello ", b"world\n"]
            return stream.build_reused

    assert asyncio.run(read("e-1.build@h1")) is True
    assert asyncio.run(read("e-1.build@h2")) is False


def test_wait_returns_the_ended_runs_by_index_or_times_out(served: tuple[Path, Scripted]) -> None:
    home, servicer = served
    with Client(home) as c:
        with pytest.raises(WaitTimedOut, match=r"1 of 2 runs ended within 0\.5 s") as e:
            c.wait("e-1", timeout=0.5)
        assert isinstance(e.value, TimeoutError)
        servicer.ended.set()
        runs = c.wait("e-1", timeout=30)
    assert [(r.index, r.state) for r in runs] == [(0, "succeeded"), (1, "failed")]


def test_no_coordinator_is_said_as_such(tmp_path: Path) -> None:
    with pytest.raises(CoordinatorUnavailable, match="no coordinator is running"):
        asyncio.run(AsyncClient.connect(tmp_path))
    os.mkfifo(tmp_path / "coordinator.sock")  # there, but nothing answers on it
    with Client(tmp_path) as c, pytest.raises(CoordinatorUnavailable, match="not running"):
        c.submissions()


@pytest.mark.parametrize(("code", "kind"), [
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.INVALID_ARGUMENT, UsageError),
    (grpc.StatusCode.FAILED_PRECONDITION, UsageError),
    (grpc.StatusCode.ALREADY_EXISTS, UsageError),
    (grpc.StatusCode.UNAVAILABLE, CoordinatorUnavailable),
    (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
    (grpc.StatusCode.INTERNAL, ConvoyError),
])  # fmt: skip
def test_each_status_is_one_of_convoys_errors(code: grpc.StatusCode, kind: type) -> None:
    e = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "said", "")
    got = error_of(e, "grpcs://h:1", remote=True)
    assert type(got) is kind
    assert "said" in str(got)


def test_a_message_without_exit_code_or_progress_has_none() -> None:
    r = run_of(pb.Run(id="a", params_json='{"k": [1, "x"]}', state="queued"))
    assert (r.exit_code, r.progress, r.params, r.duration_s) == (None, None, {"k": [1, "x"]}, None)
    zero = run_of(pb.Run(id="a", has_exit_code=True, exit_code=0, has_progress=True))
    assert (zero.exit_code, zero.progress) == (0, 0.0)
