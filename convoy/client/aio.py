"""AsyncClient: the coordinator's API for asyncio code. The CLI, the TUI and scripts all go
through here (convoy.Client is its blocking flavour).

    async with AsyncClient() as c:          # the coordinator of $CONVOY_HOME
        sub = await c.submit("sweep.yaml")
        runs = await c.wait(sub.submission_id, timeout=3600)

Calls return the dataclasses of convoy/client/types.py; failures are convoy's errors
(convoy/errors.py): NotFound, UsageError (a bad request or experiment file: nothing changed),
CoordinatorUnavailable (nothing answers), Unauthenticated, ConvoyError otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
import yaml

from convoy.errors import CoordinatorUnavailable, UsageError, WaitTimedOut
from convoy.paths import coordinator_socket, default_home
from convoy.resultrows import Results, gather
from convoy.rpcwire import BUILD_REUSED
from convoy.spec import ExperimentSpec, load_spec
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

from . import convert
from .channel import (
    channel_to,
    check_socket,
    parse_target,
    resolve_target,
    resolve_token,
    until_ready,
)
from .errors import error_of
from .fetch import Fetched, fetch_results
from .types import (
    AgentStopped,
    Host,
    HostAdded,
    HostRemoved,
    KeyCheck,
    LogChunk,
    NewHost,
    Run,
    RunEvent,
    Submission,
    Submitted,
    UploadReport,
    Why,
)
from .upload import Uploaded, Uploader, forced, upload_experiment

SHORT_S = 30.0  # deadline of a call that only reads or acts on what is stored
LONG_S = 600.0  # of a call that may snapshot large sources (Submit, Rerun)

_T = TypeVar("_T")


class AsyncClient:
    """A connection to one coordinator: `coordinator` is "" for the one of `home` (the state
    folder, default $CONVOY_HOME) on its unix socket, `unix:PATH` for another socket, or
    `grpcs://HOST:PORT` for one started with `convoy up --listen` elsewhere (default:
    $CONVOY_COORDINATOR, else ""). Over TCP, `token` (default $CONVOY_TOKEN) is sent with each
    call, and the coordinator's certificate is pinned on first contact (or checked against
    `fingerprint`, default $CONVOY_COORDINATOR_FINGERPRINT); a certificate issued by a CA is
    verified up to `ca`, a CA bundle file (default $CONVOY_COORDINATOR_CA, else this
    machine's roots): see convoy/client/channel.py.
    Nothing connects until the first call; `connect()` makes and checks one at once.
    `upload`: send the sources and inputs with each submission (default: to a coordinator
    elsewhere, or with CONVOY_UPLOAD=1); the coordinator then keeps the results
    (`fetch()` brings them here)."""

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, coordinator: str | None = None,
        token: str | None = None, fingerprint: str | None = None, upload: bool | None = None,
        ca: str | os.PathLike[str] | None = None,
    ) -> None:  # fmt: skip
        self.home = Path(home).absolute() if home is not None else default_home()
        self.target = parse_target(resolve_target(coordinator), self.home)
        self.remote = self.target.remote
        self.socket = self.target.socket or coordinator_socket(self.home)
        self.where = str(self.target) if self.remote else str(self.socket)  # for messages
        self._token = token if token is not None else resolve_token()
        self._fingerprint = fingerprint
        self._ca = ca
        # Submissions send the sources and inputs (what the coordinator lacks of them): always
        # to a coordinator elsewhere; to this machine's when asked (CONVOY_UPLOAD=1).
        self.upload = upload if upload is not None else self.remote or forced()
        self._uploader: Uploader | None = None  # its stat caches: a save hashes what changed
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.CoordinatorStub | None = None

    # -- the connection ----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, home: str | os.PathLike[str] | None = None, timeout: float = 2.0,
        start: bool = False, *, coordinator: str | None = None, token: str | None = None,
        fingerprint: str | None = None, ca: str | os.PathLike[str] | None = None,
    ) -> AsyncClient:  # fmt: skip
        """A client whose coordinator answered within `timeout`; else CoordinatorUnavailable.
        `start`: start a coordinator for `home` in the background when none answers on its
        socket (as `convoy run` does), logging to home/coordinator.log; never one elsewhere."""
        client = cls(home, coordinator=coordinator, token=token, fingerprint=fingerprint, ca=ca)
        try:
            await client.ready(timeout)
        except CoordinatorUnavailable:
            if not start or client.remote:
                await client.close()
                raise
            from .local import start_detached

            pid = await asyncio.to_thread(start_detached, client.home)
            client.started = pid
            await client.ready(15.0)
        return client

    started: int | None = None  # the pid of the coordinator connect(start=True) started

    async def ready(self, timeout: float = 2.0) -> None:
        """Wait until the coordinator answers; CoordinatorUnavailable after `timeout`."""
        check_socket(self.target)
        await self._open(max(timeout, 5.0))
        assert self._channel is not None
        try:
            await until_ready(self._channel, self.target, self.where, timeout)
        except CoordinatorUnavailable:
            self._channel = self._stub = None  # closed: the next call opens another
            raise

    async def _open(self, timeout: float = 5.0) -> pb_grpc.CoordinatorStub:
        """The stub, its channel made on first use: over TCP, after the certificate is
        checked against its pin (a network round trip, in a worker thread)."""
        if self._stub is None:
            self._channel = await channel_to(self.target, self.home, self._token,
                                             self._fingerprint, self._ca, timeout)  # fmt: skip
            self._stub = pb_grpc.CoordinatorStub(self._channel)
        return self._stub

    async def stub(self) -> pb_grpc.CoordinatorStub:
        """The generated stub, for what this class does not cover (yet)."""
        return await self._open()

    async def close(self) -> None:
        """Close the connection; a later call opens another (after the coordinator came back,
        say)."""
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = self._stub = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, call: Callable[[pb_grpc.CoordinatorStub], Awaitable[_T]]) -> _T:
        try:
            return await call(await self._open())
        except grpc.aio.AioRpcError as e:
            raise error_of(e, self.where, self.remote) from None

    # -- submitting --------------------------------------------------------------------------

    async def submit(
        self, experiment: str | os.PathLike[str] | Mapping[str, Any],
        sources: str | os.PathLike[str] | None = None, *, results: str | os.PathLike[str] = "",
        priority: int = 0, indexes: Sequence[int] = (), force: bool = False,
        unless_revision: str = "", same_as: str = "", text: str | None = None,
    ) -> Submitted:  # fmt: skip
        """Submit an experiment: an experiment file's path, or the experiment as a dict (what
        the file's YAML would hold) with `sources`, the folder its `sources:` and `inputs:`
        are relative to. A bad experiment raises SpecError (file, line, column) and submits
        nothing. `results`: the results folder (default convoy-results/ beside the file, or
        in `sources`); `indexes`: only these runs of the matrix; `force`: run even what an
        earlier run of the same key already did; `unless_revision`: submit nothing (unchanged)
        when the sources still make that revision; `same_as`: use that submission's
        revision and inputs (no new snapshot); `text`: the experiment file's text as the
        caller read (and checked) it, submitted instead of reading the file again."""
        if text is not None and not isinstance(experiment, Mapping):
            path = Path(experiment).absolute()
        else:
            path, text, _ = read_experiment(experiment, sources)
        up = None
        if self.upload and not same_as:
            if results:
                raise UsageError("an uploaded experiment's results stay on the coordinator "
                                 "(`convoy fetch SUBMISSION DIR` copies them): no "
                                 "--results")  # fmt: skip
            up = await self._upload(path, text)
        req = pb.SubmitRequest(
            spec_path=str(path), spec_yaml=text,
            results_dir=str(Path(results).absolute()) if results else "", priority=priority,
            indexes=list(indexes), force=force, unless_revision=unless_revision,
            same_as=same_as, upload=up.as_pb() if up is not None else None,
        )  # fmt: skip
        resp = await self._call(lambda s: s.Submit(req, timeout=LONG_S))
        done = convert.submitted_of(resp)
        if up is None:
            return done
        sent = UploadReport(up.objects_sent, up.objects_total, up.bytes_sent, up.bytes_total)
        return dataclasses.replace(done, uploaded=sent)

    async def _upload(self, path: Path, text: str) -> Uploaded:
        """The experiment's sources and inputs onto the coordinator: hashed here (what changed
        since the last submission of this client), and only the files it lacks sent."""
        if self._uploader is None:
            scans = self.home / "upload-scans" if self.home.is_dir() else None
            self._uploader = Uploader(scans)
        try:
            return await upload_experiment(await self._open(), path, self._uploader, text)
        except grpc.aio.AioRpcError as e:
            raise error_of(e, self.where, self.remote) from None

    async def fetch(
        self, submission: str, folder: str | os.PathLike[str] | None = None, force: bool = False
    ) -> Fetched:
        """Copy a submission's results folder from the coordinator into `folder` (default
        ./convoy-results/EXPERIMENT/SUBMISSION): what it wrote, what was already there, and
        what it left as it was (another file there, without `force`)."""
        where = Path(folder) if folder is not None else None
        try:
            return await fetch_results(await self._open(), submission, where, force)
        except grpc.aio.AioRpcError as e:
            raise error_of(e, self.where, self.remote) from None

    async def rerun(self, submission: str, states: Iterable[str] = ()) -> Submitted:
        """Run a submission's runs in `states` (default: failed, lost and cancelled) again, as
        a new submission of the same revision."""
        req = pb.RerunRequest(submission_id=submission, states=list(states))
        return convert.submitted_of(await self._call(lambda s: s.Rerun(req, timeout=LONG_S)))

    async def cancel(self, target: str, grace: float = 0.0) -> list[str]:
        """Cancel a run, or every unfinished run of a submission (`target`: its id); the ids
        of the runs reached. `grace`: seconds a container has to stop (0: the default, 10)."""
        req = pb.CancelRequest(id=target, grace_seconds=grace)
        return list((await self._call(lambda s: s.Cancel(req, timeout=SHORT_S))).cancelled)

    # -- reading -----------------------------------------------------------------------------

    async def runs(
        self, submission: str = "", *, states: Iterable[str] = (), experiment: str = "",
        last: int = 0,
    ) -> list[Run]:  # fmt: skip
        """Runs, oldest first: of one submission or experiment, in some states; `last`: only
        the newest so many."""
        req = pb.ListRunsRequest(submission_id=submission, states=list(states), limit=last,
                                 experiment=experiment, newest=bool(last))  # fmt: skip
        resp = await self._call(lambda s: s.ListRuns(req, timeout=LONG_S))
        return [convert.run_of(r) for r in resp.runs]

    async def run(self, run_id: str) -> Run:
        req = pb.GetRunRequest(run_id=run_id)
        return convert.run_of(await self._call(lambda s: s.GetRun(req, timeout=SHORT_S)))

    async def submissions(self) -> list[Submission]:
        """Every submission, oldest first."""
        req = pb.ListSubmissionsRequest()
        resp = await self._call(lambda s: s.ListSubmissions(req, timeout=SHORT_S))
        return [convert.submission_of(x) for x in resp.submissions]

    async def submission(self, submission_id: str) -> Submission:
        for s in await self.submissions():
            if s.id == submission_id:
                return s
        from convoy.errors import NotFound

        raise NotFound(f"no submission {submission_id!r}")

    async def why(self, run_id: str) -> Why:
        """Why a run ran, or did not (its result was reused)."""
        req = pb.WhyRequest(run_id=run_id)
        return convert.why_of(await self._call(lambda s: s.Why(req, timeout=SHORT_S)))

    async def hosts(self) -> list[Host]:
        resp = await self._call(lambda s: s.Hosts(pb.HostsRequest(), timeout=SHORT_S))
        return [convert.host_of(h) for h in resp.hosts]

    async def hosts_file(self) -> str:
        """The hosts file the coordinator keeps (a path on its machine)."""
        resp = await self._call(lambda s: s.Hosts(pb.HostsRequest(), timeout=SHORT_S))
        return resp.hosts_file

    async def add_host(self, host: NewHost) -> HostAdded:
        """Add a host: the coordinator writes it to its hosts file and connects to it at once
        (an unknown SSH key: trust_host). A bad setting or a name taken is a UsageError."""
        req = convert.new_host_pb(host)
        return convert.added_of(await self._call(lambda s: s.AddHost(req, timeout=LONG_S)))

    async def remove_host(self, name: str, force: bool = False) -> HostRemoved:
        """Remove a host from the hosts file and from use. Refused (UsageError, naming them)
        while runs are in flight there, unless `force`: those are queued again elsewhere."""
        req = pb.RemoveHostRequest(name=name, force=force)
        return convert.removed_of(await self._call(lambda s: s.RemoveHost(req, timeout=LONG_S)))

    async def trust_host(self, name: str, fingerprint: str | None = None) -> KeyCheck:
        """The key the host offers, as the coordinator fetches it; recorded in the
        coordinator's known_hosts only when it is `fingerprint` (refused otherwise): without
        one, nothing is recorded, so that a person can check it first."""
        req = pb.TrustHostRequest(name=name, fingerprint=fingerprint or "")
        return convert.key_check_of(await self._call(lambda s: s.TrustHost(req, timeout=LONG_S)))

    async def results(
        self, experiment: str, *, latest: bool = False, where: Iterable[str] = ()
    ) -> Results:
        """An experiment's results table: a row per run with its parameters and metrics
        (`Results.dataframe()` makes it a pandas DataFrame). `latest`: only the latest run of
        each parameter assignment; `where`: NAME=VALUE filters."""
        req = pb.ResultsRequest(experiment=experiment, latest=latest, where=list(where))
        try:
            stub = await self._open()
            return await gather(experiment, stub.Results(req, timeout=LONG_S))
        except grpc.aio.AioRpcError as e:
            raise error_of(e, self.where, self.remote) from None

    async def stop_agents(self) -> list[AgentStopped]:
        """Stop the agents of the hosts reached by SSH (each unless a run is in flight
        there), for `convoy down --cancel`."""
        req = pb.StopAgentsRequest()
        resp = await self._call(lambda s: s.StopAgents(req, timeout=LONG_S))
        return [convert.stopped_of(h) for h in resp.hosts]

    # -- streams -----------------------------------------------------------------------------

    async def events(
        self, submission: str = "", snapshot: bool = True
    ) -> AsyncGenerator[RunEvent, None]:
        """Every state change of the runs (of one submission), as it happens; with `snapshot`,
        first each run's current state. It lasts until the caller stops reading."""
        req = pb.EventsRequest(submission_id=submission, snapshot=snapshot)
        call = (await self._open()).Events(req)
        try:
            async for ev in call:
                yield convert.event_of(ev)
        except grpc.aio.AioRpcError as e:
            raise error_of(e, self.where, self.remote) from None
        finally:
            call.cancel()

    def logs(
        self, run_id: str, *, offset: int = 0, follow: bool = False, attempt: int = 0
    ) -> LogStream:
        """A run's output from byte `offset`: its latest attempt's (`attempt` N: that
        attempt's only). With `follow`, until the run ends, going on into the attempts that
        follow (a retry's chunks carry its attempt number). Also a build's output: `run_id`
        SUBMISSION.build@HOST."""
        req = pb.LogsRequest(run_id=run_id, offset=offset, follow=follow, attempt=attempt)
        return LogStream(self, req)

    async def log(self, run_id: str, attempt: int = 0) -> bytes:
        """A run's output so far, whole."""
        return b"".join([c.data async for c in self.logs(run_id, attempt=attempt)])

    async def wait(self, submission: str, timeout: float | None = None) -> list[Run]:
        """Wait until every run of the submission has ended; its runs, by index. WaitTimedOut
        (a TimeoutError too) after `timeout` seconds; the runs go on."""
        total = (await self.submission(submission)).total
        final: dict[str, Run] = {}

        async def follow() -> None:
            async for ev in self.events(submission):
                if ev.run.terminal:
                    final[ev.run.id] = ev.run
                if len(final) >= total:
                    return

        try:
            await asyncio.wait_for(follow(), timeout)
        except TimeoutError:
            raise WaitTimedOut(f"{submission}: {len(final)} of {total} runs ended within "
                               f"{timeout:g} s; the others go on") from None  # fmt: skip
        return sorted(final.values(), key=lambda r: r.index)


class LogStream:
    """An async iterator of a run's LogChunks. `build_reused`, once it has ended: the stream
    was a build's, and its host already had that build (nothing was built now)."""

    def __init__(self, client: AsyncClient, req: pb.LogsRequest) -> None:
        self._client = client
        self._req = req
        self.build_reused = False

    async def __aiter__(self) -> AsyncIterator[LogChunk]:
        client = self._client
        call = (await client._open()).Logs(self._req)
        try:
            async for chunk in call:
                yield convert.chunk_of(chunk)
            trailer = await call.trailing_metadata() or ()
            self.build_reused = any(k == BUILD_REUSED for k, _ in trailer)
        except grpc.aio.AioRpcError as e:
            raise error_of(e, client.where, client.remote) from None
        finally:
            call.cancel()


def read_experiment(
    experiment: str | os.PathLike[str] | Mapping[str, Any],
    sources: str | os.PathLike[str] | None = None,
) -> tuple[Path, str, ExperimentSpec]:
    """The experiment file's absolute path, its text, and what it says (SpecError: file, line,
    column, as the file was named).
    An experiment given as a dict is written as YAML, and named as a file in `sources` (it is
    not written there: the name only places it, and shows in messages)."""
    if isinstance(experiment, Mapping):
        if sources is None:
            raise UsageError("an experiment given as a dict needs `sources`: the folder its "
                             "sources and inputs are relative to")  # fmt: skip
        folder = Path(sources).absolute()
        if not folder.is_dir():
            raise UsageError(f"sources {folder}: no such folder")
        text = yaml.safe_dump(dict(experiment), sort_keys=False)
        path = folder / f"{experiment.get('name', 'experiment')}.convoy.yaml"
    else:
        path = Path(experiment).absolute()
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise UsageError(f"{experiment}: no such experiment file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{experiment}: cannot read: {e}") from None
    name = str(path) if isinstance(experiment, Mapping) else os.fspath(experiment)
    return path, text, load_spec(text, name)
