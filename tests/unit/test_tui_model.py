"""Unit tests for tui.model: what the runs screen shows, without Textual or a coordinator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from convoy.client import Run
from convoy.client.convert import run_of
from convoy.tui.model import ACTIVE, TERMINAL, Row, RunsModel, bar, human
from convoy.v1 import coordinator_pb2 as pb


def run(sub: str, index: int, state: str = "queued", **fields: Any) -> Run:
    """A run as the client gives it from the coordinator's Run message: id
    `<submission>.<index>`."""
    params = fields.pop("params", {"n": index})
    return run_of(pb.Run(id=f"{sub}.{index}", submission_id=sub, index=index, state=state,
                         experiment=fields.pop("experiment", "e"), params_json=json.dumps(params),
                         **fields))  # fmt: skip


def model_of(*runs: Run) -> RunsModel:
    m = RunsModel()
    m.apply_many(runs)
    m.take_dirty()
    return m


# -- apply / take_dirty --------------------------------------------------------------------------


def test_a_burst_of_updates_is_coalesced_to_the_runs_it_touched() -> None:
    m = RunsModel()
    m.apply_many(run("s-1", i) for i in range(10))
    added, changed = m.take_dirty()
    assert added == [f"s-1.{i}" for i in range(10)]
    assert changed == []

    states = ["syncing", "building", "starting", "running"]
    for k in range(1000):
        m.apply(run("s-1", k % 10, states[k // 10 % 4], host=f"h{k}"))
    added, changed = m.take_dirty()
    assert added == []
    assert sorted(changed) == sorted(f"s-1.{i}" for i in range(10))
    assert len(changed) == 10
    # The last update of each run is the one kept.
    assert m.rows["s-1.3"].state == states[993 // 10 % 4]
    assert m.rows["s-1.3"].host == "h993"
    assert m.take_dirty() == ([], [])


def test_new_runs_are_reported_as_added_only_even_when_updated_again() -> None:
    m = model_of(run("s-1", 0), run("s-1", 1))
    m.apply(run("s-2", 0))
    m.apply(run("s-2", 0, "running"))
    m.apply(run("s-2", 1))
    m.apply(run("s-1", 1, "running"))
    added, changed = m.take_dirty()
    assert added == ["s-2.0", "s-2.1"]
    assert changed == ["s-1.1"]
    assert m.rows["s-2.0"].state == "running"


def test_a_run_applied_again_unchanged_is_still_reported_once() -> None:
    m = model_of(run("s-1", 0))
    for _ in range(3):
        m.apply(run("s-1", 0))
    assert m.take_dirty() == ([], ["s-1.0"])


def test_a_large_load_is_taken_whole() -> None:
    """10,000 new runs at once (a TUI connecting to a big sweep) are all reported as added,
    once. (How fast: bench/tui.py prints the load time; no timed assertions in tests.)"""
    m = RunsModel()
    m.apply_many(run("s-1", i) for i in range(10_000))
    added, changed = m.take_dirty()
    assert len(added) == len(set(added)) == 10_000 and changed == []
    assert m.take_dirty() == ([], [])


def test_row_of_a_run_message() -> None:
    r = Row.of(run("s-1", 4, "failed", params={"n": 4, "rate": 0.5}, host="h1",
                   has_exit_code=True, exit_code=3, reason="exited 3",
                   results_path="/r/s-1.4", created_at=1234.5))  # fmt: skip
    assert (r.id, r.submission, r.index, r.state, r.host) == ("s-1.4", "s-1", 4, "failed", "h1")
    assert r.created_at == 1234.5
    assert r.params == "n=4 rate=0.5"
    assert (r.exit_code, r.reason, r.results_path) == (3, "exited 3", "/r/s-1.4")
    # No exit code: None, not 0.
    assert Row.of(run("s-1", 0, "running", exit_code=7)).exit_code is None


# -- progress and waiting --------------------------------------------------------------------------


def test_a_running_run_s_progress_comes_with_its_message() -> None:
    m = model_of(run("s-1", 0, "running"))
    assert m.rows["s-1.0"].progress is None
    m.apply(run("s-1", 0, "running", progress=62.5, has_progress=True))
    assert m.rows["s-1.0"].progress == 62.5
    assert m.take_dirty() == ([], ["s-1.0"])


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_an_ended_run_has_no_progress(state: str) -> None:
    """The coordinator drops it once a run leaves running; the row follows its message."""
    m = model_of(run("s-1", 0, "running", progress=70.0, has_progress=True))
    m.apply(run("s-1", 0, state))
    assert m.rows["s-1.0"].progress is None


def test_a_queued_run_says_what_it_waits_for() -> None:
    m = model_of(run("s-1", 0, "queued", waiting_for="needs 2 cpus; h1 has 0 cpus free"))
    assert m.rows["s-1.0"].why() == "s-1.0 queued: it waits: needs 2 cpus; h1 has 0 cpus free"
    retried = run("s-1", 0, "queued", reason="attempt 1 on h1: exited with code 3; retrying",
                  code="exit_code", waiting_for="needs 2 cpus; h1 is unreachable")  # fmt: skip
    m.apply(retried)
    assert m.rows["s-1.0"].why() == (
        "s-1.0 queued [exit_code]: attempt 1 on h1: exited with code 3; retrying; it waits: "
        "needs 2 cpus; h1 is unreachable"
    )


def test_a_fetched_reason_to_wait_is_taken_only_while_the_run_is_queued() -> None:
    m = model_of(run("s-1", 0, "queued"), run("s-1", 1, "running"))
    m.set_waiting(run("s-1", 0, "queued", waiting_for="needs 1 cpus; h1 has 0 cpus free"))
    assert m.rows["s-1.0"].waiting_for == "needs 1 cpus; h1 has 0 cpus free"
    assert m.take_dirty() == ([], ["s-1.0"])
    m.set_waiting(run("s-1", 1, "queued", waiting_for="stale: the run has started since"))
    m.set_waiting(run("s-1", 9, "queued", waiting_for="an unknown run"))
    assert m.rows["s-1.1"].waiting_for == "" and "s-1.9" not in m.rows
    assert m.take_dirty() == ([], [])


# -- visible(): filter and sort ------------------------------------------------------------------


def sample() -> RunsModel:
    """Runs of two submissions, with indexes that sort differently as numbers and as text."""
    return model_of(
        run("s-1", 2, "succeeded", host="beta", started_at=100, ended_at=130,
            has_exit_code=True, exit_code=0, params={"lr": 0.1}),
        run("s-1", 10, "failed", host="alpha", started_at=100, ended_at=200,
            has_exit_code=True, exit_code=2, params={"lr": 0.3}),
        run("s-1", 9, "running", host="gamma", params={"lr": 0.2}),
        run("s-2", 0, "queued", experiment="Other", params={"lr": 0.05}),
        run("s-2", 1, "building", host="alpha", params={"lr": 0.4}),
        run("s-2", 3, "cancelled", started_at=100, ended_at=110, params={"lr": 0.6}),
    )  # fmt: skip


def ids(rows: list[Row]) -> list[str]:
    return [r.id for r in rows]


NEWEST_FIRST = ["s-2.0", "s-2.1", "s-2.3", "s-1.2", "s-1.9", "s-1.10"]


def test_visible_unfiltered_is_every_run_newest_submission_first_each_in_index_order() -> None:
    assert ids(sample().visible()) == NEWEST_FIRST


def test_the_newest_submission_is_the_one_made_last_whatever_order_its_runs_came_in() -> None:
    m = model_of(run("new-2", 0, created_at=200), run("old-1", 0, created_at=100),
                 run("new-2", 1, created_at=200))  # fmt: skip
    assert ids(m.visible()) == ["new-2.0", "new-2.1", "old-1.0"]
    assert ids(m.visible(reverse=True)) == ["old-1.0", "new-2.0", "new-2.1"]


@pytest.mark.parametrize(("text", "want"), [
    ("s-2.", ["s-2.0", "s-2.1", "s-2.3"]),       # id
    ("OTHER", ["s-2.0"]),                          # experiment, case-insensitive
    ("lr=0.3", ["s-1.10"]),                        # params
    ("alpha", ["s-2.1", "s-1.10"]),                # host
    ("cancel", ["s-2.3"]),                         # state
    ("nothing-like-this", []),
])  # fmt: skip
def test_visible_filters_by_text(text: str, want: list[str]) -> None:
    assert ids(sample().visible(text=text)) == want


@pytest.mark.parametrize(("state", "want"), [
    ("failed", ["s-1.10"]),
    ("queued", ["s-2.0"]),
    ("active", ["s-2.1", "s-1.9"]),  # running and building; not queued, not finished
    ("lost", []),
])  # fmt: skip
def test_visible_filters_by_state(state: str, want: list[str]) -> None:
    assert ids(sample().visible(state=state)) == want


def test_active_means_the_active_states() -> None:
    m = model_of(*(run("s-1", i, s) for i, s in enumerate(sorted(ACTIVE | TERMINAL | {"queued"}))))
    assert {r.state for r in m.visible(state="active")} == set(ACTIVE)


def test_visible_combines_text_and_state() -> None:
    assert ids(sample().visible(text="alpha", state="active")) == ["s-2.1"]


@pytest.mark.parametrize(("sort", "want"), [
    ("run", NEWEST_FIRST),
    ("state", ["s-2.1", "s-2.3", "s-1.10", "s-2.0", "s-1.9", "s-1.2"]),
    ("host", ["s-2.0", "s-2.3", "s-2.1", "s-1.10", "s-1.2", "s-1.9"]),  # ties: run order
    ("ended", ["s-1.2", "s-1.10", "s-2.0", "s-2.1", "s-2.3", "s-1.9"]),  # ended first
    ("params", ["s-2.0", "s-1.2", "s-1.9", "s-1.10", "s-2.1", "s-2.3"]),
    ("no-such-column", NEWEST_FIRST),
])  # fmt: skip
def test_visible_sorts_by_each_column(sort: str, want: list[str]) -> None:
    assert ids(sample().visible(sort=sort)) == want


@pytest.mark.parametrize(("sort", "want"), [
    ("run", ["s-1.2", "s-1.9", "s-1.10", "s-2.0", "s-2.1", "s-2.3"]),  # indexes still go up
    ("state", ["s-1.2", "s-1.9", "s-2.0", "s-1.10", "s-2.3", "s-2.1"]),
    ("host", ["s-1.9", "s-1.2", "s-2.1", "s-1.10", "s-2.0", "s-2.3"]),  # ties: run order
])  # fmt: skip
def test_visible_reversed_turns_the_column_round_but_not_its_ties(
    sort: str, want: list[str]
) -> None:
    assert ids(sample().visible(sort=sort, reverse=True)) == want


def test_visible_sorts_by_duration_longest_first() -> None:
    m = model_of(
        run("s-1", 0, "succeeded", started_at=100, ended_at=130),
        run("s-1", 1, "failed", started_at=100, ended_at=200),
        run("s-1", 2, "queued"),
        run("s-1", 3, "cancelled", started_at=100, ended_at=110),
    )
    assert ids(m.visible(sort="duration")) == ["s-1.1", "s-1.0", "s-1.3", "s-1.2"]


def test_visible_sorts_by_progress_highest_first() -> None:
    pct = {0: 10.0, 1: 90.0, 3: 50.0}
    m = model_of(*(run("s-1", i, "running", progress=pct.get(i, 0.0), has_progress=i in pct)
                   for i in range(4)))  # fmt: skip
    assert ids(m.visible(sort="progress")) == ["s-1.1", "s-1.3", "s-1.0", "s-1.2"]


# -- stats() -------------------------------------------------------------------------------------


def sweep() -> RunsModel:
    """s-1: 10 runs: 3 succeeded (10, 20, 30 s), 1 failed (100 s), 1 lost before it started,
    1 cancelled before it started, 2 running, 2 queued. s-2: one queued run (not counted)."""
    return model_of(
        *(run("s-1", i, "succeeded", started_at=1000, ended_at=1000 + 10 * (i + 1))
          for i in range(3)),
        run("s-1", 3, "failed", started_at=1000, ended_at=1100),
        run("s-1", 4, "lost"),
        run("s-1", 5, "cancelled"),
        run("s-1", 6, "running", started_at=1000),
        run("s-1", 7, "starting", started_at=1000),
        run("s-1", 8, "queued"),
        run("s-1", 9, "queued"),
        run("s-2", 0, "queued"),
    )  # fmt: skip


def test_stats_counts_a_submissions_runs() -> None:
    s = sweep().stats("s-1", now=2000)
    assert (s.total, s.done, s.succeeded, s.failed, s.running) == (10, 6, 3, 2, 2)


def test_stats_eta_from_finished_durations_and_runs_left() -> None:
    s = sweep().stats("s-1", now=2000)
    # median(10, 20, 30, 100) = 25 s a run (the mean would be 40), 4 runs left, 2 slots: 50 s.
    assert s.eta_s == pytest.approx(50.0)
    assert s.line("s-1") == (
        f"s-1: {bar(60, 20)} 6/10 done (2 running, 2 failed), about 50.0s left"
    )


def test_stats_eta_with_nothing_running_counts_one_slot() -> None:
    m = model_of(run("s-1", 0, "succeeded", started_at=0.5, ended_at=30.5), run("s-1", 1),
                 run("s-1", 2))  # fmt: skip
    assert m.stats("s-1", now=100).eta_s == pytest.approx(60.0)


def test_stats_without_a_finished_run_has_no_eta() -> None:
    # The cancelled run is finished, but it never started: no duration to go by.
    m = model_of(run("s-1", 0, "running", started_at=1000), run("s-1", 1),
                 run("s-1", 2, "cancelled"))  # fmt: skip
    s = m.stats("s-1", now=2000)
    assert s.done == 1 and s.eta_s is None
    assert "left" not in s.line("s-1")
    assert "failed" not in s.line("s-1")


def test_stats_when_everything_finished_has_no_eta() -> None:
    m = model_of(run("s-1", 0, "succeeded", started_at=1, ended_at=2))
    s = m.stats("s-1")
    assert (s.done, s.total, s.eta_s) == (1, 1, None)


def test_stats_of_an_unknown_submission_is_empty() -> None:
    s = sweep().stats("s-9", now=0)
    assert (s.total, s.done, s.eta_s) == (0, 0, None)


def test_submissions_in_the_order_first_seen() -> None:
    m = model_of(run("s-2", 0), run("s-1", 0), run("s-2", 1))
    assert m.submissions() == ["s-2", "s-1"]


# -- Row.cells -----------------------------------------------------------------------------------


def cells(
    msg: pb.Run, now: float = 5000.0, progress: float | None = None, has_progress: bool = True
) -> dict[str, str]:
    row = Row.of(msg)
    row.progress, row.has_progress = progress, has_progress
    names = ("run", "state", "host", "duration", "progress", "ended", "params")
    return dict(zip(names, row.cells(now), strict=True))


@pytest.mark.parametrize(("started", "ended", "now", "want"), [
    (1000, 1012.34, 0, "12.3s"),
    (1000, 1065, 0, "1m05s"),
    (1000, 1000 + 3 * 3600 + 7 * 60 + 30, 0, "3h07m"),
    (1000, 0, 1042.5, "42.5s"),    # still running: up to now
    (1000, 0, 1000 + 59 * 60 + 59, "59m59s"),
    (0, 0, 5000, ""),            # not started
])  # fmt: skip
def test_duration_cell(started: float, ended: float, now: float, want: str) -> None:
    msg = run("s-1", 0, "running", started_at=started, ended_at=ended)
    assert cells(msg, now=now)["duration"] == want


def test_human_never_shows_a_negative_duration() -> None:
    assert human(-3) == "0.0s"


@pytest.mark.parametrize(
    ("has", "code", "want"), [(False, 0, ""), (True, 0, "0"), (True, 137, "137"), (True, -1, "-1")]
)
def test_exit_code_cell(has: bool, code: int, want: str) -> None:
    assert cells(run("s-1", 0, "failed", has_exit_code=has, exit_code=code))["ended"] == want


@pytest.mark.parametrize(("code", "exit_code", "want"), [
    ("exit_code", 3, "3"), ("oom_killed", 137, "oom_killed"), ("host_lost", None, "host_lost"),
    ("timeout", 143, "timeout"),
])  # fmt: skip
def test_the_ended_cell_names_the_reason_when_it_says_more_than_an_exit_code(
    code: str, exit_code: int | None, want: str
) -> None:
    msg = run("s-1", 0, "failed", has_exit_code=exit_code is not None, exit_code=exit_code or 0,
              code=code, reason="why, in words")  # fmt: skip
    assert cells(msg)["ended"] == want
    assert Row.of(msg).why() == f"s-1.0 failed [{code}]: why, in words"


@pytest.mark.parametrize(("state", "progress", "want"), [
    ("running", None, ""),
    ("running", 0.0, "░░░░░░░░░░   0%"),
    ("running", 40.0, "████░░░░░░  40%"),
    ("running", 66.6, "███████░░░  67%"),
    ("running", 100.0, "██████████ 100%"),
    ("succeeded", None, "██████████ 100%"),  # finished well: full, whatever was read
])  # fmt: skip
def test_progress_cell(state: str, progress: float | None, want: str) -> None:
    assert cells(run("s-1", 0, state), progress=progress)["progress"] == want


@pytest.mark.parametrize("state", ["succeeded", "running", "failed"])
def test_no_progress_cell_without_a_progress_pattern(state: str) -> None:
    """An experiment without `progress:` says nothing of progress: no bar, not a full one."""
    assert cells(run("s-1", 0, state), has_progress=False)["progress"] == ""


def test_a_run_knows_whether_its_submission_has_a_progress_pattern() -> None:
    m = RunsModel()
    m.set_pattern("s-1", r"(?P<percent>\d+)%")
    m.set_pattern("s-2", "")
    m.apply_many([run("s-1", 0, "succeeded"), run("s-2", 0, "succeeded"), run("s-3", 0)])
    m.take_dirty()
    assert [m.rows[i].has_progress for i in ("s-1.0", "s-2.0", "s-3.0")] == [True, False, False]
    m.set_pattern("s-3", r"(?P<percent>\d+)%")  # learnt after its runs came: they are redrawn
    assert m.rows["s-3.0"].has_progress
    assert m.take_dirty() == ([], ["s-3.0"])


def test_a_run_that_showed_a_percent_keeps_its_bar_when_it_ends() -> None:
    """A percent read for a run (its experiment's `progress:`) marks it; it ends with a full
    bar. One that never showed a percent (no pattern) ends with none."""
    m = RunsModel()
    m.apply_many([run("s-1", 0, "running", progress=40.0, has_progress=True),
                  run("s-2", 0, "running")])  # fmt: skip
    m.apply_many([run("s-1", 0, "succeeded"), run("s-2", 0, "succeeded")])
    assert [m.rows[i].has_progress for i in ("s-1.0", "s-2.0")] == [True, False]
    assert m.rows["s-1.0"].cells(0)[4].endswith("100%")
    assert m.rows["s-2.0"].cells(0)[4] == ""


def test_cells_in_column_order() -> None:
    msg = run("s-1", 7, "failed", host="h1", started_at=10, ended_at=12.5,
              has_exit_code=True, exit_code=1, params={"a": 1, "b": "x"})  # fmt: skip
    assert Row.of(msg).cells(0) == ("s-1.7", "failed", "h1", "2.5s", "", "1", "a=1 b=x")


@pytest.mark.parametrize(
    ("pct", "want"), [(-5, "░░░░░"), (0, "░░░░░"), (50, "██░░░"), (100, "█████"), (250, "█████")]
)
def test_bar_is_clamped(pct: float, want: str) -> None:
    assert bar(pct, 5) == want


def test_a_host_card_lists_its_labels_as_text_not_markup() -> None:
    from convoy.tui.hosts_screen import host_text

    card = host_text(pb.Host(name="h2", state="up", labels={"rack": "b", "gpu": "[a100]"}))
    assert "  labels  gpu=\\[a100], rack=b" in card.splitlines()
    assert not any("labels" in ln for ln in host_text(pb.Host(name="h1")).splitlines())


@pytest.mark.parametrize(("reason", "want"), [
    ("", ""),
    ("\n  \n", ""),
    ("no heartbeat for 15 s", "no heartbeat for 15 s"),
    ("the agent exited; the end of agent.log:\nline 1\nline 2", "the agent exited; the end of "
                                                                "agent.log: …"),
    ("x" * 200, "x" * 159 + "…"),
])  # fmt: skip
def test_a_host_cards_reason_is_one_line(reason: str, want: str) -> None:
    from convoy.tui.hosts_screen import one_line

    assert one_line(reason) == want
