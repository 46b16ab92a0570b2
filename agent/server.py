"""The agent's gRPC service on a unix socket. Thin: each RPC calls Attempts and converts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from convoy import __version__
from convoy.errors import ConvoyError
from convoy.v1 import agent_pb2 as pb
from convoy.v1 import agent_pb2_grpc as pb_grpc
from convoy.v1 import common_pb2

from .attempts import AttemptRequest, Attempts, AttemptState, AttemptStatus, UnknownAttempt
from .runtime import DockerRuntime

log = logging.getLogger("convoy.agent")

LOG_CHUNK = 256 * 1024
FILE_CHUNK = 1024 * 1024
FOLLOW_POLL_S = 0.05

_STATES = {
    AttemptState.STARTING: pb.ATTEMPT_STARTING,
    AttemptState.RUNNING: pb.ATTEMPT_RUNNING,
    AttemptState.EXITED: pb.ATTEMPT_EXITED,
    AttemptState.CANCELLED: pb.ATTEMPT_CANCELLED,
    AttemptState.TIMED_OUT: pb.ATTEMPT_TIMED_OUT,
    AttemptState.ERROR: pb.ATTEMPT_ERROR,
}


def status_to_pb(s: AttemptStatus) -> pb.AttemptStatus:
    return pb.AttemptStatus(
        attempt_id=s.attempt_id, run_id=s.run_id, state=_STATES[s.state], exit_code=s.exit_code,
        started_at=s.started_at, ended_at=s.ended_at, reason=s.reason, image_id=s.image_id,
        container_id=s.container_id,
    )  # fmt: skip


def request_from_pb(r: pb.StartAttemptRequest) -> AttemptRequest:
    return AttemptRequest(
        attempt_id=r.attempt_id, run_id=r.run_id, submission_id=r.submission_id,
        experiment=r.experiment, image=r.image, argv=tuple(r.argv), env=dict(r.env),
        cpus=r.resources.cpus, memory_bytes=r.resources.memory_bytes, network=r.network or "none",
        timeout_seconds=r.timeout_seconds, source_path=r.source_path, outputs=tuple(r.outputs),
    )  # fmt: skip


class AgentService(pb_grpc.AgentServicer):
    def __init__(self, attempts: Attempts, name: str, capacity: common_pb2.Resources) -> None:
        self.attempts = attempts
        self.name = name
        self.capacity = capacity
        self._docker_version = ""

    async def _abort(self, context: grpc.aio.ServicerContext, e: Exception) -> None:
        code = (
            grpc.StatusCode.NOT_FOUND if isinstance(e, UnknownAttempt) else grpc.StatusCode.INTERNAL
        )
        await context.abort(code, str(e))

    async def Describe(
        self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AgentInfo:
        if not self._docker_version:
            self._docker_version = await asyncio.to_thread(self.attempts.runtime.version)
        return pb.AgentInfo(
            name=self.name, agent_version=__version__, capacity=self.capacity,
            docker_version=self._docker_version,
        )  # fmt: skip

    async def StartAttempt(
        self, request: pb.StartAttemptRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            return status_to_pb(await self.attempts.start(request_from_pb(request)))
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise

    async def GetAttempt(
        self, request: pb.AttemptRef, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            return status_to_pb(self.attempts.get(request.attempt_id).status)
        except UnknownAttempt as e:
            await self._abort(context, e)
            raise

    async def WaitAttempt(
        self, request: pb.AttemptRef, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            return status_to_pb(await self.attempts.wait(request.attempt_id))
        except UnknownAttempt as e:
            await self._abort(context, e)
            raise

    async def ListAttempts(
        self, request: pb.ListAttemptsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAttemptsResponse:
        return pb.ListAttemptsResponse(
            attempts=[status_to_pb(a.status) for a in self.attempts.all()]
        )

    async def CancelAttempt(
        self, request: pb.CancelAttemptRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            grace = request.grace_seconds if request.grace_seconds > 0 else 10.0
            return status_to_pb(await self.attempts.cancel(request.attempt_id, grace))
        except UnknownAttempt as e:
            await self._abort(context, e)
            raise

    async def ReleaseAttempt(
        self, request: pb.AttemptRef, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            return status_to_pb(await asyncio.to_thread(self.attempts.release, request.attempt_id))
        except UnknownAttempt as e:
            await self._abort(context, e)
            raise

    async def ReadLog(
        self, request: pb.ReadLogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.LogChunk]:
        try:
            a = self.attempts.get(request.attempt_id)
        except UnknownAttempt as e:
            await self._abort(context, e)
            return
        offset = max(request.offset, 0)
        with open(a.log_path, "rb") as f:
            f.seek(offset)
            while True:
                ended = a.done.is_set()  # read the flag before the data: no tail is missed
                data = f.read(LOG_CHUNK)
                if data:
                    yield common_pb2.LogChunk(offset=offset, data=data)
                    offset += len(data)
                    continue
                if ended or not request.follow:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(a.done.wait(), FOLLOW_POLL_S)

    async def FetchResults(
        self, request: pb.FetchResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        try:
            a = self.attempts.get(request.attempt_id)
            files = await asyncio.to_thread(self.attempts.result_files, request.attempt_id)
        except UnknownAttempt as e:
            await self._abort(context, e)
            return
        for rel in files:
            path = a.work / rel
            digest = hashlib.sha256()
            mode = path.lstat().st_mode & 0o777
            with open(path, "rb") as f:
                first = True
                while True:
                    data = f.read(FILE_CHUNK)
                    digest.update(data)
                    last = len(data) < FILE_CHUNK
                    yield pb.FileChunk(
                        path=rel if first else "", mode=mode, data=data, last=last,
                        sha256=digest.hexdigest() if last else "",
                    )  # fmt: skip
                    first = False
                    if last:
                        break


def host_capacity(cpus: float | None, memory: int | None) -> common_pb2.Resources:
    """What this host offers: its cpus and memory unless overridden."""
    if cpus is None:
        cpus = float(len(os.sched_getaffinity(0)))
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return common_pb2.Resources(cpus=cpus, memory_bytes=memory, gpus=0)


def agent_id_for(home: Path) -> str:
    return hashlib.sha256(f"{socket.gethostname()}:{home.resolve()}".encode()).hexdigest()[:16]


async def serve(
    home: Path, sock: Path, cpus: float | None = None, memory: int | None = None,
    name: str | None = None, ready: asyncio.Event | None = None,
) -> None:  # fmt: skip
    """Run the agent until cancelled."""
    home.mkdir(parents=True, exist_ok=True)
    runtime = DockerRuntime()
    attempts = Attempts(home, runtime, agent_id_for(home))
    await attempts.recover()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    service = AgentService(attempts, name or socket.gethostname(), host_capacity(cpus, memory))
    pb_grpc.add_AgentServicer_to_server(service, server)
    sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sock.exists():
        sock.unlink()
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    os.chmod(sock, 0o600)
    log.info("agent %s listening on %s", service.name, sock)
    if ready is not None:
        ready.set()
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(grace=2)
        await attempts.close()
