"""A DataTable whose header keeps up with its columns' widths.

Textual (8.2) measures the cells of newly added rows on its next idle, and caches each rendered
line under a count of updates that this measuring does not advance. A frame painted between the
two (the rows not yet counted, so the header alone is on screen) caches the header at the old
widths, and it stays so, above wider rows, until some later update: "run  state" over ids ten
characters wide. So when a column's width changes, the cached lines are dropped.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.widgets import DataTable


class Table(DataTable[Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._widths: list[int] = []

    def on_idle(self, _: events.Idle) -> None:
        # Runs after DataTable's own idle handler, which measures new and changed cells.
        widths = [column.content_width for column in self.columns.values()]
        if widths != self._widths:
            self._widths = widths
            self.notify_style_update()  # drops the cached lines and repaints
