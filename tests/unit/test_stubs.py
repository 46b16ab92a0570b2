"""The committed gRPC stubs in convoy/v1/ are what scripts/gen_proto.py generates, and they ask
no newer grpcio or protobuf at import than pyproject.toml lets a user install."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_proto.py"
COMMITTED = ROOT / "convoy" / "v1"
HINT = "run python scripts/gen_proto.py"

# The lines where the generator stamps its own version (grpcio-tools, and the protobuf it
# bundles). A patch release changes only these; they are compared by the version test below.
_GRPC_STAMP = re.compile(r"^GRPC_GENERATED_VERSION = '([0-9.]+)'$", re.M)
_PROTOBUF_COMMENT = re.compile(r"^# Protobuf Python Version: ([0-9.]+)$", re.M)
_PROTOBUF_CHECK = re.compile(
    r"(ValidateProtobufRuntimeVersion\(\n\s+_runtime_version\.Domain\.PUBLIC,\n)"
    r"\s+(\d+),\n\s+(\d+),\n\s+(\d+),\n"
)


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


def unstamped(text: str) -> str:
    """The generated code without the generator's version stamps."""
    text = _GRPC_STAMP.sub("GRPC_GENERATED_VERSION = <version>", text)
    text = _PROTOBUF_COMMENT.sub("# Protobuf Python Version: <version>", text)
    return _PROTOBUF_CHECK.sub(r"\1    <version>\n", text)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def lower_bound(requirement_name: str) -> tuple[int, ...]:
    """The `>=` bound pyproject.toml gives a dependency."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        m = re.fullmatch(rf"{requirement_name}>=([0-9.]+)(?:,.*)?", req.replace(" ", ""))
        if m:
            return version(m.group(1))
    raise AssertionError(f"pyproject.toml has no {requirement_name}>=... dependency")


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    """Generating the stubs afresh gives the committed convoy/v1 files, but for the
    generator's version stamps (a patch release of grpcio-tools changes only those)."""
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
        n
        for n in sorted(generated)
        if unstamped((fresh / n).read_text()) != unstamped((COMMITTED / n).read_text())
    ]
    assert not stale, f"stale generated stubs in convoy/v1: {stale}; {HINT}"


def test_unstamping_keeps_everything_but_the_versions() -> None:
    """Two stubs that differ in their code (not only in a stamp) still differ unstamped."""
    text = (COMMITTED / "agent_pb2_grpc.py").read_text()
    assert _GRPC_STAMP.search(text)
    assert unstamped(text) == unstamped(_GRPC_STAMP.sub("GRPC_GENERATED_VERSION = '9.9.9'", text))
    assert unstamped(text) != unstamped(text.replace("class AgentStub", "class OtherStub"))
    pb2 = (COMMITTED / "agent_pb2.py").read_text()
    assert _PROTOBUF_CHECK.search(pb2) and _PROTOBUF_COMMENT.search(pb2)
    assert "<version>" in unstamped(pb2)


def test_committed_stubs_need_no_newer_runtime_than_pyproject_allows() -> None:
    """The stubs refuse to import with a grpcio or protobuf older than the one they were made
    with: that must be no newer than the lowest version pyproject.toml accepts."""
    for name in sorted(stub_names(COMMITTED)):
        text = (COMMITTED / name).read_text()
        if m := _GRPC_STAMP.search(text):
            assert version(m.group(1)) <= lower_bound("grpcio"), (name, m.group(1))
        if m := _PROTOBUF_CHECK.search(text):
            made_with = tuple(int(x) for x in m.groups()[1:])
            assert made_with <= lower_bound("protobuf"), (name, made_with)
