"""How parameter values are shown: as the experiment file writes them (YAML's true, not
Python's True), in listings and in runs.csv alike."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from convoy.cli.render import params_text
from convoy.client import Run
from convoy.client.convert import run_of
from convoy.coordinator.results.folders import write_runs_csv
from convoy.v1 import coordinator_pb2 as pb
from tests.unit.test_results import make_run


def test_a_boolean_parameter_is_listed_as_the_file_wrote_it() -> None:
    run = _run(params_json=json.dumps({"fast": True, "slow": False, "rho": 0.5, "m": "mm1"}))
    assert params_text(run) == "fast=true slow=false rho=0.5 m=mm1"


def test_runs_csv_writes_booleans_as_the_file_wrote_them(tmp_path: Path) -> None:
    runs = [replace(make_run(tmp_path, i), params={"fast": i == 0, "n": i}) for i in range(2)]
    write_runs_csv(tmp_path / "runs.csv", runs)
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert [(r["param.fast"], r["param.n"]) for r in rows] == [("true", "0"), ("false", "1")]


def _run(**fields: Any) -> Run:
    """A run as the client makes it of the coordinator's Run message."""
    return run_of(pb.Run(**fields))
