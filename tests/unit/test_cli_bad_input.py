"""`convoy run` on bad input: exit 2, a file:line:column message, and nothing started or stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoy.cli.main import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("CONVOY_HOME", str(h))
    return h


def _run(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["run", str(path)])
    return code, capsys.readouterr().err


def test_yaml_syntax_error_exits_2_naming_file_line_column(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A YAML syntax error exits 2 with file:line:column and starts no coordinator."""
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nimage: convoy/busybox:1\ncommand: [echo, hi\nretries: 1\n")
    code, err = _run(spec, capsys)
    assert code == 2
    assert f"{spec}:4:8:" in err
    assert not home.exists()


def test_wrong_field_type_exits_2_naming_file_line_column(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cpus: two` exits 2 pointing at the value's line and column, saying what was expected."""
    spec = tmp_path / "typed.yaml"
    spec.write_text("name: x\nimage: convoy/busybox:1\ncommand: echo hi\nresources:\n  cpus: two\n")
    code, err = _run(spec, capsys)
    assert code == 2
    assert f"{spec}:5:9:" in err and "expected a positive number" in err
    assert not home.exists()


def test_missing_file_exits_2(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing experiment file exits 2 and says so."""
    code, err = _run(tmp_path / "nope.yaml", capsys)
    assert code == 2 and "no such experiment file" in err


def test_commands_without_a_coordinator_say_how_to_start_one(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`convoy cancel` with no coordinator exits 1 and names `convoy up`; `convoy runs` reads
    the store instead (none here: no runs), and says so."""
    assert main(["cancel", "q-1"]) == 1
    assert "convoy up" in capsys.readouterr().err
    assert main(["runs"]) == 0
    out, err = capsys.readouterr()
    assert out == "no runs\n" and "no coordinator runs" in err
