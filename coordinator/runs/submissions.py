"""Accepting work: a submission (validated, its sources snapshot, its runs stored and queued),
a rerun of some of its runs on the same revision, and what watch mode asks of them. What is
accepted is stored before anything else, then handed to the lifecycle (Submitted).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from convoy.content import SyncError
from convoy.content import revision_id as revision_of
from convoy.coordinator.results.folders import write_runs_csv
from convoy.coordinator.runs.bus import EventBus, RunChanged
from convoy.coordinator.runs.events import Event, Submitted
from convoy.coordinator.runs.identity import KeyMaker, Memo, Memory, run_key
from convoy.coordinator.runs.lifecycle import Lifecycle, labelled
from convoy.coordinator.runs.records import RunRecord, SubmissionRecord, evolve
from convoy.coordinator.runs.scheduler import HostView, Units, why_unplaceable
from convoy.coordinator.runs.store import Store
from convoy.coordinator.sources.builds import BuildKeeper
from convoy.coordinator.sources.sync import RevisionGone, Syncer, diff
from convoy.coordinator.sources.uploads import check_revision
from convoy.errors import ConvoyError, NotFound, UsageError
from convoy.manifest import SOURCES_WARN_BYTES
from convoy.metrics import declared_in
from convoy.sizes import human_bytes
from convoy.spec import (
    ExperimentSpec,
    MetricSpec,
    PlacementSpec,
    error_at_field,
    expand,
    load_spec,
    run_count,
)
from convoy.states import RunState

SUBMIT_CHUNK = 2000  # runs handed to the lifecycle at once; the event loop runs between


def _records(
    spec: ExperimentSpec, sub: SubmissionRecord, keep: set[int] | None, width: int,
    inputs: dict[str, str],
) -> list[RunRecord]:  # fmt: skip
    """The submission's runs as records (those in `keep`, or all), in index order."""
    folder = sub.results_dir
    return [
        RunRecord(
            id=f"{sub.id}.{r.index:0{width}d}",
            submission_id=sub.id,
            experiment=spec.name,
            index=r.index,
            params=r.params,
            command=r.command,
            env=r.env,
            image=spec.image,
            resources=spec.resources,
            retries=spec.retries,
            infra_retries=spec.infra_retries,
            timeout_seconds=spec.timeout_seconds,
            network=spec.network,
            outputs=spec.outputs,
            revision=sub.revision,
            results_path=f"{folder}/{sub.id}.{r.index:0{width}d}",
            priority=sub.priority,
            seq=sub.seq,
            created_at=sub.created_at,
            reason="submitted",
            inputs=inputs,
            limits=spec.limits,
        )
        for r in expand(spec)
        if keep is None or r.index in keep
    ]


def _reusing(run: RunRecord, origin: RunRecord, sub_dir: Path) -> RunRecord:
    """A run already done by `origin`: succeeded as it did, its folder a link to origin's
    (relative, so a results folder moved whole keeps them)."""
    sub_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(run.results_path)
    target = os.path.relpath(os.path.realpath(origin.results_path), folder.parent)
    if not folder.is_symlink():
        folder.symlink_to(target, target_is_directory=True)
    return evolve(
        run, state=RunState.SUCCEEDED, reason=f"already done in {origin.submission_id} "
        f"({origin.id}); its results are linked", attempt=origin.attempt, host=origin.host,
        exit_code=origin.exit_code, started_at=origin.started_at, ended_at=origin.ended_at,
        image_id=origin.image_id, code=origin.code,
    )  # fmt: skip


@dataclass(frozen=True)
class Uploaded:
    """A submission whose sources and inputs a client uploaded (coordinator/sources/uploads.py):
    the revisions to use instead of snapshots of folders, which are on the client's machine."""

    revision: str
    inputs: dict[str, str]  # input name -> its revision
    experiment_file: str = ""  # its path within the sources; "": outside them
    origin: str = ""  # where from, for people


RESULTS = "results"  # under CONVOY_HOME: uploaded submissions' results folders


class Unchanged(Exception):
    """Watch mode: the sources still make the revision the client last submitted."""

    def __init__(self, revision: str) -> None:
        super().__init__(revision)
        self.revision = revision


def source_warnings(source_dir: str, size: int) -> list[str]:
    if size <= SOURCES_WARN_BYTES:
        return []
    return [f"the sources ({source_dir}) hold {human_bytes(size)}: each host is sent all of "
            "it at first; list what the runs do not need in .convoyignore"]  # fmt: skip


def _relative(spec_file: Path, source: Path) -> str | None:
    """The experiment file's path within its sources (resolved), None when outside them."""
    try:
        return spec_file.resolve().relative_to(source).as_posix()
    except (ValueError, OSError):
        return None


def _origin(source_dir: str) -> str:
    """Where an uploaded submission came from, as its sources' label says ("host:/path")."""
    return "" if source_dir.startswith("/") else source_dir.partition(":")[0]


def _lexical(spec_file: Path, source: Path) -> str | None:
    """_relative for a client's paths, which this machine cannot resolve."""
    rel = os.path.relpath(os.path.normpath(spec_file), source)
    return None if rel == ".." or rel.startswith("../") else Path(rel).as_posix()


def _check_path(what: str, path: str) -> None:
    """A path a client gives: absolute (the coordinator's working folder is none of its
    business) and one the file system can take."""
    if "\0" in path:
        raise UsageError(f"{what} holds a NUL character: {path!r}")
    if not path.startswith("/"):
        raise UsageError(f"{what} must be an absolute path, got {path!r}")


class Submissions:
    def __init__(
        self, home: Path, store: Store, syncer: Syncer, builds: BuildKeeper, bus: EventBus,
        life: Lifecycle, feed: Callable[[Event], None],
    ) -> None:  # fmt: skip
        self.home = home
        self.store = store
        self.syncer = syncer
        self.builds = builds
        self.bus = bus
        self.life = life
        self.feed = feed
        self._progress: dict[str, str] = {}  # submission -> its progress regex
        self._placement: dict[str, PlacementSpec] = {}  # submission -> where its runs may go
        self._stop_after: dict[str, int] = {}  # submission -> its on_failure.stop_after
        self._metrics: dict[str, tuple[MetricSpec, ...]] = {}  # submission -> what its runs give
        self._numbering = asyncio.Lock()
        self._queuing: dict[str, asyncio.Event] = {}  # submissions being handed over
        self._accepting: set[asyncio.Future[tuple[SubmissionRecord, list[RunRecord]]]] = set()

    def warnings(self, sub: SubmissionRecord) -> list[str]:
        """What is worth saying about an accepted submission: sources over SOURCES_WARN_BYTES
        (they are stored, and sent to each host, whole at first)."""
        try:
            size = self.syncer.revision(sub.revision).manifest.size
        except (OSError, ValueError, RevisionGone):
            return []
        return source_warnings(sub.source_dir, size)

    def changed_paths(self, old_revision: str, new_revision: str) -> list[str]:
        """Paths added, changed or removed from one revision to the next (for watch mode)."""
        try:
            old, new = self.syncer.revision(old_revision), self.syncer.revision(new_revision)
        except (OSError, ValueError, RevisionGone):  # the earlier one collected: not known
            return []
        changed, removed = diff(old.manifest, new.manifest)
        return sorted({e.path for e in changed} | set(removed))

    def progress_pattern(self, sub: SubmissionRecord) -> str:
        """The submission's `progress:` regex ("" when it has none)."""
        if sub.id not in self._progress:
            self._remember(sub.id, self._parsed(sub))
        return self._progress[sub.id]

    def progress_of(self, sub_id: str) -> str:
        """progress_pattern by the submission's id ("" for one not stored)."""
        if sub_id in self._progress:
            return self._progress[sub_id]
        sub = self.store.submission(sub_id)
        return self.progress_pattern(sub) if sub is not None else ""

    def placement_of(self, sub_id: str) -> PlacementSpec:
        """Where a submission's runs may go (submit seeds it; after a restart it is parsed from
        the stored experiment file)."""
        if sub_id not in self._placement:
            self._remember(sub_id, self._parsed(self.store.submission(sub_id)))
        return self._placement[sub_id]

    def stop_after_of(self, sub_id: str) -> int:
        """The submission's on_failure.stop_after (0: none)."""
        if sub_id not in self._stop_after:
            self._remember(sub_id, self._parsed(self.store.submission(sub_id)))
        return self._stop_after[sub_id]

    def _remember(self, sub_id: str, spec: ExperimentSpec | None) -> None:
        """What the lifecycle and clients ask of a submission's experiment, kept (the spec
        itself is not: a large matrix's values would stay in memory): submit seeds it, and
        after a restart its stored experiment file is parsed once for all of it."""
        self._progress[sub_id] = spec.progress or "" if spec is not None else ""
        self._placement[sub_id] = spec.placement if spec is not None else PlacementSpec()
        self._stop_after[sub_id] = spec.on_failure.stop_after if spec is not None else 0

    @staticmethod
    def _parsed(sub: SubmissionRecord | None) -> ExperimentSpec | None:
        try:
            return load_spec(sub.spec_yaml, sub.spec_path) if sub is not None else None
        except ConvoyError:
            return None

    def metrics_of(self, sub_id: str) -> tuple[MetricSpec, ...]:
        """The metrics a submission's experiment file declares (submit seeds them; after a
        restart they are parsed from the stored experiment file)."""
        if sub_id not in self._metrics:
            sub = self.store.submission(sub_id)
            self._metrics[sub_id] = declared_in(sub.spec_yaml, sub.spec_path) if sub else ()
        return self._metrics[sub_id]

    def known_metrics(self, sub_id: str) -> tuple[MetricSpec, ...] | None:
        """metrics_of, if known without reading the store (None otherwise)."""
        return self._metrics.get(sub_id)

    async def rerun(
        self, sub_id: str, states: Iterable[RunState] = ()
    ) -> tuple[SubmissionRecord, list[RunRecord]]:
        """The given states' runs of a submission, again: a new submission of the same revision,
        inputs, experiment file and results folder."""
        sub = self.store.submission(sub_id)
        if sub is None:
            raise NotFound(f"no submission {sub_id!r}")
        wanted = set(states) or {RunState.FAILED, RunState.LOST, RunState.CANCELLED}
        runs = [r for r in self.store.runs(sub_id) if r.state in wanted]
        if not runs:
            names = ", ".join(sorted(s.value for s in wanted))
            raise UsageError(f"{sub_id} has no runs that ended {names}")
        results_root = Path(sub.results_dir).parent.parent
        reuse = (sub.revision, runs[0].inputs, [r.index for r in runs])
        if results_root == self.home / RESULTS:  # an upload's: its results stay there
            return await self.submit(
                sub.spec_path, sub.spec_yaml, "", sub.priority, reuse=reuse,
                upload=Uploaded(sub.revision, runs[0].inputs, origin=_origin(sub.source_dir)),
            )  # fmt: skip
        return await self.submit(
            sub.spec_path, sub.spec_yaml, str(results_root), sub.priority, reuse=reuse,
        )  # fmt: skip

    async def submit(
        self, spec_path: str, spec_yaml: str, results_dir: str = "", priority: int = 0,
        reuse: tuple[str, dict[str, str], list[int]] | None = None,
        indexes: Sequence[int] = (), same_as: str = "", unless_revision: str = "",
        force: bool = False, upload: Uploaded | None = None,
    ) -> tuple[SubmissionRecord, list[RunRecord]]:  # fmt: skip
        """Validate, snapshot the sources, store the submission and its runs, queue those not
        already done (an earlier run of the same key succeeded; `force`: all of them).
        `reuse`: (revision, input revisions, run indexes) of an earlier submission, run again;
        `same_as`: a submission whose revision and inputs to use, for `indexes` (or all);
        `unless_revision`: raise Unchanged, submitting nothing, if the sources make that one;
        `upload`: the sources and inputs were uploaded, as these revisions (spec_path is then
        the client's, only a label; the results go under CONVOY_HOME/results/)."""
        _check_path("spec_path", spec_path)
        if results_dir:
            if upload is not None:
                raise UsageError("an uploaded submission's results stay on the coordinator "
                                 "(fetch them with `convoy fetch`): no results_dir")  # fmt: skip
            _check_path("results_dir", results_dir)
        spec = load_spec(spec_yaml, spec_path)  # the matrix's size checked, not expanded yet
        total = run_count(spec)
        if upload is not None and not same_as and reuse is None:
            bad = sorted(i for i in set(indexes) if not 0 <= i < total)
            if bad:
                raise UsageError(f"{spec_path}: no runs with indexes {bad[:20]} in its matrix"
                                 f" of {total}")  # fmt: skip
            reuse = self._uploaded(spec, spec_path, upload, list(indexes) or list(range(total)))
            if unless_revision and upload.revision == unless_revision:
                raise Unchanged(upload.revision)
        if same_as:
            earlier = self.store.submission(same_as)
            if earlier is None:
                raise NotFound(f"no submission {same_as!r}")
            if upload is None and Path(earlier.results_dir).parent.parent == self.home / RESULTS:
                # An upload's revisions, named by a client that may not share this machine's
                # files: its results stay here too.
                upload = Uploaded(earlier.revision, {}, origin=_origin(earlier.source_dir))
            some = self.store.runs(same_as, limit=1)
            everything = list(range(total))
            reuse = (earlier.revision, some[0].inputs if some else {}, list(indexes) or everything)
        elif indexes and reuse is None:
            wanted = set(indexes)
            bad = sorted(i for i in wanted if not 0 <= i < total)
            if bad:
                raise UsageError(f"{spec_path}: no runs with indexes {bad[:20]} in its matrix"
                                 f" of {total}")  # fmt: skip
        spec_file = Path(spec_path)
        if upload is not None:  # the client's folder: a label, never looked at here
            source = Path(os.path.normpath(spec_file.parent / spec.sources))
            # A rerun's (or same_as's) upload does not say: the client's paths tell.
            spec_rel = upload.experiment_file or _lexical(spec_file, source)
            label = f"{upload.origin}:{source}" if upload.origin else str(source)
        else:
            source = spec.folders(spec_file)[0]
            spec_rel = _relative(spec_file, source)
            label = str(source)
        if reuse is None and not source.is_dir():
            raise UsageError(f"{spec_path}: sources folder {source} does not exist")
        if upload is None and source.is_relative_to(self.home.resolve()):
            raise UsageError(
                f"{spec_path}: sources folder {source} is inside convoy's state folder "
                f"{self.home}; keep experiments elsewhere"
            )
        if upload is not None:
            results_root = self.home / RESULTS
        else:
            results_root = Path(results_dir) if results_dir else spec_file.parent / "convoy-results"
        width = max(2, len(str(total - 1)))  # of the whole matrix: ids keep their index
        keep = set(reuse[2]) if reuse is not None else set(indexes) if indexes else None
        inputs = spec.folders(spec_file)[1] if reuse is None else {}
        for name, path in inputs.items():
            if not path.is_dir():
                raise UsageError(f"{spec_path}: input {name!r}: folder {path} does not exist")
        req = Units.of(spec.resources)
        hosts = self.life.hosts
        unknown = [n for n in spec.placement.hosts if n not in hosts]
        if unknown:  # a typo would quietly narrow the placement to the other names
            raise UsageError(f"{spec_path}: placement.hosts: no host named "
                             f"{', '.join(map(repr, unknown))}; the hosts: "
                             f"{', '.join(hosts) or 'none'}")  # fmt: skip
        known = [h for h in hosts.values() if h.known]
        allowed = [h for h in known if spec.placement.allows(h.name, h.labels)]
        if not allowed and known:
            names = labelled(known)
            unseen = ", ".join(h.name for h in hosts.values() if not h.known)
            names += f"; not connected yet: {unseen}" if unseen else ""
            raise UsageError(f"{spec_path}: cannot run anywhere: no connected host matches "
                             f"placement ({spec.placement}); the hosts: {names}")  # fmt: skip
        if allowed and not any(h.allows_network(spec.network) for h in allowed):
            said = "; ".join(f"{h.name} allows {', '.join(h.networks)}" for h in allowed)
            raise error_at_field(spec_yaml, spec_path, "network",
                                 f"network: no host it may use allows {spec.network!r} ({said}; "
                                 "a host's own policy.yaml decides)")  # fmt: skip
        problem = why_unplaceable(req, [HostView(h.name, h.capacity) for h in allowed])
        if problem:  # at the resources asked for (or where the file starts, for the defaults)
            raise error_at_field(spec_yaml, spec_path, "resources",
                                 f"cannot run anywhere: {problem}")  # fmt: skip
        try:
            if reuse is not None:
                revision_id, input_revs = reuse[0], dict(reuse[1])
                for kept in (revision_id, *input_revs.values()):  # RevisionGone: collected
                    await asyncio.to_thread(self.syncer.revision, kept)
            else:
                revision = await asyncio.to_thread(
                    self.syncer.snapshot, source, (results_root.resolve(), self.home.resolve())
                )
                revision_id, input_revs = revision.id, {}
                if unless_revision and revision_id == unless_revision:
                    raise Unchanged(revision_id)
            for name, path in inputs.items():
                rev = await asyncio.to_thread(self.syncer.snapshot, path, (self.home.resolve(),))
                input_revs[name] = rev.id
        except SyncError as e:
            raise UsageError(f"{spec_path}: {e}") from None
        # Once stored, a submission is handed to the lifecycle whole even if the client goes
        # away meanwhile: the rest runs as a task of its own, shielded from the request's end.
        task = asyncio.ensure_future(self._accept(
            spec, spec_path, spec_yaml, source, results_root, revision_id, input_revs, priority,
            total, keep, width, force, spec_rel, label,
        ))  # fmt: skip
        self._accepting.add(task)
        task.add_done_callback(self._accepting.discard)
        return await asyncio.shield(task)

    async def _accept(
        self, spec: ExperimentSpec, spec_path: str, spec_yaml: str, source: Path,
        results_root: Path, revision_id: str, input_revs: dict[str, str], priority: int,
        total: int, keep: set[int] | None, width: int, force: bool, spec_rel: str | None,
        source_label: str,
    ) -> tuple[SubmissionRecord, list[RunRecord]]:  # fmt: skip
        """Number, store and queue a validated submission; its runs already done are stored
        as succeeded, their results linked from the earlier run's."""
        # A sweep of 10^5 runs takes seconds to expand, build and store: that work is done in
        # a worker thread, so the coordinator goes on answering (`convoy runs`, heartbeats).
        async with self._numbering:  # one submission at a time takes a number and a seq
            taken = self.store.submission_numbers(spec.name)
            exp_dir = results_root / spec.name
            n = max(taken, default=0) + 1
            while (exp_dir / f"{spec.name}-{n}").exists():
                n += 1
            sub_id = f"{spec.name}-{n}"
            sub_dir = exp_dir / sub_id
            now = time.time()
            sub = SubmissionRecord(
                id=sub_id, experiment=spec.name, seq=self.store.next_seq(), spec_path=spec_path,
                spec_yaml=spec_yaml, source_dir=source_label, results_dir=str(sub_dir),
                revision=revision_id, priority=priority, created_at=now,
                total=total if keep is None else sum(1 for i in keep if 0 <= i < total),
            )  # fmt: skip

            def store() -> tuple[list[RunRecord], str]:
                build_key = self.builds.key_of(spec.build, spec.image, revision_id)
                records = _records(spec, sub, keep, width, input_revs)
                sources = self._sources_key(revision_id, spec_rel)
                records = self._remembered(spec, sub_dir, records, sources, build_key, force)
                self.store.add_submission_apart(sub, records)
                return records, build_key

            records, build_key = await asyncio.to_thread(store)
            self._queuing[sub_id] = asyncio.Event()
        try:
            self._remember(sub_id, spec)
            self._metrics[sub_id] = spec.metrics
            self.builds.learn(sub_id, spec.build, build_key)
            sub_dir.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(write_runs_csv, sub_dir / "runs.csv", records)
            for r in records:
                if r.state is RunState.SUCCEEDED:  # already done: stored as such, not queued
                    self.bus.publish(RunChanged(r, "", now))
            to_run = [r for r in records if r.state is not RunState.SUCCEEDED]
            for i in range(0, len(to_run), SUBMIT_CHUNK):  # queued in chunks, the loop between
                chunk = to_run[i : i + SUBMIT_CHUNK]
                for r in chunk:
                    self.bus.publish(RunChanged(r, "", now))
                self.feed(Submitted(tuple(chunk), spec.placement, spec.on_failure.stop_after))
                await asyncio.sleep(0)
        finally:
            self._queuing.pop(sub_id).set()
        return sub, records

    def _sources_key(self, revision_id: str, rel: str | None) -> str:
        """The sources' part of the runs' keys: their revision less the experiment file, when
        it is among them (`rel`: its path there; None: outside them). What of it matters to a
        run is in the key's other parts (command, parameters, ...), so adding a value to the
        matrix leaves the other runs' keys alone. Blocking (a manifest may be read): a worker
        thread's."""
        if rel is None:
            return revision_id
        try:
            entries = self.syncer.revision(revision_id).manifest.entries
        except (ValueError, OSError, RevisionGone):  # not known
            return revision_id
        rest = [e for e in entries if e.path != rel]
        return revision_id if len(rest) == len(entries) else revision_of(rest)

    def _uploaded(
        self, spec: ExperimentSpec, spec_path: str, upload: Uploaded, indexes: list[int]
    ) -> tuple[str, dict[str, str], list[int]]:
        """An upload's revisions as `reuse` takes them, once checked: well formed, one for
        each input the experiment names (and no other), all stored (PutRevision)."""
        for rev in (upload.revision, *upload.inputs.values()):
            check_revision(rev)
            if not self.syncer.manifest_path(rev).exists():
                raise UsageError(f"{spec_path}: revision {rev} was not uploaded (PutRevision)")
        names = {name for name, _ in spec.inputs}
        if set(upload.inputs) != names:
            given = ", ".join(sorted(upload.inputs)) or "none"
            raise UsageError(f"{spec_path}: the inputs uploaded ({given}) are not the "
                             f"experiment's ({', '.join(sorted(names)) or 'none'})")  # fmt: skip
        return upload.revision, dict(upload.inputs), indexes

    def _remembered(
        self, spec: ExperimentSpec, sub_dir: Path, records: list[RunRecord], sources: str,
        build_key: str, force: bool,
    ) -> list[RunRecord]:  # fmt: skip
        """The records with their keys and what was decided for each: those already done (an
        earlier run of their key succeeded, its results still there) succeeded, their folders
        links to that run's. Blocking (an image inspect, the store, the folders): a worker
        thread's. The links are made before the records are stored: a submission stored is
        never without them."""
        memory = Memory(self.store.earlier_apart(spec.name))
        keys = KeyMaker(revision=sources, inputs=records[0].inputs if records else {},
                        image_id=self.builds.image_id(spec.image), build_key=build_key,
                        network=spec.network, outputs=spec.outputs)  # fmt: skip
        decided = []
        for r in records:  # every run of a submission shares its inputs, image, network, ...
            parts = keys.parts(r.command, r.params, r.env)
            key = run_key(parts)
            decided.append(evolve(r, key=key, key_parts=parts,
                                  memo=memory.decide(parts, force, key)))  # fmt: skip
        origins = self.store.runs_by_id_apart(sorted({r.reused_from for r in decided} - {""}))
        out = []
        for r in decided:
            origin = origins.get(r.reused_from)
            if origin is not None:
                r = _reusing(r, origin, sub_dir)
            elif r.reused_from:  # gone from the store meanwhile: it runs
                r = evolve(r, memo=Memo(text=f"{r.reused_from}'s record is gone"))
            out.append(r)
        return out

    async def queued(self, sub_id: str) -> None:
        """Return once every run of the submission is with the lifecycle (a cancel waits)."""
        if (done := self._queuing.get(sub_id)) is not None:
            await done.wait()
