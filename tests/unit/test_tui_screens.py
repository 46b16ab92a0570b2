"""The runs and allocations screens driven as a person drives them (Textual's Pilot, fed by a
FakeClient): a key acts on the run the cursor was put on, however the rows move."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable

from convoy.tui.app import ConvoyApp
from convoy.v1 import coordinator_pb2 as pb
from tests.tui_fake import FakeClient
from tests.unit.test_tui_snapshots import HOME, SIZE, run, until


def shown_order(table: DataTable[object]) -> list[str]:
    """The run ids as the table shows them, top to bottom."""
    return [str(row.key.value) for row in table.ordered_rows]


def under_cursor(table: DataTable[object]) -> str:
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


def test_the_cursor_stays_on_its_run_when_a_sorted_view_moves_the_rows() -> None:
    """Sorted by state, the cursor on sweep-1.04; three runs above it start and sort below it.
    The cursor moves with sweep-1.04 (DataTable keeps the row number: a key would have acted
    on another run)."""
    client = FakeClient(runs=[run("sweep-1", i, "queued") for i in range(6)],
                        submissions=[pb.Submission(id="sweep-1", total=6)], home=HOME)  # fmt: skip

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 6)
            await pilot.press("s")  # by state
            table.move_cursor(row=table.get_row_index("sweep-1.04"))
            assert under_cursor(table) == "sweep-1.04"
            client.push_many(run("sweep-1", i, "running") for i in range(3))
            await until(pilot, lambda: shown_order(table)[-1] == "sweep-1.02")  # moved
            assert shown_order(table)[1] == "sweep-1.04"
            assert under_cursor(table) == "sweep-1.04"

    asyncio.run(scenario())
