"""A stand-in for convoy.AsyncClient, fed from Python: the TUI without a coordinator.

    client = FakeClient(runs=[run, ...], submissions=[sub, ...], hosts=[host, ...])
    app = ConvoyApp(home, client=client)
    ...
    client.push(changed_run)  # an event, delivered to the app's events() stream

`events()` yields a snapshot of the current runs, then every pushed run (an asyncio.Queue
behind it). `results()` serves each experiment's table given as one ResultsChunk (its params,
metrics and rows, in submission order), as the coordinator streams it: in chunks, the columns
in the first only, `latest` applied. `disconnect()` makes every call fail as an absent
coordinator does (CoordinatorUnavailable) and ends a running stream; `reconnect()` lets calls
succeed again. Calls that act (cancel, rerun) are recorded, not carried out. It is fed API
messages (convoy.v1) and answers as the client does, with convoy.client's dataclasses.

It subclasses AsyncClient only so that it type-checks where one is expected; every method the
app uses is replaced, and `stub` refuses to connect.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path

from convoy.client import (
    AsyncClient,
    Host,
    LogChunk,
    LogStream,
    Run,
    RunEvent,
    Submission,
    Submitted,
)
from convoy.client.convert import event_of, host_of, run_of, submission_of
from convoy.errors import CoordinatorUnavailable, NotFound
from convoy.resultrows import Results, gather
from convoy.tui.model import TERMINAL
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

HOME = Path("/nonexistent/convoy-home")  # never read or written: only shown and named
_STOP = None  # the queue item that ends a running events() stream
CHUNK_ROWS = 2  # rows of a results chunk here (the coordinator's: 1,000): tables span chunks


def not_found(details: str) -> NotFound:
    return NotFound(details)


def unavailable(socket: Path) -> CoordinatorUnavailable:
    """The error a call gets when nothing answers on the socket (as convoy.client says it)."""
    return CoordinatorUnavailable(f"the coordinator is not running (no answer on {socket}); "
                                  "start it with `convoy up` or `convoy run FILE`")  # fmt: skip


class FakeClient(AsyncClient):
    def __init__(
        self,
        runs: Iterable[pb.Run] = (),
        submissions: Iterable[pb.Submission] = (),
        hosts: Iterable[pb.Host] = (),
        logs: Mapping[str, Iterable[bytes | tuple[int, bytes]]] | None = None,
        results: Mapping[str, pb.ResultsChunk] | None = None,
        home: Path = HOME,
    ) -> None:
        super().__init__(home)
        self.known_runs: dict[str, pb.Run] = {r.id: r for r in runs}  # the current state of each
        self.submission_list: list[pb.Submission] = list(submissions)
        self.host_list: list[pb.Host] = list(hosts)
        # Per run, its output's chunks: bytes (of attempt 1) or (attempt, bytes).
        self.log_chunks: dict[str, list[tuple[int, bytes]]] = {
            k: [c if isinstance(c, tuple) else (1, c) for c in v] for k, v in (logs or {}).items()
        }
        self.result_tables: dict[str, pb.ResultsChunk] = dict(results or {})  # experiment ->
        self.results_asked: list[tuple[str, bool]] = []  # (experiment, latest), in order
        self.down = False
        self.closed = False
        self.cancelled: list[str] = []  # targets of cancel(), in order
        self.reruns: list[str] = []  # submissions given to rerun(), in order
        self.event_streams = 0  # how many times events() was started
        self._queue: asyncio.Queue[pb.RunEvent | None] = asyncio.Queue()

    # -- feeding it ----------------------------------------------------------------------------

    def push(self, run: pb.Run, previous_state: str = "") -> None:
        """Record a run's new state and emit it as an event (before a stream starts, the run is
        in that stream's snapshot instead)."""
        old = self.known_runs.get(run.id)
        self.known_runs[run.id] = run
        self._queue.put_nowait(pb.RunEvent(
            run=run, previous_state=previous_state or (old.state if old else ""), at=time.time(),
        ))  # fmt: skip

    def push_many(self, runs: Iterable[pb.Run]) -> None:
        for r in runs:
            self.push(r)

    def disconnect(self) -> None:
        """The coordinator goes away: calls fail with UNAVAILABLE, a running stream ends so."""
        self.down = True
        self._queue.put_nowait(_STOP)

    def reconnect(self) -> None:
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise unavailable(self.socket)

    # -- what AsyncClient offers ---------------------------------------------------------------

    async def _open(self, timeout: float = 5.0) -> pb_grpc.CoordinatorStub:
        raise AssertionError("FakeClient never connects to a coordinator")

    async def close(self) -> None:
        self.closed = True

    async def submissions(self) -> list[Submission]:
        self._check()
        return [submission_of(s) for s in self.submission_list]

    async def events(  # type: ignore[override]
        self, submission: str = "", snapshot: bool = True
    ) -> AsyncIterator[RunEvent]:
        """Every run's current state (snapshot events), then every pushed one, until
        disconnect()."""
        self._check()
        self.event_streams += 1
        # Events pushed before the stream started are in the snapshot already.
        while not self._queue.empty():
            self._queue.get_nowait()
        for run in list(self.known_runs.values()):
            yield event_of(pb.RunEvent(run=run, snapshot=True))
        while True:
            ev = await self._queue.get()
            if ev is _STOP:
                raise unavailable(self.socket)
            yield event_of(ev)

    def logs(
        self, run_id: str, *, offset: int = 0, follow: bool = False, attempt: int = 0
    ) -> LogStream:
        """The run's chunks from a byte offset (of all attempts' output back to back); the
        stream ends there (follow or not)."""
        return _FakeLogs(self, run_id, offset)

    async def run(self, run_id: str) -> Run:
        self._check()
        if run_id not in self.known_runs:
            raise not_found(f"no run {run_id}")
        return run_of(self.known_runs[run_id])

    async def cancel(self, target: str, grace: float = 0.0) -> list[str]:
        self._check()
        self.cancelled.append(target)
        return [r.id for r in self.known_runs.values()
                if (r.id == target or r.submission_id == target)
                and r.state not in TERMINAL]  # fmt: skip

    async def rerun(self, submission: str, states: Iterable[str] = ()) -> Submitted:
        self._check()
        self.reruns.append(submission)
        return Submitted(submission_id=f"{submission}-rerun", runs=[], revision="")

    async def hosts(self) -> list[Host]:
        self._check()
        return [host_of(h) for h in self.host_list]

    async def results(
        self, experiment: str, *, latest: bool = False, where: Iterable[str] = ()
    ) -> Results:
        self._check()
        self.results_asked.append((experiment, latest))
        table = self.result_tables.get(experiment)
        if table is None:
            known = ", ".join(sorted(self.result_tables)) or "none yet"
            raise not_found(f"no runs of experiment {experiment!r}; the experiments: {known}")
        rows = list(table.rows)
        if latest:  # of each parameter assignment, its last row (rows are in submission order)
            last = {json.dumps(json.loads(r.run.params_json), sort_keys=True): r.run.id
                    for r in rows}  # fmt: skip
            rows = [r for r in rows if r.run.id in set(last.values())]

        async def chunks() -> AsyncIterator[pb.ResultsChunk]:
            yield pb.ResultsChunk(params=table.params, metrics=table.metrics,
                                  rows=rows[:CHUNK_ROWS])  # fmt: skip
            for i in range(CHUNK_ROWS, len(rows), CHUNK_ROWS):
                yield pb.ResultsChunk(rows=rows[i : i + CHUNK_ROWS])

        return await gather(experiment, chunks())


class _FakeLogs(LogStream):
    def __init__(self, fake: FakeClient, run_id: str, offset: int) -> None:
        self.fake, self.run_id, self.offset = fake, run_id, offset
        self.build_reused = False

    async def __aiter__(self) -> AsyncIterator[LogChunk]:
        self.fake._check()
        if self.run_id not in self.fake.known_runs:
            raise not_found(f"no run {self.run_id}")
        skip, at = self.offset, self.offset
        for attempt, chunk in self.fake.log_chunks.get(self.run_id, []):
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            yield LogChunk(at, chunk[skip:], attempt)
            at += len(chunk) - skip
            skip = 0
