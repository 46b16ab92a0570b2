"""The logs screen: one run's output followed live, or several runs' merged with a prefix.

Scrolling up stops the view from jumping to each new line (the lines still arrive); `f` or
End follows again. `/` searches (Enter: the next match), `e` jumps to the first line of the
submission's runs that matches the error pattern, `m` merges the submission's runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Log, Static

from .commands import KeyCommands

if TYPE_CHECKING:
    from .app import ConvoyApp

ERROR_RE = re.compile(r"error|exception|traceback|fatal|segmentation fault", re.I)
MERGED_MAX = 50  # runs followed at once in the merged view


_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # str.splitlines breaks


def shown(line: str) -> str:
    """A line of output as the log view shows it, in one row (Log splits what it is given
    into rows and drops empty ones): what a terminal leaves of `\\r` rewrites (a progress
    bar's last state), other line breaks as spaces, an empty line as a space. Search and the
    first error count rows of these."""
    line = line.rstrip("\r").rsplit("\r", 1)[-1]
    return _BREAKS.sub(" ", line) or " "


def lines_of(text: str) -> list[str]:
    """The rows the view shows for `text` (a final unfinished line included)."""
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [shown(p) for p in parts]


def attempt_line(attempt: int) -> str:
    """The line that marks where a retry's output begins."""
    return f"[convoy: attempt {attempt}]\n"


class LogsScreen(Screen[None]):
    COMMANDS = {KeyCommands}  # its keys in the command palette too
    BINDINGS = [
        Binding("escape", "app.switch_mode('runs')", "Runs"),
        Binding("f", "follow", "Follow"),
        Binding("slash", "search", "Search"),
        Binding("e", "first_error", "First error"),
        Binding("m", "merged", "Merge submission"),
        Binding("a", "app.switch_mode('hosts')", "Allocations"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run_id = ""
        self.lines: list[str] = []
        self._partial: dict[str, str] = {}
        self._search_from = 0

    @property
    def convoy(self) -> ConvoyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("select a run on the runs screen and press Enter", id="title")
        yield Input(placeholder="search (Enter: next match, Esc: close)", id="search")
        yield Log(id="log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        self.query_one(Log).focus()
        target = self.convoy.log_target
        if target and target != self.run_id:
            self.show(target)

    def show(self, run_id: str, merged: list[str] | None = None) -> None:
        """Follow `run_id` (or the runs in `merged`, each line prefixed with its run)."""
        self.workers.cancel_group(self, "follow")
        self.run_id = run_id
        self.lines = []
        self._partial = {}
        self._search_from = 0
        log = self.query_one(Log)
        log.clear()
        log.auto_scroll = True
        runs = merged or [run_id]
        what = (
            f"{len(runs)} runs of {self.convoy.model.rows[run_id].submission}" if merged else run_id
        )
        self.query_one("#title", Static).update(f"output of {what}")
        for r in runs[:MERGED_MAX]:
            self._follow(r, bool(merged))

    @work(group="follow", exit_on_error=False)
    async def _follow(self, run_id: str, prefixed: bool) -> None:
        attempt = 0
        try:
            async for chunk in self.convoy.client.logs(run_id, follow=True):
                n, data = chunk.attempt, chunk.data
                if attempt and n != attempt:  # a retry: not joined to the last line before it
                    self._end_line(run_id, prefixed)
                    self._add(run_id, attempt_line(n), prefixed)
                attempt = n
                self._add(run_id, data.decode(errors="replace"), prefixed)
        except Exception as e:  # the run or the coordinator went away: say so in the log
            self._add(run_id, f"\n[convoy: the output stopped: {e}]\n", prefixed)
        self._end_line(run_id, prefixed)

    def _end_line(self, run_id: str, prefixed: bool) -> None:
        rest = self._partial.pop(run_id, "")
        if rest:
            self._write([f"[{run_id}] {shown(rest)}" if prefixed else shown(rest)])

    def _add(self, run_id: str, text: str, prefixed: bool) -> None:
        text = self._partial.pop(run_id, "") + text
        *whole, rest = text.split("\n")
        if rest:
            self._partial[run_id] = rest
        self._write([f"[{run_id}] {shown(ln)}" if prefixed else shown(ln) for ln in whole])

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        log = self.query_one(Log)
        log.auto_scroll = log.is_vertical_scroll_end  # scrolled back: stay there
        self.lines.extend(lines)
        log.write_lines(lines)

    def action_follow(self) -> None:
        log = self.query_one(Log)
        log.auto_scroll = True
        log.scroll_end(animate=False)

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.find(event.value)

    def find(self, text: str) -> int | None:
        """Scroll to the next line holding `text` (case-insensitive); its index, or None."""
        needle = text.lower()
        order = list(range(self._search_from, len(self.lines))) + list(range(self._search_from))
        for i in order:
            if needle and needle in self.lines[i].lower():
                self._goto(i)
                self._search_from = i + 1
                return i
        self.notify(f"{text!r} not found", timeout=3)
        return None

    def _goto(self, line: int) -> None:
        log = self.query_one(Log)
        log.auto_scroll = False
        log.scroll_to(y=line, animate=False)

    def key_escape(self) -> None:
        box = self.query_one("#search", Input)
        if box.has_focus:
            box.display = False
            self.query_one(Log).focus()
        else:
            self.app.switch_mode("runs")

    def action_merged(self) -> None:
        if not self.run_id:
            return
        model = self.convoy.model
        sub = model.rows[self.run_id].submission
        runs = [r.id for r in sorted(model.rows.values(), key=lambda r: r.index)
                if r.submission == sub and r.state != "queued"]  # fmt: skip
        self.show(self.run_id, runs)

    @work(exclusive=True, group="first-error", exit_on_error=False)
    async def action_first_error(self) -> None:
        """The first line matching ERROR_RE in the submission's runs, in index order."""
        if not self.run_id:
            return
        model = self.convoy.model
        sub = model.rows[self.run_id].submission
        for row in sorted(model.rows.values(), key=lambda r: r.index):
            if row.submission != sub or row.state == "queued":
                continue
            text, attempt = b"", 0
            async for chunk in self.convoy.client.logs(row.id):
                n, data = chunk.attempt, chunk.data
                if attempt and n != attempt:  # the lines as the log view shows them
                    text += b"\n" if text and not text.endswith(b"\n") else b""
                    text += attempt_line(n).encode()
                attempt = n
                text += data
            for n, line in enumerate(lines_of(text.decode(errors="replace"))):
                if ERROR_RE.search(line):
                    self.show(row.id)
                    self.notify(f"{row.id}, line {n + 1}: {line[:80]}", timeout=6)
                    self.set_timer(0.3, lambda line=n: self._goto(line))
                    return
        self.notify(f"no line matching the error pattern in {sub}", timeout=4)
