"""The locks (lock/*.txt, made by scripts/lock.sh) pin what pyproject.toml asks for, agree with
each other, and are what this environment runs: what CI tests is what a fresh machine gets."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.M)


def pins(name: str) -> dict[str, str]:
    text = (ROOT / "lock" / name).read_text()
    found = {canonicalize_name(n): v for n, v in _PIN.findall(text)}
    assert found, f"lock/{name} pins nothing"
    return found


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_every_pin_carries_hashes() -> None:
    """Each pinned distribution lists the sha256 of its files (pip --require-hashes)."""
    for name in ("runtime.txt", "dev.txt"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "lock" / name).read_text())
        pinned = [b for b in blocks if _PIN.match(b)]
        assert pinned and all("--hash=sha256:" in b for b in pinned), name


def test_locks_satisfy_pyproject() -> None:
    """Every dependency (and dev tool) is pinned at a version its range in pyproject.toml allows."""
    for lock, reqs in (("runtime.txt", requirements()), ("dev.txt", requirements("dev"))):
        pinned = pins(lock)
        for req in reqs:
            key = canonicalize_name(req.name)
            assert key in pinned, f"{req.name} is not in lock/{lock}: run scripts/lock.sh"
            assert req.specifier.contains(pinned[key], prereleases=True), (
                f"lock/{lock} pins {req.name}=={pinned[key]}, outside {req}: run scripts/lock.sh"
            )


def test_dev_lock_keeps_the_runtime_versions() -> None:
    """The dev lock is the runtime lock plus the tools: no runtime version differs."""
    runtime, dev = pins("runtime.txt"), pins("dev.txt")
    assert {n: dev.get(n) for n in runtime} == runtime


def test_this_environment_runs_the_locked_versions() -> None:
    """scripts/setup.sh installed exactly lock/dev.txt's versions."""
    wrong = {}
    for name, locked in pins("dev.txt").items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = "not installed"
        if have != locked:
            wrong[name] = (have, locked)
    assert not wrong, f"installed vs locked: {wrong}; run bash scripts/setup.sh"


def test_asyncssh_cannot_be_one_without_the_terrapin_fix() -> None:
    """asyncssh>=2.14 allowed versions without the fix for CVE-2023-48795 (2.14.2)."""
    from packaging.version import Version

    (req,) = [r for r in requirements() if canonicalize_name(r.name) == "asyncssh"]
    assert not req.specifier.contains("2.14.1") and req.specifier.contains("2.14.2")
    for lock in ("runtime.txt", "dev.txt"):
        assert Version(pins(lock)["asyncssh"]) >= Version("2.14.2")
