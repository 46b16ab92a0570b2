"""The runs and allocations screens driven as a person drives them (Textual's Pilot, fed by a
FakeClient): the cursor stays on its run however the rows move, newest submissions first with
the sorted column marked, cancelling asks first, no progress bar without a `progress:`
pattern, convoy's actions in the command palette, host cards without stale errors or agent
logs, and keys typed fast into the filter."""

from __future__ import annotations

import asyncio
import json

from textual import events
from textual.command import CommandList, CommandPalette
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from convoy.tui.app import ConvoyApp
from convoy.v1 import coordinator_pb2 as pb
from tests.tui_fake import FakeClient
from tests.unit.test_tui_snapshots import HOME, SIZE, run, settled, sweep, until


def shown_order(table: DataTable[object]) -> list[str]:
    """The run ids as the table shows them, top to bottom."""
    return [str(row.key.value) for row in table.ordered_rows]


def header(table: DataTable[object]) -> list[str]:
    """The column labels as shown, without the room kept for a sort mark."""
    return [column.label.plain.rstrip() for column in table.columns.values()]


def question(app: ConvoyApp) -> str:
    """The question a modal screen asks; "" when none is up."""
    if not isinstance(app.screen, ModalScreen):
        return ""
    return str(app.screen.query_one(Static).render())


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


def test_newest_submissions_first_and_the_cursor_stays_on_its_run_when_one_comes() -> None:
    """A new submission's runs go on top (made later). A cursor no one moved stays on the top
    row; one put on a run stays on that run as runs come. The header marks the sorted column
    and its direction."""
    client = FakeClient(runs=[run("old-1", i, "running", created_at=100) for i in range(3)],
                        submissions=[pb.Submission(id="old-1", total=3)], home=HOME)  # fmt: skip

    def submit(sub: str, created_at: float) -> None:
        client.submission_list.append(pb.Submission(id=sub, total=1))
        client.push(run(sub, 0, "queued", created_at=created_at))

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 3)
            submit("new-2", 200)
            await until(pilot, lambda: table.row_count == 4)
            assert shown_order(table) == ["new-2.00", "old-1.00", "old-1.01", "old-1.02"]
            assert under_cursor(table) == "new-2.00"  # the top row, no one's pick

            table.move_cursor(row=table.get_row_index("old-1.01"))
            submit("new-3", 300)
            await until(pilot, lambda: table.row_count == 5)
            assert shown_order(table) == ["new-3.00", "new-2.00", "old-1.00", "old-1.01",
                                          "old-1.02"]  # fmt: skip
            assert under_cursor(table) == "old-1.01"
            assert header(table) == ["run ▼", "state", "host", "duration", "progress", "ended",
                                     "params"]  # fmt: skip

            await pilot.press("S")  # the order turned round: oldest first
            assert shown_order(table)[:3] == ["old-1.00", "old-1.01", "old-1.02"]
            assert header(table)[0] == "run ▲" and under_cursor(table) == "old-1.01"
            await pilot.press("s")  # the next column, A to Z
            assert header(table)[:2] == ["run", "state ▲"]
            assert shown_order(table) == ["new-3.00", "new-2.00", "old-1.00", "old-1.01",
                                          "old-1.02"]  # queued, then running  # fmt: skip
            await pilot.press("S")
            assert header(table)[1] == "state ▼"
            assert shown_order(table) == ["old-1.00", "old-1.01", "old-1.02", "new-3.00",
                                          "new-2.00"]  # ties stay in run order  # fmt: skip
            assert under_cursor(table) == "old-1.01"

    asyncio.run(scenario())


def test_cancel_asks_first_and_only_y_cancels() -> None:
    """`c` and `C` ask, naming the run (or the submission and its unfinished runs); n and Esc
    cancel nothing, y cancels what was asked about. A run that has ended is not asked about."""
    client = sweep()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 9)
            table.move_cursor(row=table.get_row_index("sweep-1.02"))
            await pilot.press("c")
            await until(pilot, lambda: question(app) != "" or client.cancelled != [])
            assert client.cancelled == [], "cancelled without asking"
            assert question(app) == "Cancel run sweep-1.02 (running)?  y/n"
            await pilot.press("n")
            await until(pilot, lambda: question(app) == "")
            await pilot.press("C")
            await until(pilot, lambda: question(app) != "")
            assert question(app) == "Cancel submission sweep-1: its 3 unfinished runs?  y/n"
            await pilot.press("escape")
            await until(pilot, lambda: question(app) == "")
            await pilot.press("c")
            await until(pilot, lambda: question(app) != "")
            await pilot.press("y")
            await until(pilot, lambda: client.cancelled != [])
            assert client.cancelled == ["sweep-1.02"]  # neither n nor Esc cancelled anything

            table.move_cursor(row=table.get_row_index("sweep-1.00"))  # succeeded
            await pilot.press("c")
            await settled(pilot)
            assert question(app) == ""
            assert any("nothing to cancel" in n.message for n in app._notifications)

    asyncio.run(scenario())


def test_no_progress_bar_for_an_experiment_without_a_progress_pattern() -> None:
    """des-2 declares no `progress:`: its succeeded run shows no bar (it showed a full one, as
    if progress had been read); sweep-1's succeeded run, which has a pattern, shows 100%."""
    client = sweep()

    async def scenario() -> tuple[str, str]:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 9)
            return (str(table.get_cell("des-2.00", "progress")),
                    str(table.get_cell("sweep-1.00", "progress")))  # fmt: skip

    without, with_pattern = asyncio.run(scenario())
    assert without == ""
    assert with_pattern.endswith("100%")


def palette_titles(app: ConvoyApp) -> list[str]:
    """The titles the open command palette lists (each option's first line)."""
    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt).split("\n")[0]
            for i in range(options.option_count)]  # fmt: skip


def test_the_command_palette_lists_convoys_actions_and_runs_them() -> None:
    """ctrl+p lists the runs screen's actions beside Textual's own; choosing "Cancel run" asks,
    as the key does, and y cancels the run under the cursor."""
    client = sweep()
    wanted = {"Logs", "Cancel run", "Cancel submission", "Rerun failed", "Results path", "Watch",
              "Filter", "Sort", "Reverse order", "Go to Allocations", "Go to Logs",
              "Go to Runs"}  # fmt: skip

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 9)
            table.move_cursor(row=table.get_row_index("sweep-1.03"))
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette))

            def lists_convoys_actions() -> bool:
                """the palette listing convoy's actions"""
                return wanted <= set(palette_titles(app))

            await until(pilot, lists_convoys_actions)
            assert "Keys" in palette_titles(app)  # Textual's own, beside them
            await pilot.press(*"cancel run")
            await until(pilot, lambda: palette_titles(app) == ["Cancel run"])
            await pilot.press("enter")
            await until(pilot, lambda: question(app) != "")
            assert question(app) == "Cancel run sweep-1.03 (building)?  y/n"
            await pilot.press("y")
            await until(pilot, lambda: client.cancelled != [])
            assert client.cancelled == ["sweep-1.03"]

    asyncio.run(scenario())


AGENT_LOG = ("the agent exited; the end of /home/u/.convoy/agent/agent.log:\n"
             "Traceback (most recent call last):\n  File \"agent.py\", line 1\n"
             "[convoy] OSError: [Errno 98] address in use")  # fmt: skip


def test_a_host_card_says_why_only_while_the_host_is_not_up_and_in_one_line() -> None:
    """gpu-b is unreachable: its card gives the first line of the reason (not the agent log
    that came with it). When it is up again, its card says nothing of the old error, even if
    a reason still comes with it; one that is up but full says why."""

    def host(name: str, state: str, accepting: bool = True, reason: str = AGENT_LOG) -> pb.Host:
        return pb.Host(name=name, state=state, address="10.0.0.2", reason=reason,
                       accepting=accepting)  # fmt: skip

    client = FakeClient(hosts=[host("gpu-b", "unreachable"),
                               host("disk", "up", accepting=False, reason="its disk is full")],
                        home=HOME)  # fmt: skip

    def card(app: ConvoyApp, name: str) -> str:
        return str(app.screen.query_one(f"#host-{name}", Static).render())

    async def scenario() -> tuple[str, str, str]:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            await until(pilot, lambda: bool(app.screen.query("#host-disk")))
            down, full = card(app, "gpu-b"), card(app, "disk")
            client.host_list[0] = host("gpu-b", "up")  # back, an old reason still said
            await until(pilot, lambda: "unreachable" not in card(app, "gpu-b"))
            return down, full, card(app, "gpu-b")

    down, full, up = asyncio.run(scenario())
    first = AGENT_LOG.splitlines()[0]
    assert down.splitlines()[0] == f"gpu-b  10.0.0.2  unreachable  ({first} …)"
    assert "Traceback" not in down and "Errno" not in down
    assert full.splitlines()[0] == "disk  10.0.0.2  up (full)  (its disk is full)"
    assert up.splitlines()[0] == "gpu-b  10.0.0.2  up"
    assert "agent" not in up


KEY_NAMES = {"/": "slash", ":": "colon", " ": "space", "\r": "enter"}


def type_fast(app: ConvoyApp, text: str) -> None:
    """Keys as a fast typist on a busy machine sends them: all queued before the app takes the
    first (Pilot's press waits for the app to go idle after each key)."""
    for ch in text:
        app.post_message(events.Key(KEY_NAMES.get(ch, ch), None if ch == "\r" else ch))


def test_keys_typed_fast_after_slash_go_to_the_filter() -> None:
    """`/state:failed` and Enter typed faster than the app takes them, while events come in:
    the filter gets every character (its `s` did not sort the table, nor its `a` switch to the
    allocations, nor its `l` to the logs), Enter applies it, and the next key is the table's
    again (`C` asks to cancel the failed run's submission)."""
    client = sweep()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            table = screen.query_one(DataTable)
            box = screen.query_one("#filter", Input)
            await until(pilot, lambda: table.row_count == 9)
            type_fast(app, "/state:failed")
            for n in range(20):  # events streaming in meanwhile
                client.push(run("sweep-1", 4, "queued", host=f"h{n}"))
            type_fast(app, "\r")
            await until(pilot, lambda: app.screen is not screen or table.row_count == 1)
            assert app.screen is screen
            assert box.value == "state:failed"
            assert shown_order(table) == ["sweep-1.01"]
            assert header(table)[0] == "run ▼"  # not sorted by another column
            await pilot.press("C")
            await until(pilot, lambda: question(app) != "")
            assert question(app) == "Cancel submission sweep-1: its 3 unfinished runs?  y/n"

    asyncio.run(scenario())


def test_a_slash_typed_in_the_filter_is_text() -> None:
    """`/` opens the filter only from outside it: in it, `/` is a character of the filter."""
    client = FakeClient(runs=[run("a-1", 0, "queued")],
                        submissions=[pb.Submission(id="a-1", total=1)], home=HOME)  # fmt: skip

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
            await pilot.press(*"/x/y")
            return app.screen.query_one("#filter", Input).value

    assert asyncio.run(scenario()) == "x/y"


def test_a_run_whose_parameters_look_like_markup_is_shown_as_text() -> None:
    """Cells are text, not Rich markup: parameters holding "[/]" used to crash the TUI with
    a MarkupError."""
    odd = run("odd-1", 0, "queued")
    odd.params_json = json.dumps({"x": "[/]", "y": "[b]bold"})
    client = FakeClient(runs=[odd],
                        submissions=[pb.Submission(id="odd-1", experiment="odd", total=1)],
                        home=HOME)  # fmt: skip

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 1)
            return str(table.get_cell("odd-1.00", "params"))

    assert asyncio.run(scenario()) == "x=[/] y=[b]bold"
