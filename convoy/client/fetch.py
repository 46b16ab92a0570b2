"""Fetching a submission's results folder from the coordinator to this machine.

The coordinator streams the folder's regular files (Fetch); a run that reused an earlier run's
result comes with that run's files under its own name, so the folder written here stands alone
(a copy, not the coordinator's relative link to a folder this machine may not have). Each
path is checked before anything is written: relative, no '..', and not through a link that
leaves the destination. A file is written beside its place and renamed over it, so a fetch
cut short leaves no half file; an existing file with other content is left as it is unless
`force` (those are reported), and one with the same content is not written again.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from convoy.content import SyncError, check_relpath
from convoy.errors import ConvoyError
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc


class FetchError(ConvoyError):
    """A fetched file could not be written where it belongs."""


@dataclass
class Fetched:
    folder: Path
    experiment: str = ""
    written: list[str] = field(default_factory=list)  # new or replaced
    same: list[str] = field(default_factory=list)  # already there with this content
    kept: list[str] = field(default_factory=list)  # there with other content: left (no force)
    bytes: int = 0  # received


@dataclass(frozen=True)
class _Writing:
    final: Path
    tmp: Path
    rel: str
    file: BinaryIO


def default_folder(submission: str, experiment: str) -> Path:
    """./convoy-results/<experiment>/<submission>, as a local run lays its results out."""
    return Path("convoy-results") / experiment / submission


def _place(root: Path, rel: str) -> Path:
    """Where a file of the stream goes, refused when its path could leave `root`."""
    check_relpath(rel)
    target = root / rel
    parent = os.path.realpath(target.parent)
    real_root = os.path.realpath(root)
    if parent != real_root and not parent.startswith(real_root + os.sep):
        raise SyncError("leaves the destination folder (through a symbolic link)", rel)
    if target.is_symlink():
        raise SyncError("is a symbolic link in the destination folder", rel)
    return target


def _same(path: Path, tmp: Path) -> bool:
    try:
        if path.stat().st_size != tmp.stat().st_size:
            return False
        return path.read_bytes() == tmp.read_bytes()
    except FileNotFoundError:
        return False


async def fetch_results(
    stub: pb_grpc.CoordinatorStub, submission: str, folder: Path | None = None,
    force: bool = False,
) -> Fetched:  # fmt: skip
    """Write a submission's results folder to `folder` (default_folder unless given)."""
    got = Fetched(folder or Path())
    out: _Writing | None = None  # the file being received
    try:
        async for chunk in stub.Fetch(pb.FetchRequest(submission_id=submission)):
            if chunk.experiment and not got.experiment:
                got.experiment = chunk.experiment
                if folder is None:
                    got.folder = default_folder(submission, chunk.experiment)
            if out is None:
                final = _place(got.folder, chunk.path)
                final.parent.mkdir(parents=True, exist_ok=True)
                _place(got.folder, chunk.path)  # its folders made: checked again
                tmp = final.parent / f".convoy-fetch-{uuid.uuid4().hex}"
                f = open(tmp, "xb")  # noqa: SIM115 - closed below, or in finally
                os.fchmod(f.fileno(), (chunk.mode & 0o777) or 0o644)
                out = _Writing(final, tmp, chunk.path, f)
            out.file.write(chunk.data)
            got.bytes += len(chunk.data)
            if chunk.last:
                out.file.close()
                final, tmp, rel, out = out.final, out.tmp, out.rel, None
                if _same(final, tmp):
                    got.same.append(rel)
                    tmp.unlink()
                elif final.exists() and not force:
                    got.kept.append(rel)
                    tmp.unlink()
                else:
                    os.replace(tmp, final)
                    got.written.append(rel)
    except (SyncError, OSError) as e:
        raise FetchError(f"cannot write the results under {got.folder}: {e}") from None
    finally:
        if out is not None:
            out.file.close()
            out.tmp.unlink(missing_ok=True)
    if folder is None and not got.experiment:  # nothing came: where it would have gone
        got.folder = default_folder(submission, submission.rpartition("-")[0] or submission)
    return got
