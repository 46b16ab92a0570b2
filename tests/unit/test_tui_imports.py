"""The TUI speaks only the coordinator's public API: nothing in tui/ imports `coordinator` or
`agent`, neither in its source (every import statement, wherever it is) nor at run time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUI = ROOT / "tui"
FORBIDDEN = ("coordinator", "agent")


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
    return sorted(n for n in names if n.split(".")[0] in FORBIDDEN)


def tui_modules() -> dict[str, Path]:
    return {
        "tui" if p.name == "__init__.py" else f"tui.{p.stem}": p for p in sorted(TUI.glob("*.py"))
    }


def test_the_walk_sees_every_tui_module_and_its_imports() -> None:
    """Not vacuous: the modules and some imports they are known to have are found."""
    modules = tui_modules()
    assert {"tui", "tui.app", "tui.client", "tui.model", "tui.runs_screen",
            "tui.hosts_screen", "tui.logs_screen"} <= set(modules)  # fmt: skip
    app = imports_of(modules["tui.app"].read_text(), "tui.app")
    assert {"textual.app", "tui.client", "tui.model"} <= app
    client = imports_of(modules["tui.client"].read_text(), "tui.client")
    assert "convoy.v1" in client


def test_no_tui_module_imports_coordinator_or_agent() -> None:
    bad = {
        name: forbidden(imports_of(path.read_text(), name)) for name, path in tui_modules().items()
    }
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize("source", [
    "import coordinator.engine",
    "from agent import runtime",
    "import agent as a",
    "def f():\n    from coordinator.store import Store\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import agent.main\n",
    "import importlib\nimportlib.import_module('coordinator.api')",
    "__import__('agent')",
    "from .. import coordinator",  # from tui.x: the top-level package `coordinator`
])  # fmt: skip
def test_the_check_catches_a_forbidden_import(source: str) -> None:
    assert forbidden(imports_of(source, "tui.x")) != []


@pytest.mark.parametrize("source", [
    "import convoy.v1.coordinator_pb2",
    "from convoy.v1 import coordinator_pb2 as pb",
    "from .client import ApiClient",
    "from . import model",
    "import agentx",
])  # fmt: skip
def test_the_check_allows_the_api_and_look_alikes(source: str) -> None:
    assert forbidden(imports_of(source, "tui.x")) == []


def test_importing_the_tui_loads_neither_coordinator_nor_agent() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import tui, tui.app\n"
        "for m in pkgutil.iter_modules(tui.__path__):\n"
        "    importlib.import_module('tui.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"tui.app", "tui.runs_screen", "tui.client", "textual"} <= loaded
    assert forbidden(loaded) == []
