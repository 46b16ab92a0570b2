"""The results screen: one experiment's results table (the Results RPC, as `convoy results`
shows it), and below it one of its metrics drawn against one of its parameters in characters.

The table is asked for when the screen shows an experiment, on `r`, and again when the model
says runs of the experiment came or ended (a run's metrics are there once it has ended; no
event says more), at most every CHECK_S and never more than a fifth of the time: in a large
sweep, reading every run's metrics and making the table again take seconds. `l` turns the
table between the latest run of each parameter assignment and every run. The plot counts the
latest run of each assignment only, whichever the table shows, as `convoy results --plot`
does: among every run, a run already done is a row of its own beside the run whose results it
links to, and would count twice."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from convoy.cli.render import human_duration
from convoy.errors import ConvoyError
from convoy.points import value_order
from convoy.resultrows import Results, Row, metric_text
from convoy.spec import param_text

from .client import describe
from .commands import KeyCommands
from .model import TERMINAL
from .table import Table
from .textplot import pane

if TYPE_CHECKING:
    from .app import ConvoyApp

CHECK_S = 2.0  # how often the model is looked at for runs of the experiment that came or ended
PARAM, METRIC = "param:", "metric:"  # column keys: a parameter may be called "state"
RUN_COLUMNS = ("state", "duration", "host")  # after the parameters and metrics


class ResultsScreen(Screen[None]):
    COMMANDS = {KeyCommands}  # its keys in the command palette too
    DEFAULT_CSS = """
    ResultsScreen #title { height: auto; padding: 0 1; }
    ResultsScreen #results { height: 1fr; }
    ResultsScreen #plotbox {
        height: auto; max-height: 50%; border-top: solid $primary; scrollbar-size-vertical: 1;
    }
    ResultsScreen #plot { padding: 0 1; text-wrap: nowrap; }
    """
    BINDINGS = [
        Binding("escape", "app.switch_mode('runs')", "Runs"),
        Binding("enter", "logs", "Logs", show=False, tooltip="The run's output"),
        Binding("r", "refresh", "Refresh", tooltip="Ask the coordinator for the table again"),
        Binding("l", "latest", "Latest/all",
                tooltip="The latest run of each parameter assignment only, or every run"),
        Binding("m", "metric", "Metric", tooltip="Plot the next metric"),
        Binding("x", "param", "Param", tooltip="Plot against the next parameter"),
        Binding("e", "experiment", "Experiment", tooltip="The next experiment's results"),
        Binding("s", "sort", "Sort", show=False, tooltip="Sort by the next column"),
        Binding("S", "reverse", "Reverse order", show=False,
                tooltip="Turn the sorted column's order round"),
    ]  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.experiment = ""
        self.latest = True
        self.results: Results | None = None  # the table's rows
        self.plotted: Results | None = None  # the plot's: the latest run of each assignment
        self.problem = ""  # why there is no table (the coordinator's answer), for the title
        self.metric = ""  # the one plotted ("" while the table has none)
        self.by = ""  # the parameter it is plotted against
        self.sort = "run"  # a column key; "run": the table's own order (submissions, index)
        self.reverse = False
        self._asked_at: tuple[int, int] | None = None  # the runs (all, ended) at the last ask
        self._done_at = -1.0e9  # when the last table was shown (perf_counter)
        self._cost = 0.0  # seconds from asking for it to showing it

    @property
    def convoy(self) -> ConvoyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="title", markup=False)  # names are text, not markup
        yield Table(id="results", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="plotbox"):
            yield Static("", id="plot", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(CHECK_S, self._check)
        self.query_one(Table).focus()

    def on_screen_resume(self) -> None:
        """Shown: the experiment the app asks for (a run's, by `t`), else the one shown
        last, else the newest submission's; asked for anew if it changed or its runs did."""
        target, self.convoy.results_target = self.convoy.results_target, ""
        experiment = target or self.experiment or self.convoy.newest_experiment()
        if experiment != self.experiment:
            self.show(experiment)
        elif self.results is None or self._runs(experiment) != self._asked_at:
            self.fetch()

    def show(self, experiment: str) -> None:
        """Another experiment's table: the plot's metric and parameter chosen again."""
        self.experiment, self.metric, self.by = experiment, "", ""
        self.sort, self.reverse = "run", False
        self.fetch()

    def _runs(self, experiment: str) -> tuple[int, int]:
        """How many runs of the experiment the model has, and how many have ended."""
        rows = [r for r in self.convoy.model.rows.values() if r.experiment == experiment]
        return len(rows), sum(r.state in TERMINAL for r in rows)

    def _check(self) -> None:
        """Ask again if runs of the experiment came or ended (or, with no experiment yet, show
        the newest submission's once there is one): only while shown (a mode left stays
        mounted), and paced."""
        if not self.is_current or perf_counter() - self._done_at < 4 * self._cost:
            return
        if not self.experiment:
            if experiment := self.convoy.newest_experiment():
                self.show(experiment)
        elif self._runs(self.experiment) != self._asked_at:
            self.fetch()

    @work(exclusive=True, group="results", exit_on_error=False)
    async def fetch(self) -> None:
        """The table from the coordinator; on an error, no table (a stale one would pass for
        the current one) and the error said."""
        experiment, latest = self.experiment, self.latest
        if not experiment:
            self.problem = "no experiment yet: submit one, or press t on a run"
            self._show()
            return
        self._asked_at = self._runs(experiment)
        started = perf_counter()
        try:
            plotted = await self.convoy.client.results(experiment, latest=True)
            results = plotted if latest else await self.convoy.client.results(experiment)
        except ConvoyError as e:
            problem = describe(e)
        except Exception as e:  # a row the client could not read: said, not a dead screen
            problem = f"reading the results failed: {e!r}"
        else:
            self.results, self.plotted, self.problem = results, plotted, ""
            self.metric = pick(self.metric, plotted.metrics)
            self.by = pick(self.by, plotted.params)
            self._show()
            self._done_at = perf_counter()
            self._cost = self._done_at - started
            return
        self.results = self.plotted = None
        self.problem = problem
        self.notify(problem, title=f"results of {experiment}", severity="error", markup=False)
        self._show()

    # -- drawing -------------------------------------------------------------------------------

    def _show(self) -> None:
        self._title()
        self._table()
        self._plot()

    def _title(self) -> None:
        res = self.results
        if res is None:
            said = f"{self.experiment}: {self.problem}" if self.experiment else self.problem
        else:
            n = len(res.rows)
            which = ("the latest of each parameter assignment (l: every run)" if self.latest
                     else "every run of its submissions (l: the latest of each)")  # fmt: skip
            said = f"{res.experiment}: {n} run{'s' * (n != 1)}, {which}"
        self.query_one("#title", Static).update(said)

    def _columns(self) -> list[tuple[str, str]]:
        """(key, name) of each column: run, parameters, metrics, state, duration, host."""
        res = self.results
        if res is None:
            return []
        return [("run", "run"), *((PARAM + p, p) for p in res.params),
                *((METRIC + m, m) for m in res.metrics),
                *((c, c) for c in RUN_COLUMNS)]  # fmt: skip

    def _table(self) -> None:
        """The table made again: its columns (the sorted one's header marked), its rows in
        that column's order, the cursor on the run it was on."""
        table = self.query_one(Table)
        current = self.selected()
        table.clear(columns=True)
        res = self.results
        if res is None:
            return
        columns = self._columns()
        for key, name in columns:
            table.add_column(Text(self._label(key, name)), key=key)  # names: not markup
        for row in self._ordered(res):
            table.add_row(*(Text(cell(res, row, key)) for key, _ in columns), key=row.run.id)
        if table.picked and current is not None and current in table.rows:
            table.put_cursor(current)

    def _ordered(self, res: Results) -> list[Row]:
        """The rows by the sorted column (numbers by value, then text, A to Z; reversed by
        `S`); rows without a value there last either way, in the table's order."""
        if self.sort == "run":
            return res.rows[::-1] if self.reverse else list(res.rows)
        value: Callable[[Row], Any] = {
            "state": lambda r: r.run.state,
            "host": lambda r: r.run.host or None,
            "duration": lambda r: r.run.duration_s,
        }.get(self.sort) or (lambda r: given(r, self.sort))
        have = [r for r in res.rows if value(r) is not None]
        have.sort(key=lambda r: value_order(value(r)), reverse=self.reverse)
        return have + [r for r in res.rows if value(r) is None]

    def _label(self, key: str, name: str) -> str:
        """A column's header: the sorted one marked ▲ (A to Z, small to large) or ▼; room for
        the mark kept in the others."""
        if key != self.sort:
            return f"{name}  "
        return f"{name} {'▼' if self.reverse else '▲'}"

    def _plot(self) -> None:
        res = self.plotted
        # Drawn to fit the pane's width less its padding and a scrollbar (many values).
        text = "" if res is None else pane(res, self.metric, self.by, self.size.width - 3)
        self.query_one("#plot", Static).update(text)

    def on_resize(self) -> None:
        self._plot()  # the whisker's scale spans the width

    # -- actions -------------------------------------------------------------------------------

    def selected(self) -> str | None:
        table = self.query_one(Table)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def action_logs(self) -> None:
        if run_id := self.selected():
            self.convoy.show_logs(run_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.convoy.show_logs(str(event.row_key.value))

    def action_refresh(self) -> None:
        self.fetch()

    def action_latest(self) -> None:
        self.latest = not self.latest
        self.fetch()

    def action_metric(self) -> None:
        if self.plotted is not None:
            self.metric = following(self.metric, self.plotted.metrics)
            self._plot()

    def action_param(self) -> None:
        if self.plotted is not None:
            self.by = following(self.by, self.plotted.params)
            self._plot()

    def action_experiment(self) -> None:
        experiments = self.convoy.experiments()
        if experiments:
            self.show(following(self.experiment, experiments))

    def action_sort(self) -> None:
        keys = [key for key, _ in self._columns()]
        if keys:
            self.sort, self.reverse = following(self.sort, keys), False
            self._table()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self._table()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by its column; on the sorted one, turns its order round."""
        key = str(event.column_key.value)
        self.reverse = not self.reverse if key == self.sort else False
        self.sort = key
        self._table()


def cell(res: Results, row: Row, key: str) -> str:
    """A cell's text: "-" where a run has no value."""
    if key == "run":
        return row.run.id
    if key == "state":
        return row.run.state
    if key == "duration":
        return human_duration(row.run.duration_s)
    if key == "host":
        return row.run.host or "-"
    if key.startswith(PARAM):
        name = key.removeprefix(PARAM)
        return param_text(row.params[name]) if name in row.params else "-"
    return metric_text(row.metrics.get(key.removeprefix(METRIC)), short=True)


def given(row: Row, key: str) -> Any:
    """A parameter's or metric's value in the row (None: it has none)."""
    if key.startswith(PARAM):
        return row.params.get(key.removeprefix(PARAM))
    return row.metrics.get(key.removeprefix(METRIC))


def pick(chosen: str, names: list[str]) -> str:
    """`chosen` if the table still has it, else its first; "" when it has none."""
    return chosen if chosen in names else (names[0] if names else "")


def following(current: str, names: list[str]) -> str:
    """The name after `current` in `names`, round to the first (the first if it is not one)."""
    if current not in names:
        return names[0]
    return names[(names.index(current) + 1) % len(names)]
