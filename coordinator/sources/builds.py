"""The coordinator's side of build steps: one build per (image, revision, command) per host.

A submission's build spec is read from its stored experiment file. Its key names what the
build's output depends on: the build image's id (its digest, as the coordinator's engine knows
it), the revision and the command. The agent keeps each succeeded build and never runs a key
twice; here, the runs of one submission on one host share a single call (and so a single
failure), and a host known to hold a key's succeeded build needs no call at all. Each build's
output is written to the submission's results folder as build/<host>.log (and how it went as
build/<host>.json); while it runs, it
can be followed as the log of the entry "<submission>.build@<host>".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from pathlib import Path

from convoy.content import hash_bytes
from convoy.coordinator.hosts.agents import AgentClient, BuildOutcome, argv_of
from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.runs.store import Store
from convoy.coordinator.sources.images import ImageError, ImageShipper
from convoy.spec import BuildSpec, load_spec

log = logging.getLogger("convoy.builds")


class BuildKeeper:
    def __init__(self, store: Store, images: ImageShipper) -> None:
        self.store = store
        self.images = images
        # submission -> (its build spec, its build key); every run of a submission shares both
        self._specs: dict[str, tuple[BuildSpec | None, str]] = {}
        self._built: set[tuple[str, str]] = set()  # (host, key) known to have succeeded
        self._made_for: dict[tuple[str, str], str] = {}  # (host, key) -> the submission's
        self._noted: set[tuple[str, str]] = set()  # (submission, host) with a build/ record
        self._reused: set[tuple[str, str]] = set()  # (submission, host) whose build was there
        self._calls: dict[tuple[str, str, str], asyncio.Future[BuildOutcome]] = {}
        # (submission, host) -> the build's attempt id there, and whether it has ended
        self._attempts: dict[tuple[str, str], tuple[str, bool]] = {}

    async def prepare(
        self, run: RunRecord, build: BuildSpec | None = None, *, known: bool = False
    ) -> None:
        """Learn the run's build spec and key, off the event loop (the key asks the
        coordinator's Docker engine for the build image's id). `known`: `build` is the
        submission's build spec (None: it has none), so its stored experiment file need not be
        parsed again."""
        if run.submission_id not in self._specs:
            await asyncio.to_thread(self._spec_and_key, run, build, known)

    def learn(self, submission_id: str, build: BuildSpec | None, key: str) -> None:
        """A submission's build spec and its key, as computed when it was accepted."""
        self._specs.setdefault(submission_id, (build, key))

    def spec(self, run: RunRecord) -> BuildSpec | None:
        return self._spec_and_key(run)[0]

    def key(self, run: RunRecord) -> str:
        """The run's build key; "" when its experiment has no build step."""
        return self._spec_and_key(run)[1]

    def _spec_and_key(
        self, run: RunRecord, build: BuildSpec | None = None, known: bool = False
    ) -> tuple[BuildSpec | None, str]:
        cached = self._specs.get(run.submission_id)
        if cached is None:
            if not known:  # after a restart: from the stored experiment file
                sub = self.store.submission(run.submission_id)
                build = load_spec(sub.spec_yaml, sub.spec_path).build if sub else None
            key = self.key_of(build, run.image, run.revision)
            cached = self._specs[run.submission_id] = (build, key)
        return cached

    def image_id(self, image: str) -> str:
        """The image's id on the coordinator's engine; its name when only hosts have it
        (pulled there). Blocking: an image inspect."""
        try:
            return self.images.local_id(image) or image
        except ImageError:
            return image

    def key_of(self, build: BuildSpec | None, run_image: str, revision: str) -> str:
        """The build key of a build spec over a revision ("" for none). Blocking."""
        if build is None:
            return ""
        what = [self.image_id(build.image or run_image), revision, argv_of(build.command)]
        return hash_bytes(json.dumps(what).encode())

    def ready(self, host: str, run: RunRecord) -> bool:
        """No build to wait for: none is needed, or the host is known to hold it. (Not yet
        prepared: not known, so the run takes the way that prepares it.)"""
        cached = self._specs.get(run.submission_id)
        return cached is not None and (not cached[1] or (host, cached[1]) in self._built)

    async def ensure(self, host: str, client: AgentClient, run: RunRecord) -> BuildOutcome | None:
        """The run's build on `host` (made now, or earlier); None when it needs none."""
        build = self.spec(run)
        if build is None:
            return None
        key = self.key(run)
        call = (host, key, run.submission_id)
        future = self._calls.get(call)
        if future is None:
            attempt_id = f"build-{key[:12]}-{uuid.uuid4().hex[:12]}"
            self._attempts[(run.submission_id, host)] = (attempt_id, False)  # followable now
            future = asyncio.ensure_future(self._build(host, client, run, build, key, attempt_id))
            self._calls[call] = future
            future.add_done_callback(lambda f: f.cancelled() or f.exception() is None
                                     or self._calls.pop(call, None))  # fmt: skip
        return await asyncio.shield(future)

    async def _build(
        self, host: str, client: AgentClient, run: RunRecord, build: BuildSpec, key: str,
        attempt_id: str,
    ) -> BuildOutcome:  # fmt: skip
        entry = (run.submission_id, host)
        try:
            outcome = await client.build(key, run, build, attempt_id)
        finally:
            self._attempts[entry] = (self._attempts[entry][0], True)
        self._attempts[entry] = (outcome.attempt_id, True)
        if outcome.succeeded and not outcome.built_now:
            self._reused.add(entry)
        if outcome.succeeded:
            self._built.add((host, key))
            self._made_for.setdefault((host, key), run.submission_id)
        self._noted.add((run.submission_id, host))
        log.info("build %s of %s on %s: %s", key[:12], run.submission_id, host,
                 ("made" if outcome.built_now else "reused") if outcome.succeeded
                 else outcome.reason)  # fmt: skip
        await self._save_log(host, client, run, outcome)
        return outcome

    async def note_ready(self, host: str, run: RunRecord) -> None:
        """A submission's runs use a build `host` already holds, asking for none: its build/
        folder says so once (what the build was made for, and where its output is)."""
        entry = (run.submission_id, host)
        if entry in self._noted:
            return
        self._noted.add(entry)
        self._reused.add(entry)  # a follower of its build there hears that it was there
        sub = self.store.submission(run.submission_id)
        key = self.key(run)
        maker = self._made_for.get((host, key), "")
        made = self.store.submission(maker) if maker else None
        if sub is None:
            return
        about = {
            "host": host, "key": key, "revision": run.revision, "succeeded": True,
            "made_now": False, "made_for": maker or None,
            "log": str(Path(made.results_dir) / "build" / f"{host}.log") if made else None,
        }  # fmt: skip
        path = Path(sub.results_dir) / "build" / f"{host}.json"
        try:
            await asyncio.to_thread(_write, path, (json.dumps(about, indent=2) + "\n").encode())
        except OSError as e:  # a convenience: the runs go on
            log.warning("noting the build of %s on %s: %s", run.submission_id, host, e)

    def reused(self, submission_id: str, host: str) -> bool:
        """The submission's build on `host` was one made for another (made before, or being
        made; asked for, or known there and not asked for): its output is not the
        submission's."""
        return (submission_id, host) in self._reused

    def attempt(self, submission_id: str, host: str) -> tuple[str, bool] | None:
        """The attempt id of the submission's build on `host`, and whether it has ended."""
        return self._attempts.get((submission_id, host))

    def hosts_of(self, submission_id: str) -> list[str]:
        return sorted(h for s, h in self._attempts if s == submission_id)

    async def _save_log(
        self, host: str, client: AgentClient, run: RunRecord, outcome: BuildOutcome
    ) -> None:
        sub = self.store.submission(run.submission_id)
        if sub is None:
            return
        folder = Path(sub.results_dir) / "build"
        about = {
            "host": host, "key": outcome.key, "revision": run.revision,
            "succeeded": outcome.succeeded, "exit_code": outcome.exit_code,
            "reason": outcome.reason, "made_now": outcome.built_now,
            "seconds": round(outcome.seconds, 3), "attempt": outcome.attempt_id,
        }  # fmt: skip
        text = json.dumps(about, indent=2) + "\n"
        await asyncio.to_thread(_write, folder / f"{host}.json", text.encode())
        # Streamed to a file, not held: a build's output may be larger than memory.
        part = folder / f".{host}.log.part"
        try:
            with open(part, "wb") as f:  # a create on the loop; the writes are threaded
                try:
                    async for _, data in client.read_log(outcome.attempt_id, 0, follow=False):
                        await asyncio.to_thread(f.write, data)
                except Exception as e:  # the log is a convenience; the outcome is what counts
                    log.warning("saving the output of build %s on %s: %s", outcome.key[:12],
                                host, e)  # fmt: skip
            await asyncio.to_thread(os.replace, part, folder / f"{host}.log")
        except Exception as e:  # the file could not be written: none half made, and no raise
            part.unlink(missing_ok=True)
            log.warning("saving the output of build %s on %s: %s", outcome.key[:12], host, e)
        except BaseException:  # cancelled: none half made
            part.unlink(missing_ok=True)
            raise


def _write(path: Path, data: bytes) -> None:
    """One file of a build's record, its folder made if need be (blocking: off the loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def failure_reason(host: str, outcome: BuildOutcome) -> str:
    tail = f"; its last lines:\n{outcome.tail}" if outcome.tail.strip() else ""
    return f"the build failed on {host} ({outcome.reason}){tail}"
