"""`convoy tui`: the runs, logs, allocations and results screens over the coordinator's API.

The app owns the connection: one worker reads the event stream into the model (and comes back
when the coordinator does); runs come with their progress (the coordinator's, read on their
hosts). Screens read the model and call the app's actions; every action is an API call, so a
script can do whatever the TUI does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.worker import Worker

from convoy.client import AsyncClient, Submission, Submitted
from convoy.errors import ConvoyError
from convoy.watching import Callbacks, WatchSession

from .client import RETRY_S, describe
from .hosts_screen import HostsScreen
from .logs_screen import LogsScreen
from .model import RunsModel
from .results_screen import ResultsScreen
from .runs_screen import RunsScreen


class ConvoyApp(App[None]):
    TITLE = "convoy"
    CSS = """
    #status { color: $warning; height: auto; }
    #submissions { height: auto; padding: 0 1; }
    .host { padding: 0 1; border: round $primary; height: auto; }
    """
    MODES = {"runs": RunsScreen, "logs": LogsScreen, "hosts": HostsScreen,
             "results": ResultsScreen}  # fmt: skip
    DEFAULT_MODE = "runs"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("1", "switch_mode('runs')", "Runs", show=False),
        Binding("2", "switch_mode('logs')", "Logs", show=False),
        Binding("3", "switch_mode('hosts')", "Allocations", show=False),
        Binding("4", "switch_mode('results')", "Results", show=False),
    ]

    def __init__(self, home: Path, client: AsyncClient | None = None) -> None:
        super().__init__()
        self.home = home
        self.client = client or AsyncClient(home)
        self.model = RunsModel()
        self.connected = False
        self.problem = "connecting to the coordinator..."
        self.log_target = ""  # the run the logs screen should follow
        self.results_target = ""  # the experiment the results screen should show next
        self.subs: dict[str, Submission] = {}
        self.watches: dict[str, Worker[None]] = {}  # experiment file -> its watch

    def status_line(self) -> str:
        return "" if self.connected else f"⚠ {self.problem}"

    def on_mount(self) -> None:
        self.sub_title = self.client.where if self.client.remote else str(self.home)
        self.watch_events()

    async def on_unmount(self) -> None:
        await self.client.close()

    # -- the connection ----------------------------------------------------------------------

    @work(exclusive=True, group="events", exit_on_error=False)
    async def watch_events(self) -> None:
        """Runs and their changes into the model; on a lost coordinator, retry every 2 s."""
        while True:
            try:
                await self._load_submissions()
                async for ev in self.client.events():
                    if ev.run.submission_id not in self.subs:
                        await self._load_submissions()
                    self.model.apply(ev.run)
            except ConvoyError as e:
                self._lost(describe(e))
            except Exception as e:  # anything else must not leave a stale screen that looks live
                self._lost(f"reading the coordinator's events failed: {e!r} (retrying)")
            await self.client.close()  # the next call connects anew
            await asyncio.sleep(RETRY_S)

    def _lost(self, problem: str) -> None:
        was = self.connected
        self.connected, self.problem = False, problem
        if was:
            self.notify(problem, severity="error", timeout=8)

    async def _load_submissions(self) -> None:
        for sub in await self.client.submissions():
            self.subs[sub.id] = sub
            self.model.set_pattern(sub.id, sub.progress_pattern)
        self.connected, self.problem = True, ""

    @work(group="waiting", exclusive=True, exit_on_error=False)
    async def fetch_waiting(self, run_id: str) -> None:
        """A queued run's reason to wait as it is now: it changes with no event (room frees
        on a host, a host goes away), so the runs screen asks for the highlighted run's."""
        try:
            run = await self.client.run(run_id)
        except ConvoyError:
            return
        self.model.set_waiting(run)

    # -- actions (each one API call) ------------------------------------------------------------

    def show_logs(self, run_id: str) -> None:
        """The logs screen, following `run_id` (it picks the target up as it shows)."""
        self.log_target = run_id
        self.switch_mode("logs")

    def show_results(self, experiment: str) -> None:
        """The results screen, on `experiment` (it picks the target up as it shows)."""
        self.results_target = experiment
        self.switch_mode("results")

    def experiments(self) -> list[str]:
        """The experiments of the submissions, each once, in the order of their first."""
        return list(dict.fromkeys(sub.experiment for sub in self.subs.values()))

    def newest_experiment(self) -> str:
        """The experiment of the submission made last ("" before any)."""
        newest = max(self.subs.values(), key=lambda s: s.created_at, default=None)
        return newest.experiment if newest is not None else ""

    @work(exit_on_error=False)
    async def cancel(self, target: str) -> None:
        try:
            cancelled = await self.client.cancel(target)
        except ConvoyError as e:
            self.notify(describe(e), severity="error")
            return
        what = ", ".join(cancelled) if len(cancelled) <= 3 else f"{len(cancelled)} runs"
        self.notify(f"cancelling {what}" if cancelled else f"{target}: nothing to cancel")

    @work(exit_on_error=False)
    async def rerun(self, submission: str) -> None:
        try:
            resp = await self.client.rerun(submission)
        except ConvoyError as e:
            self.notify(describe(e), severity="warning")
            return
        self.notify(f"submitted {resp.submission_id}: {len(resp.runs)} runs again")

    def toggle_watch(self, submission: str) -> None:
        """Watch mode on the submission's experiment file (rerun on every save), or off."""
        sub = self.subs.get(submission)
        if sub is None:
            return
        name = Path(sub.spec_path).name
        worker = self.watches.pop(sub.spec_path, None)
        if worker is not None:
            worker.cancel()
            self.notify(f"stopped watching {name}")
            return
        self.watches[sub.spec_path] = self.run_worker(
            self._watch(sub), group="watch", exit_on_error=False
        )
        self.notify(f"watching {name}: a save reruns {sub.experiment} (w again stops)")

    async def _watch(self, sub: Submission) -> None:
        def say(text: str, severity: SeverityLevel = "information") -> None:
            self.notify(text, title=f"watch {sub.experiment}", severity=severity)

        async def submitted(resp: Submitted, changed: list[str]) -> None:
            say(f"{resp.submission_id}: {len(resp.runs)} runs ({', '.join(changed[:4])})")

        session = WatchSession(
            self.client, Path(sub.spec_path), str(Path(sub.results_dir).parent.parent),
            self.home, Callbacks(submitted=submitted,
                                 unchanged=lambda _: say("saved, same content: no rerun"),
                                 error=lambda m: say(m, "error")),
            since=(sub.id, sub.revision),
        )  # fmt: skip
        await session.run()


def run_tui(home: Path) -> int:
    ConvoyApp(home).run()
    return 0
