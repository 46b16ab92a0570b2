"""Carrying out a Launch: bring a run's revision, inputs, image and build to its host, then start
its attempt. Each step waits while the host is away and goes on when it answers (every step is
idempotent per attempt); the lifecycle hears how far it got (Phase), that it started
(AttemptStarted), or why it could not (LaunchFailed, with a reason code and a sentence).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from convoy.coordinator.hosts.session import HostSession, outcome_of
from convoy.coordinator.runs.events import (
    AttemptEnded,
    AttemptStarted,
    Event,
    LaunchFailed,
    Phase,
)
from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.sources.builds import BuildKeeper, failure_reason
from convoy.coordinator.sources.images import ImageError, ImageShipper
from convoy.coordinator.sources.sync import Syncer
from convoy.errors import ConvoyError
from convoy.states import Reason, RunState

log = logging.getLogger("convoy.coordinator")


class Launcher:
    def __init__(
        self, syncer: Syncer, images: ImageShipper, builds: BuildKeeper, owner: str,
        emit: Callable[[Event], None], progress: Callable[[str], str] = lambda _: "",
    ) -> None:  # fmt: skip
        self.syncer = syncer
        self.images = images
        self.builds = builds
        self.owner = owner
        self.emit = emit
        self.progress = progress  # submission id -> its `progress:` regex ("" none)

    async def launch(self, run: RunRecord, host: HostSession) -> None:
        aid = run.attempt_id
        try:
            await self._launch(run, host)
        except _Failed as f:
            self.emit(LaunchFailed(aid, f.code, f.message, time.time(), f.exit_code))
        except ConvoyError as e:
            self.emit(LaunchFailed(aid, Reason.RUNTIME_ERROR, e.render(), time.time()))
        except grpc.aio.AioRpcError as e:  # the agent refused a step for a reason of its own
            why = f"the agent on {host.name} refused it: {e.details()}"
            self.emit(LaunchFailed(aid, Reason.RUNTIME_ERROR, why, time.time()))
        except Exception as e:  # a bug of the coordinator's: the run is retried, and it is said
            log.exception("launching %s on %s failed in the coordinator", aid, host.name)
            why = f"the coordinator failed launching it ({type(e).__name__}: {e})"
            self.emit(LaunchFailed(aid, Reason.INTERNAL_ERROR, why, time.time()))

    async def _launch(self, run: RunRecord, host: HostSession) -> None:
        aid = run.attempt_id
        revisions = (run.revision, *run.inputs.values())
        prepared = False
        if not self.syncer.fresh(host.name, revisions):
            self.emit(Phase(aid, RunState.SYNCING))
            prepared = True
            for rev_id in revisions:
                try:
                    await self._sync(host, rev_id)
                except (ConvoyError, ValueError, OSError) as e:
                    raise _Failed(Reason.SYNC_FAILED, f"its sources could not be sent to "
                                  f"{host.name}: {_render(e)}") from e  # fmt: skip
        await self._image(host, run.image)
        await self.builds.prepare(run)
        build = self.builds.spec(run)
        if build is not None and not self.builds.ready(host.name, run):
            if build.image:
                await self._image(host, build.image)
            self.emit(Phase(aid, RunState.BUILDING))
            prepared = True
            built = await host.call(lambda: self.builds.ensure(host.name, host.client, run))
            if built is not None and not built.succeeded:
                raise _Failed(Reason.BUILD_FAILED, failure_reason(host.name, built),
                              built.exit_code)  # fmt: skip
        elif build is not None:  # the host holds it: no call, but the submission's record
            await self.builds.note_ready(host.name, run)
        if prepared:
            self.emit(Phase(aid, RunState.STARTING))
        key = self.builds.key(run)
        pattern = self.progress(run.submission_id)
        outcome = await host.call(lambda: host.client.start(
            run, revision=run.revision, build_key=key, owner=self.owner,
            progress=pattern))  # fmt: skip
        if outcome.state == "error":
            if outcome.lacks_revision:
                self.syncer.forget(host.name)  # collected there since it was confirmed
                raise _Failed(Reason.SYNC_FAILED, f"{host.name} no longer had its revision")
            code = _reason(outcome.code, Reason.RUNTIME_ERROR)
            raise _Failed(code, f"it could not start on {host.name}: {outcome.reason}")
        self.emit(AttemptStarted(aid, outcome.started_at or time.time()))
        if outcome.ended:  # it ended before the answer came (the watch says so too)
            self.emit(AttemptEnded(aid, outcome_of(outcome)))

    async def _sync(self, host: HostSession, revision: str) -> None:
        rev = self.syncer.revision(revision)
        await host.call(lambda: self.syncer.ensure_on_host(host.name, host.client, rev))

    async def _image(self, host: HostSession, image: str) -> None:
        try:
            await host.call(lambda: self.images.ensure(host.name, host.client, image))
        except ImageError as e:
            raise _Failed(Reason.IMAGE_FAILED, e.render()) from e
        except grpc.aio.AioRpcError as e:
            raise _Failed(Reason.IMAGE_FAILED, f"image {image!r} could not be brought to "
                          f"{host.name}: {e.details()}") from e  # fmt: skip


class _Failed(Exception):
    def __init__(self, code: Reason, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def _reason(code: str, default: Reason) -> Reason:
    try:
        return Reason(code) if code else default
    except ValueError:
        return default


def _render(e: BaseException) -> str:
    return e.render() if isinstance(e, ConvoyError) else str(e) or type(e).__name__
