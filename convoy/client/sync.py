"""Client: the blocking flavour of AsyncClient, for scripts and notebooks.

    from convoy import Client

    with Client() as c:
        sub = c.submit("sweep.yaml")
        for ev in c.events(sub.submission_id):
            print(ev.run.id, ev.run.state)
            ...
        runs = c.wait(sub.submission_id, timeout=3600)
        print(c.log(runs[0].id).decode())

Each call runs AsyncClient's on an event loop of the client's own (a daemon thread), so a
Client works the same inside a program that has a loop of its own (a Jupyter kernel). The
methods, their arguments and their errors are AsyncClient's; see there.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, TypeVar

from convoy.resultrows import Results

from .aio import AsyncClient
from .fetch import Fetched
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
    Why,
)

_T = TypeVar("_T")


class Client:
    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, coordinator: str | None = None,
        token: str | None = None, fingerprint: str | None = None, upload: bool | None = None,
        ca: str | os.PathLike[str] | None = None,
    ) -> None:  # fmt: skip
        self._aio = AsyncClient(home, coordinator=coordinator, token=token,
                                fingerprint=fingerprint, upload=upload, ca=ca)  # fmt: skip
        self.home = self._aio.home
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="convoy-client",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _do(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _each(self, stream: AsyncIterator[_T]) -> Iterator[_T]:
        async def step() -> _T:
            return await anext(stream)

        try:
            while True:
                try:
                    yield self._do(step())
                except StopAsyncIteration:
                    return
        finally:
            if isinstance(stream, AsyncGenerator):
                self._do(stream.aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._do(self._aio.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def ready(self, timeout: float = 2.0) -> None:
        self._do(self._aio.ready(timeout))

    def submit(
        self, experiment: str | os.PathLike[str] | Mapping[str, Any],
        sources: str | os.PathLike[str] | None = None, *, results: str | os.PathLike[str] = "",
        priority: int = 0, indexes: Sequence[int] = (), force: bool = False,
        unless_revision: str = "", same_as: str = "", text: str | None = None,
    ) -> Submitted:  # fmt: skip
        return self._do(self._aio.submit(
            experiment, sources, results=results, priority=priority, indexes=indexes,
            force=force, unless_revision=unless_revision, same_as=same_as, text=text,
        ))  # fmt: skip

    def rerun(self, submission: str, states: Iterable[str] = ()) -> Submitted:
        return self._do(self._aio.rerun(submission, states))

    def cancel(self, target: str, grace: float = 0.0) -> list[str]:
        return self._do(self._aio.cancel(target, grace))

    def runs(
        self, submission: str = "", *, states: Iterable[str] = (), experiment: str = "",
        last: int = 0,
    ) -> list[Run]:  # fmt: skip
        return self._do(self._aio.runs(submission, states=states, experiment=experiment,
                                       last=last))  # fmt: skip

    def run(self, run_id: str) -> Run:
        return self._do(self._aio.run(run_id))

    def submissions(self) -> list[Submission]:
        return self._do(self._aio.submissions())

    def submission(self, submission_id: str) -> Submission:
        return self._do(self._aio.submission(submission_id))

    def why(self, run_id: str) -> Why:
        return self._do(self._aio.why(run_id))

    def hosts(self) -> list[Host]:
        return self._do(self._aio.hosts())

    def hosts_file(self) -> str:
        return self._do(self._aio.hosts_file())

    def add_host(self, host: NewHost) -> HostAdded:
        return self._do(self._aio.add_host(host))

    def remove_host(self, name: str, force: bool = False) -> HostRemoved:
        return self._do(self._aio.remove_host(name, force))

    def trust_host(self, name: str, fingerprint: str | None = None) -> KeyCheck:
        return self._do(self._aio.trust_host(name, fingerprint))

    def results(self, experiment: str, *, latest: bool = False, where: Iterable[str] = ()
                ) -> Results:  # fmt: skip
        return self._do(self._aio.results(experiment, latest=latest, where=where))

    def stop_agents(self) -> list[AgentStopped]:
        return self._do(self._aio.stop_agents())

    def events(self, submission: str = "", snapshot: bool = True) -> Iterator[RunEvent]:
        return self._each(self._aio.events(submission, snapshot))

    def logs(
        self, run_id: str, *, offset: int = 0, follow: bool = False, attempt: int = 0
    ) -> Iterator[LogChunk]:
        stream = self._aio.logs(run_id, offset=offset, follow=follow, attempt=attempt)
        return self._each(aiter(stream))

    def log(self, run_id: str, attempt: int = 0) -> bytes:
        return self._do(self._aio.log(run_id, attempt))

    def fetch(
        self, submission: str, folder: str | os.PathLike[str] | None = None, force: bool = False
    ) -> Fetched:
        return self._do(self._aio.fetch(submission, folder, force))

    def wait(self, submission: str, timeout: float | None = None) -> list[Run]:
        return self._do(self._aio.wait(submission, timeout))
