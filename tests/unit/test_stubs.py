"""The committed gRPC stubs in convoy/v1/ are exactly what scripts/gen_proto.py generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_proto.py"
COMMITTED = ROOT / "convoy" / "v1"
HINT = "run python scripts/gen_proto.py"


def load_gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convoy_gen_proto", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub_names(folder: Path) -> set[str]:
    return {
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".py", ".pyi") and p.name != "__init__.py"
    }


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    """Generating the stubs afresh gives the committed convoy/v1 files, byte for byte."""
    load_gen_proto().generate(tmp_path)
    fresh = tmp_path / "convoy" / "v1"
    generated = stub_names(fresh)
    assert generated, f"gen_proto produced no stubs under {fresh}"
    committed = stub_names(COMMITTED)
    assert generated == committed, (
        f"stub files differ: missing from convoy/v1: {sorted(generated - committed)}, "
        f"not generated: {sorted(committed - generated)}; {HINT}"
    )
    stale = [
        n for n in sorted(generated) if (fresh / n).read_bytes() != (COMMITTED / n).read_bytes()
    ]
    assert not stale, f"stale generated stubs in convoy/v1: {stale}; {HINT}"
