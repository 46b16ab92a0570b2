"""FakeRuntime: containers that are only data, for tests and simulated fleets.

No Docker and no processes: each "container" is a JSON file in a state folder (the agent's
``<home>/fake-runtime/<container id>.json``) saying when it started and what it does, its
behaviour read from its spec's env (agent/runtime/fake_behaviour.py). Everything else follows
from the wall clock, so a fake container outlives its agent as a Docker container does: one
started at T with duration D has ended at T + D whatever happened to the agent meanwhile, and
a new FakeRuntime on the same folder (a restarted agent) finds it again by its labels.

Output is appended to logdir/output.log line by line as each line falls due (line i of n at
T + D*i/n), by whoever looks: `wait` as it sleeps, `state`, `stop`, `remove`. Lines that fell
due while no agent was alive are written when the next one looks, so the log ends complete and
in order. What has been written is read from the log's size (from where it stood at start), so
an agent killed between two writes neither loses nor repeats a line.

One FakeRuntime per state folder at a time (the agent's lock on its home sees to that); it is
safe to call from several threads at once.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from convoy.errors import DiskFull, RuntimeFailure
from convoy.files import write_json

from .base import (
    LABEL_PREFIX,
    ContainerExit,
    ContainerHandle,
    ContainerSpec,
    ContainerState,
    container_name,
    labels_for,
    missing_image_message,
)
from .fake_behaviour import OOM_EXIT_CODE, STOP_EXIT_CODE, Behaviour, behaviour_from_env
from .fake_images import fake_image_id, saved_images

log = logging.getLogger("convoy.agent.fake")

MAX_NAP_S = 0.5  # wait() looks at the clock at least this often


@dataclass(frozen=True)
class FakeContainer:
    """One fake container, as kept in its JSON file."""

    container_id: str
    name: str
    labels: dict[str, str]
    image_id: str
    logdir: str
    files_dir: str  # the run's working directory on the host: where its files go
    log_offset: int  # output.log's size at start: what the run wrote begins there
    started_at: float
    behaviour: Behaviour
    stopped_at: float | None = None
    files_written: bool = False

    @property
    def attempt_id(self) -> str:
        return self.labels.get(f"{LABEL_PREFIX}attempt", "")

    @property
    def handle(self) -> ContainerHandle:
        return ContainerHandle(self.container_id, self.attempt_id, dict(self.labels))

    @property
    def natural_end(self) -> float:
        return self.started_at + self.behaviour.duration

    @property
    def stopped(self) -> bool:
        """Ended by stop() before its own end."""
        return self.stopped_at is not None and self.stopped_at < self.natural_end

    @property
    def ended_at(self) -> float:
        return self.stopped_at if self.stopped and self.stopped_at is not None else self.natural_end

    def exit(self) -> ContainerExit:
        if self.stopped:
            code, oom = STOP_EXIT_CODE, False
        elif self.behaviour.oom:
            code, oom = OOM_EXIT_CODE, True
        else:
            code, oom = self.behaviour.exit_code, False
        return ContainerExit(code, self.started_at, self.ended_at, oom, self.image_id)

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["behaviour"] = self.behaviour.to_json()
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FakeContainer:
        raw = dict(raw)
        raw["behaviour"] = Behaviour.from_json(raw["behaviour"])
        return cls(**raw)


class _Output:
    """A container's output as bytes, and where each of its lines ends."""

    def __init__(self, lines: list[str]) -> None:
        encoded = [line.encode() for line in lines]
        self.data = b"".join(encoded)
        self.ends = [0] * len(encoded)
        total = 0
        for i, line in enumerate(encoded):
            total += len(line)
            self.ends[i] = total

    def due_bytes(self, c: FakeContainer, until: float) -> int:
        """How much of the output the run has printed by `until`: line i of n falls due at
        start + duration * i / n (the first at once, the last before the end)."""
        n = len(self.ends)
        if n == 0:
            return 0
        duration = c.behaviour.duration
        if until >= c.natural_end or not math.isfinite(duration) or duration == 0:
            # A run that never ends on its own prints everything at once.
            count = n if until >= c.started_at else 0
        else:
            count = max(0, min(n, math.floor((until - c.started_at) / duration * n) + 1))
        return self.ends[count - 1] if count > 0 else 0

    def next_due(self, c: FakeContainer, written: int) -> float:
        """When the line after the `written` bytes falls due (never, when the log is gone)."""
        index = bisect.bisect_right(self.ends, written)
        if written < 0 or index >= len(self.ends) or not math.isfinite(c.behaviour.duration):
            return math.inf
        return c.started_at + c.behaviour.duration * index / len(self.ends)


class FakeRuntime:
    """A ContainerRuntime whose containers are data (see the module docstring).

    `defaults`: CONVOY_FAKE_* values for what a run's env leaves out. `images`: the images the
    host has (None: every image); `missing_images`: images it lacks all the same, whose start
    or pull fails as Docker's would (a load brings them)."""

    def __init__(
        self,
        state_dir: Path,
        defaults: Mapping[str, str] | None = None,
        *,
        images: Iterable[str] | None = None,
        missing_images: Iterable[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.defaults = dict(defaults or {})
        behaviour_from_env({}, self.defaults)  # a bad default fails here, not at each start
        self._images = None if images is None else set(images)
        self._missing = set(missing_images)
        self._image_ids: dict[str, str] = {}  # ids of loaded images, as their tar gives them
        self._cond = threading.Condition()
        self._containers: dict[str, FakeContainer] = {}
        self._outputs: dict[str, _Output] = {}
        self._load_all()

    # --- images ---------------------------------------------------------------------------

    def version(self) -> str:
        return "fake"

    def has_image(self, image: str) -> str:
        with self._cond:
            present = image not in self._missing and (self._images is None or image in self._images)
            if not present:
                return ""
            return self._image_ids.get(image) or fake_image_id(image)

    def image_id(self, image: str) -> str:
        found = self.has_image(image)
        if not found:
            raise RuntimeFailure(missing_image_message(image))
        return found

    def pull_image(self, image: str) -> str:
        with self._cond:
            if image in self._missing:
                raise RuntimeFailure(f"cannot pull {image}: the fake registry has no such image")
            if self._images is not None:
                self._images.add(image)
        return self.has_image(image)

    def load_image(self, chunks: Iterator[bytes]) -> list[str]:
        """Reads the tags and image ids of a `docker save` stream, so a host that was shipped
        an image reports the coordinator's id for it afterwards."""
        try:
            loaded = saved_images(chunks)
        finally:
            for _ in chunks:  # the sender blocks until its stream is taken to the end
                pass
        with self._cond:
            for name, ident in loaded.items():
                self._missing.discard(name)
                if self._images is not None:
                    self._images.add(name)
                if ident:
                    self._image_ids[name] = ident
        return list(loaded)

    # --- containers -----------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerHandle:
        workdir, logdir = spec.workdir.resolve(), spec.logdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        logdir.mkdir(parents=True, exist_ok=True)
        log_path = logdir / "output.log"
        log_path.touch()
        name = container_name(spec.attempt_id)
        with self._cond:
            for c in self._containers.values():
                if c.name == name:
                    if c.attempt_id != spec.attempt_id:
                        raise RuntimeFailure(
                            f"container {name} exists and is not attempt {spec.attempt_id}"
                        )
                    return c.handle
            image_id = self.has_image(spec.image)
            if not image_id:
                raise RuntimeFailure(missing_image_message(spec.image))
            try:
                behaviour = behaviour_from_env(spec.env, self.defaults)
            except RuntimeFailure as e:
                raise RuntimeFailure(f"cannot create container {name}: {e}") from None
            if behaviour.disk_full:
                raise DiskFull(f"cannot create container {name}: no space left on device")
            if behaviour.start_error:
                raise RuntimeFailure(f"cannot start container {name}: {behaviour.start_error}")
            files_dir = workdir if spec.work_overlay is None else Path(spec.work_overlay[1])
            c = FakeContainer(
                container_id=secrets.token_hex(32), name=name, labels=labels_for(spec),
                image_id=image_id, logdir=str(logdir), files_dir=str(files_dir),
                log_offset=log_path.stat().st_size, started_at=time.time(), behaviour=behaviour,
            )  # fmt: skip
            self._save(c)
            self._catch_up(c, time.time())  # what it prints at once is there on return
            return c.handle

    def wait(self, handle: ContainerHandle) -> ContainerExit:
        with self._cond:
            while True:
                c = self._get(handle)
                now = time.time()
                c = self._catch_up(c, now)
                if now >= c.ended_at:
                    return c.exit()
                wake = min(c.ended_at, self._output(c).next_due(c, self._written(c)))
                self._cond.wait(min(max(wake - now, 0.001), MAX_NAP_S))

    def stop(self, handle: ContainerHandle, grace_seconds: float) -> None:
        """Ends it at once, as a command that exits on SIGTERM (the grace is not simulated)."""
        with self._cond:
            c = self._find(handle.container_id)
            if c is None:
                return
            now = time.time()
            c = self._catch_up(c, now)
            if now < c.ended_at:
                self._save(replace(c, stopped_at=now))
                self._cond.notify_all()

    def remove(self, handle: ContainerHandle) -> None:
        with self._cond:
            c = self._find(handle.container_id)
            if c is None:
                return
            self._catch_up(c, time.time())  # what it printed until now stays in its log
            (self.state_dir / f"{c.container_id}.json").unlink(missing_ok=True)
            self._containers.pop(c.container_id, None)
            self._outputs.pop(c.container_id, None)
            self._cond.notify_all()

    def state(self, handle: ContainerHandle) -> ContainerState:
        with self._cond:
            c = self._get(handle)
            now = time.time()
            c = self._catch_up(c, now)
            if now < c.ended_at:
                return ContainerState(status="running", running=True, exit=None)
            return ContainerState(status="exited", running=False, exit=c.exit())

    def recover(self, agent_id: str) -> list[ContainerHandle]:
        with self._cond:
            self._load_all()
            ours = [
                c for c in self._containers.values()
                if c.labels.get(f"{LABEL_PREFIX}managed") == "1"
                and c.labels.get(f"{LABEL_PREFIX}agent") == agent_id
            ]  # fmt: skip
            ours.sort(key=lambda c: (c.started_at, c.container_id))
            return [c.handle for c in ours]

    # --- bookkeeping (the lock held) ------------------------------------------------------

    def _load_all(self) -> None:
        """Take in the containers on disk (also those another instance started)."""
        for path in sorted(self.state_dir.glob("*.json")):
            if path.stem in self._containers:
                continue
            c = self._read(path)
            if c is not None:
                self._containers[c.container_id] = c

    def _read(self, path: Path) -> FakeContainer | None:
        try:
            return FakeContainer.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("fake container %s cannot be read, ignored: %s", path, e)
            return None

    def _find(self, container_id: str) -> FakeContainer | None:
        c = self._containers.get(container_id)
        if c is None and "/" not in container_id and container_id:
            c = self._read(self.state_dir / f"{container_id}.json")
            if c is not None:
                self._containers[container_id] = c
        return c

    def _get(self, handle: ContainerHandle) -> FakeContainer:
        c = self._find(handle.container_id)
        if c is None:
            raise RuntimeFailure(f"container {handle.container_id[:12]} is gone")
        return c

    def _save(self, c: FakeContainer) -> None:
        write_json(self.state_dir / f"{c.container_id}.json", c.to_json())
        self._containers[c.container_id] = c

    def _output(self, c: FakeContainer) -> _Output:
        out = self._outputs.get(c.container_id)
        if out is None:
            out = self._outputs[c.container_id] = _Output(c.behaviour.lines)
        return out

    def _written(self, c: FakeContainer) -> int:
        """Bytes of its output already in its log (-1: the log is gone)."""
        try:
            return (Path(c.logdir) / "output.log").stat().st_size - c.log_offset
        except FileNotFoundError:
            return -1

    def _catch_up(self, c: FakeContainer, now: float) -> FakeContainer:
        """Write what the run has printed by `now`, and its files once it has ended."""
        out = self._output(c)
        due = out.due_bytes(c, min(now, c.ended_at))
        written = self._written(c)
        if 0 <= written < due:
            # Appended, as the run's own `>>` would; the log may go with its attempt folder.
            try:
                with open(Path(c.logdir) / "output.log", "ab") as f:
                    f.write(out.data[written:due])
            except FileNotFoundError:
                pass
        if now >= c.ended_at and not c.stopped and not c.behaviour.oom and not c.files_written:
            self._write_files(c)
            c = replace(c, files_written=True)
            self._save(c)
        return c

    def _write_files(self, c: FakeContainer) -> None:
        root = Path(c.files_dir)
        for rel, text in c.behaviour.files:
            path = root / rel
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            except OSError as e:  # the workspace may be gone already: nothing to write into
                log.warning("fake container %s cannot write %s: %s", c.name, path, e)
