"""The agent's attempts: start, watch, cancel, time out, persist, recover.

Each attempt lives in `<home>/attempts/<attempt id>/`: request.json, status.json (rewritten
atomically on each change), manifest.json, work/ (the run's working directory) and
log/output.log (everything the container printed). A restarted agent reads these folders and
finds its containers by label, so nothing a run printed or produced is lost while the agent is away.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from convoy.errors import ConvoyError
from convoy.files import write_json
from convoy.footprint import disk_footprint

from . import workspace
from .objects import ObjectStore, RevisionMissing
from .runtime import ContainerHandle, ContainerRuntime, ContainerSpec
from .trees import rmtree_quiet

log = logging.getLogger("convoy.agent")


class AttemptState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    ERROR = "error"

    @property
    def ended(self) -> bool:
        return self not in (AttemptState.STARTING, AttemptState.RUNNING)


@dataclass(frozen=True)
class AttemptRequest:
    attempt_id: str
    run_id: str
    submission_id: str
    experiment: str
    image: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cpus: float
    memory_bytes: int
    network: str
    timeout_seconds: float
    source_path: str
    outputs: tuple[str, ...] = ()
    revision: str = ""
    inputs: dict[str, str] = field(default_factory=dict)  # name -> revision
    build_key: str = ""  # a succeeded build whose files lie over the revision's (a run's base)
    upper: str = ""  # a build's own upper folder (agent/builds.py); else the attempt's


@dataclass(frozen=True)
class AttemptStatus:
    attempt_id: str
    run_id: str
    state: AttemptState
    exit_code: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0
    reason: str = ""
    image_id: str = ""
    container_id: str = ""
    lacks_revision: bool = False  # an error: the host lacks a revision the run needs


@dataclass
class Attempt:
    request: AttemptRequest
    dir: Path
    status: AttemptStatus
    handle: ContainerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    timed_out: bool = False
    _layout: dict[str, str] | None = field(default=None, repr=False)

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / "output.log"

    @property
    def layout(self) -> dict[str, str]:
        """How the workspace was made (written before the container starts, never changed).
        Kept once read; not while the file is still to be written, or an early look would
        fix the wrong folder for the results for good."""
        if self._layout is None:
            try:
                self._layout = dict(json.loads((self.dir / "workspace.json").read_text()))
            except (OSError, ValueError):
                return {"mode": "copy"}
        return self._layout

    @property
    def results_root(self) -> Path:
        """Where the run's result files are read from."""
        return self.dir / "upper" if self.layout.get("mode") == "overlay" else self.work

    def manifest(self) -> workspace.Manifest:
        raw = json.loads((self.dir / "manifest.json").read_text())
        return {k: tuple(v) for k, v in raw.items()}


BUILD_KEY_RE = re.compile(r"[0-9a-f]{64}")  # a build's key (see agent/builds.py)


def succeeded_build_upper(home: Path, key: str) -> Path | None:
    """The files build `key` made or changed, if it succeeded on this host (agent/builds.py)."""
    folder = home / "builds" / key
    return folder / "upper" if (folder / "succeeded").exists() else None


def overlay_supported() -> bool:
    """Overlay workspaces need overlayfs in this kernel; CONVOY_WORKSPACE=copy turns them off."""
    if os.environ.get("CONVOY_WORKSPACE") == "copy":
        return False
    try:
        return "overlay" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


class OutputReplaced(ConvoyError):
    """The run put something else than its output file at /.convoy/output.log."""


def open_output(path: Path) -> BinaryIO:
    """An attempt's output log, opened for reading. The run may replace it (its folder is
    mounted writable at /.convoy, and the run has the agent's uid): a symlink there is not
    followed, since it could name any file the agent's user may read, and anything but a
    regular file (a FIFO would block the open) is refused: OutputReplaced."""
    try:
        return open_regular(path)
    except OSError as e:
        if e.errno not in RUNS_DOING:
            raise  # the agent's own trouble (EMFILE, EIO, ...): not the run's, and passing
        # The agent made the file: gone, unreadable or a socket, the run changed it.
        if e.errno == errno.ELOOP:
            why = "the run replaced its output log with a symbolic link; convoy does not follow it"
        elif e.errno == errno.EINVAL:
            why = "the run replaced its output log with something not a file"
        else:
            why = f"the run's output log cannot be read: {e.strerror}"
        raise OutputReplaced(why) from None


# Why opening what a run made can fail by the run's doing (a link, not a regular file, removed,
# made unreadable, a socket); other errors are the host's.
RUNS_DOING = frozenset(
    {errno.ELOOP, errno.EINVAL, errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENXIO}
)


def open_regular(path: Path | str) -> BinaryIO:
    """A regular file the run made, opened for reading without following a symlink (ELOOP)
    or waiting on a FIFO; anything else not a regular file is refused with EINVAL."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return os.fdopen(fd, "rb")


def left_out_why(error: UnicodeEncodeError | OSError) -> str:
    """Why a result the run made cannot be sent (an error of open_regular, or of its name)."""
    if isinstance(error, UnicodeEncodeError):
        return "its name is not UTF-8"
    if error.errno == errno.ELOOP:
        return "a symbolic link: convoy does not follow it"
    if error.errno in (errno.EINVAL, errno.ENXIO):
        return "not a regular file"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "the run made it unreadable"
    if error.errno == errno.ENOENT:
        return "gone before it was collected"
    return f"cannot be read: {error.strerror}"


def printable(rel: str) -> str:
    """A path as text: bytes of its name that are not UTF-8 written as \\xNN."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


class UnknownAttempt(ConvoyError):
    def __init__(self, attempt_id: str) -> None:
        super().__init__(f"no attempt {attempt_id!r} on this host")


class Attempts:
    """Every attempt this agent knows, and the containers behind them."""

    def __init__(
        self, home: Path, runtime: ContainerRuntime, agent_id: str, overlay: bool | None = None
    ) -> None:
        self.home = home
        self.root = home / "attempts"
        self.root.mkdir(parents=True, exist_ok=True)
        self.objects = ObjectStore(home / "store")
        self.overlay = overlay_supported() if overlay is None else overlay
        self.runtime = runtime
        self.agent_id = agent_id
        self._attempts: dict[str, Attempt] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, attempt_id: str) -> Attempt:
        try:
            return self._attempts[attempt_id]
        except KeyError:
            raise UnknownAttempt(attempt_id) from None

    def known(self, attempt_id: str) -> bool:
        return attempt_id in self._attempts or (self.root / attempt_id).exists()

    def all(self) -> list[Attempt]:
        return list(self._attempts.values())

    def _set(self, a: Attempt, **changes: Any) -> None:
        a.status = replace(a.status, **changes)
        write_json(a.dir / "status.json", asdict(a.status))
        if a.status.state.ended:
            a.done.set()

    async def start(self, req: AttemptRequest) -> AttemptStatus:
        """Materialise the workspace and start the container. Idempotent per attempt id."""
        if req.attempt_id in self._attempts:
            return self._attempts[req.attempt_id].status
        if not workspace.is_safe_relpath(req.attempt_id) or "/" in req.attempt_id:
            raise ConvoyError(f"bad attempt id {req.attempt_id!r}")
        d = self.root / req.attempt_id
        (d / "log").mkdir(parents=True, exist_ok=True)
        a = Attempt(req, d, AttemptStatus(req.attempt_id, req.run_id, AttemptState.STARTING))
        self._attempts[req.attempt_id] = a
        write_json(d / "request.json", asdict(req))
        self._set(a)
        try:
            workdir, overlay = await asyncio.to_thread(self._prepare_workspace, a)
            a.log_path.touch()
            spec = ContainerSpec(
                attempt_id=req.attempt_id,
                run_id=req.run_id,
                submission_id=req.submission_id,
                experiment=req.experiment,
                agent_id=self.agent_id,
                image=req.image,
                argv=req.argv,
                env=req.env,
                cpus=req.cpus,
                memory_bytes=req.memory_bytes,
                network=req.network,
                workdir=workdir,
                logdir=a.log_path.parent,
                work_overlay=overlay,
                read_only_mounts=tuple(
                    (f"/inputs/{name}", str(self.objects.full_dir(rev)))
                    for name, rev in sorted(req.inputs.items())
                ),
            )
            a.handle = await asyncio.to_thread(self.runtime.start, spec)
        except (ConvoyError, OSError) as e:
            self._set(a, state=AttemptState.ERROR, reason=str(e), ended_at=time.time(),
                      lacks_revision=isinstance(e, RevisionMissing))  # fmt: skip
            # Its revisions' leases and workspace go now: a coordinator told the host lacks
            # a revision syncs it and starts a new attempt, and never releases this one.
            await asyncio.to_thread(self.release, req.attempt_id)
            return a.status
        self._set(
            a, state=AttemptState.RUNNING, container_id=a.handle.container_id,
            started_at=time.time(),
        )  # fmt: skip
        self._watch(a)
        return a.status

    def _prepare_workspace(self, a: Attempt) -> tuple[Path, tuple[str, str, str] | None]:
        """The run's /work: an overlay on its revision's snapshot, or a copy of it.

        Overlay: nothing is copied, and the upper folder then holds exactly the files the run
        created or changed. Copy (no overlayfs, or sources given as a plain folder): the files
        are copied in and their stat recorded, and results are what differs afterwards.
        """
        req = a.request
        for rev in req.inputs.values():
            self.objects.acquire(rev, req.attempt_id)
        if req.revision:
            self.objects.acquire(req.revision, req.attempt_id)  # not collected while in use
            if self.overlay:
                layers = self.objects.revision_layers(req.revision)
                if req.build_key:
                    layers.insert(0, self.build_output(req.build_key))
                lower = ":".join(str(p) for p in layers)
                upper = Path(req.upper) if req.upper else a.dir / "upper"
                scratch = upper.parent / "ovlwork"
                upper.mkdir(exist_ok=True)
                scratch.mkdir(exist_ok=True)
                write_json(a.dir / "workspace.json", {"mode": "overlay"})
                return upper, (lower, str(upper), str(scratch))
            if req.build_key or req.upper:
                raise ConvoyError("build steps need overlayfs on the host (see CONVOY_WORKSPACE)")
            source = self.objects.full_dir(req.revision)
        else:
            source = Path(req.source_path)
        manifest = workspace.materialise(source, a.work)
        write_json(a.dir / "manifest.json", manifest)
        write_json(a.dir / "workspace.json", {"mode": "copy"})
        return a.work, None

    def build_output(self, key: str) -> Path:
        """The files a succeeded build made or changed (see agent/builds.py)."""
        if not BUILD_KEY_RE.fullmatch(key):
            raise ConvoyError(f"not a build key: {key!r}")
        out = succeeded_build_upper(self.home, key)
        if out is None:
            raise ConvoyError(f"no succeeded build {key[:12]} on this host")
        return out

    def _watch(self, a: Attempt) -> None:
        task = asyncio.get_running_loop().create_task(self._monitor(a))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _monitor(self, a: Attempt) -> None:
        assert a.handle is not None
        timer = None
        if a.request.timeout_seconds > 0:
            remaining = a.request.timeout_seconds - (time.time() - a.status.started_at)
            timer = asyncio.get_running_loop().call_later(
                max(remaining, 0), lambda: asyncio.ensure_future(self._time_out(a))
            )
        try:
            ex = await asyncio.to_thread(self.runtime.wait, a.handle)
        except Exception as e:  # the engine went away: the container may still run
            log.exception("waiting for %s failed", a.request.attempt_id)
            self._set(a, state=AttemptState.ERROR, reason=f"lost the container: {e}",
                      ended_at=time.time())  # fmt: skip
            return
        finally:
            if timer is not None:
                timer.cancel()
        if a.timed_out:
            state, reason = (
                AttemptState.TIMED_OUT,
                (f"timed out after {a.request.timeout_seconds:g} s"),
            )
        elif a.cancel_requested:
            state, reason = AttemptState.CANCELLED, "cancelled on request"
        else:
            state = AttemptState.EXITED
            reason = f"exited with code {ex.exit_code}"
            if ex.oom_killed:
                reason += " (killed: out of memory)"
        self._set(
            a, state=state, exit_code=ex.exit_code, started_at=ex.started_at,
            ended_at=ex.ended_at, reason=reason, image_id=ex.image_id,
        )  # fmt: skip
        try:
            await asyncio.to_thread(self.runtime.remove, a.handle)
        except Exception:
            log.exception("removing the container of %s failed", a.request.attempt_id)

    async def _time_out(self, a: Attempt) -> None:
        if a.status.state.ended or a.handle is None:
            return
        a.timed_out = True
        await asyncio.to_thread(self.runtime.stop, a.handle, 5.0)

    async def cancel(self, attempt_id: str, grace: float) -> AttemptStatus:
        a = self.get(attempt_id)
        if a.status.state.ended:
            return a.status
        a.cancel_requested = True
        if a.handle is not None:
            await asyncio.to_thread(self.runtime.stop, a.handle, grace)
        return a.status

    async def wait(self, attempt_id: str) -> AttemptStatus:
        a = self.get(attempt_id)
        await a.done.wait()
        return a.status

    def result_files(self, attempt_id: str) -> tuple[list[str], list[str]]:
        """The attempt's results: the files to send, and the folders the run made unreadable
        that may hold some (what they hold cannot be known), both sorted."""
        a = self.get(attempt_id)
        hidden: list[str] = []
        outputs = a.request.outputs
        if a.layout.get("mode") == "overlay":
            files = workspace.upper_files(a.results_root, hidden)
            if outputs:
                files = workspace.filter_outputs(files, outputs)
        elif not (a.dir / "manifest.json").exists() or not a.work.exists():
            return [], []
        else:
            files = workspace.changed_files(a.work, a.manifest(), hidden)
            if outputs:
                files = workspace.filter_outputs(files, outputs)
        if outputs:
            hidden = [d for d in hidden if workspace.may_hold_outputs(d, outputs)]
        return files, sorted(hidden)

    def results_size(self, attempt_id: str) -> tuple[int, int, int]:
        """(files, disk bytes) of what FetchResults would send, and the output log's disk
        bytes (convoy/footprint.py). A file it would leave out (its name not UTF-8, not
        readable) is not counted: the room asked for is room used."""
        a = self.get(attempt_id)
        files, _ = self.result_files(attempt_id)
        counted = total = 0
        for rel in files:
            path = a.results_root / rel
            try:
                rel.encode()
                st = os.lstat(path)
            except (UnicodeEncodeError, OSError):
                continue
            if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK, follow_symlinks=False):
                counted += 1
                total += disk_footprint(st.st_size)
        try:
            st = os.lstat(a.log_path)
            log_size = disk_footprint(st.st_size) if stat.S_ISREG(st.st_mode) else 0
        except OSError:
            log_size = 0
        return counted, total, log_size

    def release(self, attempt_id: str) -> AttemptStatus:
        """Drop the workspace; keep the log and status until the attempt folder is collected."""
        a = self.get(attempt_id)
        if a.status.state.ended:
            for folder in (a.work, a.dir / "upper", a.dir / "ovlwork"):
                rmtree_quiet(folder)
            for rev in {a.request.revision, *a.request.inputs.values()} - {""}:
                self.objects.release(rev, attempt_id)
        return a.status

    async def recover(self) -> None:
        """Rebuild state from the attempt folders and the containers labelled as ours."""
        handles = {
            h.attempt_id: h for h in await asyncio.to_thread(self.runtime.recover, self.agent_id)
        }
        for d in sorted(self.root.iterdir()):
            try:
                req_raw = json.loads((d / "request.json").read_text())
                st_raw = json.loads((d / "status.json").read_text())
            except (OSError, ValueError):
                continue
            req_raw["argv"] = tuple(req_raw["argv"])
            req_raw["outputs"] = tuple(req_raw.get("outputs", ()))
            req_raw.setdefault("inputs", {})
            req = AttemptRequest(**req_raw)
            st_raw["state"] = AttemptState(st_raw["state"])
            a = Attempt(req, d, AttemptStatus(**st_raw))
            self._attempts[req.attempt_id] = a
            if a.status.state.ended:
                a.done.set()
                continue
            h = handles.get(req.attempt_id)
            if h is None:
                self._set(a, state=AttemptState.ERROR, ended_at=time.time(),
                          reason="the agent restarted and the container is gone")  # fmt: skip
                continue
            a.handle = h
            self._set(a, state=AttemptState.RUNNING, container_id=h.container_id)
            self._watch(a)
        log.info("recovered %d attempts", len(self._attempts))

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
