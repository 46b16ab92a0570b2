"""The agent's gRPC service on a unix socket. Thin: each RPC calls Attempts and converts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import socket
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import grpc

from convoy import __version__
from convoy.buildid import own_build
from convoy.content import EntryLike, SyncError, printable
from convoy.errors import ConvoyError
from convoy.footprint import disk_footprint
from convoy.objstream import store_socket_beside
from convoy.rpcwire import add_checked
from convoy.v1 import agent_pb2 as pb
from convoy.v1 import agent_pb2_grpc as pb_grpc
from convoy.v1 import common_pb2

from .attempts import (
    RUNS_DOING,
    AttemptRequest,
    Attempts,
    AttemptState,
    AttemptStatus,
    OutputReplaced,
    UnknownAttempt,
    left_out_why,
    open_output,
    open_regular,
)
from .builds import Builds
from .plans import PlanMissing
from .policy import POLICY_FILE, load_policy
from .runtime import ContainerRuntime, DockerRuntime, FakeRuntime
from .runtime.fake_behaviour import PREFIX as FAKE_PREFIX
from .storesock import StoreSocket
from .trees import ObjectsMissing, apply_delta

log = logging.getLogger("convoy.agent")

LOG_CHUNK = 256 * 1024
FILE_CHUNK = 1024 * 1024
FOLLOW_POLL_S = 0.05  # a followed log is read again at least this often
FOLLOW_POLL_MIN_S = 0.005  # ... and this soon after it last grew

_STATES = {
    AttemptState.STARTING: pb.ATTEMPT_STARTING,
    AttemptState.RUNNING: pb.ATTEMPT_RUNNING,
    AttemptState.EXITED: pb.ATTEMPT_EXITED,
    AttemptState.CANCELLED: pb.ATTEMPT_CANCELLED,
    AttemptState.TIMED_OUT: pb.ATTEMPT_TIMED_OUT,
    AttemptState.ERROR: pb.ATTEMPT_ERROR,
}


def status_to_pb(s: AttemptStatus, req: AttemptRequest | None = None) -> pb.AttemptStatus:
    return pb.AttemptStatus(
        attempt_id=s.attempt_id, run_id=s.run_id, state=_STATES[s.state], exit_code=s.exit_code,
        started_at=s.started_at, ended_at=s.ended_at, reason=s.reason, image_id=s.image_id,
        container_id=s.container_id, lacks_revision=s.lacks_revision, code=s.code,
        owner=req.owner if req else "",
        resources=common_pb2.Resources(cpus=req.cpus, memory_bytes=req.memory_bytes)
        if req else None,
        has_progress=s.progress is not None, progress=s.progress or 0.0,
    )  # fmt: skip


def request_from_pb(r: pb.StartAttemptRequest) -> AttemptRequest:
    return AttemptRequest(
        attempt_id=r.attempt_id, run_id=r.run_id, submission_id=r.submission_id,
        experiment=r.experiment, image=r.image, argv=tuple(r.argv), env=dict(r.env),
        cpus=r.resources.cpus, memory_bytes=r.resources.memory_bytes, network=r.network or "none",
        disk_bytes=r.resources.disk_bytes,
        timeout_seconds=r.timeout_seconds, source_path=r.source_path, outputs=tuple(r.outputs),
        revision=r.revision, inputs=dict(r.inputs), build_key=r.build_key, owner=r.owner,
        progress=r.progress,
    )  # fmt: skip


Ctx = grpc.aio.ServicerContext
_T = TypeVar("_T")


async def _hand_over(items: AsyncIterator[_T], to: queue.Queue[_T | None]) -> None:
    """A request stream's items into a worker thread's bounded queue, then None (also when
    the stream fails), never blocking the event loop while the queue is full."""
    try:
        async for item in items:
            await asyncio.to_thread(to.put, item)
    finally:
        await asyncio.to_thread(to.put, None)


class SyncService:
    """The agent's side of sync and image shipping (mixed into AgentService)."""

    attempts: Attempts
    _plan_pool = ThreadPoolExecutor(1, thread_name_prefix="plan")  # see agent/plans.py

    async def MissingObjects(
        self, request: pb.MissingObjectsRequest, context: Ctx
    ) -> pb.MissingObjectsResponse:
        store = self.attempts.objects
        try:
            if await asyncio.to_thread(store.has_revision, request.revision):
                return pb.MissingObjectsResponse(has_revision=True)
            entries = list(request.entries)
            # With the entries and no hashes, the host is asked about every object they name.
            hashes = list(request.hashes) or [e.hash for e in entries if e.hash]
            missing = await asyncio.to_thread(store.missing, hashes)
            if entries:  # begin the snapshot while the missing objects travel
                plan = store.plans.begin(request.revision)  # with no await before the submit
                try:
                    self._plan_pool.submit(store.plans.prepare, plan, entries, frozenset(missing))
                except RuntimeError as e:  # the agent is stopping
                    store.plans.abandon(plan, f"cannot begin the build: {e}")
        except SyncError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise
        return pb.MissingObjectsResponse(has_revision=False, missing=missing)

    async def MakeRevision(
        self, request: pb.MakeRevisionRequest, context: Ctx
    ) -> pb.MakeRevisionResponse:
        store = self.attempts.objects
        entries: list[EntryLike] = list(request.entries)
        try:
            if request.planned:
                try:
                    path = await asyncio.to_thread(store.plans.finish, request.revision)
                except PlanMissing as e:  # the coordinator then sends the entries
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
                    raise
                return pb.MakeRevisionResponse(path=str(path))
            if request.base:
                try:
                    base = await asyncio.to_thread(store.manifest, request.base)
                except SyncError as e:  # the coordinator then sends the whole manifest
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
                    raise
                changed = entries
                entries = apply_delta(base, changed, request.removed)
                if not request.removed:  # a layer over the base: costs the change, not the tree
                    layered = await asyncio.to_thread(
                        store.make_layered, request.revision, request.base, entries, changed
                    )
                    if layered is not None:
                        return pb.MakeRevisionResponse(path=str(layered))
            path = await asyncio.to_thread(store.make_revision, request.revision, entries)
        except ObjectsMissing as e:  # the coordinator then asks about every object again
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
            raise
        except SyncError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise
        return pb.MakeRevisionResponse(path=str(path))

    async def HasImage(self, request: pb.HasImageRequest, context: Ctx) -> pb.HasImageResponse:
        found = await asyncio.to_thread(self.attempts.runtime.has_image, request.image)
        present = bool(found) and (not request.image_id or found == request.image_id)
        return pb.HasImageResponse(present=present, image_id=found)

    async def PullImage(self, request: pb.PullImageRequest, context: Ctx) -> pb.HasImageResponse:
        try:
            found = await asyncio.to_thread(self.attempts.runtime.pull_image, request.image)
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
            raise
        return pb.HasImageResponse(present=bool(found), image_id=found)

    async def LoadImage(
        self, request_iterator: AsyncIterator[pb.ImageChunk], context: Ctx
    ) -> pb.LoadImageResponse:
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=16)

        def feed() -> Iterator[bytes]:
            while (item := chunks.get()) is not None:
                yield item

        loading = asyncio.ensure_future(asyncio.to_thread(self.attempts.runtime.load_image, feed()))
        await _hand_over((chunk.data async for chunk in request_iterator), chunks)
        try:
            images = await loading
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.INTERNAL, str(e))
            raise
        return pb.LoadImageResponse(images=images)


class AgentService(SyncService, pb_grpc.AgentServicer):
    def __init__(self, attempts: Attempts, name: str, capacity: common_pb2.Resources) -> None:
        self.attempts = attempts
        self.builds = Builds(attempts)
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
        accepting, why = await asyncio.to_thread(self.attempts.room)
        return pb.AgentInfo(
            name=self.name, agent_version=__version__, capacity=self.capacity,
            docker_version=self._docker_version, build=own_build(), accepting=accepting,
            why=why, networks=list(self.attempts.policy.networks),
            run_as=self.attempts.policy.user,
        )  # fmt: skip

    async def WatchAttempts(
        self, request: pb.WatchAttemptsRequest, context: Ctx
    ) -> AsyncIterator[pb.AgentEvent]:
        """A snapshot of the owner's attempts, then each change, with heartbeats between."""
        beat = request.heartbeat_seconds if request.heartbeat_seconds > 0 else HEARTBEAT_S
        changes: asyncio.Queue[AttemptStatus] = asyncio.Queue()
        self.attempts.watchers.add(changes)  # before the snapshot: no change slips between
        try:
            accepting, why = await asyncio.to_thread(self.attempts.room)
            yield pb.AgentEvent(snapshot=pb.AttemptSnapshot(
                attempts=[status_to_pb(a.status, a.request) for a in self.attempts.all()
                          if _watched(a.request, request.owner)],
                accepting=accepting, why=why,
            ))  # fmt: skip
            while True:
                try:
                    status = await asyncio.wait_for(changes.get(), beat)
                except TimeoutError:
                    accepting, why = await asyncio.to_thread(self.attempts.room)
                    yield pb.AgentEvent(heartbeat=pb.Heartbeat(accepting=accepting, why=why))
                    continue
                try:
                    req = self.attempts.get(status.attempt_id).request
                except UnknownAttempt:  # released meanwhile
                    continue
                if _watched(req, request.owner):
                    yield pb.AgentEvent(changed=status_to_pb(status, req))
                if status.code == "disk_full":  # say at once that it takes no new runs
                    accepting, why = await asyncio.to_thread(self.attempts.room)
                    yield pb.AgentEvent(heartbeat=pb.Heartbeat(accepting=accepting, why=why))
        finally:
            self.attempts.watchers.discard(changes)

    async def StartAttempt(
        self, request: pb.StartAttemptRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            return status_to_pb(await self.attempts.start(request_from_pb(request)))
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise

    async def Build(self, request: pb.BuildRequest, context: Ctx) -> pb.BuildResult:
        try:
            r = await self.builds.build(request.key, request_from_pb(request.attempt))
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise
        return pb.BuildResult(
            key=r.key, succeeded=r.succeeded, exit_code=r.exit_code, reason=r.reason,
            tail=r.tail, attempt_id=r.attempt_id, built_now=r.built_now, seconds=r.seconds,
        )  # fmt: skip

    async def GetAttempt(
        self, request: pb.AttemptRef, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            a = self.attempts.get(request.attempt_id)
            return status_to_pb(a.status, a.request)
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
            attempts=[status_to_pb(a.status, a.request) for a in self.attempts.all()]
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
        self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttemptStatus:
        try:
            return status_to_pb(await asyncio.to_thread(
                self.attempts.release, request.attempt_id, request.whole))  # fmt: skip
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
        poll = FOLLOW_POLL_MIN_S
        while True:
            try:
                f = await asyncio.to_thread(open_output, a.log_path)
                break
            except OutputReplaced as e:
                missing = not a.log_path.exists() and not a.log_path.is_symlink()
                if not (missing and request.follow and not a.done.is_set()):
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
                    return
            # Not made yet: a build's attempt is known before its log is (a follower that came
            # at once waits for it, as for output to come).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(a.done.wait(), poll)
            poll = min(poll * 1.5, FOLLOW_POLL_S)
        with f:
            # An offset past the end is no error: nothing comes until the log reaches it (a
            # seek far past what the file system allows fails, so the size is looked at first).
            while offset > os.fstat(f.fileno()).st_size:
                if a.done.is_set() or not request.follow:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(a.done.wait(), poll)
                poll = min(poll * 1.5, FOLLOW_POLL_S)
            f.seek(offset)
            while True:
                ended = a.done.is_set()  # read the flag before the data: no tail is missed
                data = f.read(LOG_CHUNK)
                if data:
                    yield common_pb2.LogChunk(offset=offset, data=data)
                    offset += len(data)
                    poll = FOLLOW_POLL_MIN_S
                    continue
                if ended or not request.follow:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(a.done.wait(), poll)
                # Output that just came tends to come on: look again soon, then less often.
                poll = min(poll * 1.5, FOLLOW_POLL_S)

    async def FetchResults(
        self, request: pb.FetchResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        try:
            a = self.attempts.get(request.attempt_id)
            files, hidden = await asyncio.to_thread(self.attempts.result_files, request.attempt_id)
        except UnknownAttempt as e:
            await self._abort(context, e)
            return
        room = request.max_bytes if request.HasField("max_bytes") else None
        for folder in hidden:
            why = "a folder the run made unreadable: what it holds is not collected"
            log.warning("attempt %s: %r left out: %s", request.attempt_id, folder, why)
            yield pb.FileChunk(path=printable(folder) + "/", last=True, left_out=why)
        for rel in files:
            # What the run left may not be sendable: a name that is not UTF-8, a file it made
            # unreadable. Such a file is left out, and the coordinator told why, not the rest.
            try:
                rel.encode()
                f = await asyncio.to_thread(open_regular, a.results_root / rel)
            except (UnicodeEncodeError, OSError) as e:
                if isinstance(e, OSError) and e.errno not in RUNS_DOING:
                    raise  # the host's trouble: the coordinator asks again
                why = left_out_why(e)
                log.warning("attempt %s: result %r left out: %s", request.attempt_id, rel, why)
                yield pb.FileChunk(path=printable(rel), last=True, left_out=why)
                continue
            with f:
                st = os.fstat(f.fileno())
                if room is not None:
                    if disk_footprint(st.st_size) > room:
                        why = (f"does not fit: {st.st_size:,} bytes ({disk_footprint(st.st_size):,}"
                               f" on disk), where the coordinator's disk had room for {room:,} "
                               "more")  # fmt: skip
                        log.warning("attempt %s: result %r left out: %s", request.attempt_id,
                                    rel, why)  # fmt: skip
                        yield pb.FileChunk(path=rel, last=True, left_out=why)
                        continue
                    room -= disk_footprint(st.st_size)
                # Up to the size counted (the run has ended: nothing writes to it any more).
                remaining = st.st_size
                digest = hashlib.sha256()
                first = True
                while True:
                    data = f.read(min(FILE_CHUNK, remaining)) if remaining > 0 else b""
                    remaining -= len(data)
                    digest.update(data)
                    last = remaining <= 0 or not data
                    yield pb.FileChunk(
                        path=rel if first else "", mode=st.st_mode & 0o777, data=data,
                        last=last, sha256=digest.hexdigest() if last else "",
                    )  # fmt: skip
                    first = False
                    if last:
                        break

    async def ResultsSize(
        self, request: pb.AttemptRef, context: grpc.aio.ServicerContext
    ) -> pb.ResultsSizeResponse:
        try:
            files, size, log_size, log_length = await asyncio.to_thread(
                self.attempts.results_size, request.attempt_id
            )
        except UnknownAttempt as e:
            await self._abort(context, e)
            raise
        return pb.ResultsSizeResponse(disk_bytes=size, files=files, log_bytes=log_size,
                                      log_length=log_length)  # fmt: skip


HEARTBEAT_S = 2.0


def _watched(req: AttemptRequest, owner: str) -> bool:
    """An attempt the owner's WatchAttempts reports: a run's (not a build's), started by that
    coordinator (or by one from before attempts had owners)."""
    return bool(req.run_id) and req.owner in (owner, "")


def host_capacity(cpus: float | None, memory: int | None) -> common_pb2.Resources:
    """What this host offers: its cpus and memory unless overridden."""
    if cpus is None:
        cpus = float(len(os.sched_getaffinity(0)))
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return common_pb2.Resources(cpus=cpus, memory_bytes=memory, gpus=0)


STORE_MAX_AGE_S = 7 * 24 * 3600.0
COLLECT_EVERY_S = 600.0


async def _collect_forever(attempts: Attempts, builds: Builds) -> None:
    """Old revisions and their objects go by age and size, never while a run uses them."""
    max_bytes = int(os.environ.get("CONVOY_STORE_MAX_BYTES", str(50 * 1024**3)))
    while True:
        await asyncio.sleep(COLLECT_EVERY_S)
        try:
            report = await asyncio.to_thread(attempts.objects.collect, STORE_MAX_AGE_S, max_bytes)
            log.info("collected: %s", report)
            removed = await asyncio.to_thread(builds.collect)
            if removed:
                log.info("collected %d builds of collected revisions", removed)
        except Exception:
            log.exception("collecting the object store failed")


async def _save_forever(attempts: Attempts) -> None:
    """Statuses a full disk kept from being written are written once there is room."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await asyncio.to_thread(attempts.save_unsaved)
        except OSError as e:
            log.warning("writing attempt statuses: %s", e)


def agent_id_for(home: Path) -> str:
    return hashlib.sha256(f"{socket.gethostname()}:{home.resolve()}".encode()).hexdigest()[:16]


RUNTIMES = ("docker", "fake")


def make_runtime(kind: str, home: Path, fake_state: Path | None = None) -> ContainerRuntime:
    """The agent's runtime: Docker, or for tests and simulated fleets the fake (its state in
    `fake_state`, default <home>/fake-runtime; the agent's CONVOY_FAKE_* give its defaults)."""
    if kind == "docker":
        return DockerRuntime()
    if kind == "fake":
        defaults = {k: v for k, v in os.environ.items() if k.startswith(FAKE_PREFIX)}
        return FakeRuntime(fake_state or home / "fake-runtime", defaults)
    raise ConvoyError(f"no runtime {kind!r} (one of {', '.join(RUNTIMES)})")


async def serve(
    home: Path, sock: Path, cpus: float | None = None, memory: int | None = None,
    name: str | None = None, ready: asyncio.Event | None = None, runtime_kind: str = "docker",
    fake_state: Path | None = None, policy_file: Path | None = None,
) -> None:  # fmt: skip
    """Run the agent until cancelled, its containers run by `runtime_kind` (make_runtime),
    under the host's policy (agent/policy.py: `policy_file`, default <home>/policy.yaml)."""
    home.mkdir(parents=True, exist_ok=True)
    policy = load_policy(policy_file or home / POLICY_FILE)
    runtime = make_runtime(runtime_kind, home, fake_state)
    attempts = Attempts(home, runtime, agent_id_for(home), policy=policy)
    given = await asyncio.to_thread(attempts.objects.give_all)
    if given:
        log.info("gave %d snapshot entries to the runs' user %s", given, policy.user)
    log.info("policy (%s): networks %s, runs as %s", policy.source,
             ", ".join(policy.networks), policy.user)  # fmt: skip
    await attempts.recover()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    service = AgentService(attempts, name or socket.gethostname(), host_capacity(cpus, memory))
    add_checked(pb_grpc.add_AgentServicer_to_server, service, server)
    sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sock.exists():
        sock.unlink()
    # Object streams are taken before the first gRPC call can ask what to send.
    store_socket = StoreSocket(Path(store_socket_beside(str(sock))), attempts.objects)
    await store_socket.start()
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    os.chmod(sock, 0o600)
    collector = asyncio.ensure_future(_collect_forever(attempts, service.builds))
    saver = asyncio.ensure_future(_save_forever(attempts))
    log.info("agent %s listening on %s", service.name, sock)
    if ready is not None:
        ready.set()
    try:
        await server.wait_for_termination()
    finally:
        collector.cancel()
        saver.cancel()
        await store_socket.close()
        await server.stop(grace=2)
        await attempts.close()
