"""The runs screen: every run with its live state, filterable and sortable; actions by key."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from .model import ACTIVE, COLUMNS

if TYPE_CHECKING:
    from .app import ConvoyApp

FLUSH_S = 0.1  # how often coalesced updates reach the table
SORTS = COLUMNS
WIDTHS = {"state": 9, "host": 12, "duration": 8, "progress": 15, "exit": 4}


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "logs", "Logs"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("C", "cancel_submission", "Cancel submission"),
        Binding("R", "rerun", "Rerun failed"),
        Binding("o", "results", "Results path"),
        Binding("w", "watch", "Watch"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("a", "app.switch_mode('hosts')", "Allocations"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.state = ""
        self.sort = "run"
        self._shown: dict[str, tuple[str, ...]] = {}  # row id -> the cells on screen
        self._order_stale = False
        self._last_tick = 0.0

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
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            # Fixed widths where values change in place (a cell update keeps its column's width).
            table.add_column(name, key=name, width=WIDTHS.get(name))
        self.query_one("#filter", Input).display = False
        self.set_interval(FLUSH_S, self.flush)
        self.rebuild()
        table.focus()

    # -- keeping the table current ------------------------------------------------------------

    def rebuild(self) -> None:
        """The whole table from the model (a filter or sort changed: rare)."""
        table = self.query_one(DataTable)
        table.clear()
        self._shown.clear()
        now = time.time()
        rows = self.convoy.model.visible(self.text, self.state, self.sort)
        for r in rows:
            cells = r.cells(now)
            table.add_row(*cells, key=r.id)
            self._shown[r.id] = cells
        self._order_stale = False

    def flush(self) -> None:
        """Apply what changed since the last flush: new rows, changed cells (nothing else)."""
        model = self.convoy.model
        added, changed = model.take_dirty()
        now = time.time()
        tick = now - self._last_tick >= 1.0  # durations of active runs move on
        if tick:
            self._last_tick = now
            changed += [i for i in self._shown if model.rows[i].state in ACTIVE]
            if self._order_stale:
                self.rebuild()
        if not added and not changed:
            self._status()
            return
        if self.text or self.state or self.sort != "run":
            # A filtered or sorted view may gain, lose or reorder rows: rebuild, at most
            # once a second while updates stream in.
            self._order_stale = True
            if tick:
                self.rebuild()
            self._status()
            return
        table = self.query_one(DataTable)
        for run_id in added:
            cells = model.rows[run_id].cells(now)
            table.add_row(*cells, key=run_id)
            self._shown[run_id] = cells
        for run_id in changed:
            old = self._shown.get(run_id)
            if old is None:
                continue
            cells = model.rows[run_id].cells(now)
            for name, before, after in zip(COLUMNS, old, cells, strict=True):
                if before != after:
                    table.update_cell(run_id, name, after)
            self._shown[run_id] = cells
        self._status()

    def _status(self) -> None:
        model = self.convoy.model
        lines = [model.stats(s).line(s) for s in model.submissions()[-3:]]
        self.query_one("#submissions", Static).update("\n".join(lines) or "no submissions yet")
        self.query_one("#status", Static).update(self.convoy.status_line())

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
        if run_id := self.selected():
            self.convoy.cancel(run_id)

    def action_cancel_submission(self) -> None:
        if run_id := self.selected():
            self.convoy.cancel(self.convoy.model.rows[run_id].submission)

    def action_rerun(self) -> None:
        if run_id := self.selected():
            self.convoy.rerun(self.convoy.model.rows[run_id].submission)

    def action_results(self) -> None:
        if run_id := self.selected():
            path = self.convoy.model.rows[run_id].results_path
            self.notify(path, title=f"results of {run_id}", timeout=10)

    def action_watch(self) -> None:
        if run_id := self.selected():
            self.convoy.toggle_watch(self.convoy.model.rows[run_id].submission)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.notify(f"sorted by {self.sort}", timeout=2)
        self.rebuild()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.convoy.show_logs(str(event.row_key.value))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort = str(event.column_key.value)
        self.rebuild()

    def on_input_changed(self, event: Input.Changed) -> None:
        words = event.value.split()
        self.state = next((w[6:] for w in words if w.startswith("state:")), "")
        self.text = " ".join(w for w in words if not w.startswith("state:"))
        self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            box.value = ""
            box.display = False
            self.query_one(DataTable).focus()
