"""An experiment's build step on a host: once per key, incremental from revision to revision.

    builds/<key>/upper           the build's overlay upper: every file it made or changed
    builds/<key>/ovlwork         overlay's scratch folder
    builds/<key>/result.json     how it ended (written once, when it has)
    builds/<key>/succeeded       present once it succeeded: runs may then lie on its upper
    builds/latest/<experiment>   {"key", "revision"} of the experiment's last succeeded build

Only a succeeded build is kept for reuse: asked again, a failed one runs again (the
coordinator shares one result among the runs of a submission). A build runs as an attempt
whose /work is an overlay: lower = the revision's snapshot, upper = a copy of the experiment's
last succeeded build's upper (object files, binaries, with their modification times), into
which every source that differs between that build's revision and this one is copied anew.
Those copies are newer than anything built from the old content, also when a file went back
to an older content (a snapshot's unchanged files are the same object files as before, so
they keep their times); make and its kin then redo only what changed. When it succeeds, its
upper is frozen: runs of that revision stack it over the snapshot, and the next build starts
from a copy of it. Builds whose revision the store has collected go too, except each
experiment's last one (the next build's starting point).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, overload

from convoy.content import SyncError
from convoy.errors import ConvoyError
from convoy.files import write_json
from convoy.spec import NAME_RE

from .attempts import (
    BUILD_KEY_RE,
    AttemptRequest,
    Attempts,
    AttemptState,
    OutputReplaced,
    open_output,
    succeeded_build_upper,
)
from .trees import ManifestRow, rmtree_quiet

log = logging.getLogger("convoy.agent.builds")

TAIL_LINES = 20
_ATTEMPT_RE = re.compile(r"build-[A-Za-z0-9_.-]{1,120}")


@dataclass(frozen=True)
class BuildResult:
    key: str
    succeeded: bool
    exit_code: int
    reason: str
    tail: str
    attempt_id: str
    built_now: bool
    seconds: float
    revision: str = ""
    experiment: str = ""


def tail_of(path: Path, lines: int = TAIL_LINES, max_bytes: int = 16384) -> str:
    """The last lines of an attempt's output log ('' when there is none to read)."""
    try:
        with open_output(path) as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - max_bytes))
            data = f.read()
    except (OSError, OutputReplaced):
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Builds:
    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts
        self.root = attempts.home / "builds"
        (self.root / "latest").mkdir(parents=True, exist_ok=True)
        self._running: dict[str, asyncio.Future[BuildResult]] = {}

    async def build(self, key: str, req: AttemptRequest) -> BuildResult:
        """Build `key` unless this host has (or is building) it; its result either way."""
        if not BUILD_KEY_RE.fullmatch(key):
            raise ConvoyError(f"not a build key: {key!r}")
        if not NAME_RE.fullmatch(req.experiment):
            raise ConvoyError(f"bad experiment name {req.experiment!r}")
        if not req.revision:
            raise ConvoyError("a build needs a revision")
        done = self.result(key)
        if done is not None and done.succeeded:  # a failed build is tried again when asked
            return replace(done, built_now=False)
        running = self._running.get(key)
        if running is not None:
            return replace(await asyncio.shield(running), built_now=False)
        task = asyncio.ensure_future(self._build(key, req))
        self._running[key] = task
        # Forgotten once done, also when every caller went away meanwhile: a failed build
        # must be tried again by the next call, not answered from a finished task.
        task.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(task)

    def result(self, key: str) -> BuildResult | None:
        try:
            raw = json.loads((self.root / key / "result.json").read_text())
            return BuildResult(**raw)
        except (OSError, ValueError, TypeError):
            return None

    async def _build(self, key: str, req: AttemptRequest) -> BuildResult:
        folder = self.root / key
        if folder.exists():  # a build cut short by an agent restart: start it over
            await asyncio.to_thread(rmtree_quiet, folder)
        folder.mkdir(parents=True)
        # The caller's attempt id (so it can follow the output at once), unless unusable.
        attempt_id = req.attempt_id
        if not _ATTEMPT_RE.fullmatch(attempt_id) or self.attempts.known(attempt_id):
            attempt_id = f"build-{key[:16]}-{uuid.uuid4().hex[:8]}"
        started = time.time()
        try:
            await asyncio.to_thread(self._prepare, folder / "upper", req.experiment, req.revision)
        except (OSError, SyncError, subprocess.CalledProcessError) as e:
            return self._finish(key, req, BuildResult(
                key, False, -1, f"could not prepare the build folder: {e}", "", attempt_id,
                True, time.time() - started, req.revision, req.experiment,
            ))  # fmt: skip
        areq = replace(req, attempt_id=attempt_id, run_id=attempt_id, upper=str(folder / "upper"),
                       build_key="", outputs=())  # fmt: skip
        status = await self.attempts.start(areq)
        if not status.state.ended:
            status = await self.attempts.wait(attempt_id)
        attempt = self.attempts.get(attempt_id)
        ok = status.state is AttemptState.EXITED and status.exit_code == 0
        result = BuildResult(
            key, ok, status.exit_code, "" if ok else f"the build {status.reason}",
            await asyncio.to_thread(tail_of, attempt.log_path), attempt_id, True,
            time.time() - started, req.revision, req.experiment,
        )  # fmt: skip
        # Off the event loop: it removes the build's workspace, which may be large.
        await asyncio.to_thread(self.attempts.release, attempt_id)
        return await asyncio.to_thread(self._finish, key, req, result)

    def _finish(self, key: str, req: AttemptRequest, result: BuildResult) -> BuildResult:
        folder = self.root / key
        if result.succeeded:
            (folder / "succeeded").touch()
            write_json(self.root / "latest" / req.experiment,
                       {"key": key, "revision": req.revision})  # fmt: skip
        write_json(folder / "result.json", asdict(result))
        log.info("build %s of %s: %s in %.1f s", key[:12], req.experiment,
                 "succeeded" if result.succeeded else result.reason, result.seconds)  # fmt: skip
        return result

    def _prepare(self, upper: Path, experiment: str, revision: str) -> None:
        """The build's upper: the last build's, with the sources changed since copied anew."""
        store = self.attempts.objects
        new = {r.path: r for r in store.manifest(revision)}
        previous = self._latest(experiment)
        if previous is None:
            upper.mkdir()
            return
        key, old_revision = previous
        # cp -a keeps what make compares (modification times), modes, and overlay's whiteouts.
        try:
            subprocess.run(["cp", "-a", str(self.root / key / "upper"), str(upper)], check=True,
                           capture_output=True)  # fmt: skip
        except subprocess.CalledProcessError as e:
            # The last build left what its owner cannot read (a folder without read or search
            # permission): build from scratch rather than fail every build from now on.
            log.warning("cannot copy build %s to start from (%s): building from scratch", key,
                        e.stderr.decode(errors="replace").strip())  # fmt: skip
            rmtree_quiet(upper)
            upper.mkdir()
            return
        try:
            old: dict[str, ManifestRow] | None = {r.path: r for r in store.manifest(old_revision)}
        except SyncError:
            old = None  # that revision was collected: every source counts as changed
        for path, row in new.items():
            if not stat.S_ISREG(row.mode) or (old is not None and old.get(path) == row):
                continue
            dest = _folder_in(upper, path, make=True) / path.rpartition("/")[2]
            try:
                st = os.lstat(dest)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(st.st_mode):
                    rmtree_quiet(dest)
                else:
                    dest.unlink()
            shutil.copyfile(store.path_of(row.hash), dest)  # a new file: modified now
            os.chmod(dest, stat.S_IMODE(row.mode))
        for path in set(old or ()) - set(new):
            folder = _folder_in(upper, path, make=False)
            if folder is not None:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    (folder / path.rpartition("/")[2]).unlink()

    def _latest(self, experiment: str) -> tuple[str, str] | None:
        try:
            raw = json.loads((self.root / "latest" / experiment).read_text())
            key, revision = str(raw["key"]), str(raw["revision"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if succeeded_build_upper(self.attempts.home, key) is None:
            return None
        return key, revision

    def collect(self) -> int:
        """Remove the builds whose revision is gone, but each experiment's last; the count."""
        keep = set()
        for latest in (self.root / "latest").iterdir():
            with_key = self._latest(latest.name)
            if with_key is not None:
                keep.add(with_key[0])
        removed = 0
        for folder in self.root.iterdir():
            if folder.name in keep or not BUILD_KEY_RE.fullmatch(folder.name):
                continue
            result = self.result(folder.name)
            if result is None or folder.name in self._running:
                continue
            if not self.attempts.objects.has_revision(result.revision):
                rmtree_quiet(folder)
                removed += 1
        return removed


@overload
def _folder_in(upper: Path, path: str, make: Literal[True]) -> Path: ...
@overload
def _folder_in(upper: Path, path: str, make: Literal[False]) -> Path | None: ...
def _folder_in(upper: Path, path: str, make: bool) -> Path | None:
    """The folder in `upper` that holds the source `path`, every step of the way a real folder.

    The upper is what the last build's container left: any step may be a symlink (to anywhere
    on the host), a file or a whiteout. With `make`, such a step is replaced by a folder, as
    the sources have one there; without, None (the file to delete is not in the upper)."""
    folder = upper
    for name in path.split("/")[:-1]:
        folder = folder / name
        try:
            is_dir = stat.S_ISDIR(os.lstat(folder).st_mode)
        except FileNotFoundError:
            if not make:
                return None
            folder.mkdir()
            continue
        if is_dir:
            continue
        if not make:
            return None
        folder.unlink()  # a symlink, file or whiteout: the unlink never follows it
        folder.mkdir()
    return folder
