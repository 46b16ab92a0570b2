"""The runs screen says why the highlighted queued run waits, as the coordinator has it now
(asked with GetRun: the reason changes with no event)."""

from __future__ import annotations

import asyncio
import json

from textual.widgets import DataTable, Static

from convoy.tui.app import ConvoyApp
from convoy.v1 import coordinator_pb2 as pb
from tests.tui_fake import FakeClient

from .test_tui_snapshots import HOME, SIZE, until


def queued(index: int, waiting_for: str = "") -> pb.Run:
    return pb.Run(id=f"e-1.{index}", submission_id="e-1", experiment="e", index=index,
                  state="queued", params_json=json.dumps({"i": index}),
                  waiting_for=waiting_for)  # fmt: skip


def test_the_highlighted_queued_run_says_what_it_waits_for_now() -> None:
    client = FakeClient(runs=[queued(0, "needs 2 cpus; local has 1 cpus free"), queued(1)],
                        submissions=[pb.Submission(id="e-1", experiment="e", total=2)],
                        home=HOME)  # fmt: skip

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            why = app.screen.query_one("#why", Static)
            await until(pilot, lambda: table.row_count == 2)
            await until(pilot, lambda: "local has 1 cpus free" in str(why.render()))
            # It changes at the coordinator, with no event: the screen asks again.
            client.known_runs["e-1.0"] = queued(0, "needs 2 cpus; local is unreachable")
            await until(pilot, lambda: "local is unreachable" in str(why.render()))

    asyncio.run(scenario())
