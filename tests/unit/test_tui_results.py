"""The TUI's results screen driven as a person drives it (Pilot, a FakeClient serving Results;
the plot's drawing itself: test_tui_textplot.py): `t` opens the highlighted run's experiment
with the coordinator's rows, `l` asks for every run, `m` and `x` change what is plotted, `s`
and `S` sort, Esc goes back, runs that come or end bring the table anew, and a failed call is
said, not a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from convoy.client import AsyncClient
from convoy.tui.app import ConvoyApp
from convoy.tui.results_screen import ResultsScreen
from convoy.tui.runs_screen import RunsScreen
from convoy.v1 import coordinator_pb2 as pb
from tests.tui_fake import FakeClient
from tests.unit.test_tui_screens import header, palette_titles, shown_order
from tests.unit.test_tui_snapshots import HOME, check_snapshot, screen_text, settled, until

SIZE = (80, 24)  # the plot must be legible in a terminal this small


def result(sub: str, index: int, rho: float, rep: int, state: str, wait: object, util: object,
           missing: dict[str, str] | None = None) -> pb.ResultRow:  # fmt: skip
    run = pb.Run(id=f"{sub}.{index:02d}", submission_id=sub, experiment="sweep", index=index,
                 state=state, params_json=json.dumps({"rho": rho, "rep": rep}), host="local",
                 started_at=100.0, ended_at=160.5)  # fmt: skip
    return pb.ResultRow(run=run, metrics_json=json.dumps({"wait": wait, "util": util}),
                        metrics_missing=missing or {})  # fmt: skip


ROWS = [
    result("sweep-1", 0, 0.5, 0, "succeeded", 1.0, 0.5),
    result("sweep-1", 1, 0.5, 1, "succeeded", 3, 0.6),
    result("sweep-1", 2, 0.8, 0, "succeeded", 4.5, 0.8),
    result("sweep-1", 3, 0.8, 1, "succeeded", None, 0.85, {"wait": "s.json: no such file"}),
    result("sweep-1", 4, 0.9, 0, "failed", None, None),
    result("sweep-2", 0, 0.9, 0, "succeeded", 6.0, 0.9),  # its assignment's latest run
]  # fmt: skip
LATEST = ["sweep-1.00", "sweep-1.01", "sweep-1.02", "sweep-1.03", "sweep-2.00"]


def swept() -> FakeClient:
    """Two submissions of sweep (the second reran the failed run); des, without metrics."""
    des = pb.Run(id="des-3.00", submission_id="des-3", experiment="des", index=0,
                 state="succeeded", params_json="{}")  # fmt: skip
    subs = [pb.Submission(id="sweep-1", experiment="sweep", total=5, created_at=1),
            pb.Submission(id="sweep-2", experiment="sweep", total=1, created_at=2),
            pb.Submission(id="des-3", experiment="des", total=1, created_at=3)]  # fmt: skip
    tables = {"sweep": pb.ResultsChunk(params=["rho", "rep"], metrics=["wait", "util"], rows=ROWS),
              "des": pb.ResultsChunk(rows=[pb.ResultRow(run=des, metrics_json="{}")])}  # fmt: skip
    return FakeClient(runs=[r.run for r in ROWS] + [des], submissions=subs, results=tables,
                      home=HOME)  # fmt: skip


def plot_text(app: ConvoyApp) -> str:
    return str(app.screen.query_one("#plot", Static).render())


def title(app: ConvoyApp) -> str:
    return str(app.screen.query_one("#title", Static).render())


async def open_results(app: ConvoyApp, pilot: Pilot[None], run_id: str = "sweep-1.02") -> None:
    """On the runs screen, the cursor on `run_id`, `t`: its experiment's results shown."""
    table = app.screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count == len(ROWS) + 1)
    table.move_cursor(row=table.get_row_index(run_id))
    await pilot.press("t")
    await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
    await until(pilot, lambda: app.screen.query_one(DataTable).row_count > 0)


def test_t_shows_the_runs_experiment_with_the_coordinators_rows_and_l_every_run() -> None:
    """The table is the Results answer for sweep (the latest run of each assignment, first),
    with the parameters, metrics, state, duration and host; `l` asks for every run, for the
    table only."""
    client = swept()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot)
            table = app.screen.query_one(DataTable)
            assert client.results_asked == [("sweep", True)]
            assert shown_order(table) == LATEST
            assert header(table) == ["run ▲", "rho", "rep", "wait", "util", "state",
                                     "duration", "host"]  # fmt: skip
            assert [str(c) for c in table.get_row("sweep-1.03")] == [
                "sweep-1.03", "0.8", "1", "-", "0.85", "succeeded", "1m00s", "local"]  # fmt: skip
            assert title(app).startswith("sweep: 5 runs, the latest of each")
            plotted = plot_text(app)
            await pilot.press("l")
            await until(pilot, lambda: table.row_count == len(ROWS))
            assert client.results_asked[1:] == [("sweep", True), ("sweep", False)]
            assert shown_order(table) == [r.run.id for r in ROWS]
            assert title(app).startswith("sweep: 6 runs, every run")
            # The plot still counts the latest run of each assignment: sweep-1.04 (failed,
            # rerun as sweep-2.00) is not among what it left out.
            assert plot_text(app) == plotted
            assert "did not succeed" not in plotted

    asyncio.run(scenario())


def test_m_and_x_change_the_metric_and_the_parameter_plotted() -> None:
    client = swept()

    async def scenario() -> list[list[str]]:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot)
            seen = [plot_text(app).splitlines()]
            for key in ("m", "x", "m", "x"):
                await pilot.press(key)
                seen.append(plot_text(app).splitlines())
            return seen

    wait_rho, util_rho, util_rep, wait_rep, wait_rho_again = asyncio.run(scenario())
    assert wait_rho[0] == "wait by rho, the latest run of each assignment: mean and 95% interval"
    assert [ln.split()[:2] for ln in wait_rho[2:5]] == [["0.5", "2"], ["0.8", "1"], ["0.9", "1"]]
    assert wait_rho[-2:] == ["left out: 1 run whose wait is not a number (such as sweep-1.03: "
                             "s.json: no", "such file)"]  # wrapped in 77 cells  # fmt: skip
    assert util_rho[0].startswith("util by rho,")
    assert [ln.split()[:3] for ln in util_rho[2:5]] == [
        ["0.5", "2", "0.55"], ["0.8", "2", "0.825"], ["0.9", "1", "0.9"]]  # fmt: skip
    assert util_rep[0].startswith("util by rep,")
    assert [ln.split()[:3] for ln in util_rep[2:4]] == [["0", "3", "0.7333"], ["1", "2", "0.725"]]
    assert wait_rep[0].startswith("wait by rep,")
    assert wait_rho_again == wait_rho


def test_s_sorts_by_the_next_column_with_runs_without_a_value_last() -> None:
    client = swept()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot)
            table = app.screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index("sweep-1.01"))
            await pilot.press("s", "s", "s")  # rho, rep, wait
            assert header(table)[3] == "wait ▲"
            assert shown_order(table) == ["sweep-1.00", "sweep-1.01", "sweep-1.02", "sweep-2.00",
                                          "sweep-1.03"]  # fmt: skip
            await pilot.press("S")
            assert header(table)[3] == "wait ▼"
            assert shown_order(table) == ["sweep-2.00", "sweep-1.02", "sweep-1.01", "sweep-1.00",
                                          "sweep-1.03"]  # fmt: skip
            cursor = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            assert cursor == "sweep-1.01"  # the cursor stays on its run

    asyncio.run(scenario())


def test_escape_goes_back_to_the_runs_and_4_or_e_come_to_results() -> None:
    """Esc: the runs screen. `4`: the results screen on the experiment shown last; `e`: the
    next experiment's (des, which declares no metrics: the plot pane says so)."""
    client = swept()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot)
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen)
            await pilot.press("4")
            assert isinstance(app.screen, ResultsScreen)
            assert title(app).startswith("sweep: ")
            await pilot.press("e")
            await until(pilot, lambda: title(app).startswith("des: "))
            assert client.results_asked[-1] == ("des", True)
            assert plot_text(app).startswith("des declares no metrics: nothing to plot")

    asyncio.run(scenario())


def test_4_first_shows_the_newest_submissions_experiment() -> None:
    client = swept()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.screen.query_one(DataTable).row_count == len(ROWS) + 1)
            await pilot.press("4")
            await until(pilot, lambda: client.results_asked != [])
            assert client.results_asked == [("des", True)]  # des-3: made last

    asyncio.run(scenario())


def test_runs_of_the_experiment_that_end_bring_the_table_again() -> None:
    client = swept()
    queued = pb.Run(id="sweep-3.00", submission_id="sweep-3", experiment="sweep", index=0,
                    state="running", params_json=json.dumps({"rho": 0.5, "rep": 0}))  # fmt: skip

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot)
            client.submission_list.append(pb.Submission(id="sweep-3", experiment="sweep"))
            client.push(queued)  # a new run: asked again
            await until(pilot, lambda: len(client.results_asked) == 2)
            done = pb.Run()
            done.CopyFrom(queued)
            done.state = "succeeded"
            client.push(done)  # it ends: asked again
            await until(pilot, lambda: len(client.results_asked) == 3)

    asyncio.run(scenario())


def test_a_failed_call_is_said_and_the_table_comes_back_on_r() -> None:
    """The coordinator gone: `r` notifies why and shows no table (not a stale one); back,
    `r` brings the table. An experiment the coordinator has no runs of: its answer, said."""
    client = swept()

    async def scenario() -> None:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await open_results(app, pilot)
            table = app.screen.query_one(DataTable)
            client.down = True
            await pilot.press("r")
            await until(pilot, lambda: table.row_count == 0)
            assert "the coordinator is not running" in title(app)
            assert any("the coordinator is not running" in n.message
                       for n in app._notifications)  # fmt: skip
            assert plot_text(app) == ""
            client.down = False
            await pilot.press("r")
            await until(pilot, lambda: table.row_count == len(LATEST))
            del client.result_tables["sweep"]
            await pilot.press("r")
            await until(pilot, lambda: table.row_count == 0)
            assert title(app) == ("sweep: no runs of experiment 'sweep'; the experiments: des")

    asyncio.run(scenario())


def test_the_palette_offers_the_results_view() -> None:
    client = swept()

    async def scenario() -> list[str]:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.screen.query_one(DataTable).row_count == len(ROWS) + 1)
            await pilot.press("ctrl+p")
            await until(pilot, lambda: "Results table" in palette_titles(app))
            return palette_titles(app)

    titles = asyncio.run(scenario())
    assert {"Results table", "Go to Results"} <= set(titles)


def test_results_screen_at_80x24() -> None:
    client = swept()

    async def scenario() -> str:
        app = ConvoyApp(HOME, client=client)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot)
            await settled(pilot)
            return screen_text(app)

    text = asyncio.run(scenario())
    assert "0.5  2  2 ± 12.7" in text  # what the golden file is about, said plainly
    check_snapshot("results", text)


def test_the_client_asks_for_the_experiment_and_gathers_every_chunk() -> None:
    """AsyncClient.results (which the fake replaces): the request says the experiment and
    `latest`; the columns come from the first chunk, the rows from all, in order."""
    asked: list[pb.ResultsRequest] = []

    class Stub:
        def Results(self, req: pb.ResultsRequest, timeout: float) -> AsyncIterator[pb.ResultsChunk]:
            asked.append(req)

            async def chunks() -> AsyncIterator[pb.ResultsChunk]:
                yield pb.ResultsChunk(params=["rho", "rep"], metrics=["wait", "util"],
                                      rows=ROWS[:4])  # fmt: skip
                yield pb.ResultsChunk(rows=ROWS[4:])

            return chunks()

    client = AsyncClient(HOME)
    client._stub = Stub()  # type: ignore[assignment]
    got = asyncio.run(client.results("sweep", latest=False))
    assert [(r.experiment, r.latest) for r in asked] == [("sweep", False)]
    assert (got.experiment, got.params, got.metrics) == ("sweep", ["rho", "rep"], ["wait", "util"])
    assert [r.run.id for r in got.rows] == [r.run.id for r in ROWS]
    assert got.rows[3].metrics == {"wait": None, "util": 0.85}
    assert got.rows[3].missing == {"wait": "s.json: no such file"}
