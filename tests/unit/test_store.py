"""coordinator.runs.store: SQLite persistence of submissions, runs and transitions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from convoy.coordinator.runs.records import RunRecord, SubmissionRecord
from convoy.coordinator.runs.store import Store, stored_runs
from convoy.spec import Resources
from convoy.states import InvalidTransition, RunState

T0 = 1_700_000_000.0


def make_sub(
    n: int, experiment: str = "exp", seq: int | None = None, total: int = 3
) -> SubmissionRecord:
    return SubmissionRecord(
        id=f"{experiment}-{n}",
        experiment=experiment,
        seq=n if seq is None else seq,
        spec_path="/src/experiment.yaml",
        spec_yaml="name: exp\n",
        source_dir="/src",
        results_dir=f"/results/{experiment}/{experiment}-{n}",
        revision="rev0123",
        priority=0,
        created_at=T0 + n,
        total=total,
    )


def make_runs(sub: SubmissionRecord) -> list[RunRecord]:
    return [
        RunRecord(
            id=f"{sub.id}.{i}",
            submission_id=sub.id,
            experiment=sub.experiment,
            index=i,
            params={"rep": i, "name": f"p{i}", "x": 0.5, "flag": True},
            command=("./sim", "-r", str(i)) if i % 2 else f"./sim -r {i}",
            env={"OMP_NUM_THREADS": "1"},
            image="img:1",
            resources=Resources(cpus=0.5, memory_bytes=123_456_789, gpus=i % 2),
            retries=2,
            timeout_seconds=60.0,
            network="none",
            outputs=("results/", "*.csv"),
            revision=sub.revision,
            results_path=f"{sub.results_dir}/{sub.id}.{i}",
            priority=sub.priority,
            seq=sub.seq,
            created_at=sub.created_at,
            reason="submitted",
        )
        for i in range(sub.total)
    ]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "convoy.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


def test_add_submission_then_runs_in_order(store: Store) -> None:
    """runs() returns every run, by submission order then index, equal to what was stored."""
    s2, s1 = make_sub(2), make_sub(1)
    runs2, runs1 = make_runs(s2), make_runs(s1)
    store.add_submission(s2, list(reversed(runs2)))
    store.add_submission(s1, runs1)
    assert store.runs() == runs1 + runs2
    assert store.runs(submission_id="exp-2") == runs2


def test_runs_round_trip_every_field(store: Store) -> None:
    """A stored run reads back equal in every field (tuple commands, params types, resources)."""
    sub = make_sub(1)
    runs = make_runs(sub)
    store.add_submission(sub, runs)
    for r in runs:
        assert store.run(r.id) == r
    assert store.run("nope") is None
    assert store.submission("exp-1") == sub
    assert store.submission("nope") is None


def test_runs_filter_by_state_and_limit(store: Store) -> None:
    """runs() filters by state and honours a limit."""
    sub = make_sub(1)
    runs = make_runs(sub)
    store.add_submission(sub, runs)
    moved = runs[1].moved(RunState.STARTING, "placed", host="h1", attempt=1)
    store.update_runs([(runs[1], moved, T0 + 10)])
    assert [r.id for r in store.runs(states=[RunState.STARTING])] == ["exp-1.1"]
    assert [r.id for r in store.runs(states=[RunState.QUEUED])] == ["exp-1.0", "exp-1.2"]
    assert len(store.runs(limit=2)) == 2


def test_first_transition_is_into_queued(store: Store) -> None:
    """add_submission records each run's first transition: '' -> queued at its creation time."""
    sub = make_sub(1)
    store.add_submission(sub, make_runs(sub))
    assert store.transitions("exp-1.0") == [(T0 + 1, "", "queued", "submitted")]


def test_update_runs_records_transitions_in_order(store: Store) -> None:
    """Each state change adds a transition; transitions() lists them in the order they happened."""
    sub = make_sub(1)
    run = make_runs(sub)[0]
    store.add_submission(sub, [run])
    starting = run.moved(RunState.STARTING, "placed on h1", host="h1", attempt=1)
    running = starting.moved(RunState.RUNNING, "running on h1", started_at=T0 + 20)
    done = running.moved(RunState.SUCCEEDED, "exited with code 0", exit_code=0, ended_at=T0 + 30)
    store.update_runs([(run, starting, T0 + 10)])
    store.update_runs([(starting, running, T0 + 20), (running, done, T0 + 30)])
    assert store.transitions(run.id) == [
        (T0 + 1, "", "queued", "submitted"),
        (T0 + 10, "queued", "starting", "placed on h1"),
        (T0 + 20, "starting", "running", "running on h1"),
        (T0 + 30, "running", "succeeded", "exited with code 0"),
    ]
    assert store.run(run.id) == done


def test_update_without_state_change_adds_no_transition(store: Store) -> None:
    """An update that changes fields but not the state records no transition."""
    sub = make_sub(1)
    run = make_runs(sub)[0]
    store.add_submission(sub, [run])
    changed = replace(run, image_id="sha256:abc", reason="still queued")
    store.update_runs([(run, changed, T0 + 5)])
    assert len(store.transitions(run.id)) == 1
    assert store.run(run.id) == changed


def test_many_runs_given_the_same_values_are_stored_each(store: Store) -> None:
    """A sweep cancelled at once (more runs than one statement takes) ends every run, each
    with its own transition; runs not in the batch stay as they were."""
    sub = make_sub(1, total=1234)
    runs = make_runs(sub)
    store.add_submission(sub, runs)
    ended = [(r, r.moved(RunState.CANCELLED, "cancelled", ended_at=T0 + 9), T0 + 9)
             for r in runs[:1200]]  # fmt: skip
    store.update_runs(ended)
    back = store.runs(submission_id=sub.id)
    assert back[:1200] == [after for _, after, _ in ended]
    assert back[1200:] == runs[1200:]
    assert store.transitions(runs[1199].id)[-1] == (T0 + 9, "queued", "cancelled", "cancelled")
    assert len(store.transitions(runs[1200].id)) == 1
    assert store.any_unfinished(sub.id)
    store.update_runs([(r, r.moved(RunState.CANCELLED, "c", ended_at=T0 + 9), T0 + 9)
                       for r in runs[1200:]])  # fmt: skip
    assert not store.any_unfinished(sub.id)


def test_a_change_beyond_a_runs_life_writes_the_whole_row(store: Store) -> None:
    """Fields a run's life does not change (its command, resources, priority...) are still
    stored when a change carries them: nothing is lost to the narrow update."""
    sub = make_sub(1)
    runs = make_runs(sub)
    store.add_submission(sub, runs)
    bumped = replace(runs[0], priority=7, retries=5, reason="reprioritised")
    moved = replace(runs[1].moved(RunState.STARTING, "placed", host="h1", attempt=1),
                    resources=Resources(cpus=2, memory_bytes=1, gpus=0))  # fmt: skip
    store.update_runs([(runs[0], bumped, T0 + 3), (runs[1], moved, T0 + 4)])
    assert store.run(runs[0].id) == bumped
    assert store.run(runs[1].id) == moved
    assert store.transitions(runs[1].id)[-1][1:3] == ("queued", "starting")


def test_every_run_field_is_either_live_or_fixed() -> None:
    """The narrow update knows every field of a run: one added to RunRecord and to neither
    list would silently not be stored when it changes."""
    from dataclasses import fields

    from convoy.coordinator.runs import store as store_module

    live = {"attempt", "host", "exit_code", "started_at", "ended_at", "reason", "image_id",
            "code", "app_failures", "infra_failures"}  # fmt: skip
    run = make_runs(make_sub(1))[0]
    assert len(store_module._live_row(run)) == len(live)
    names = {f.name for f in fields(RunRecord)}
    assert names == live | set(store_module._FIXED_FIELDS) | {"id", "state"}


def test_failed_batch_update_rolls_back(store: Store) -> None:
    """When a batch of changes fails part way, none of it is kept."""
    sub = make_sub(1)
    runs = make_runs(sub)
    store.add_submission(sub, runs)
    a = runs[0].moved(RunState.STARTING, "placed")

    def changes() -> Iterator[tuple[RunRecord, RunRecord, float]]:
        yield (runs[0], a, T0 + 5)
        yield (runs[1], runs[1].moved(RunState.RUNNING, "skips starting"), T0 + 6)

    with pytest.raises(InvalidTransition):
        store.update_runs(changes())
    assert store.run(runs[0].id) == runs[0]
    assert len(store.transitions(runs[0].id)) == 1


def test_duplicate_submission_is_rejected_whole(store: Store) -> None:
    """Adding a submission whose id exists fails and adds none of its runs."""
    sub = make_sub(1)
    store.add_submission(sub, make_runs(sub))
    other = replace(make_runs(sub)[0], id="exp-1.99")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_submission(sub, [other])
    assert store.run("exp-1.99") is None
    assert store.transitions("exp-1.99") == []


def test_reopen_sees_everything(db: Path) -> None:
    """A Store reopened on the same file sees submissions, runs and transitions."""
    s = Store(db)
    sub = make_sub(1)
    runs = make_runs(sub)
    s.add_submission(sub, runs)
    moved = runs[0].moved(RunState.STARTING, "placed", host="h1", attempt=1)
    s.update_runs([(runs[0], moved, T0 + 9)])
    s.close()

    again = Store(db)
    try:
        assert again.submission("exp-1") == sub
        assert again.runs() == [moved, *runs[1:]]
        assert [t[2] for t in again.transitions(runs[0].id)] == ["queued", "starting"]
        assert again.next_seq() == 2
    finally:
        again.close()


def test_second_connection_sees_committed_writes(db: Path) -> None:
    """Writes are committed as they return: another open Store sees them without closing."""
    a, b = Store(db), Store(db)
    try:
        sub = make_sub(1)
        a.add_submission(sub, make_runs(sub))
        assert len(b.runs()) == 3
    finally:
        a.close()
        b.close()


def test_wal_mode_is_on(store: Store, db: Path) -> None:
    """The database file is in WAL journal mode (persistent, seen by a fresh connection)."""
    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_next_seq_counts_up(store: Store) -> None:
    """next_seq is 1 on an empty store and one past the highest stored seq after."""
    assert store.next_seq() == 1
    sub = make_sub(4)
    store.add_submission(sub, make_runs(sub))
    assert store.next_seq() == 5


def test_submission_numbers(store: Store) -> None:
    """submission_numbers gives the numeric tails of one experiment's submission ids."""
    assert store.submission_numbers("exp") == set()
    for n in (1, 3, 10):
        sub = make_sub(n)
        store.add_submission(sub, make_runs(sub))
    other = make_sub(7, experiment="my-exp", seq=20)
    store.add_submission(other, make_runs(other))
    odd = replace(make_sub(0, seq=21), id="exp-latest")
    store.add_submission(odd, [])
    assert store.submission_numbers("exp") == {1, 3, 10}
    assert store.submission_numbers("my-exp") == {7}
    assert store.submission_numbers("nothing") == set()


def test_in_flight_on_lists_a_host_s_active_runs_read_only(store: Store, db: Path) -> None:
    """The runs syncing, building, starting or running on a host, in submission order, read
    beside the open store; ended, queued and other hosts' runs are not; no store, none."""
    from convoy.coordinator.runs.store import in_flight_on

    sub = make_sub(1, total=5)
    runs = make_runs(sub)
    store.add_submission(sub, runs)
    now = T0 + 10

    def placed(run: RunRecord, host: str) -> RunRecord:
        return run.moved(RunState.STARTING, "placed", host=host, attempt=1)

    moves = [
        (runs[0], placed(runs[0], "h2").moved(RunState.SYNCING, "syncing")),
        (runs[1], placed(runs[1], "h1").moved(RunState.SYNCING, "syncing")),
        (runs[3], placed(runs[3], "h2").moved(RunState.SYNCING, "syncing")),
    ]
    store.update_runs((b, a, now) for b, a in moves)
    running = moves[0][1].moved(RunState.STARTING, "s").moved(RunState.RUNNING, "r")
    store.update_runs([(moves[0][1], running, now + 1)])
    assert in_flight_on(db, "h2") == [(runs[0].id, "running"), (runs[3].id, "syncing")]
    ended = moves[2][1].moved(RunState.FAILED, "no image")
    store.update_runs([(moves[2][1], ended, now + 2)])
    assert in_flight_on(db, "h2") == [(runs[0].id, "running")]
    assert in_flight_on(db, "h3") == []
    assert in_flight_on(db.parent / "none.db", "h2") == []
    assert not (db.parent / "none.db").exists()


def test_a_runs_limits_are_stored_and_the_defaults_take_no_room(store: Store) -> None:
    from convoy.spec import Limits

    sub = make_sub(1, total=2)
    plain, capped = make_runs(sub)
    capped = replace(capped, limits=Limits(output_files=7, output_bytes=1 << 20, log_bytes=99),
                     resources=replace(capped.resources, disk_bytes=123 << 20))  # fmt: skip
    store.add_submission(sub, [plain, capped])
    assert store.run(plain.id) == plain and store.run(capped.id) == capped
    rows = dict(store._db.execute("SELECT id, limits_json FROM runs").fetchall())
    assert rows[plain.id] == ""


def test_runs_filter_by_experiment_and_the_last_ones_come_in_order(store: Store, db: Path) -> None:
    """experiment= keeps one experiment's runs; newest with a limit keeps the last ones, listed
    oldest first; stored_runs reads the same from the file while no Store has it open."""
    subs = [make_sub(1), make_sub(2, experiment="other", seq=2), make_sub(3, seq=3)]
    for s in subs:
        store.add_submission(s, make_runs(s))
    assert [r.id for r in store.runs(experiment="other")] == ["other-2.0", "other-2.1",
                                                             "other-2.2"]  # fmt: skip
    assert [r.id for r in store.runs(limit=2, newest=True)] == ["exp-3.1", "exp-3.2"]
    assert [r.id for r in store.runs(limit=4, newest=True, experiment="exp")] == [
        "exp-1.2", "exp-3.0", "exp-3.1", "exp-3.2"
    ]  # fmt: skip
    assert [r.id for r in store.runs(limit=2)] == ["exp-1.0", "exp-1.1"]
    store.close()
    assert stored_runs(db, experiment="exp", limit=2, newest=True) == store_runs_of(db)[-2:]
    assert stored_runs(db.parent / "none.db") == []


def store_runs_of(db: Path) -> list[RunRecord]:
    s = Store(db)
    try:
        return s.runs(experiment="exp")
    finally:
        s.close()
