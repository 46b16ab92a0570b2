"""The Coordinator gRPC service. Thin: each RPC calls the Coordinator and converts at the wire."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Sequence

import grpc

from convoy.client.convert import new_host_of
from convoy.content import open_regular_fd
from convoy.coordinator.engine import Coordinator
from convoy.coordinator.hosts.hostsfile import config_of
from convoy.coordinator.hosts.roster import Roster
from convoy.coordinator.hosts.session import HostSession
from convoy.coordinator.results.fetch import result_files
from convoy.coordinator.results.table import Selection
from convoy.coordinator.results.table import rows as table_rows
from convoy.coordinator.runs.bus import RunChanged
from convoy.coordinator.runs.lifecycle import HostInfo, HostState
from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.runs.scheduler import HostView
from convoy.coordinator.runs.submissions import Unchanged, Uploaded
from convoy.coordinator.sources.uploads import ObjectsMissing
from convoy.coordinator.wire import resources_to_pb, result_row_to_pb, run_to_pb
from convoy.errors import ConvoyError, HostExists, NotFound, SpecError, UsageError
from convoy.manifest import Entry
from convoy.rpcwire import BUILD_REUSED, EXIT_STATUS
from convoy.states import RunState
from convoy.v1 import common_pb2
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

Ctx = grpc.aio.ServicerContext
RESULT_ROWS = 1000  # rows of the results table per message: each read in a worker thread
FETCH_CHUNK = 1024 * 1024  # bytes of a results file per Fetch message


def _host_reason(info: HostInfo, session: HostSession) -> str:
    """Why a host is not up (or takes no runs): what the lifecycle decided, and what the
    last try to reach it met."""
    if info.state is HostState.UP:
        return "" if info.accepting else info.why
    if info.state is HostState.LOST:
        return f"lost: {info.why}" + (f"; {session.why}" if session.why else "")
    return session.why or info.why


def _code(e: ConvoyError) -> grpc.StatusCode:
    if isinstance(e, HostExists):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(e, SpecError | UsageError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(e, NotFound):
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.FAILED_PRECONDITION


async def _refuse(context: Ctx, e: ConvoyError) -> None:
    """Abort with the error's code and text, and the exit status its class has (the CLI's,
    which a status code alone does not tell: a key that does not match from a host that
    cannot be reached)."""
    await context.abort(_code(e), e.render(), ((EXIT_STATUS, str(e.exit_status)),))


def _rows(chosen: Selection, runs: Sequence[RunRecord]) -> list[pb.ResultRow]:
    """The rows of some runs of a results table, their metrics read (blocking)."""
    return [result_row_to_pb(r) for r in table_rows(chosen, runs)]


def _host_pb(info: HostInfo, view: HostView, holders: list[str], session: HostSession) -> pb.Host:
    return pb.Host(
        name=info.name,
        state=info.state.value,
        capacity=resources_to_pb(view.capacity.as_resources()),
        allocated=resources_to_pb(view.allocated.as_resources()),
        runs=holders,
        agent_version=session.info.version if session.info else "",
        address=session.address or session.client.target,
        reason=_host_reason(info, session),
        labels=info.labels,
        accepting=info.accepting,
        since=info.since if info.state.value != "up" else 0.0,
    )


class CoordinatorService(pb_grpc.CoordinatorServicer):
    def __init__(self, coordinator: Coordinator, roster: Roster) -> None:
        self.c = coordinator
        self.roster = roster

    async def Submit(self, request: pb.SubmitRequest, context: Ctx) -> pb.SubmitResponse:
        up = request.upload if request.HasField("upload") else None
        upload = (
            Uploaded(up.revision, dict(up.inputs), up.experiment_file, up.origin) if up else None
        )
        try:
            sub, runs = await self.c.submit(
                request.spec_path, request.spec_yaml, request.results_dir, request.priority,
                indexes=list(request.indexes), same_as=request.same_as,
                unless_revision=request.unless_revision, force=request.force, upload=upload,
            )  # fmt: skip
        except Unchanged as e:
            return pb.SubmitResponse(unchanged=True, revision=e.revision)
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
            raise
        # Two manifests read and compared (tens of ms for a large tree): off the event loop.
        changed = (
            await asyncio.to_thread(self.c.changed_paths, request.unless_revision, sub.revision)
            if request.unless_revision else []
        )  # fmt: skip
        runs_pb = await asyncio.to_thread(lambda: [run_to_pb(r) for r in runs])  # 10^5: seconds
        warnings = await asyncio.to_thread(self.c.warnings, sub)
        return pb.SubmitResponse(
            submission_id=sub.id, runs=runs_pb, revision=sub.revision, changed=changed,
            warnings=warnings,
        )  # fmt: skip

    async def ListRuns(self, request: pb.ListRunsRequest, context: Ctx) -> pb.ListRunsResponse:
        try:
            states = [RunState(s) for s in request.states]
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise
        if request.limit < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"limit must be 0 (all) or more, got {request.limit}")  # fmt: skip
        runs = self.c.store.runs(request.submission_id, states, request.limit,
                                 request.experiment, request.newest)  # fmt: skip
        return pb.ListRunsResponse(runs=[self._run(r) for r in runs])

    def _run(self, r: RunRecord, progress: float | None = None) -> pb.Run:
        """A run, with what only the coordinator's memory holds: its progress (from the
        lifecycle, unless given: an event's), why it waits (as things stand now)."""
        life = self.c.life
        if r.state is not RunState.RUNNING:
            progress = None
        elif progress is None:
            progress = life.progress.get(r.id)
        return run_to_pb(r, progress, life.waiting_for(r.id) if r.state is RunState.QUEUED else "")

    async def GetRun(self, request: pb.GetRunRequest, context: Ctx) -> pb.Run:
        try:
            return self._run(self.c.run(request.run_id))
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
            raise

    async def Events(self, request: pb.EventsRequest, context: Ctx) -> AsyncIterator[pb.RunEvent]:
        sub = request.submission_id
        if sub and self.c.store.submission(sub) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no submission {sub!r}")

        def wanted(ev: RunChanged) -> bool:
            return not sub or ev.run.submission_id == sub

        async with self.c.bus.subscribe() as q:  # subscribe before the snapshot: no gap
            if request.snapshot:
                for r in self.c.store.runs(sub):
                    yield pb.RunEvent(run=self._run(r), snapshot=True)
            while True:
                ev = await q.get()
                if wanted(ev):
                    yield pb.RunEvent(run=self._run(ev.run, ev.progress),
                                      previous_state=ev.previous_state, at=ev.at)  # fmt: skip

    async def Logs(
        self, request: pb.LogsRequest, context: Ctx
    ) -> AsyncIterator[common_pb2.LogChunk]:
        if request.offset < 0 or request.attempt < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "offset and attempt must be 0 or more, got "
                                f"{request.offset} and {request.attempt}")  # fmt: skip
        try:
            async for attempt, offset, data in self.c.read_logs(
                request.run_id, request.offset, request.follow, request.attempt
            ):
                yield common_pb2.LogChunk(offset=offset, data=data, attempt=attempt)
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
        if self.c.build_reused(request.run_id):  # said aside: the stream is output only
            context.set_trailing_metadata(((BUILD_REUSED, "1"),))

    async def Cancel(self, request: pb.CancelRequest, context: Ctx) -> pb.CancelResponse:
        try:
            reached = await self.c.cancel(request.id, request.grace_seconds)
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
            raise
        return pb.CancelResponse(cancelled=reached)

    async def ListSubmissions(
        self, request: pb.ListSubmissionsRequest, context: Ctx
    ) -> pb.ListSubmissionsResponse:
        return pb.ListSubmissionsResponse(submissions=[
            pb.Submission(
                id=s.id, experiment=s.experiment, total=s.total, created_at=s.created_at,
                results_dir=s.results_dir, revision=s.revision, spec_path=s.spec_path,
                progress_pattern=self.c.progress_pattern(s), priority=s.priority,
            )
            for s in self.c.store.submissions()
        ])  # fmt: skip

    async def Rerun(self, request: pb.RerunRequest, context: Ctx) -> pb.SubmitResponse:
        try:
            states = [RunState(s) for s in request.states]
            sub, runs = await self.c.rerun(request.submission_id, states)
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
            raise
        return pb.SubmitResponse(submission_id=sub.id, runs=[run_to_pb(r) for r in runs])

    async def Why(self, request: pb.WhyRequest, context: Ctx) -> pb.WhyResponse:
        try:
            w = await self.c.why(request.run_id)
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
            raise
        return pb.WhyResponse(
            run_id=w.run_id, key=w.key, key_parts=w.key_parts, reused_from=w.reused_from,
            compared=w.compared, changed=w.changed, changed_files=w.changed_files,
            forced=w.forced, text=w.text,
        )  # fmt: skip

    async def Results(
        self, request: pb.ResultsRequest, context: Ctx
    ) -> AsyncIterator[pb.ResultsChunk]:
        try:
            chosen = await self.c.results(request.experiment, request.latest, list(request.where))
        except ConvoyError as e:
            await context.abort(_code(e), e.render())
            raise
        first = pb.ResultsChunk(params=chosen.params, metrics=chosen.metrics)
        if not chosen.runs:
            yield first
        for i in range(0, len(chosen.runs), RESULT_ROWS):
            some = chosen.runs[i : i + RESULT_ROWS]
            rows = await asyncio.to_thread(_rows, chosen, some)
            chunk = first if i == 0 else pb.ResultsChunk()
            chunk.rows.extend(rows)
            yield chunk

    async def StopAgents(
        self, request: pb.StopAgentsRequest, context: Ctx
    ) -> pb.StopAgentsResponse:
        done = await self.c.stop_agents()
        return pb.StopAgentsResponse(hosts=[
            pb.AgentStopped(host=h, stopped=stopped, said=said) for h, stopped, said in done
        ])  # fmt: skip

    async def Hosts(self, request: pb.HostsRequest, context: Ctx) -> pb.HostsResponse:
        hosts = [_host_pb(*view) for view in self.c.host_views()]
        return pb.HostsResponse(hosts=hosts, hosts_file=str(self.roster.path))

    async def AddHost(self, request: pb.AddHostRequest, context: Ctx) -> pb.AddHostResponse:
        try:
            await self.roster.add(config_of(new_host_of(request)))
        except ConvoyError as e:
            await _refuse(context, e)
            raise
        views = [v for v in self.c.host_views() if v[0].name == request.name]
        return pb.AddHostResponse(hosts_file=str(self.roster.path),
                                  host=_host_pb(*views[0]) if views else None)  # fmt: skip

    async def RemoveHost(
        self, request: pb.RemoveHostRequest, context: Ctx
    ) -> pb.RemoveHostResponse:
        try:
            done = await self.roster.remove(request.name, request.force)
        except ConvoyError as e:
            await _refuse(context, e)
            raise
        return pb.RemoveHostResponse(hosts_file=str(self.roster.path), in_file=done.in_file,
                                     in_use=done.in_use, requeued=done.requeued)  # fmt: skip

    async def TrustHost(self, request: pb.TrustHostRequest, context: Ctx) -> pb.TrustHostResponse:
        try:
            check = await self.roster.trust(request.name, request.fingerprint or None)
        except ConvoyError as e:
            await _refuse(context, e)
            raise
        return pb.TrustHostResponse(
            key_type=check.key_type, fingerprint=check.fingerprint, recorded=check.recorded,
            known_hosts=str(check.known_hosts),
            others=[pb.KnownKey(fingerprint=fp, file=file) for fp, file in check.others],
        )  # fmt: skip

    async def MissingObjects(
        self, request: pb.HasObjectsRequest, context: Ctx
    ) -> pb.HasObjectsResponse:
        try:
            has, missing = await asyncio.to_thread(
                self.c.uploads.missing, request.revision, list(request.hashes)
            )
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.render())
            raise
        return pb.HasObjectsResponse(has_revision=has, missing=missing)

    async def PutObjects(
        self, request_iterator: AsyncIterator[pb.ObjectChunk], context: Ctx
    ) -> pb.PutObjectsResponse:
        async def chunks() -> AsyncIterator[tuple[str, bytes, bool]]:
            async for c in request_iterator:
                yield c.hash, c.data, c.last

        try:
            got = await self.c.uploads.receive(chunks())
        except ConvoyError as e:  # an object that is not what its name says, a bad frame
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.render())
            raise
        except OSError as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED
                                if e.errno == errno.ENOSPC else grpc.StatusCode.INTERNAL,
                                f"the coordinator cannot store objects: {e.strerror}")  # fmt: skip
            raise
        return pb.PutObjectsResponse(stored=got.stored, bytes=got.bytes)

    async def PutRevision(
        self, request_iterator: AsyncIterator[pb.PutRevisionRequest], context: Ctx
    ) -> pb.PutRevisionResponse:
        revision = ""
        entries: list[Entry] = []
        async for part in request_iterator:
            revision = revision or part.revision
            entries.extend(Entry(e.path, e.mode, e.size, e.hash, e.target) for e in part.entries)
        try:
            rev = await asyncio.to_thread(self.c.uploads.register, revision, entries)
        except ObjectsMissing as e:  # send them first
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, e.render())
            raise
        except ConvoyError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.render())
            raise
        return pb.PutRevisionResponse(revision=rev.id)

    async def Fetch(self, request: pb.FetchRequest, context: Ctx) -> AsyncIterator[pb.FetchChunk]:
        sub = self.c.store.submission(request.submission_id)
        if sub is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no submission {request.submission_id!r}")  # fmt: skip
            return
        files = await asyncio.to_thread(lambda: list(result_files(self.c.store, sub)))
        first = True
        for rel, path in files:
            try:
                fd = await asyncio.to_thread(open_regular_fd, path)
            except OSError:  # gone meanwhile (a run's results being replaced): left out
                continue
            try:
                mode = os.fstat(fd).st_mode & 0o777
                head = pb.FetchChunk(path=rel, mode=mode)
                if first:
                    head.experiment, first = sub.experiment, False
                data = await asyncio.to_thread(os.read, fd, FETCH_CHUNK)
                while True:
                    more = await asyncio.to_thread(os.read, fd, FETCH_CHUNK) if data else b""
                    head.data, head.last = data, not more
                    yield head
                    if not more:
                        break
                    head, data = pb.FetchChunk(), more
            finally:
                os.close(fd)
