"""Watch mode, on the client side of the API: save a file, and the runs restart on it.

A watchdog observer on the experiment's folders (its sources, its inputs, the experiment file)
notes every change; once the folders have been quiet for the debounce period, the experiment is
submitted again with `unless_revision` set to the last revision: the coordinator hashes only
what changed (its stat cache and tree watcher), and when the content makes the same revision
(an editor's touch, a swap file that is ignored, a file saved unchanged) nothing is submitted.
Otherwise the superseded submission's runs are cancelled (on_change: cancel, keeping their
partial results) or left to finish, and the new runs start: only the change is synced, and a
build step rebuilds incrementally. Paths under the results folder, .git and convoy's state are
never watched: runs, builds and convoy write there (runs and builds write on the hosts, never
into the sources). So nothing convoy starts changes what is watched, and no rerun causes
another: each follows a change made outside convoy. Watching therefore never pauses on its own,
however quickly changes come: a person saving as soon as the output ends is as quick as a tool,
and timing cannot tell them apart. A tool that writes the same content again reruns nothing (the
same revision); one that writes new content reruns each time, as a person's save does.

Both `convoy watch` and the TUI drive a WatchSession; what they show is up to their callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from convoy.client import AsyncClient, Submitted
from convoy.errors import ConvoyError
from convoy.paths import COOKIE_PREFIX
from convoy.spec import ExperimentSpec, load_spec, run_count, smoke_indexes
from convoy.states import TERMINAL

ALWAYS_IGNORED = (".git", "convoy-results", ".convoy", "__pycache__")


@dataclass
class Debouncer:
    """Fires once the events have stopped for `quiet_s`."""

    quiet_s: float
    last: float | None = None
    paths: set[str] = field(default_factory=set)

    def note(self, path: str, at: float) -> None:
        self.last = at
        self.paths.add(path)

    def due(self, now: float) -> bool:
        return self.last is not None and now - self.last >= self.quiet_s

    def wait_s(self, now: float) -> float | None:
        return None if self.last is None else max(0.0, self.quiet_s - (now - self.last))

    def take(self) -> set[str]:
        paths, self.paths, self.last = self.paths, set(), None
        return paths


class _Events(FileSystemEventHandler):
    def __init__(self, ignored: Sequence[Path], notify: Callable[[str], None]) -> None:
        self.ignored = tuple(str(p) + os.sep for p in ignored)
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's entries changed: those entries have events of their own
        for p in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(p)
            if not path or (path + os.sep).startswith(self.ignored):
                continue
            parts = Path(path).parts
            if any(part in ALWAYS_IGNORED for part in parts) or parts[-1].startswith(COOKIE_PREFIX):
                continue  # convoy's own
            self.notify(path)


@dataclass
class Callbacks:
    """What a session tells its user (all optional)."""

    submitted: Callable[[Submitted, list[str]], Awaitable[None]] | None = None
    unchanged: Callable[[set[str]], None] | None = None
    superseded: Callable[[str, list[str]], None] | None = None
    smoke_failed: Callable[[str], None] | None = None
    error: Callable[[str], None] | None = None


class WatchSession:
    def __init__(
        self, client: AsyncClient, spec_path: Path, results_dir: str = "",
        home: Path | None = None, callbacks: Callbacks | None = None,
        debounce_s: float | None = None, since: tuple[str, str] | None = None,
    ) -> None:  # fmt: skip
        """`since`: (submission, revision) already submitted: watch from it, submitting nothing
        until the sources change."""
        self.client = client
        self.spec_path = spec_path.resolve()
        self.results_dir = results_dir
        self.home = home
        self.cb = callbacks or Callbacks()
        self.spec_text, self.spec = self._load()
        self.debouncer = Debouncer(self.spec.watch.debounce_s if debounce_s is None
                                   else debounce_s)  # fmt: skip
        self.revision = since[1] if since else ""
        self.submission = since[0] if since else ""
        self._wake = asyncio.Event()
        self._smoke: asyncio.Task[None] | None = None

    def _load(self) -> tuple[str, ExperimentSpec]:
        """The experiment file's text and what it says: the text submitted is the one parsed."""
        text = self.spec_path.read_text(encoding="utf-8")
        return text, load_spec(text, str(self.spec_path))

    def folders(self) -> list[Path]:
        source, inputs = self.spec.folders(self.spec_path)
        out = [source, *inputs.values()]
        if not any(self.spec_path.is_relative_to(f) for f in out):
            out.append(self.spec_path.parent)  # the experiment file, beside sources elsewhere
        return out

    def ignored(self) -> list[Path]:
        base = self.spec_path.parent
        results = Path(self.results_dir) if self.results_dir else base / "convoy-results"
        return [results.resolve()] + ([self.home.resolve()] if self.home else [])

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Submit, then rerun on every quiet change, until cancelled."""
        loop = asyncio.get_running_loop()

        def notify(path: str) -> None:
            loop.call_soon_threadsafe(self._noted, path)

        handler = _Events(self.ignored(), notify)
        observer = Observer()
        for folder in self.folders():
            observer.schedule(handler, str(folder), recursive=True)
        observer.start()
        try:
            if not self.revision:
                await self._submit(set(), initial=True)
            while True:
                await self._wake.wait()
                self._wake.clear()
                while (wait := self.debouncer.wait_s(time.monotonic())) is not None and wait > 0:
                    await asyncio.sleep(wait)
                if self.debouncer.due(time.monotonic()):
                    await self._submit(self.debouncer.take())
        finally:
            observer.stop()
            await asyncio.to_thread(observer.join, 5)
            if self._smoke is not None:
                self._smoke.cancel()

    def _noted(self, path: str) -> None:
        self.debouncer.note(path, time.monotonic())
        self._wake.set()

    async def _submit(self, paths: set[str], initial: bool = False) -> None:
        try:
            self.spec_text, self.spec = self._load()
        except Exception as e:  # a half-saved experiment file: wait for the next save
            if self.cb.error:
                self.cb.error(f"{e}")
            return
        smoke = smoke_indexes(self.spec)
        try:
            resp = await self.client.submit(
                self.spec_path, results=self.results_dir, indexes=smoke,
                unless_revision="" if initial else self.revision, text=self.spec_text,
            )  # fmt: skip
        except ConvoyError as e:
            if self.cb.error:
                self.cb.error(str(e))
            return
        if resp.unchanged:
            if self.cb.unchanged:
                self.cb.unchanged(paths)
            return
        previous = self.submission
        self.revision, self.submission = resp.revision, resp.submission_id
        if previous and self.spec.watch.on_change == "cancel":
            with contextlib.suppress(Exception):
                cancelled = await self.client.cancel(previous)
                if self.cb.superseded:
                    self.cb.superseded(previous, cancelled)
        if self._smoke is not None:
            self._smoke.cancel()
        if self.cb.submitted:
            await self.cb.submitted(resp, list(resp.changed))
        if smoke and len(smoke) < _matrix_size(self.spec):
            self._smoke = asyncio.ensure_future(self._after_smoke(resp))

    async def _after_smoke(self, smoke: Submitted) -> None:
        """The rest of the matrix, once every smoke run has succeeded."""
        ids = {r.id for r in smoke.runs}
        final: dict[str, str] = {}
        events = self.client.events(smoke.submission_id)
        try:
            async for ev in events:
                if ev.run.id in ids and ev.run.state in TERMINAL:
                    final[ev.run.id] = ev.run.state
                    if len(final) == len(ids):
                        break
        finally:
            await events.aclose()
        bad = sorted(r for r, state in final.items() if state != "succeeded")
        if bad:
            if self.cb.smoke_failed:
                self.cb.smoke_failed(
                    f"smoke runs did not succeed ({', '.join(bad)}): the rest of the matrix "
                    "waits for the next change"
                )
            return
        rest = sorted(set(range(_matrix_size(self.spec))) - {r.index for r in smoke.runs})
        resp = await self.client.submit(self.spec_path, results=self.results_dir,
                                        same_as=smoke.submission_id, indexes=rest,
                                        text=self.spec_text)  # fmt: skip
        self.submission = resp.submission_id
        if self.cb.submitted:
            await self.cb.submitted(resp, [])


def _matrix_size(spec: ExperimentSpec) -> int:
    return run_count(spec)
