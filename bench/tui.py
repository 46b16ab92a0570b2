"""The runs screen under a burst: 1,000 state updates with 10,000 runs loaded.

The real app (tui.app.ConvoyApp) runs headless at 160x50 (Textual's run_test), fed by
tests/tui_fake.py's FakeClient instead of a coordinator: 10,000 runs in 10 submissions, all
queued, arrive as the event stream's snapshot; once the table holds all 10,000 rows, 1,000
events (queued -> running, distinct runs) are pushed at once. Measured: the time from the first
push until the table's cells show every new state and the table has been rendered since (its
render_lines() returned after the last cell update). That is the path a real burst takes: the
events worker applies them to the model, the screen's flush (every 0.1 s, so up to 0.1 s of
waiting is part of it) updates just those cells, Textual renders.

Each round's burst hits another block of 1,000 runs, scrolled into view first, so that the
changed rows are on screen; the median round is reported (and the worst).

The baseline, measured in the same run: what a TUI that redraws everything would pay per
burst, the runs screen's own rebuild() (clear the table, add the 10,000 rows again) until the
table has been rendered.

    python bench/tui.py [--runs 10000] [--updates 1000] [--rounds 5]

The last line printed is JSON: {"runs", "updates", "apply_s", "apply_max_s", "rebuild_s",
"ratio"} (ratio: apply_s / rebuild_s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from convoy.tui.app import ConvoyApp  # noqa: E402
from convoy.tui.runs_screen import RunsScreen  # noqa: E402
from convoy.v1 import coordinator_pb2 as pb  # noqa: E402
from tests.tui_fake import FakeClient  # noqa: E402

SIZE = (160, 50)
SUBMISSIONS = 10
TIMEOUT_S = 60.0


def make_run(sub: int, index: int, per_sub: int, state: str = "queued", **kw: Any) -> pb.Run:
    sid = f"sweep-{sub + 1}"
    return pb.Run(id=f"{sid}.{index:0{len(str(per_sub - 1))}d}", submission_id=sid,
                  experiment="sweep", index=index, state=state,
                  params_json=json.dumps({"seed": index, "rate": round(0.01 * (index % 100), 2)}),
                  **kw)  # fmt: skip


def running(queued: pb.Run, host: str, now: float) -> pb.Run:
    """The event of a queued run that started on `host`."""
    r = pb.Run()
    r.CopyFrom(queued)
    r.state, r.host, r.started_at, r.attempt = "running", host, now, 1
    return r


class Probe:
    """When the table's cells were last updated and when it last finished rendering."""

    def __init__(self, table: DataTable[Any]) -> None:
        self.updated = 0.0
        self.first_update = 0.0
        self.rendered = 0.0
        update, render = table.update_cell, table.render_lines

        def update_cell(*args: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            if not self.first_update:
                self.first_update = now
            self.updated = now
            update(*args, **kwargs)

        def render_lines(crop: Any) -> Any:
            strips = render(crop)
            self.rendered = time.perf_counter()
            return strips

        setattr(table, "update_cell", update_cell)  # noqa: B010 - on this instance only
        setattr(table, "render_lines", render_lines)  # noqa: B010

    def reset(self) -> None:
        self.updated = self.first_update = 0.0


def shows(table: DataTable[Any], run_id: str, state: str) -> Callable[[], bool]:
    return lambda: str(table.get_cell(run_id, "state")) == state


def rendered_since(probe: Probe, t: float) -> Callable[[], bool]:
    return lambda: probe.rendered > t


async def until(what: Callable[[], bool], timeout: float = TIMEOUT_S, step: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what.__doc__ or what}")
        await asyncio.sleep(step)


async def bench(runs: int, updates: int, rounds: int) -> dict[str, Any]:
    per_sub = -(-runs // SUBMISSIONS)
    all_runs = [make_run(i // per_sub, i % per_sub, per_sub) for i in range(runs)]
    subs = [pb.Submission(id=f"sweep-{s + 1}", experiment="sweep", total=per_sub)
            for s in range(SUBMISSIONS)]  # fmt: skip
    client = FakeClient(runs=all_runs, submissions=subs)
    app = ConvoyApp(client.home, client=client)
    applies: list[float] = []
    rebuilds: list[float] = []
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(DataTable)
        probe = Probe(table)
        await until(lambda: table.row_count == runs)
        print(f"{runs} runs in {SUBMISSIONS} submissions in the table "
              f"{time.perf_counter() - t0:.2f} s after the app started", flush=True)  # fmt: skip
        await settle(pilot)

        for r in range(rounds):
            block = all_runs[(r * updates) % runs :][:updates]
            top = min(table.get_row_index(b.id) for b in block)  # newest submissions first
            table.scroll_to(y=top, animate=False)
            await settle(pilot)
            probe.reset()
            now = time.time()
            burst = [running(b, f"host-{b.index % 8}", now) for b in block]
            t0 = time.perf_counter()
            client.push_many(burst)
            await until(shows(table, burst[-1].id, "running"))
            await until(lambda: probe.rendered > probe.updated)
            took = probe.rendered - t0
            wrong = [b.id for b in burst if str(table.get_cell(b.id, "state")) != "running"]
            if wrong:
                sys.exit(f"round {r + 1}: {len(wrong)} cells not updated, e.g. {wrong[:3]}")
            applies.append(took)
            print(f"burst {r + 1}: {len(burst)} updates applied and rendered in {took:.3f} s "
                  f"(waiting for the flush {probe.first_update - t0:.3f} s, cell updates "
                  f"{probe.updated - probe.first_update:.3f} s, render "
                  f"{probe.rendered - probe.updated:.3f} s)", flush=True)  # fmt: skip
            await settle(pilot)

        for r in range(rounds):
            t0 = time.perf_counter()
            screen.rebuild()
            await until(rendered_since(probe, t0))
            took = probe.rendered - t0
            assert table.row_count == runs
            rebuilds.append(took)
            print(f"baseline {r + 1}: the whole table rebuilt and rendered in {took:.3f} s",
                  flush=True)  # fmt: skip
            await settle(pilot)
    apply_s, rebuild_s = statistics.median(applies), statistics.median(rebuilds)
    return {
        "runs": runs, "updates": updates, "apply_s": round(apply_s, 4),
        "apply_max_s": round(max(applies), 4), "rebuild_s": round(rebuild_s, 4),
        "ratio": round(apply_s / rebuild_s, 4),
    }  # fmt: skip


async def settle(pilot: Pilot[None]) -> None:
    """Let pending flushes and renders happen (between measurements, not in them)."""
    await pilot.pause(0.3)
    await pilot.pause()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--updates", type=int, default=1_000)
    p.add_argument("--rounds", type=int, default=5)
    ns = p.parse_args()
    if not 0 < ns.updates <= ns.runs:
        sys.exit("--updates must be between 1 and --runs")
    result = asyncio.run(bench(ns.runs, ns.updates, ns.rounds))
    print(f"median burst {result['apply_s']:.3f} s (worst {result['apply_max_s']:.3f} s; target "
          f"< 0.5 s), rebuild {result['rebuild_s']:.3f} s, ratio {result['ratio']}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
