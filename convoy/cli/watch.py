"""`convoy watch FILE`: rerun on every save, printing each rerun and its runs' output."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from convoy.client import AsyncClient, Submitted
from convoy.states import TERMINAL
from convoy.watching import Callbacks, WatchSession

from .render import state_counts
from .run import Printer, _follow_run, connect_or_start, done_before, not_collected, read_spec


class WatchPrinter:
    """Streams the current submission's runs; a rerun replaces the stream."""

    def __init__(self, client: AsyncClient, quiet: bool) -> None:
        self.client = client
        self.printer = Printer(sys.stdout, quiet)
        self.stream: asyncio.Task[None] | None = None

    def say(self, text: str) -> None:
        self.printer.status(f"watch: {text}")

    async def submitted(self, resp: Submitted, changed: list[str]) -> None:
        what = f"; changed: {', '.join(changed[:8])}" + (" ..." if len(changed) > 8 else "")
        done = done_before(resp.runs)
        to_run = sum(1 for r in resp.runs if not r.reused_from)
        runs = f"{to_run} to run ({done})" if done else f"{len(resp.runs)} runs"
        self.say(f"{resp.submission_id}: {runs} of revision {resp.revision[:12]}"
                 + (what if changed else ""))  # fmt: skip
        for warning in resp.warnings:
            self.say(f"warning: {warning}")
        if self.stream is not None and not self.stream.done():
            self.stream.cancel()
        self.stream = asyncio.ensure_future(self._stream(resp.submission_id, len(resp.runs)))

    async def _stream(self, sub: str, total: int) -> None:
        followers: dict[str, asyncio.Task[None]] = {}
        final: dict[str, str] = {}
        missed: list[str | None] = []  # said after the runs' output
        events = self.client.events(sub)
        try:
            async for ev in events:
                run = ev.run
                live = run.state == "running" or run.state in TERMINAL
                if run.reused_from:  # already done: its output was printed when it ran
                    live = False
                if not self.printer.quiet and live and run.id not in followers:
                    followers[run.id] = asyncio.ensure_future(
                        _follow_run(self.client, run.id, self.printer)
                    )
                if run.state in TERMINAL and run.id not in final:
                    final[run.id] = run.state
                    missed.append(not_collected(run.id, run.results_path))
                    if len(final) == total:
                        break
            await asyncio.gather(*followers.values(), return_exceptions=True)
            for line in filter(None, missed):
                self.printer.status(line)
            self.say(f"{sub}: {state_counts(final.values())}; watching for changes (Ctrl-C stops)")
        finally:
            await events.aclose()
            for t in followers.values():
                t.cancel()

    def unchanged(self, paths: set[str]) -> None:
        self.say("saved, but the content makes the same revision: no rerun")

    def superseded(self, sub: str, cancelled: list[str]) -> None:
        if cancelled:
            self.say(f"{sub} superseded: cancelled {len(cancelled)} unfinished runs "
                     "(their partial results are kept)")  # fmt: skip

    def error(self, message: str) -> None:
        self.say(f"not rerun: {message}")


async def watch_experiment(
    home: Path, file: str, results: str | None, quiet: bool, debounce: float | None
) -> int:
    path, _text = read_spec(file)  # a bad file is exit status 2 before anything starts
    async with await connect_or_start(home) as client:
        out = WatchPrinter(client, quiet)
        session = WatchSession(
            client, path, str(Path(results).absolute()) if results else "", home,
            Callbacks(submitted=out.submitted, unchanged=out.unchanged,
                      superseded=out.superseded, smoke_failed=out.say, error=out.error),
            debounce_s=debounce,
        )  # fmt: skip
        folders = ", ".join(str(f) for f in session.folders())
        out.say(f"watching {folders} (debounce {session.debouncer.quiet_s:g} s, on change: "
                f"{session.spec.watch.on_change})")  # fmt: skip
        try:
            await session.run()
        finally:
            if out.stream is not None:
                out.stream.cancel()
    return 0
