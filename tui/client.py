"""The TUI's only way to the coordinator: its public gRPC API on the unix socket (nothing from
coordinator/ or agent/ is imported, so what the TUI does, a script can do)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from convoy.paths import coordinator_socket
from convoy.resultrows import Results, gather
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

RETRY_S = 2.0  # seconds between attempts to reach a coordinator that went away
MAX_MESSAGE = 64 * 1024 * 1024  # a Results chunk holds 1,000 rows: past gRPC's 4 MiB default


class ApiClient:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.socket = coordinator_socket(home)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.CoordinatorStub | None = None

    @property
    def stub(self) -> pb_grpc.CoordinatorStub:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(
                f"unix:{self.socket}", options=[("grpc.max_receive_message_length", MAX_MESSAGE)]
            )
            self._stub = pb_grpc.CoordinatorStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = self._stub = None

    async def reset(self) -> None:
        """Drop the channel: the next call connects anew (after the coordinator came back)."""
        await self.close()

    async def submissions(self) -> list[pb.Submission]:
        resp = await self.stub.ListSubmissions(pb.ListSubmissionsRequest(), timeout=10)
        return list(resp.submissions)

    def events(self) -> AsyncIterator[pb.RunEvent]:
        """Every run's current state, then every change (a stream that lasts)."""
        return self.stub.Events(pb.EventsRequest(snapshot=True))

    async def logs(
        self, run_id: str, offset: int = 0, follow: bool = True
    ) -> AsyncIterator[tuple[int, bytes]]:
        """(attempt, data): a retry's output comes with the next attempt's number."""
        req = pb.LogsRequest(run_id=run_id, offset=offset, follow=follow)
        async for chunk in self.stub.Logs(req):
            yield chunk.attempt, chunk.data

    async def get_run(self, run_id: str) -> pb.Run:
        return await self.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10)

    async def cancel(self, target: str) -> list[str]:
        resp = await self.stub.Cancel(pb.CancelRequest(id=target), timeout=30)
        return list(resp.cancelled)

    async def rerun(self, submission: str) -> pb.SubmitResponse:
        return await self.stub.Rerun(pb.RerunRequest(submission_id=submission), timeout=120)

    async def results(self, experiment: str, latest: bool) -> Results:
        """The experiment's results table (`latest`: the latest run of each parameter
        assignment only), every chunk of the stream gathered, as `convoy results` gathers it."""
        req = pb.ResultsRequest(experiment=experiment, latest=latest)
        return await gather(experiment, self.stub.Results(req, timeout=120))

    async def hosts(self) -> list[pb.Host]:
        resp = await self.stub.Hosts(pb.HostsRequest(), timeout=10)
        return list(resp.hosts)


def describe(e: grpc.aio.AioRpcError, socket: Path) -> str:
    """A message a user can act on, for an API call that failed."""
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return (f"the coordinator is not running (no answer on {socket}); start it with "
                f"`convoy up` or `convoy run FILE` (retrying every {RETRY_S:g} s)")  # fmt: skip
    return e.details() or e.code().name
