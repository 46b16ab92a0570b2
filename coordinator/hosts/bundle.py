"""The agent bundle: what a host needs to run convoy's agent, packed from this machine.

A host has no internet access of its own to count on, so the coordinator ships the agent: a
tar.gz of the package `convoy` (less the coordinator and the TUI, which a host never runs) and
of the distributions the agent imports (grpcio,
protobuf, docker, pyyaml and what they require), copied file by file from the local
site-packages as their RECORDs list them. Compiled extensions (grpc, yaml) tie a full bundle to
this python's major.minor, platform and machine; a "pure" bundle (convoy's own files only) serves
hosts whose python already has those distributions installed.

A bundle's id names its content: convoy's version, a digest of convoy's and the agent's sources
and of the shipped distributions' versions, and the runtime tag. A host keeps each id in its
own folder, so a changed checkout is reinstalled even at the same version number.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import platform
import re
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import convoy
from convoy.buildid import own_build, own_files

# What `python -m convoy.agent` imports beyond the standard library (their requirements too).
# blake3: the content hashes of synced objects (convoy/content.py).
AGENT_DISTRIBUTIONS = ("grpcio", "protobuf", "docker", "pyyaml", "blake3")
# The modules a python must find for a pure bundle to work.
AGENT_MODULES = ("grpc", "google.protobuf", "docker", "yaml", "blake3")
VERSION_FILE = "VERSION"

_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_BUILD_LOCK = threading.Lock()  # hosts connecting at once build the bundle once


@dataclass(frozen=True)
class Runtime:
    """What compiled extensions are tied to: python major.minor, platform and machine."""

    python: str  # "3.11"
    platform: str  # sys.platform: "linux"
    machine: str  # "x86_64"

    def __str__(self) -> str:
        return f"python {self.python} on {self.platform}/{self.machine}"

    @property
    def tag(self) -> str:
        return f"py{self.python.replace('.', '')}-{self.platform}-{self.machine}"


def local_runtime() -> Runtime:
    return Runtime(f"{sys.version_info[0]}.{sys.version_info[1]}", sys.platform, platform.machine())


@dataclass(frozen=True)
class Bundle:
    id: str  # also the folder name on the host: <agent_home>/lib/<id>/
    path: Path  # the tar.gz
    size: int
    pure: bool  # convoy's own files only: the host's python brings the distributions


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions() -> list[importlib.metadata.Distribution]:
    """AGENT_DISTRIBUTIONS and their requirements (extras and absent ones left out), in order."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(AGENT_DISTRIBUTIONS)
    while todo:
        name = _normalise(todo.pop(0))
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if name in map(_normalise, AGENT_DISTRIBUTIONS):
                raise
            continue  # a requirement under a marker that does not apply here (e.g. pywin32)
        seen[name] = dist
        for req in dist.requires or []:
            marker = req.partition(";")[2]
            if "extra" in marker:
                continue
            if m := _REQ_NAME.match(req):
                todo.append(m.group(1))
    return list(seen.values())


def _dist_files(dist: importlib.metadata.Distribution) -> Iterator[tuple[str, Path]]:
    """(name in the bundle, local file) of what `dist` installed into site-packages."""
    for f in dist.files or []:
        rel = Path(str(f))
        if rel.parts[:1] == ("..",) or rel.is_absolute() or _SKIP_PARTS & set(rel.parts):
            continue  # scripts in bin/ and byte code
        if rel.suffix in _SKIP_SUFFIXES:
            continue
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            yield rel.as_posix(), path


def bundle_id(pure: bool = False) -> str:
    """The id of the bundle this coordinator would ship; cheap (reads only convoy's sources)."""
    h = hashlib.sha256(own_build().encode())
    if not pure:
        for dist in _distributions():
            h.update(f"{dist.metadata['Name']}=={dist.version}\0".encode())
    kind = "pure" if pure else local_runtime().tag
    return f"{convoy.__version__}-{kind}-{h.hexdigest()[:12]}"


def _files(pure: bool) -> list[tuple[str, Path]]:
    files = dict(own_files())
    if not pure:
        for dist in _distributions():
            for name, path in _dist_files(dist):
                files.setdefault(name, path)
    return sorted(files.items())


def build_bundle(cache: Path, pure: bool = False) -> Bundle:
    """The bundle as a tar.gz in `cache` (built once per id; later calls reuse the file).
    Bundles of other ids in `cache` (older checkouts) are removed."""
    ident = bundle_id(pure)
    path = cache / f"agent-{ident}.tar.gz"
    with _BUILD_LOCK:
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".agent-", dir=cache)
            try:
                with os.fdopen(fd, "wb") as f:
                    _write_tar(f, ident, pure)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            keep = {path.name, f"agent-{bundle_id(not pure)}.tar.gz"}
            for old in cache.glob("agent-*.tar.gz"):
                if old.name not in keep:
                    old.unlink(missing_ok=True)
    return Bundle(ident, path, path.stat().st_size, pure)


def _write_tar(out: BinaryIO, ident: str, pure: bool) -> None:
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
        for name, local in _files(pure):
            info = tar.gettarinfo(str(local), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0  # the same content makes the same tar
            with open(local, "rb") as f:
                tar.addfile(info, f)
        version = f"{ident}\n".encode()
        info = tarfile.TarInfo(VERSION_FILE)
        info.size, info.mode = len(version), 0o644
        tar.addfile(info, io.BytesIO(version))
