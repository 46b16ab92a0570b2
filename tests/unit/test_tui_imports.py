"""The TUI speaks only the coordinator's public API: nothing in tui/ (convoy.tui) imports
convoy.coordinator or convoy.agent, neither in its source (every import statement, wherever it
is) nor at run time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUI = ROOT / "tui"
FORBIDDEN = ("convoy.coordinator", "convoy.agent", "coordinator", "agent")


def imports_of(source: str, module: str) -> set[str]:
    """Every module a source imports (relative ones resolved against `module`), including
    imports inside functions or `if TYPE_CHECKING:` and importlib/__import__ calls with a
    literal name."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name:
                found.add(name)
            found.update(f"{name}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = (func.attr if isinstance(func, ast.Attribute)
                      else func.id if isinstance(func, ast.Name) else "")  # fmt: skip
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
                found.add(str(first.value))
    return found


def forbidden(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f"{f}.") for f in FORBIDDEN))


def tui_modules() -> dict[str, Path]:
    return {
        "convoy.tui" if p.name == "__init__.py" else f"convoy.tui.{p.stem}": p
        for p in sorted(TUI.glob("*.py"))
    }


def test_the_walk_sees_every_tui_module_and_its_imports() -> None:
    """Not vacuous: the modules and some imports they are known to have are found."""
    modules = tui_modules()
    assert {
        f"convoy.tui{m}"
        for m in ("", ".app", ".client", ".model", ".runs_screen", ".hosts_screen", ".logs_screen")
    } <= set(modules)
    app = imports_of(modules["convoy.tui.app"].read_text(), "convoy.tui.app")
    assert {"textual.app", "convoy.tui.client", "convoy.tui.model"} <= app
    assert "convoy.client" in app


def test_no_tui_module_imports_coordinator_or_agent() -> None:
    bad = {
        name: forbidden(imports_of(path.read_text(), name)) for name, path in tui_modules().items()
    }
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize("source", [
    "import coordinator.engine",
    "import convoy.coordinator.engine",
    "from convoy.agent import runtime",
    "from convoy import agent",
    "from agent import runtime",
    "import agent as a",
    "def f():\n    from coordinator.store import Store\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import agent.main\n",
    "import importlib\nimportlib.import_module('coordinator.api')",
    "__import__('agent')",
    "from .. import coordinator",  # from convoy.tui.x: convoy.coordinator
])  # fmt: skip
def test_the_check_catches_a_forbidden_import(source: str) -> None:
    assert forbidden(imports_of(source, "convoy.tui.x")) != []


@pytest.mark.parametrize("source", [
    "import convoy.v1.coordinator_pb2",
    "from convoy.v1 import coordinator_pb2 as pb",
    "from .client import describe",
    "from . import model",
    "import agentx",
    "import convoy.agents",
])  # fmt: skip
def test_the_check_allows_the_api_and_look_alikes(source: str) -> None:
    assert forbidden(imports_of(source, "convoy.tui.x")) == []


def test_importing_the_tui_loads_neither_coordinator_nor_agent() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import convoy.tui, convoy.tui.app\n"
        "for m in pkgutil.iter_modules(convoy.tui.__path__):\n"
        "    importlib.import_module('convoy.tui.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"convoy.tui.app", "convoy.tui.runs_screen", "convoy.tui.client", "textual"} <= loaded
    assert forbidden(loaded) == []
