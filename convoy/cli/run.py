"""`convoy run FILE`: submit, stream every run's output with its name, show progress (see
progress.py), summarise."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from convoy.client import AsyncClient, Run
from convoy.client.aio import read_experiment
from convoy.errors import ConvoyError, CoordinatorUnavailable, NotFound, SpecError, UsageError
from convoy.runjson import missing_results
from convoy.sizes import human_bytes
from convoy.states import RunState

from .failures import failure_lines
from .progress import RunsProgress, StatusLine
from .render import human_duration, runs_table, state_counts
from .safetext import inert
from .subset import chosen

TERMINAL = {s.value for s in RunState if s.terminal}
BUILD_OUTPUT_WAIT_S = 30.0  # for builds' output still coming when the last run has ended
BUILD_FOLLOW_TRIES = 5
# A build's output that cannot be followed yet (not begun, or between its host and the
# results): FAILED_PRECONDITION, NOT_FOUND and UNAVAILABLE, as the client raises them.
BUILD_RETRY_ERRORS = (UsageError, NotFound, CoordinatorUnavailable)
STATUS_EVERY_S = 0.25  # how often the status line is redrawn, on a terminal


def read_spec(file: str) -> tuple[Path, str]:
    """The experiment file's absolute path and text, validated here so bad input exits 2 early."""
    path, text, _ = read_experiment(file)
    return path, text


def done_before(runs: Sequence[Run]) -> str:
    """ "12 already done in queue-3": how many runs reuse an earlier run's result, by the
    submission that made it ("" when none do)."""
    by = Counter(r.reused_from.rsplit(".", 1)[0] for r in runs if r.reused_from)
    if not by:
        return ""
    if len(by) == 1:
        [(sub, n)] = by.items()
        return f"{n} already done in {sub}"
    parts = [f"{n} in {s}" for s, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"{sum(by.values())} already done: {', '.join(parts)}"


def not_collected(run_id: str, results_path: str) -> str | None:
    """The line `convoy run` and `convoy watch` print for a run whose results did not all
    come back (see missing_results), or None."""
    missed = missing_results(results_path)
    if missed is None:
        return None
    return f"convoy: {run_id}: not collected: {missed} (see {Path(results_path) / 'run.json'})"


class Printer:
    """Prefixes each complete output line with its run's name; keeps partial lines per run.
    On a terminal, what runs print is made inert (convoy.cli.safetext). With a status line
    (`line`, on a terminal's stderr), what is written to that terminal clears it first and
    draws it again after."""

    def __init__(self, out: TextIO, quiet: bool, err: TextIO | None = None) -> None:
        self.out = out
        self.err = err
        self.quiet = quiet
        self._partial: dict[str, bytes] = {}
        self._safe = inert if out.isatty() else _as_is
        self._safe_err = inert if (err or sys.stderr).isatty() else _as_is
        self.line: StatusLine | None = None
        self._out_on_screen = out.isatty()  # stdout shares the terminal with the line

    def status_line(self) -> StatusLine | None:
        """The status line (made once), when stderr is a terminal; else None."""
        err = self.err or sys.stderr
        if self.line is None and err.isatty():
            self.line = StatusLine(err)
        return self.line

    def _hide(self, on_screen: bool = True) -> None:
        if self.line is not None and on_screen:
            self.line.hide()

    def _show(self) -> None:
        if self.line is not None:
            self.line.show()

    def output(self, run_id: str, data: bytes) -> None:
        if self.quiet:
            return
        buf = self._partial.pop(run_id, b"") + data
        *lines, rest = buf.split(b"\n")
        if rest:
            self._partial[run_id] = rest
        if lines:
            prefix = f"[{run_id}] "
            text = "".join(prefix + self._safe(ln.decode(errors="replace")) + "\n"
                           for ln in lines)  # fmt: skip
            self._hide(self._out_on_screen)
            self.out.write(text)
            self.out.flush()
            self._show()

    def flush(self, run_id: str) -> None:
        rest = self._partial.pop(run_id, b"")
        if rest and not self.quiet:
            self._hide(self._out_on_screen)
            self.out.write(f"[{run_id}] {self._safe(rest.decode(errors='replace'))}\n")
            self.out.flush()
            self._show()

    def status(self, text: str) -> None:
        """A line of convoy's own; it may quote what a host or a run said (a reason)."""
        self._hide()
        print("\n".join(self._safe_err(line) for line in text.split("\n")),
              file=self.err or sys.stderr, flush=True)  # fmt: skip
        self._show()

    def end_status_line(self) -> None:
        """The status line goes for good (before the summary)."""
        self._hide()
        self.line = None


def _as_is(text: str) -> str:
    return text


async def _follow(client: AsyncClient, run_id: str, printer: Printer) -> None:
    attempt = 0
    async for chunk in client.logs(run_id, follow=True):
        if chunk.attempt != attempt:  # a retry's output: not joined to the last one's last line
            printer.flush(run_id)
            attempt = chunk.attempt
        printer.output(run_id, chunk.data)
    printer.flush(run_id)


async def _follow_run(client: AsyncClient, run_id: str, printer: Printer) -> None:
    """A run's output beside the others'; a stream that breaks (its host went away) is said,
    and the other runs' output and the summary go on."""
    try:
        await _follow(client, run_id, printer)
    except ConvoyError as e:
        printer.flush(run_id)
        printer.status(f"convoy: {run_id}: its output stopped: {e} (`convoy logs "
                       f"{run_id}` shows what there is)")  # fmt: skip


async def _follow_build(client: AsyncClient, entry: str, printer: Printer) -> None:
    """A build's output, prefixed with its entry (<submission>.build@<host>). A stream that
    breaks is taken up again where it stopped (BUILD_FOLLOW_TRIES in all: the build's log may
    be between its host and the results then); one that cannot be followed is said (its output
    is then in the results' build/ folder)."""
    host = entry.rsplit("@", 1)[-1]
    offset = 0
    for tries_left in range(BUILD_FOLLOW_TRIES - 1, -1, -1):
        try:
            stream = client.logs(entry, offset=offset, follow=True)
            async for chunk in stream:
                printer.output(entry, chunk.data)
                offset = chunk.offset + len(chunk.data)
            printer.flush(entry)
            if stream.build_reused:
                printer.status(
                    f"convoy: {entry}: {host} already had this build (made for "
                    "an earlier submission of these sources): nothing built now"
                )
            return
        except ConvoyError as e:
            if tries_left and isinstance(e, BUILD_RETRY_ERRORS):
                await asyncio.sleep(0.5)
                continue
            printer.flush(entry)
            printer.status(f"convoy: {entry}: its output cannot be followed: {e} (it "
                           f"is kept in the results as build/{host}.log)")  # fmt: skip
            return


@dataclass(frozen=True)
class RunOptions:
    """What `convoy run` was asked besides the file."""

    results: str | None = None
    priority: int = 0
    detach: bool = False
    quiet: bool = False
    force: bool = False  # run even what an earlier run already did
    indexes: tuple[str, ...] = ()  # --indexes as given ("0,3,5-9")
    only: tuple[str, ...] = ()  # --only as given ("rho=0.9")


async def run_experiment(home: Path, file: str, opts: RunOptions) -> int:
    path, text, spec = read_experiment(file)
    indexes = chosen(spec, opts.indexes, opts.only)  # UsageError before anything starts
    async with await connect_or_start(home) as client:
        resp = await client.submit(path, results=opts.results or "", priority=opts.priority,
                                   indexes=indexes, force=opts.force, text=text)  # fmt: skip
        if resp.uploaded is not None:
            up = resp.uploaded
            print(f"convoy: uploaded {up.objects_sent} of {up.objects_total} files "
                  f"({human_bytes(up.bytes_sent)} of {human_bytes(up.bytes_total)})",
                  file=sys.stderr, flush=True)  # fmt: skip
        total = len(resp.runs)
        sub = resp.submission_id
        for warning in resp.warnings:
            print(f"convoy: warning: {warning}", file=sys.stderr, flush=True)
        printer = Printer(sys.stdout, opts.quiet)
        done = done_before(resp.runs)
        to_run = sum(1 for r in resp.runs if not r.reused_from)
        if not done:
            said = f"{total} run{'s' * (total != 1)}"
        elif to_run:
            said = f"{to_run} to run, {done} (--force runs them again)"
        else:
            said = f"nothing to run: {done} (--force runs them again)"
        where = (f" on the coordinator (`convoy fetch {sub}` copies them here)"
                 if resp.uploaded is not None else "")  # fmt: skip
        printer.status(f"convoy: submitted {sub}: {said}; results in {resp.results_dir}{where}")
        if opts.detach:
            return 0
        return await _watch(client, sub, total, printer, builds=spec.build is not None,
                            where=where)  # fmt: skip


async def _draw(line: StatusLine, progress: RunsProgress) -> None:
    """The status line redrawn a few times a second (events only change what it says: a sweep
    sends thousands a second), and with the time left as it passes."""
    while True:
        line.set(progress.text(time.time(), line.width()))
        await asyncio.sleep(STATUS_EVERY_S)


async def _watch(
    client: AsyncClient, sub: str, total: int, printer: Printer, builds: bool = False,
    where: str = "",
) -> int:  # fmt: skip
    """Follow a submission to its end: each run's output and end, then the summary. `builds`:
    the experiment has a build step, whose output on each host a run is placed on is followed
    (the run may be past `building` when first seen: its events began after it was placed).
    `where`: said after the results folder (its results are on the coordinator's machine)."""
    final: dict[str, Run] = {}
    followers: dict[str, asyncio.Task[None]] = {}
    progress = RunsProgress(sub, total)
    line = printer.status_line()
    drawing = asyncio.ensure_future(_draw(line, progress)) if line is not None else None
    events = client.events(sub)
    try:
        async for ev in events:
            run = ev.run
            for said in progress.seen(run):
                if line is None:
                    printer.status(said)
            build = f"{sub}.build@{run.host}"
            placed = builds and bool(run.host) and run.state != "queued" and not run.reused_from
            if not printer.quiet and (run.state == "building" or placed) and build not in followers:
                followers[build] = asyncio.ensure_future(_follow_build(client, build, printer))
            live = run.state == "running" or run.state in TERMINAL
            if run.reused_from and run.id not in final:  # already done: said at submission
                final[run.id] = run
                if len(final) == total:
                    break
                continue
            if not printer.quiet and run.id not in followers and live:
                followers[run.id] = asyncio.ensure_future(_follow_run(client, run.id, printer))
            if run.state == "queued" and ev.previous_state and run.reason.startswith("attempt"):
                printer.status(f"convoy: {run.id} {run.reason}")
            if run.state in TERMINAL and run.id not in final:
                final[run.id] = run
                if run.id in followers:
                    await followers[run.id]
                code = "" if run.exit_code is None else f" (exit {run.exit_code})"
                printer.status(
                    f"convoy: [{len(final)}/{total}] {run.id} {run.state}{code} "
                    f"in {human_duration(run.duration_s)}"
                    + ("" if run.state == "succeeded" else f": [{run.code}] {run.reason}")
                )
                missed = not_collected(run.id, run.results_path)
                if missed:
                    printer.status(missed)
                if len(final) == total:
                    break
        # Every run ended, so every build did: their output (streaming still, or begun only as
        # the last runs' events came) is printed whole before the summary.
        building = [t for t in followers.values() if not t.done()]
        if building:
            await asyncio.wait(building, timeout=BUILD_OUTPUT_WAIT_S)
    except asyncio.CancelledError:
        raise
    finally:
        await events.aclose()
        for t in followers.values():
            if not t.done():
                t.cancel()
        if drawing is not None:
            drawing.cancel()
        printer.end_status_line()
    runs = sorted(final.values(), key=lambda r: r.index)
    printer.status("\n" + runs_table(runs))
    for failure in failure_lines(runs):
        printer.status(f"convoy: {failure}")
    printer.status(
        "convoy: "
        + state_counts(r.state for r in runs)
        + (f"; results in {Path(runs[0].results_path).parent}{where}" if runs else "")
    )
    return 0 if all(r.state == "succeeded" for r in runs) else 1


async def connect_or_start(home: Path) -> AsyncClient:
    """A client of home's coordinator, started in the background (and said) when none answers."""
    client = await AsyncClient.connect(home, start=True)
    if client.started is not None:
        print(f"convoy: started a coordinator (pid {client.started}; log "
              f"{home / 'coordinator.log'})", file=sys.stderr)  # fmt: skip
    return client


__all__ = ["RunOptions", "SpecError", "read_spec", "run_experiment"]
