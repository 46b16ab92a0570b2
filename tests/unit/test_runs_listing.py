"""`convoy runs`: a running run's percent and a queued run's reason, in the table and the JSON."""

from __future__ import annotations

from typing import Any

from convoy.cli.render import runs_table
from convoy.client import Run
from convoy.client.convert import run_of
from convoy.runjson import run_fields
from convoy.v1 import coordinator_pb2 as pb


def runs() -> list[Run]:
    return [
        _run(id="e-1.0", state="running", host="local", params_json='{"i": 0}',
               progress=45.4, has_progress=True),
        _run(id="e-1.1", state="queued", params_json='{"i": 1}',
               waiting_for="needs 2 cpus; local has 0 cpus free"),
        _run(id="e-1.2", state="succeeded", params_json='{"i": 2}', has_exit_code=True),
    ]  # fmt: skip


def test_the_table_has_progress_and_waiting_columns_when_a_run_has_them() -> None:
    lines = runs_table(runs()).splitlines()
    assert lines[0].split() == ["RUN", "STATE", "EXIT", "HOST", "DURATION", "PROGRESS", "PARAMS",
                                "WAITING", "FOR"]  # fmt: skip
    assert lines[1].split()[-3:] == ["45%", "i=0", "-"]
    assert lines[2].endswith("needs 2 cpus; local has 0 cpus free")


def test_the_table_leaves_them_out_when_no_run_has_them() -> None:
    header = runs_table(runs()[2:]).splitlines()[0]
    assert "PROGRESS" not in header and "WAITING" not in header


def test_runs_json_has_progress_and_waiting_for_while_a_run_goes_on() -> None:
    running, queued, ended = (run_fields(r) for r in runs())
    assert (running["progress"], running["waiting_for"]) == (45.4, None)
    assert (queued["progress"], queued["waiting_for"]) == (
        None, "needs 2 cpus; local has 0 cpus free")  # fmt: skip
    assert (ended["progress"], ended["waiting_for"]) == (None, None)


def _run(**fields: Any) -> Run:
    """A run as the client makes it of the coordinator's Run message."""
    return run_of(pb.Run(**fields))
