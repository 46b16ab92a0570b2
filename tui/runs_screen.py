"""The runs screen: every run with its live state, filterable and sortable; actions by key."""

from __future__ import annotations

import time
from time import perf_counter
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.widgets.data_table import ColumnKey

from convoy.runjson import missing_results

from .commands import KeyCommands
from .confirm import Confirm
from .model import ACTIVE, COLUMNS, DESCENDING, TERMINAL
from .table import Table

if TYPE_CHECKING:
    from .app import ConvoyApp

FLUSH_S = 0.1  # how often coalesced updates reach the table
SORTS = COLUMNS
REBUILD_S = 1.0  # a filtered or sorted view is rebuilt at most this often (or 5x its cost)
FILTER_PAUSE_S = 0.25  # the filter applies once typing pauses this long
WAITING_S = 2.0  # how often the highlighted queued run's reason to wait is asked for again
WIDTHS = {"state": 9, "host": 12, "duration": 10, "progress": 15, "ended": 13}  # with " ▼"


class RunsScreen(Screen[None]):
    COMMANDS = {KeyCommands}  # its keys in the command palette too
    BINDINGS = [
        Binding("enter", "logs", "Logs", tooltip="The run's output, as it prints"),
        Binding("c", "cancel_run", "Cancel run", tooltip="Cancel the run (asks first)"),
        Binding("C", "cancel_submission", "Cancel submission", show=False,
                tooltip="Cancel the run's submission: its unfinished runs (asks first)"),
        Binding("R", "rerun", "Rerun failed",
                tooltip="Run the submission's failed, lost and cancelled runs again"),
        Binding("o", "results", "Results path", show=False,
                tooltip="Where the run's results are, and what of them did not come back"),
        Binding("t", "results_table", "Results table",
                tooltip="The results table of the run's experiment, with a metric plotted"),
        Binding("w", "watch", "Watch",
                tooltip="Watch mode on the run's experiment file: a save reruns it"),
        Binding("slash", "filter", "Filter", priority=True,  # see action_filter
                tooltip="Only the runs with a text, or state:failed, state:active"),
        Binding("s", "sort", "Sort", show=False, tooltip="Sort by the next column"),
        Binding("S", "reverse", "Reverse order", show=False,
                tooltip="Turn the sorted column's order round"),
        Binding("a", "app.switch_mode('hosts')", "Allocations",
                tooltip="Each host's cpus and memory given out, and to which runs"),
    ]  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.state = ""
        self.sort = "run"  # the column the rows are in the order of (newest runs first)
        self.reverse = False  # that column's order turned round
        self._shown: dict[str, tuple[str, ...]] = {}  # row id -> the cells on screen
        self._order_stale = False
        self._last_tick = -1.0e9
        self._last_waiting = -1.0e9
        self._last_rebuild = -1.0e9
        self._rebuild_every = REBUILD_S
        self._typing: Timer | None = None
        self._status_line = "-"  # what #status shows (updated only when it changes)
        self._summary = ""

    @property
    def convoy(self) -> ConvoyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("", id="status")
            yield Static("", id="submissions")
            yield Input(placeholder="filter: text, or state:failed / state:active  (Esc: back)",
                        id="filter")  # fmt: skip
            yield Table(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static("", id="why", markup=False)  # reasons are text, not markup
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            # Fixed widths where values change in place (a cell update keeps its column's width).
            table.add_column(self._label(name), key=name, width=WIDTHS.get(name))
        self.query_one("#filter", Input).display = False
        self.set_interval(FLUSH_S, self.flush)
        self.rebuild()
        table.focus()

    # -- keeping the table current ------------------------------------------------------------

    def rebuild(self) -> None:
        """The whole table from the model (a filter or sort changed: rare), the cursor on the
        run it was on."""
        started = perf_counter()
        table = self.query_one(Table)
        current = self.selected()
        table.clear()
        self._shown.clear()
        now = time.time()
        rows = self.convoy.model.visible(self.text, self.state, self.sort, self.reverse)
        for r in rows:
            cells = r.cells(now)
            table.add_row(*map(Text, cells), key=r.id)
            self._shown[r.id] = cells
        self._keep_cursor(current)
        self._order_stale = False
        self._last_rebuild = perf_counter()
        self._rebuild_every = max(REBUILD_S, 5 * (self._last_rebuild - started))

    def flush(self) -> None:
        """Apply what changed since the last flush: new rows and changed cells, nothing else.
        A filtered or sorted view, whose rows may come, go or move, is rebuilt now and then
        (never more than a fifth of the time: rebuilding 10,000 rows takes seconds)."""
        model = self.convoy.model
        added, changed = model.take_dirty()
        now = time.time()  # for the cells (durations)
        clock = perf_counter()  # for pacing
        tick = clock - self._last_tick >= 1.0  # durations of active runs move on
        if tick:
            self._last_tick = clock
        if clock - self._last_waiting >= WAITING_S:
            self._last_waiting = clock
            self._ask_waiting(self.selected())
        ordered = bool(self.text or self.state or self.sort != "run")
        if ordered and (added or changed):
            self._order_stale = True
        if self._order_stale and clock - self._last_rebuild >= self._rebuild_every:
            self.rebuild()
            self._status()
            return
        table = self.query_one(DataTable)
        if not ordered:  # in run order: new runs are added, then sorted in where they belong
            for run_id in added:
                cells = model.rows[run_id].cells(now)
                table.add_row(*map(Text, cells), key=run_id)
                self._shown[run_id] = cells
            if added:
                self._reorder()
        update = {i for i in changed if i in self._shown}
        if tick:
            update |= {i for i in self._shown if model.rows[i].state in ACTIVE}
        if (current := self.selected()) in update:
            self._why(current)
        for run_id in update:
            cells = model.rows[run_id].cells(now)
            for name, before, after in zip(COLUMNS, self._shown[run_id], cells, strict=True):
                if before != after:
                    table.update_cell(run_id, name, Text(after))
            self._shown[run_id] = cells
        if added or changed or tick:
            self._status()
        else:
            self._connection_line()

    def _status(self) -> None:
        model = self.convoy.model
        lines = [model.stats(s).line(s) for s in model.submissions()[-3:]]
        summary = "\n".join(lines) or "no submissions yet"
        if summary != self._summary:
            self._summary = summary
            self.query_one("#submissions", Static).update(summary)
        self._connection_line()

    def _connection_line(self) -> None:
        line = self.convoy.status_line()
        if line != self._status_line:
            self._status_line = line
            self.query_one("#status", Static).update(line)

    def _reorder(self) -> None:
        """The rows shown into the view's order, where they are (no row is made again, as a
        rebuild does: sorting 10,000 rows in place is cheap, making them is not)."""
        table = self.query_one(Table)
        current = self.selected()
        rows = self.convoy.model.visible(self.text, self.state, self.sort, self.reverse)
        place = {r.id: n for n, r in enumerate(rows)}
        # The run column's cells are the runs' ids. Cells are Text, never markup: a run's
        # parameters may hold "[/]", which DataTable would otherwise parse (and fail on).
        table.sort("run", key=lambda cell: place.get(str(cell), len(place)))
        self._keep_cursor(current)

    def _label(self, column: str) -> str:
        """A column's header: the sorted one marked ▼ (top down: newest, longest, furthest
        first) or ▲ (A to Z); room for the mark kept in the others, so no width changes."""
        if column != self.sort:
            return f"{column}  "
        return f"{column} {'▼' if (column in DESCENDING) != self.reverse else '▲'}"

    def _sorted(self) -> None:
        """The view in a new order: the header marks it, the rows follow."""
        table = self.query_one(Table)
        for name in COLUMNS:
            table.columns[ColumnKey(name)].label = Text(self._label(name))
        table.notify_style_update()  # the header is drawn anew (its lines are cached)
        self.rebuild()

    def _keep_cursor(self, run_id: str | None) -> None:
        """The cursor back on `run_id` after the rows moved: a key then acts on the run a person
        chose, not on whatever run took its row. A cursor no one moved stays on the top row."""
        table = self.query_one(Table)
        if table.picked and run_id is not None and run_id in table.rows:
            table.put_cursor(run_id)
        self._why(self.selected() or "")

    # -- actions -----------------------------------------------------------------------------

    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def action_logs(self) -> None:
        run_id = self.selected()
        if run_id:
            self.convoy.show_logs(run_id)

    def action_cancel_run(self) -> None:
        if (run_id := self.selected()) is None:
            return
        row = self.convoy.model.rows[run_id]
        if row.state in TERMINAL:
            self.notify(f"{run_id} has ended ({row.state}): nothing to cancel", timeout=4)
            return
        self._ask(f"Cancel run {run_id} ({row.state})?", run_id)

    def action_cancel_submission(self) -> None:
        if (run_id := self.selected()) is None:
            return
        sub = self.convoy.model.rows[run_id].submission
        stats = self.convoy.model.stats(sub)
        left = stats.total - stats.done
        if not left:
            self.notify(f"every run of {sub} has ended: nothing to cancel", timeout=4)
            return
        runs = "its unfinished run" if left == 1 else f"its {left} unfinished runs"
        self._ask(f"Cancel submission {sub}: {runs}?", sub)

    def _ask(self, question: str, target: str) -> None:
        """Cancel `target` (a run or a submission, fixed now) if the answer is yes."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.convoy.cancel(target)

        self.app.push_screen(Confirm(question), answered)

    def action_rerun(self) -> None:
        if run_id := self.selected():
            self.convoy.rerun(self.convoy.model.rows[run_id].submission)

    def action_results(self) -> None:
        if run_id := self.selected():
            path = self.convoy.model.rows[run_id].results_path
            missed = missing_results(path)
            if missed is None:
                self.notify(path, title=f"results of {run_id}", timeout=10, markup=False)
            else:  # names the run chose: not markup (`out[/]` would raise)
                self.notify(f"{path}\nnot collected: {missed}", title=f"results of {run_id}",
                            severity="warning", timeout=20, markup=False)  # fmt: skip

    def action_results_table(self) -> None:
        if run_id := self.selected():
            self.convoy.show_results(self.convoy.model.rows[run_id].experiment)

    def action_watch(self) -> None:
        if run_id := self.selected():
            self.convoy.toggle_watch(self.convoy.model.rows[run_id].submission)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # `/` typed in the filter is text: the key goes on to it.
        return not (action == "filter" and isinstance(self.focused, Input))

    def action_filter(self) -> None:
        """The filter, focused at once. Keys typed fast arrive together: the app sends each to
        the widget focused when it takes the key from its queue, and `Input.focus()` waits
        its turn behind them, so `/state:failed` gave its `s` (sort) and `a` (allocations)
        to the table. A priority binding runs as the app takes the key, and `set_focus`
        focuses now: the next key goes to the filter."""
        box = self.query_one("#filter", Input)
        box.display = True
        self.set_focus(box)

    def action_sort(self) -> None:
        self.sort, self.reverse = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)], False
        self._sorted()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self._sorted()

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        # The run under the cursor now: the event's row may have moved since it was sent.
        selected = self.selected()
        self._why(selected or "")
        self._ask_waiting(selected)

    def _ask_waiting(self, run_id: str | None) -> None:
        """A queued run's reason to wait changes without an event: the highlighted one's is
        asked for when it is highlighted and every WAITING_S while it stays so."""
        row = self.convoy.model.rows.get(run_id) if run_id else None
        if row is not None and row.state == "queued":
            self.convoy.fetch_waiting(row.id)

    def _why(self, run_id: str) -> None:
        """The highlighted run's state, reason code and sentence, under the table."""
        row = self.convoy.model.rows.get(run_id)
        self.query_one("#why", Static).update(row.why() if row else "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.convoy.show_logs(str(event.row_key.value))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by its column; on the sorted one, turns its order round."""
        column = str(event.column_key.value)
        self.reverse = not self.reverse if column == self.sort else False
        self.sort = column
        self._sorted()

    def on_input_changed(self, event: Input.Changed) -> None:
        words = event.value.split()
        self.state = next((w[6:] for w in words if w.startswith("state:")), "")
        self.text = " ".join(w for w in words if not w.startswith("state:"))
        if self._typing is not None:
            self._typing.stop()
        self._typing = self.set_timer(FILTER_PAUSE_S, self.rebuild)

    def on_input_submitted(self, _: Input.Submitted) -> None:
        """Enter: the filter applied now (not after the typing pause), the table focused."""
        if self._typing is not None:
            self._typing.stop()
        self.rebuild()
        self.set_focus(self.query_one(Table))

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            box.value = ""
            box.display = False
            self.set_focus(self.query_one(Table))
