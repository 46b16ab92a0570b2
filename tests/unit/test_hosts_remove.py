"""`convoy hosts remove` and the coordinator's store: refused while runs are in flight on the
host, --force insists, an unreadable store is a usage error (not a traceback), and an unknown
host is said so first. No coordinator runs: the store is a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoy.cli.main import main
from convoy.coordinator.runs.store import STATE_DB, Store
from convoy.states import RunState
from tests.unit.test_store import T0, make_runs, make_sub

HOSTS = """hosts:
  - name: lab1
    address: 127.0.0.2
  - name: lab2
    address: 127.0.0.3
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    (h / "hosts.yaml").write_text(HOSTS)
    monkeypatch.setenv("CONVOY_HOME", str(h))
    return h


def _running_on(home: Path, host: str) -> str:
    store = Store(home / STATE_DB)
    sub = make_sub(1, total=1)
    [run] = make_runs(sub)
    store.add_submission(sub, [run])
    placed = run.moved(RunState.STARTING, "placed", host=host, attempt=1).moved(
        RunState.SYNCING, "syncing"
    )
    store.update_runs([(run, placed, T0 + 1)])
    store.close()
    return run.id


def test_refused_with_a_run_in_flight_then_forced(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _running_on(home, "lab1")
    assert main(["hosts", "remove", "lab1"]) == 2
    err = capsys.readouterr().err
    assert f"lab1 has 1 run(s) in flight: {run_id} (syncing)" in err and "--force" in err
    assert (home / "hosts.yaml").read_text() == HOSTS
    assert main(["hosts", "remove", "lab2"]) == 0  # nothing in flight there
    assert main(["hosts", "remove", "--force", "lab1"]) == 0
    assert "1 run(s) were in flight on lab1" in capsys.readouterr().err
    assert "lab1" not in (home / "hosts.yaml").read_text()


def test_an_unreadable_store_is_a_usage_error_and_force_goes_on(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / STATE_DB).write_bytes(b"")  # a store with no tables (half made)
    assert main(["hosts", "remove", "nosuch"]) == 2
    assert "no host named 'nosuch'" in capsys.readouterr().err  # the file is checked first
    assert main(["hosts", "remove", "lab1"]) == 2
    assert "cannot read the coordinator's store" in capsys.readouterr().err
    assert (home / "hosts.yaml").read_text() == HOSTS
    assert main(["hosts", "remove", "--force", "lab1"]) == 0
