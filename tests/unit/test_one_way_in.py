"""One way in (issue 22): the CLI and the TUI reach the coordinator only through convoy.client.
No module of theirs imports the generated API (convoy.v1: its messages or stubs), anywhere in
its source; only convoy.client converts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_tui_imports import imports_of

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"convoy.cli": ROOT / "convoy" / "cli", "convoy.tui": ROOT / "tui"}
SHARED = ("watching", "runjson")  # client-side modules of convoy/ that the CLI and TUI use


def modules() -> dict[str, Path]:
    found = {f"{pkg}.{p.stem}".removesuffix(".__init__"): p
             for pkg, folder in FOLDERS.items() for p in sorted(folder.glob("*.py"))}  # fmt: skip
    found.update({f"convoy.{m}": ROOT / "convoy" / f"{m}.py" for m in SHARED})
    return found


def generated(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == "convoy.v1" or n.startswith("convoy.v1."))


def test_the_walk_sees_the_cli_and_the_tui() -> None:
    """Not vacuous: the modules are found, and what they import is seen."""
    found = modules()
    assert {"convoy.cli.main", "convoy.cli.run", "convoy.tui.app", "convoy.watching"} <= set(found)
    assert "convoy.client" in imports_of(found["convoy.cli.run"].read_text(), "convoy.cli.run")


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_cli_or_tui_module_imports_the_generated_api(name: str) -> None:
    path = modules()[name]
    assert generated(imports_of(path.read_text(), name)) == []


@pytest.mark.parametrize("source", [
    "from convoy.v1 import coordinator_pb2 as pb",
    "import convoy.v1.coordinator_pb2_grpc",
    "def f():\n    from convoy.v1 import common_pb2\n",
])  # fmt: skip
def test_the_check_catches_an_import_of_the_generated_api(source: str) -> None:
    assert generated(imports_of(source, "convoy.cli.x")) != []
