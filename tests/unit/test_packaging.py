"""convoy installs as one package: agent/, coordinator/ and tui/ are convoy.agent,
convoy.coordinator and convoy.tui, and nothing imports them by their folder names."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from convoy.buildid import NOT_SHIPPED
from convoy.buildid import own_files as _own_files

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("agent", "coordinator", "tui")
SKIP = {".venv", ".git", "build", "v1", "node_modules"}


def sources() -> list[Path]:
    return [
        p for p in ROOT.rglob("*.py")
        if not SKIP & set(p.relative_to(ROOT).parts)
        and p.relative_to(ROOT).parts[:2] not in {("convoy", f) for f in FOLDERS}  # the links
    ]  # fmt: skip


def top_level_imports(source: str) -> set[str]:
    """Absolute imports whose first name is one of the folders."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found.update(n for n in names if n.split(".")[0] in FOLDERS)
    return found


def test_the_folders_are_links_into_convoy() -> None:
    """convoy/agent, convoy/coordinator and convoy/tui are the top-level folders themselves."""
    for name in FOLDERS:
        assert (ROOT / "convoy" / name).resolve() == (ROOT / name).resolve()


def test_nothing_imports_the_folders_by_their_own_names() -> None:
    """Every import says convoy.agent (and so on): `import agent` works only from a checkout."""
    found = sources()
    assert len(found) > 100 and ROOT / "agent" / "server.py" in found
    bad = {str(p.relative_to(ROOT)): imps for p in found
           if (imps := top_level_imports(p.read_text()))}  # fmt: skip
    assert bad == {}
    assert top_level_imports("import agent.server\nfrom tui.app import X") == {
        "agent.server", "tui.app"}  # fmt: skip


def test_the_agent_bundle_ships_convoy_without_the_coordinator_and_the_tui() -> None:
    names = [name for name, _ in _own_files()]
    assert "convoy/agent/server.py" in names and "convoy/agent/__main__.py" in names
    assert "convoy/v1/agent_pb2.py" in names and "convoy/spec.py" in names
    assert not [n for n in names if n.split("/")[1] in NOT_SHIPPED]
    assert all(n.startswith("convoy/") and "__pycache__" not in n for n in names)


def test_a_built_wheel_holds_only_convoy(tmp_path: Path) -> None:
    """`pip wheel --no-deps .`: the top-level names are convoy and its dist-info."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("convoy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"convoy", wheel.name.split("-py")[0] + ".dist-info"}
    for sub in FOLDERS:
        assert f"convoy/{sub}/__init__.py" in names
    assert "convoy/agent/__main__.py" in names and "convoy/v1/coordinator_pb2.py" in names
