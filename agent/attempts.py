"""The agent's attempts: start, watch, cancel, time out, persist, recover.

Each attempt lives in `<home>/attempts/<attempt id>/`: request.json, status.json (rewritten
atomically on each change), manifest.json, work/ (the run's working directory) and
log/output.log (everything the container printed). A restarted agent reads these folders and
finds its containers by label, so nothing a run printed or produced is lost while the agent is away.

A full disk never stops the agent: a status that cannot be written is kept in memory and
written once there is room again, and an attempt that failed while its disk was full ends
with the code disk_full (the coordinator retries it elsewhere); the agent then takes no new
runs until it has room (`room()`, MIN_FREE). Every change of an attempt's status is also
handed to the watchers (the coordinator's WatchAttempts stream), and so is its progress: the
last percent its experiment's `progress:` pattern found in its output (agent/progress.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from convoy.errors import ConvoyError, DiskFull
from convoy.files import write_json
from convoy.footprint import disk_footprint
from convoy.sizes import human_bytes

from . import workspace
from .objects import ObjectStore, RevisionMissing
from .policy import Policy
from .progress import ProgressReader
from .runtime import ContainerHandle, ContainerRuntime, ContainerSpec
from .trees import own_tree, rmtree_quiet

log = logging.getLogger("convoy.agent")
DISK_CHECK_S = 2.0  # how often what a run wrote is looked at, when looking is quick
PROGRESS_S = 1.0  # how often running attempts' logs are read for their progress


def _written(a: Attempt) -> int:
    """The disk bytes of what the run left in its writable layer (an overlay's upper folder,
    or a copy workspace; the workspace walk's files, links not followed, a folder it made
    unreadable passed over) and of its log."""
    total = workspace.disk_bytes(a.results_root)
    with contextlib.suppress(OSError):
        total += os.lstat(a.log_path).st_blocks * 512
    return total


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
    owner: str = ""  # the coordinator that started it
    disk_bytes: int = 0  # what it may write here (workspace changes and log); 0: no cap
    progress: str = ""  # its experiment's `progress:` regex (group `percent`); "": none


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
    code: str = ""  # once ended, why (convoy.states.Reason)
    progress: float | None = None  # the last percent its output showed (agent/progress.py)


@dataclass
class Attempt:
    request: AttemptRequest
    dir: Path
    status: AttemptStatus
    handle: ContainerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    timed_out: bool = False
    disk_over: int = 0  # bytes it had written when stopped for going over its disk_bytes
    unsaved: bool = False  # its status.json could not be written (a full disk): retried
    reader: ProgressReader | None = field(default=None, repr=False)  # its `progress:` pattern
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


def _look_all(attempts: list[Attempt]) -> list[tuple[Attempt, float]]:
    """Each attempt's newest percent, for those whose output showed one since the last look.
    One whose pattern fails on its output (a pattern too deep for `re`) is not looked at
    again, and the others go on."""
    found = []
    for a in attempts:
        if a.reader is None:
            continue
        try:
            percent = a.reader.look(a.log_path)
        except Exception as e:
            log.warning("attempt %s: its progress pattern failed on its output (%r): no "
                        "more progress for it", a.request.attempt_id, e)  # fmt: skip
            a.reader = None
            continue
        if percent is not None:
            found.append((a, percent))
    return found


def _start_error(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno in FULL:
        return f"its host's disk is full ({e.strerror})"
    return str(e)


class Refused(ConvoyError):
    """The host's policy does not allow what the attempt asks."""


def _start_code(e: BaseException) -> str:
    if isinstance(e, Refused):
        return "refused"
    if isinstance(e, RevisionMissing):
        return "sync_failed"
    if isinstance(e, DiskFull) or (isinstance(e, OSError) and e.errno in FULL):
        return "disk_full"
    return "runtime_error"


class UnknownAttempt(ConvoyError):
    def __init__(self, attempt_id: str) -> None:
        super().__init__(f"no attempt {attempt_id!r} on this host")


FULL = (errno.ENOSPC, errno.EDQUOT)


def min_free(total: int) -> int:
    """The room below which the agent takes no new runs: CONVOY_AGENT_MIN_FREE bytes, or by
    default 2% of its disk, at least 1 MiB and at most 256 MiB."""
    given = os.environ.get("CONVOY_AGENT_MIN_FREE")
    if given and given.isdigit():
        return int(given)
    return max(1 << 20, min(256 << 20, total // 50))


class Attempts:
    """Every attempt this agent knows, and the containers behind them."""

    def __init__(
        self, home: Path, runtime: ContainerRuntime, agent_id: str, overlay: bool | None = None,
        policy: Policy | None = None,
    ) -> None:  # fmt: skip
        self.home = home
        self.root = home / "attempts"
        self.root.mkdir(parents=True, exist_ok=True)
        self.policy = policy or Policy()
        self.owner = self.policy.run_as if self.policy.owns_files else None
        self.objects = ObjectStore(home / "store", owner=self.owner)
        self.overlay = overlay_supported() if overlay is None else overlay
        self.runtime = runtime
        self.agent_id = agent_id
        self._attempts: dict[str, Attempt] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._starts: dict[str, asyncio.Task[AttemptStatus]] = {}
        self._waiters = ThreadPoolExecutor(max_workers=4096, thread_name_prefix="wait")
        self.watchers: set[asyncio.Queue[AttemptStatus]] = set()
        self._full_since = 0.0  # when writing hit a full disk last (0: not since it had room)
        self._progress: asyncio.Task[None] | None = None  # _follow_progress, while it runs

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
        """Change the attempt's status: kept, persisted (or, on a full disk, persisted later),
        and handed to the watchers. Never raises for a full disk."""
        a.status = replace(a.status, **changes)
        self._save(a)
        if a.status.state.ended:
            a.done.set()
        self._tell(a)

    def _tell(self, a: Attempt) -> None:
        for q in self.watchers:
            q.put_nowait(a.status)

    def _save(self, a: Attempt) -> None:
        try:
            write_json(a.dir / "status.json", asdict(a.status))
            a.unsaved = False
        except OSError as e:
            if e.errno not in FULL:
                raise
            if not a.unsaved:
                log.warning("attempt %s: its status cannot be written (%s): kept in memory "
                            "until there is room", a.request.attempt_id, e.strerror)  # fmt: skip
            a.unsaved = True
            self._full_since = time.time()

    def save_unsaved(self) -> None:
        """Write the statuses a full disk kept from being written (called now and then)."""
        for a in self._attempts.values():
            if a.unsaved:
                self._save(a)

    def room(self) -> tuple[bool, str]:
        """Whether this host takes new runs (room on the disk its attempts live on), and why
        not when it does not."""
        try:
            st = os.statvfs(self.root)
        except OSError as e:
            return False, f"its attempts folder cannot be read: {e.strerror}"
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        need = min_free(total)
        if free < need:
            return False, (f"its disk is full: {free >> 20} MiB free where runs are kept "
                           f"(it takes new runs again from {need >> 20} MiB)")  # fmt: skip
        self._full_since = 0.0
        return True, ""

    def _ended_by_full_disk(self) -> bool:
        """The disk filled up during the attempt (it ran out of room, or writing did)."""
        return bool(self._full_since) or not self.room()[0]

    async def start(self, req: AttemptRequest) -> AttemptStatus:
        """Materialise the workspace and start the container. Idempotent per attempt id; a
        caller that goes away (a dropped connection) does not stop a start half way."""
        if req.attempt_id in self._attempts and req.attempt_id not in self._starts:
            return self._attempts[req.attempt_id].status
        task = self._starts.get(req.attempt_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._start(req))
            self._starts[req.attempt_id] = task
            task.add_done_callback(lambda _: self._starts.pop(req.attempt_id, None))
        return await asyncio.shield(task)

    async def _start(self, req: AttemptRequest) -> AttemptStatus:
        if not workspace.is_safe_relpath(req.attempt_id) or "/" in req.attempt_id:
            raise ConvoyError(f"bad attempt id {req.attempt_id!r}")
        d = self.root / req.attempt_id
        a = Attempt(req, d, AttemptStatus(req.attempt_id, req.run_id, AttemptState.STARTING))
        self._attempts[req.attempt_id] = a
        try:
            (d / "log").mkdir(parents=True, exist_ok=True)
            write_json(d / "request.json", asdict(req))
            self._set(a)
            if (refused := self.policy.refuses_network(req.network)) is not None:
                raise Refused(refused)
            workdir, overlay = await asyncio.to_thread(self._prepare_workspace, a)
            a.log_path.touch()
            own_tree(a.log_path.parent, self.owner)  # the run writes its output there
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
                user=self.policy.user,
            )
            a.handle = await asyncio.to_thread(self.runtime.start, spec)
        except (ConvoyError, OSError) as e:
            if isinstance(e, OSError) and e.errno in FULL:
                self._full_since = time.time()
            self._set(
                a, state=AttemptState.ERROR, reason=_start_error(e), ended_at=time.time(),
                lacks_revision=isinstance(e, RevisionMissing), code=_start_code(e),
            )  # fmt: skip
            # Its revisions' leases and workspace go now: a coordinator told the host lacks
            # a revision syncs it and starts a new attempt, and never releases this one.
            await asyncio.to_thread(self.release, req.attempt_id)
            return a.status
        self._set(
            a, state=AttemptState.RUNNING, container_id=a.handle.container_id,
            started_at=time.time(),
        )  # fmt: skip
        self._watch(a)
        if a.cancel_requested:  # asked to stop while it was starting
            await asyncio.to_thread(self.runtime.stop, a.handle, 10.0)
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
                own_tree(upper, self.owner)  # what the run writes lands here
                write_json(a.dir / "workspace.json", {"mode": "overlay"})
                return upper, (lower, str(upper), str(scratch))
            if req.build_key or req.upper:
                raise ConvoyError("build steps need overlayfs on the host (see CONVOY_WORKSPACE)")
            source = self.objects.full_dir(req.revision)
        else:
            source = Path(req.source_path)
        manifest = workspace.materialise(source, a.work)
        own_tree(a.work, self.owner)
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
        if a.request.progress:
            try:
                a.reader = ProgressReader(a.request.progress)
            except re.error as e:  # the coordinator checked it: not expected
                log.warning("attempt %s: its progress pattern is not a regular expression "
                            "(%s): no progress for it", a.request.attempt_id, e)  # fmt: skip
                return
            if self._progress is None or self._progress.done():
                self._progress = asyncio.get_running_loop().create_task(self._follow_progress())
                self._tasks.add(self._progress)
                self._progress.add_done_callback(self._tasks.discard)

    async def _follow_progress(self) -> None:
        """Every PROGRESS_S, what the running attempts with a `progress:` pattern printed
        since the last look is read for it, all of them in one worker thread. A percent that
        changed goes to the watchers (at most once per PROGRESS_S per attempt) and is kept in
        the attempt's status, written to status.json with its next change rather than each
        time. Ends when no running attempt has a pattern (the next such start begins it again)."""
        while True:
            running = AttemptState.RUNNING
            following = [a for a in self._attempts.values()
                         if a.reader is not None and a.status.state is running]  # fmt: skip
            if not following:
                return
            for a, percent in await asyncio.to_thread(_look_all, following):
                if a.status.state is AttemptState.RUNNING and percent != a.status.progress:
                    a.status = replace(a.status, progress=percent)
                    self._tell(a)
            await asyncio.sleep(PROGRESS_S)

    async def _monitor(self, a: Attempt) -> None:
        assert a.handle is not None
        timer = None
        if a.request.timeout_seconds > 0:
            remaining = a.request.timeout_seconds - (time.time() - a.status.started_at)
            timer = asyncio.get_running_loop().call_later(
                max(remaining, 0), lambda: asyncio.ensure_future(self._time_out(a))
            )
        disk = None
        if a.request.disk_bytes > 0:
            disk = asyncio.get_running_loop().create_task(self._watch_disk(a))
        try:
            # A thread of its own for each wait, which lasts as long as the run: on the default
            # executor (cpus + 4 threads) a host's running attempts would starve every other
            # blocking call of the agent (starts, workspaces, releases).
            loop = asyncio.get_running_loop()
            ex = await loop.run_in_executor(self._waiters, self.runtime.wait, a.handle)
        except Exception as e:  # the engine went away: the container may still run
            log.exception("waiting for %s failed", a.request.attempt_id)
            self._set(a, state=AttemptState.ERROR, reason=f"the container runtime lost it: {e}",
                      ended_at=time.time(), code="runtime_error")  # fmt: skip
            return
        finally:
            if timer is not None:
                timer.cancel()
            if disk is not None:
                disk.cancel()
        if a.disk_over:
            state, code = AttemptState.EXITED, "disk_limit"
            reason = (f"stopped: it wrote {human_bytes(a.disk_over)} on its host, over its "
                      f"resources.disk ({human_bytes(a.request.disk_bytes)})")  # fmt: skip
        elif a.timed_out:
            state, code = AttemptState.TIMED_OUT, "timeout"
            reason = f"timed out after {a.request.timeout_seconds:g} s"
        elif a.cancel_requested:
            state, code, reason = AttemptState.CANCELLED, "cancelled", "cancelled on request"
        else:
            state, code = AttemptState.EXITED, "exit_code"
            reason = f"exited with code {ex.exit_code}"
            if ex.oom_killed:
                code, reason = "oom_killed", f"{reason} (killed: out of memory)"
            elif ex.exit_code != 0 and await asyncio.to_thread(self._ended_by_full_disk):
                code = "disk_full"
                reason = f"{reason} while its host's disk was full ({self.room()[1]})"
        self._set(
            a, state=state, exit_code=ex.exit_code, started_at=ex.started_at,
            ended_at=ex.ended_at, reason=reason, image_id=ex.image_id, code=code,
        )  # fmt: skip
        try:
            await asyncio.to_thread(self.runtime.remove, a.handle)
        except Exception:
            log.exception("removing the container of %s failed", a.request.attempt_id)

    async def _watch_disk(self, a: Attempt) -> None:
        """Stop the attempt once what it wrote here (its workspace's changes, its log) goes
        over its disk_bytes. Looked at every DISK_CHECK_S, or less often when a look is slow
        (a tree of many files): ten times the look's own time."""
        base: int | None = None
        while not a.status.state.ended and a.handle is not None:
            t0 = time.monotonic()
            used = await asyncio.to_thread(_written, a)
            if base is None:  # a copy workspace holds the sources: only what grows counts
                base = 0 if a.layout.get("mode") == "overlay" else used
            if used - base > a.request.disk_bytes:
                a.disk_over = used - base
                log.warning("attempt %s: wrote %d bytes, over its disk_bytes %d: stopping it",
                            a.request.attempt_id, a.disk_over, a.request.disk_bytes)  # fmt: skip
                await asyncio.to_thread(self.runtime.stop, a.handle, 1.0)
                return
            await asyncio.sleep(max(DISK_CHECK_S, 10 * (time.monotonic() - t0)))

    async def _time_out(self, a: Attempt) -> None:
        if a.status.state.ended or a.handle is None:
            return
        a.timed_out = True
        await asyncio.to_thread(self.runtime.stop, a.handle, 5.0)

    async def cancel(self, attempt_id: str, grace: float) -> AttemptStatus:
        """Stop the attempt's container (its start, if it is starting, ends in a stop)."""
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

    def results_size(self, attempt_id: str) -> tuple[int, int, int, int]:
        """(files, disk bytes) of what FetchResults would send, the output log's disk bytes
        (convoy/footprint.py) and its length. A file it would leave out (its name not UTF-8,
        not readable) is not counted: the room asked for is room used."""
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
            length = st.st_size if stat.S_ISREG(st.st_mode) else 0
        except OSError:
            length = 0
        return counted, total, disk_footprint(length) if length else 0, length

    def release(self, attempt_id: str, whole: bool = False) -> AttemptStatus:
        """Drop the workspace, keeping the log and status; `whole` (an ended attempt): its
        folder too, and the attempt is forgotten."""
        a = self.get(attempt_id)
        if a.status.state.ended:
            for folder in (a.work, a.dir / "upper", a.dir / "ovlwork"):
                rmtree_quiet(folder)
            for rev in {a.request.revision, *a.request.inputs.values()} - {""}:
                self.objects.release(rev, attempt_id)
            if whole:
                if a.handle is not None:
                    self.runtime.remove(a.handle)  # gone already, unless its removal failed
                rmtree_quiet(a.dir)
                self._attempts.pop(attempt_id, None)
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
                self._set(a, state=AttemptState.ERROR, ended_at=time.time(), code="runtime_error",
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
        self._waiters.shutdown(wait=False, cancel_futures=True)  # waits end with their runs
