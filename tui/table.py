"""The runs table: a DataTable whose header keeps up with its columns' widths, and which knows
whether a person has put its cursor on a row.

Textual (8.2) measures the cells of newly added rows on its next idle, and caches each rendered
line under a count of updates that this measuring does not advance. A frame painted between the
two (the rows not yet counted, so the header alone is on screen) caches the header at the old
widths, and it stays so, above wider rows, until some later update: "run  state" over ids ten
characters wide. So when a column's width changes, the cached lines are dropped.

Rows move under the cursor (a sorted view is rebuilt, new runs are sorted in), and DataTable
keeps the cursor on its row number, not on its row. The screen puts it back on its run with
`put_cursor`; `picked` says whether there is a run to put it back on: a cursor no key, click or
caller has moved stays on the top row, where the newest runs are.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable


class Table(DataTable[Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._widths: list[int] = []
        self.picked = False  # the cursor was moved onto a row (by a key, a click, a caller)
        self._placing = False  # the table itself moves the cursor: no one picked

    def on_idle(self, _: events.Idle) -> None:
        # Runs after DataTable's own idle handler, which measures new and changed cells.
        widths = [column.content_width for column in self.columns.values()]
        if widths != self._widths:
            self._widths = widths
            self.notify_style_update()  # drops the cached lines and repaints

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if old != new and not self._placing:
            self.picked = True

    def clear(self, columns: bool = False) -> Table:
        """Every row gone (the cursor back to the top, which is no one's pick)."""
        self._placing = True
        try:
            super().clear(columns)
        finally:
            self._placing = False
        return self

    def put_cursor(self, row_key: str) -> None:
        """The cursor back on the row `row_key`, wherever it moved to."""
        self._placing = True
        try:
            self.move_cursor(row=self.get_row_index(row_key))
        finally:
            self._placing = False
