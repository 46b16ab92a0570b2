"""SQLite persistence for submissions, runs and every run state transition.

WAL mode; a submission and all its runs are committed in one transaction before Submit answers.
Calls are short and synchronous: the coordinator's event loop calls them directly (each write is
well under a millisecond for single rows), and batches where it writes many rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from convoy.coordinator.runs.events import AttemptPhase, AttemptRecord, Outcome
from convoy.coordinator.runs.identity import Earlier, Memo
from convoy.coordinator.runs.records import RunRecord, SubmissionRecord
from convoy.coordinator.runs.scheduler import Units
from convoy.spec import DEFAULT_DISK_BYTES, Limits, Resources
from convoy.states import ACTIVE, TERMINAL, Reason, RunState

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, seq INTEGER NOT NULL, spec_path TEXT NOT NULL,
    spec_yaml TEXT NOT NULL, source_dir TEXT NOT NULL, results_dir TEXT NOT NULL,
    revision TEXT NOT NULL, priority INTEGER NOT NULL, created_at REAL NOT NULL,
    total INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, submission_id TEXT NOT NULL REFERENCES submissions(id),
    experiment TEXT NOT NULL, idx INTEGER NOT NULL, params_json TEXT NOT NULL,
    command_json TEXT NOT NULL, env_json TEXT NOT NULL, image TEXT NOT NULL, cpus REAL NOT NULL,
    memory_bytes INTEGER NOT NULL, gpus INTEGER NOT NULL, retries INTEGER NOT NULL,
    timeout_seconds REAL NOT NULL, network TEXT NOT NULL, outputs_json TEXT NOT NULL,
    revision TEXT NOT NULL, results_path TEXT NOT NULL, priority INTEGER NOT NULL,
    seq INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL, host TEXT NOT NULL,
    exit_code INTEGER, created_at REAL NOT NULL, started_at REAL NOT NULL,
    ended_at REAL NOT NULL, reason TEXT NOT NULL, image_id TEXT NOT NULL,
    inputs_json TEXT NOT NULL DEFAULT '{}', code TEXT NOT NULL DEFAULT '',
    infra_retries INTEGER NOT NULL DEFAULT 3, app_failures INTEGER NOT NULL DEFAULT 0,
    infra_failures INTEGER NOT NULL DEFAULT 0, limits_json TEXT NOT NULL DEFAULT '',
    disk_bytes INTEGER NOT NULL DEFAULT 10737418240, run_key TEXT NOT NULL DEFAULT '',
    key_parts_json TEXT NOT NULL DEFAULT '{}', memo_json TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_submission ON runs(submission_id, idx);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs(state);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment, seq);
CREATE INDEX IF NOT EXISTS runs_by_submission_state ON runs(submission_id, state);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, at REAL NOT NULL, from_state TEXT NOT NULL,
    to_state TEXT NOT NULL, reason TEXT NOT NULL, host TEXT NOT NULL, attempt INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_run ON transitions(run_id, id);
CREATE TABLE IF NOT EXISTS attempts (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, number INTEGER NOT NULL, host TEXT NOT NULL,
    millicpus INTEGER NOT NULL, memory_bytes INTEGER NOT NULL, gpus INTEGER NOT NULL,
    phase TEXT NOT NULL, held INTEGER NOT NULL, kept INTEGER NOT NULL, outcome_json TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts(run_id);
CREATE TABLE IF NOT EXISTS folders_due (run_id TEXT PRIMARY KEY);
"""

_RUN_COLUMNS = (
    "id, submission_id, experiment, idx, params_json, command_json, env_json, image, cpus, "
    "memory_bytes, gpus, retries, timeout_seconds, network, outputs_json, revision, results_path, "
    "priority, seq, state, attempt, host, exit_code, created_at, started_at, ended_at, reason, "
    "image_id, inputs_json, code, infra_retries, app_failures, infra_failures, limits_json, "
    "disk_bytes, run_key, key_parts_json, memo_json"
)

# Columns added after the first release, with their definitions: added to older stores on open.
_ADDED_COLUMNS = {
    "runs": {
        "inputs_json": "TEXT NOT NULL DEFAULT '{}'",
        "code": "TEXT NOT NULL DEFAULT ''",
        "infra_retries": "INTEGER NOT NULL DEFAULT 3",
        "app_failures": "INTEGER NOT NULL DEFAULT 0",
        "infra_failures": "INTEGER NOT NULL DEFAULT 0",
        "limits_json": "TEXT NOT NULL DEFAULT ''",  # '': the defaults (convoy.spec.Limits)
        "disk_bytes": f"INTEGER NOT NULL DEFAULT {DEFAULT_DISK_BYTES}",
        "run_key": "TEXT NOT NULL DEFAULT ''",  # '': stored before runs had keys
        "key_parts_json": "TEXT NOT NULL DEFAULT '{}'",
        "memo_json": "TEXT NOT NULL DEFAULT ''",
    }
}


def _run_row(r: RunRecord) -> tuple[object, ...]:
    command = r.command if isinstance(r.command, str) else list(r.command)
    return (
        r.id, r.submission_id, r.experiment, r.index, json.dumps(r.params), json.dumps(command),
        json.dumps(r.env), r.image, r.resources.cpus, r.resources.memory_bytes, r.resources.gpus,
        r.retries, r.timeout_seconds, r.network, json.dumps(list(r.outputs)), r.revision,
        r.results_path, r.priority, r.seq, r.state.value, r.attempt, r.host, r.exit_code,
        r.created_at, r.started_at, r.ended_at, r.reason, r.image_id, json.dumps(r.inputs),
        r.code.value if r.code else "", r.infra_retries, r.app_failures, r.infra_failures,
        "" if r.limits == Limits() else json.dumps(dataclasses.asdict(r.limits)),
        r.resources.disk_bytes, r.key, json.dumps(r.key_parts),
        r.memo.to_json() if r.memo is not None else "",
    )  # fmt: skip


# What a run's life changes (besides its state), and what it never does once submitted.
_LIVE_COLUMNS = (
    "attempt, host, exit_code, started_at, ended_at, reason, image_id, code, app_failures, "
    "infra_failures"
)
_SET_LIVE = ", ".join(f"{c.strip()} = ?" for c in _LIVE_COLUMNS.split(","))
_SET_LIVE_AND_STATE = _SET_LIVE + ", state = ?"
_IDS_PER_STATEMENT = 500  # well under SQLite's bound parameters limit
_FIXED_FIELDS = (
    "submission_id", "experiment", "index", "params", "command", "env", "image", "resources",
    "retries", "timeout_seconds", "network", "outputs", "revision", "results_path", "priority",
    "seq", "created_at", "inputs", "infra_retries", "limits", "key", "key_parts", "memo",
)  # fmt: skip


def _live_row(r: RunRecord) -> tuple[object, ...]:
    return (
        r.attempt, r.host, r.exit_code, r.started_at, r.ended_at, r.reason, r.image_id,
        r.code.value if r.code else "", r.app_failures, r.infra_failures,
    )  # fmt: skip


def _run_from(row: sqlite3.Row) -> RunRecord:
    command = json.loads(row["command_json"])
    return RunRecord(
        id=row["id"],
        submission_id=row["submission_id"],
        experiment=row["experiment"],
        index=row["idx"],
        params=json.loads(row["params_json"]),
        command=command if isinstance(command, str) else tuple(command),
        env=json.loads(row["env_json"]),
        image=row["image"],
        resources=Resources(row["cpus"], row["memory_bytes"], row["gpus"], row["disk_bytes"]),
        retries=row["retries"],
        timeout_seconds=row["timeout_seconds"],
        network=row["network"],
        outputs=tuple(json.loads(row["outputs_json"])),
        revision=row["revision"],
        results_path=row["results_path"],
        priority=row["priority"],
        seq=row["seq"],
        state=RunState(row["state"]),
        attempt=row["attempt"],
        host=row["host"],
        exit_code=row["exit_code"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        reason=row["reason"],
        image_id=row["image_id"],
        inputs=json.loads(row["inputs_json"]),
        code=Reason(row["code"]) if row["code"] else None,
        infra_retries=row["infra_retries"],
        app_failures=row["app_failures"],
        infra_failures=row["infra_failures"],
        limits=Limits(**json.loads(row["limits_json"])) if row["limits_json"] else Limits(),
        key=row["run_key"],
        key_parts=json.loads(row["key_parts_json"]),
        memo=Memo.from_json(row["memo_json"]),
    )


def _attempt_row(a: AttemptRecord) -> tuple[object, ...]:
    o = a.outcome
    outcome = None if o is None else json.dumps({
        "code": o.code.value, "message": o.message, "exit_code": o.exit_code,
        "started_at": o.started_at, "ended_at": o.ended_at, "image_id": o.image_id,
    })  # fmt: skip
    u = a.units
    return (a.id, a.run_id, a.number, a.host, u.millicpus, u.memory_bytes, u.gpus,
            a.phase.value, int(a.held), int(a.kept), outcome)  # fmt: skip


def _attempt_from(row: sqlite3.Row) -> AttemptRecord:
    outcome = None
    if row["outcome_json"]:
        o = json.loads(row["outcome_json"])
        outcome = Outcome(Reason(o["code"]), o["message"], o["exit_code"], o["started_at"],
                          o["ended_at"], o["image_id"])  # fmt: skip
    return AttemptRecord(
        id=row["id"], run_id=row["run_id"], number=row["number"], host=row["host"],
        units=Units(row["millicpus"], row["memory_bytes"], row["gpus"]),
        phase=AttemptPhase(row["phase"]), held=bool(row["held"]), outcome=outcome,
        kept=bool(row["kept"]),
    )  # fmt: skip


def _insert_submission(
    db: sqlite3.Connection, sub: SubmissionRecord, runs: Sequence[RunRecord]
) -> None:
    with _Tx(db):
        db.execute(
            "INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                sub.id, sub.experiment, sub.seq, sub.spec_path, sub.spec_yaml, sub.source_dir,
                sub.results_dir, sub.revision, sub.priority, sub.created_at, sub.total,
            ),
        )  # fmt: skip
        marks = ",".join("?" * len(_RUN_COLUMNS.split(",")))
        db.executemany(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({marks})", [_run_row(r) for r in runs]
        )
        db.executemany(
            "INSERT INTO transitions (run_id, at, from_state, to_state, reason, host, attempt)"
            " VALUES (?,?,?,?,?,?,?)",
            [(r.id, r.created_at, "", r.state.value, r.reason, "", 0) for r in runs],
        )


STATE_DB = "state.db"  # in the coordinator's home


def _select_runs(
    db: sqlite3.Connection, submission_id: str, states: Sequence[RunState], limit: int,
    experiment: str, newest: bool,
) -> list[RunRecord]:  # fmt: skip
    sql = f"SELECT {_RUN_COLUMNS} FROM runs"
    where: list[str] = []
    args: list[object] = []
    for column, value in (("submission_id", submission_id), ("experiment", experiment)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        args.extend(s.value for s in states)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC, idx DESC" if newest and limit else " ORDER BY seq, idx"
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = [_run_from(r) for r in db.execute(sql, args)]
    return rows[::-1] if newest and limit else rows


def stored_runs(
    path: Path, submission_id: str = "", states: Sequence[RunState] = (), limit: int = 0,
    experiment: str = "", newest: bool = False,
) -> list[RunRecord]:  # fmt: skip
    """Store.runs of the store at `path`, only read (a coordinator may be running or not;
    WAL: the last commit), none when there is no store. sqlite3.Error when it cannot be read
    (or lacks a column this convoy added: a coordinator adds them when it opens it)."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return _select_runs(db, submission_id, states, limit, experiment, newest)
    finally:
        db.close()


def stored_submissions(path: Path) -> list[SubmissionRecord]:
    """Store.submissions of the store at `path`, only read, as stored_runs reads runs."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT * FROM submissions ORDER BY seq").fetchall()
    finally:
        db.close()
    return [SubmissionRecord(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118


def in_flight_on(path: Path, host: str) -> list[tuple[str, str]]:
    """(run id, state) of the runs the store at `path` has in flight on `host`, in submission
    order: only read (though SQLite may make its -wal and -shm files), and none when there
    is no store yet. Safe beside a running coordinator
    (WAL: a reader sees the last commit). sqlite3.Error when it cannot be read."""
    if not path.exists():
        return []
    db = sqlite3.connect(str(path))
    try:
        states = sorted(s.value for s in ACTIVE)
        rows = db.execute(
            f"SELECT id, state FROM runs WHERE host = ? AND state IN "
            f"({','.join('?' * len(states))}) ORDER BY seq, idx",
            (host, *states),
        ).fetchall()
    finally:
        db.close()
    return [(str(r[0]), str(r[1])) for r in rows]


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, definition in columns.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    def close(self) -> None:
        self._db.close()

    def next_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM submissions").fetchone()
        return int(row[0]) + 1

    def submission_numbers(self, experiment: str) -> set[int]:
        rows = self._db.execute("SELECT id FROM submissions WHERE experiment = ?", (experiment,))
        out: set[int] = set()
        for (sid,) in rows:
            tail = sid.rsplit("-", 1)[-1]
            if tail.isdigit():
                out.add(int(tail))
        return out

    def add_submission(self, sub: SubmissionRecord, runs: Sequence[RunRecord]) -> None:
        """The submission and all its runs, with their first transitions, in one transaction."""
        _insert_submission(self._db, sub, runs)

    def add_submission_apart(self, sub: SubmissionRecord, runs: Sequence[RunRecord]) -> None:
        """add_submission on a connection of its own, for a worker thread: a sweep of a hundred
        thousand runs is stored while the event loop's connection goes on serving (WAL)."""
        db = sqlite3.connect(str(self.path), isolation_level=None, timeout=60)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            _insert_submission(db, sub, runs)
        finally:
            db.close()

    def update_runs(self, changes: Iterable[tuple[RunRecord, RunRecord, float]]) -> None:
        """Persist (before, after, at) changes; a state change also records a transition."""
        with self._tx():
            self._update_runs(changes)

    def apply(
        self, changes: Iterable[tuple[RunRecord, RunRecord, float]],
        saved: Iterable[AttemptRecord] = (), forgotten: Iterable[str] = (),
        folders_due: Iterable[str] = (),
    ) -> None:  # fmt: skip
        """Run changes and the attempts ledger's, in one transaction: what one decision of
        the lifecycle changed is stored whole or not at all. `folders_due`: runs that ended
        whose folder is still to be written (folders_written clears them)."""
        with self._tx():
            self._update_runs(changes)
            self._db.executemany("INSERT OR IGNORE INTO folders_due VALUES (?)",
                                 [(i,) for i in folders_due])  # fmt: skip
            self._db.executemany(
                "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [_attempt_row(a) for a in saved],
            )
            self._db.executemany("DELETE FROM attempts WHERE id = ?", [(i,) for i in forgotten])

    def unfinished(self, submission_id: str) -> list[str]:
        """The ids of a submission's runs that have not ended, in order (no records made)."""
        ended = sorted(s.value for s in TERMINAL)
        rows = self._db.execute(
            f"SELECT id FROM runs WHERE submission_id = ? AND state NOT IN "
            f"({','.join('?' * len(ended))}) ORDER BY idx", (submission_id, *ended),
        )  # fmt: skip
        return [r[0] for r in rows]

    def count_failed(self, submission_id: str, codes: Iterable[Reason]) -> int:
        """How many of the submission's runs ended failed with one of these codes."""
        wanted = sorted(c.value for c in codes)
        row = self._db.execute(
            f"SELECT COUNT(*) FROM runs WHERE submission_id = ? AND state = ? AND code IN "
            f"({','.join('?' * len(wanted))})", (submission_id, RunState.FAILED.value, *wanted),
        ).fetchone()  # fmt: skip
        return int(row[0])

    def any_unfinished(self, submission_id: str) -> bool:
        """Whether a run of the submission has not ended: a few index seeks, one per state a
        run can be in before it ends (a count would walk a large sweep's index at each end)."""
        going = sorted(s.value for s in RunState if s not in TERMINAL)
        row = self._db.execute(
            f"SELECT 1 FROM runs WHERE submission_id = ? AND state IN "
            f"({','.join('?' * len(going))}) LIMIT 1", (submission_id, *going),
        ).fetchone()  # fmt: skip
        return row is not None

    def folders_due(self) -> list[str]:
        """Runs that ended with their folder still to be written (a crash came between)."""
        return [r[0] for r in self._db.execute("SELECT run_id FROM folders_due ORDER BY run_id")]

    def folders_written(self, run_ids: Sequence[str]) -> None:
        with self._tx():
            self._db.executemany("DELETE FROM folders_due WHERE run_id = ?",
                                 [(i,) for i in run_ids])  # fmt: skip

    def attempts(self) -> list[AttemptRecord]:
        """The attempts ledger: every attempt not yet released whole from its host."""
        return [_attempt_from(r) for r in self._db.execute("SELECT * FROM attempts ORDER BY id")]

    def _update_runs(self, changes: Iterable[tuple[RunRecord, RunRecord, float]]) -> None:
        """Only what a run's life changes is written (its state column only when it changed:
        each indexed column set costs index updates); runs given the same values (a sweep
        cancelled) share one UPDATE, transitions go in many-row INSERTs. Few statements, not
        one per run: each releases and retakes the interpreter lock, which a busy worker
        thread holds for milliseconds. A change to anything else writes the whole row."""
        whole = ", ".join(f"{c.strip()} = ?" for c in _RUN_COLUMNS.split(",")[1:])
        alike: dict[tuple[str, tuple[object, ...]], list[str]] = {}
        moves: list[object] = []
        for before, after, at in changes:
            if any(getattr(before, f) != getattr(after, f) for f in _FIXED_FIELDS):
                key = (whole, _run_row(after)[1:])
            elif before.state != after.state:
                key = (_SET_LIVE_AND_STATE, (*_live_row(after), after.state.value))
            else:
                key = (_SET_LIVE, _live_row(after))
            alike.setdefault(key, []).append(after.id)
            if before.state != after.state:
                moves += (after.id, at, before.state.value, after.state.value, after.reason,
                          after.host, after.attempt)  # fmt: skip
        for (sets, values), ids in alike.items():
            for i in range(0, len(ids), _IDS_PER_STATEMENT):
                some = ids[i : i + _IDS_PER_STATEMENT]
                self._db.execute(
                    f"UPDATE runs SET {sets} WHERE id IN ({','.join('?' * len(some))})",
                    (*values, *some),
                )
        width = 7 * _IDS_PER_STATEMENT // 4  # values of a quarter as many transitions
        for i in range(0, len(moves), width):
            some_moves = moves[i : i + width]
            rows = ",".join(["(?,?,?,?,?,?,?)"] * (len(some_moves) // 7))
            self._db.execute(
                "INSERT INTO transitions (run_id, at, from_state, to_state, reason, host, "
                f"attempt) VALUES {rows}", some_moves,
            )  # fmt: skip

    def runs(
        self, submission_id: str = "", states: Sequence[RunState] = (), limit: int = 0,
        experiment: str = "", newest: bool = False,
    ) -> list[RunRecord]:  # fmt: skip
        """Runs in submission order, then by index; `limit` (0: all) of them, the first or,
        `newest`, the last."""
        return _select_runs(self._db, submission_id, states, limit, experiment, newest)

    def runs_apart(self, submission_id: str) -> list[RunRecord]:
        """A submission's runs read on a connection of its own, for a worker thread (WAL: the
        last commit), while the event loop's connection goes on serving."""
        db = sqlite3.connect(str(self.path), timeout=60)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE submission_id = ? ORDER BY seq, idx",
                (submission_id,),
            )
            return [_run_from(r) for r in rows]
        finally:
            db.close()

    def earlier_apart(self, experiment: str) -> list[Earlier]:
        """The experiment's runs that have keys, in submission order, as memoisation needs them
        (for a worker thread: a connection of its own). Whether each succeeded one's results
        folder is still there is looked at here."""
        db = sqlite3.connect(str(self.path), timeout=60)
        try:
            rows = db.execute(
                "SELECT id, state, run_key, key_parts_json, memo_json, results_path FROM runs "
                "WHERE experiment = ? AND run_key != '' ORDER BY seq, idx", (experiment,),
            ).fetchall()  # fmt: skip
        finally:
            db.close()
        out = []
        for run_id, state, key, parts, memo_json, results_path in rows:
            memo = Memo.from_json(memo_json)
            done = state == RunState.SUCCEEDED.value and os.path.isdir(results_path)
            out.append(Earlier(run_id, state, key, json.loads(parts),
                               memo.reuse if memo else "", done))  # fmt: skip
        return out

    def runs_by_id_apart(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """The runs of the given ids (those there are), on a connection of its own."""
        db = sqlite3.connect(str(self.path), timeout=60)
        db.row_factory = sqlite3.Row
        out: dict[str, RunRecord] = {}
        try:
            for i in range(0, len(run_ids), _IDS_PER_STATEMENT):
                some = list(run_ids[i : i + _IDS_PER_STATEMENT])
                rows = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id IN "
                                  f"({','.join('?' * len(some))})", some)  # fmt: skip
                out.update((r["id"], _run_from(r)) for r in rows)
        finally:
            db.close()
        return out

    def revisions_in_use(self, since: float) -> set[str]:
        """Revisions (sources and inputs) of runs that have not ended, and of runs and
        submissions made or ended since `since`: what the coordinator's store must keep."""
        ended = sorted(s.value for s in TERMINAL)
        rows = self._db.execute(
            f"SELECT revision, inputs_json FROM runs WHERE state NOT IN "
            f"({','.join('?' * len(ended))}) OR created_at >= ? OR ended_at >= ?",
            [*ended, since, since],
        )
        found: set[str] = set()
        for revision, inputs_json in rows:
            found.add(revision)
            inputs = json.loads(inputs_json or "{}")
            found.update(v for v in inputs.values() if isinstance(v, str))
        recent = "SELECT revision FROM submissions WHERE created_at >= ?"
        found.update(r for (r,) in self._db.execute(recent, [since]))
        return found - {""}

    def run(self, run_id: str) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return _run_from(row) if row else None

    def submission(self, sub_id: str) -> SubmissionRecord | None:
        row = self._db.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        if row is None:
            return None
        return SubmissionRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118

    def submissions(self) -> list[SubmissionRecord]:
        rows = self._db.execute("SELECT * FROM submissions ORDER BY seq")
        return [SubmissionRecord(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118

    def transitions(self, run_id: str) -> list[tuple[float, str, str, str]]:
        rows = self._db.execute(
            "SELECT at, from_state, to_state, reason FROM transitions WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        return [tuple(r) for r in rows]

    def attempt_hosts(self, run_id: str) -> dict[int, str]:
        """Attempt number -> the host it ran on, for each attempt of the run that ran."""
        rows = self._db.execute(
            "SELECT attempt, host FROM transitions WHERE run_id = ? AND to_state = ? ORDER BY id",
            (run_id, "running"),
        )
        return {int(a): str(h) for a, h in rows}

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
