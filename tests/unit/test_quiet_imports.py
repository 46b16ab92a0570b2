"""Importing convoy prints nothing: asyncssh's DSA deprecation warnings (about fifteen lines at
every `convoy up`) are silenced where asyncssh is imported, convoy/sshlib.py, and only there."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_what_uses_ssh_prints_no_warning() -> None:
    modules = ["convoy.coordinator.hosts.ssh", "convoy.coordinator.sources.objsend",
               "convoy.coordinator.server", "convoy.cli.main"]  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", "; ".join(f"import {m}" for m in modules)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def test_asyncssh_is_imported_through_sshlib_only() -> None:
    """An `import asyncssh` elsewhere, run before sshlib's, would bring the warnings back."""
    direct = []
    for path in [*ROOT.glob("convoy/*.py"), *ROOT.glob("convoy/cli/*.py"),
                 *ROOT.glob("coordinator/**/*.py"), *ROOT.glob("agent/**/*.py"),
                 *ROOT.glob("tui/**/*.py")]:  # fmt: skip
        if path.name == "sshlib.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            if any(n == "asyncssh" or n.startswith("asyncssh.") for n in names):
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert direct == []
