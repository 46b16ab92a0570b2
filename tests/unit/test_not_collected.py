"""What `convoy run` and `convoy watch` say of results that did not come back (from run.json)."""

from __future__ import annotations

import json
from pathlib import Path

from convoy.cli.run import not_collected


def test_names_the_first_few_and_counts_the_rest(tmp_path: Path) -> None:
    missed = {f"out{i}": "the run made it unreadable" for i in range(5)}
    (tmp_path / "run.json").write_text(json.dumps({"not_collected": missed}))
    line = not_collected("e.3", str(tmp_path))
    assert line == (
        "convoy: e.3: not collected: out0 (the run made it unreadable); out1 (the run made it "
        f"unreadable); out2 (the run made it unreadable) and 2 more (see {tmp_path}/run.json)"
    )


def test_says_nothing_when_all_came_back_or_run_json_cannot_be_read(tmp_path: Path) -> None:
    assert not_collected("e.0", str(tmp_path)) is None  # no run.json here
    (tmp_path / "run.json").write_text(json.dumps({"not_collected": {}}))
    assert not_collected("e.0", str(tmp_path)) is None
    (tmp_path / "run.json").write_text(json.dumps({"files": {}}))  # an earlier version's
    assert not_collected("e.0", str(tmp_path)) is None
    (tmp_path / "run.json").write_text("[1, 2]")
    assert not_collected("e.0", str(tmp_path)) is None
    (tmp_path / "run.json").write_text("{not json")
    assert not_collected("e.0", str(tmp_path)) is None
