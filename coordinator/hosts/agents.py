"""The coordinator's side of the Agent API: one client per host, domain types in and out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc

from convoy.content import EntryLike
from convoy.coordinator.results.folders import FilePiece
from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.sources.objsend import StoreOpener, send_objects, unix_store
from convoy.coordinator.wire import resources_to_pb
from convoy.objstream import store_socket_beside
from convoy.spec import BuildSpec, Resources
from convoy.v1 import agent_pb2 as pb
from convoy.v1 import agent_pb2_grpc as pb_grpc

_STATE_NAMES = {
    pb.ATTEMPT_STARTING: "starting",
    pb.ATTEMPT_RUNNING: "running",
    pb.ATTEMPT_EXITED: "exited",
    pb.ATTEMPT_CANCELLED: "cancelled",
    pb.ATTEMPT_TIMED_OUT: "timed_out",
    pb.ATTEMPT_ERROR: "error",
}


@dataclass(frozen=True)
class AttemptOutcome:
    attempt_id: str
    state: str  # starting, running, exited, cancelled, timed_out, error
    exit_code: int
    started_at: float
    ended_at: float
    reason: str
    image_id: str
    lacks_revision: bool = False  # an error: sync the revision (and inputs) again, then retry
    code: str = ""  # once ended: why (convoy.states.Reason), as the agent saw it
    run_id: str = ""
    owner: str = ""
    resources: Resources = field(default_factory=Resources)
    progress: float | None = None  # running, with a progress pattern: the last percent seen

    @property
    def ended(self) -> bool:
        return self.state not in ("starting", "running")


@dataclass(frozen=True)
class AgentInfo:
    name: str
    version: str
    capacity: Resources
    docker_version: str
    build: str = ""  # a digest of the agent's own files (convoy/buildid.py)
    accepting: bool = True
    why: str = ""
    networks: tuple[str, ...] = ()  # what its policy lets runs have
    run_as: str = ""  # "uid:gid" its runs execute as


@dataclass(frozen=True)
class Snapshot:
    """WatchAttempts' first message: every attempt the agent holds for this coordinator."""

    attempts: tuple[AttemptOutcome, ...]
    accepting: bool
    why: str


@dataclass(frozen=True)
class Changed:
    attempt: AttemptOutcome


@dataclass(frozen=True)
class Heartbeat:
    accepting: bool
    why: str


WatchEvent = Snapshot | Changed | Heartbeat

# A dropped connection to an agent is retried soon: gRPC's default backoff grows to 120 s,
# which kept hosts that answered again out for a minute (the reconnect after a partition).
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def _outcome(s: pb.AttemptStatus) -> AttemptOutcome:
    r = s.resources
    return AttemptOutcome(
        s.attempt_id, _STATE_NAMES.get(s.state, "error"), s.exit_code, s.started_at, s.ended_at,
        s.reason, s.image_id, s.lacks_revision, s.code, s.run_id, s.owner,
        Resources(r.cpus, r.memory_bytes, r.gpus), s.progress if s.has_progress else None,
    )  # fmt: skip


@dataclass(frozen=True)
class BuildOutcome:
    key: str
    succeeded: bool
    exit_code: int
    reason: str
    tail: str
    attempt_id: str  # its output: read_log(attempt_id)
    built_now: bool
    seconds: float


def argv_of(command: str | tuple[str, ...]) -> list[str]:
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def run_env(run: RunRecord) -> dict[str, str]:
    env = {
        "CONVOY_RUN": run.id,
        "CONVOY_SUBMISSION": run.submission_id,
        "CONVOY_EXPERIMENT": run.experiment,
        "CONVOY_ATTEMPT": str(run.attempt),
        "CONVOY_REVISION": run.revision,
        "CONVOY_CPUS": f"{run.resources.cpus:g}",
    }
    for k, v in run.params.items():
        env[f"CONVOY_PARAM_{k}"] = str(v).lower() if isinstance(v, bool) else str(v)
    env.update(run.env)
    return env


def _entries_pb(entries: Sequence[EntryLike]) -> list[pb.ManifestEntry]:
    return [
        pb.ManifestEntry(path=e.path, mode=e.mode, size=e.size, hash=e.hash, target=e.target)
        for e in entries
    ]


class AgentClient:
    """One agent: gRPC on its unix socket (local, or forwarded over SSH), and object streams
    to the store socket beside it (objsend.py)."""

    def __init__(self, target: str, open_store: StoreOpener | None = None) -> None:
        """`target`: the agent's gRPC socket ("unix:PATH"); `open_store`: how to reach its
        store socket, by default the one beside a local agent's socket."""
        self.target = target
        if open_store is None:
            path = target.removeprefix("unix:")
            open_store = unix_store(store_socket_beside(path))
        self._open_store = open_store
        self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.AgentStub(self._channel)
        # Payload bytes of the sync requests sent so far (what bench/sync.py reports).
        self.sync_bytes_sent = 0

    async def close(self) -> None:
        await self._channel.close(None)

    async def describe(self, timeout: float = 5.0) -> AgentInfo:
        info = await self._stub.Describe(pb.DescribeRequest(), timeout=timeout)
        c = info.capacity
        return AgentInfo(
            info.name, info.agent_version, Resources(c.cpus, c.memory_bytes, c.gpus),
            info.docker_version, info.build, info.accepting, info.why, tuple(info.networks),
            info.run_as,
        )  # fmt: skip

    async def watch(self, owner: str, heartbeat: float) -> AsyncGenerator[WatchEvent, None]:
        """The host's attempts of `owner`: a Snapshot, then Changed and Heartbeat as they come."""
        call = self._stub.WatchAttempts(
            pb.WatchAttemptsRequest(owner=owner, heartbeat_seconds=heartbeat)
        )
        try:
            async for ev in call:
                kind = ev.WhichOneof("kind")
                if kind == "snapshot":
                    snap = ev.snapshot
                    yield Snapshot(tuple(_outcome(a) for a in snap.attempts), snap.accepting,
                                   snap.why)  # fmt: skip
                elif kind == "changed":
                    yield Changed(_outcome(ev.changed))
                elif kind == "heartbeat":
                    yield Heartbeat(ev.heartbeat.accepting, ev.heartbeat.why)
        finally:
            call.cancel()

    async def start(
        self, run: RunRecord, source_path: str = "", revision: str = "", build_key: str = "",
        owner: str = "", progress: str = "",
    ) -> AttemptOutcome:  # fmt: skip
        """Start the run's attempt; `progress`: its experiment's `progress:` regex, which the
        agent then looks for in its output."""
        req = pb.StartAttemptRequest(
            attempt_id=run.attempt_id, run_id=run.id, submission_id=run.submission_id,
            experiment=run.experiment, image=run.image, argv=argv_of(run.command),
            env=run_env(run),
            resources=resources_to_pb(run.resources),
            network=run.network, timeout_seconds=run.timeout_seconds, source_path=source_path,
            outputs=list(run.outputs), revision=revision, inputs=run.inputs, build_key=build_key,
            owner=owner, progress=progress,
        )  # fmt: skip
        return _outcome(await self._stub.StartAttempt(req, timeout=300))

    async def build(
        self, key: str, run: RunRecord, build: BuildSpec, attempt_id: str
    ) -> BuildOutcome:
        """Run the build `key` of run's revision on this host, or reuse the one made there."""
        res = build.resources or run.resources
        req = pb.BuildRequest(key=key, attempt=pb.StartAttemptRequest(
            attempt_id=attempt_id, submission_id=run.submission_id, experiment=run.experiment,
            image=build.image or run.image, argv=argv_of(build.command),
            env={"CONVOY_SUBMISSION": run.submission_id, "CONVOY_EXPERIMENT": run.experiment,
                 "CONVOY_REVISION": run.revision, "CONVOY_BUILD": key,
                 "CONVOY_CPUS": f"{res.cpus:g}"},
            resources=resources_to_pb(res),
            network=run.network, timeout_seconds=build.timeout_seconds, revision=run.revision,
        ))  # fmt: skip
        r = await self._stub.Build(req)
        return BuildOutcome(r.key, r.succeeded, r.exit_code, r.reason, r.tail, r.attempt_id,
                            r.built_now, r.seconds)  # fmt: skip

    async def get(self, attempt_id: str) -> AttemptOutcome | None:
        try:
            return _outcome(await self._stub.GetAttempt(pb.AttemptRef(attempt_id=attempt_id)))
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    async def wait(self, attempt_id: str) -> AttemptOutcome:
        return _outcome(await self._stub.WaitAttempt(pb.AttemptRef(attempt_id=attempt_id)))

    async def cancel(self, attempt_id: str, grace: float) -> AttemptOutcome:
        req = pb.CancelAttemptRequest(attempt_id=attempt_id, grace_seconds=grace)
        return _outcome(await self._stub.CancelAttempt(req, timeout=grace + 30))

    async def release(self, attempt_id: str, whole: bool = False) -> None:
        """Let the host free the attempt's workspace; `whole`: its folder too (forgotten)."""
        await self._stub.ReleaseAttempt(
            pb.ReleaseRequest(attempt_id=attempt_id, whole=whole), timeout=60
        )

    async def read_log(
        self, attempt_id: str, offset: int, follow: bool
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        req = pb.ReadLogRequest(attempt_id=attempt_id, offset=offset, follow=follow)
        call = self._stub.ReadLog(req)
        try:
            async for chunk in call:
                yield chunk.offset, chunk.data
        finally:
            call.cancel()  # a reader that stops early ends the stream at once (no-op if done)

    async def missing_objects(
        self, revision: str, hashes: Sequence[str], entries: Sequence[EntryLike] = ()
    ) -> tuple[bool, list[str]]:
        """Whether the host has the revision, and if not, which of `hashes` it lacks. With the
        revision's `entries`, a host lacking it begins building it (finish: make_revision
        with planned=True)."""
        req = pb.MissingObjectsRequest(
            revision=revision, hashes=list(hashes), entries=_entries_pb(entries)
        )
        self.sync_bytes_sent += req.ByteSize()
        resp = await self._stub.MissingObjects(req, timeout=120)
        return resp.has_revision, list(resp.missing)

    async def put_objects(self, chunks: AsyncIterator[tuple[str, bytes, bool]]) -> int:
        """Stream objects (hash, data, last) to the host's store socket; the bytes it stored.
        A large object's chunks come in order, and whole small objects may come between them."""
        stored, sent = await send_objects(self._open_store, chunks)
        self.sync_bytes_sent += sent
        return stored

    async def make_revision(
        self, revision: str, entries: Sequence[EntryLike], base: str = "",
        removed: Sequence[str] = (), planned: bool = False,
    ) -> str:  # fmt: skip
        """Have the host build the revision: from `entries`, or over `base` with `entries`
        changed and `removed` gone, or (`planned`) as begun by missing_objects."""
        req = pb.MakeRevisionRequest(
            revision=revision, base=base, removed=list(removed), entries=_entries_pb(entries),
            planned=planned,
        )  # fmt: skip
        self.sync_bytes_sent += req.ByteSize()
        return str((await self._stub.MakeRevision(req, timeout=600)).path)

    async def has_image(self, image: str, image_id: str) -> bool:
        resp = await self._stub.HasImage(pb.HasImageRequest(image=image, image_id=image_id))
        return bool(resp.present)

    async def pull_image(self, image: str) -> str:
        """Have the host pull `image` from its registry; the id it got. NOT_FOUND on failure."""
        resp = await self._stub.PullImage(pb.PullImageRequest(image=image), timeout=1800)
        return str(resp.image_id)

    async def load_image(self, chunks: AsyncIterator[bytes]) -> list[str]:
        async def messages() -> AsyncIterator[pb.ImageChunk]:
            async for data in chunks:
                yield pb.ImageChunk(data=data)

        return list((await self._stub.LoadImage(messages())).images)

    async def results_size(self, attempt_id: str) -> tuple[int, int]:
        """The disk bytes (convoy/footprint.py) of the attempt's result files, and of its
        output log."""
        resp = await self._stub.ResultsSize(pb.AttemptRef(attempt_id=attempt_id))
        return resp.disk_bytes, resp.log_bytes

    async def log_length(self, attempt_id: str) -> int:
        """The attempt's output log's length in bytes (0: not known, from an older agent)."""
        resp = await self._stub.ResultsSize(pb.AttemptRef(attempt_id=attempt_id))
        return resp.log_length

    async def fetch_results(
        self, attempt_id: str, max_bytes: int | None = None
    ) -> AsyncGenerator[FilePiece, None]:
        """The attempt's result files; with `max_bytes`, files only while they fit in it (the
        others come as left out)."""
        req = pb.FetchResultsRequest(attempt_id=attempt_id, max_bytes=max_bytes)
        call = self._stub.FetchResults(req)
        try:
            async for c in call:
                yield FilePiece(c.path, c.mode, c.data, c.last, c.sha256, c.left_out)
        finally:
            call.cancel()  # a reader that stops early ends the stream at once (no-op if done)
