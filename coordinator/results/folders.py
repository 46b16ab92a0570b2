"""A run's results on the coordinator's disk: files, output log, run.json; runs.csv per submission.

Layout: `<results>/<experiment>/<submission>/<run>/` holding `output.log`, `run.json` and the
files the run created or changed (or its declared outputs), at their paths relative to its working
directory. Everything is written to a staging folder, checked against the agent's checksums, and
renamed into place, so a folder that exists is complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from convoy.agent.workspace import filter_outputs, may_hold_outputs
from convoy.client.convert import run_of
from convoy.coordinator.runs.records import RunRecord
from convoy.coordinator.wire import run_to_pb
from convoy.errors import ConvoyError
from convoy.files import write_json
from convoy.metrics import MetricsRead, from_run_json, read_metrics
from convoy.runjson import run_fields
from convoy.sizes import human_bytes
from convoy.spec import Limits, MetricSpec, param_text


class ResultError(ConvoyError):
    pass


@dataclass(frozen=True)
class FilePiece:
    path: str  # set on a file's first piece only
    mode: int
    data: bytes
    last: bool
    sha256: str
    left_out: str = ""  # set: a result the agent could not send, and why (no data)


NOT_MATCHED = "declared in outputs: the run created or changed no file that matches"
PARAM_COLUMN = "param."  # + a parameter's name: its column in runs.csv


def duration(run: RunRecord) -> float | None:
    """As run.json says it (convoy.runjson.duration_s), from the record itself."""
    if run.started_at and run.ended_at:
        return round(run.ended_at - run.started_at, 3)
    return None


def run_json(
    run: RunRecord,
    files: dict[str, dict[str, Any]] | None = None,
    output_attempt: int = 0,
    not_collected: dict[str, str] | None = None,
    metrics: MetricsRead | None = None,
) -> dict[str, Any]:
    """The fields of run.json: what `convoy runs --json` prints for each run, and with
    `files`, the results' files, which attempt's output output.log holds (0: none; a retry
    that never started leaves the earlier attempt's), what of the run's results did not
    come back, and why (`not_collected`: path, folder/ or declared output -> why), and the
    metrics its experiment file declares (convoy.metrics)."""
    fields = run_fields(run_of(run_to_pb(run)))
    if files is None:
        return fields
    return {**fields, "files": files, "output_attempt": output_attempt,
            "not_collected": dict(sorted((not_collected or {}).items())),
            **(metrics or MetricsRead()).fields()}  # fmt: skip


def output_attempt(meta: object) -> int:
    """Which attempt's output the results folder of this run.json holds (see run_json);
    for a run.json written before the field: its attempt, if that attempt started."""
    if not isinstance(meta, dict):
        return 0
    given = meta.get("output_attempt")
    if isinstance(given, int):
        return given
    attempt = meta.get("attempt")
    return attempt if isinstance(attempt, int) and meta.get("started_at") else 0


def _safe_target(root: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if not p.parts or p.is_absolute() or ".." in p.parts or p.parts == (".",):
        raise ResultError(f"refusing result path {rel!r}: not a relative path inside the run")
    return root.joinpath(*p.parts)


class RunResult:
    """One run's results being written. Use `async with RunResult(run) as r:` ... `r.commit()`."""

    def __init__(self, run: RunRecord) -> None:
        self.final = Path(run.results_path)
        # the run's files go straight into the staging folder; the log waits beside it, so that
        # no name a run can give a file collides with convoy's own
        self.staging = self.final.parent / f".staging-{self.final.name}-a{run.attempt}"
        self.log_path = self.final.parent / f".log-{self.final.name}-a{run.attempt}"
        self.files: dict[str, dict[str, Any]] = {}
        self.left_out: dict[str, str] = {}  # results the agent could not send -> why
        self.mismatched: set[str] = set()  # of those, the ones whose checksum did not match
        self.over_limits: list[str] = []  # the caps of the run's Limits it went over, said
        self.output_missing = ""  # why the run's output could not be read, if it could not

    def open(self) -> None:
        self.discard()
        self.staging.mkdir(parents=True)

    def log_file(self) -> IO[bytes]:
        return open(self.log_path, "wb")

    async def receive(
        self, pieces: AsyncIterator[FilePiece], announced: int | None = None,
        limits: Limits | None = None,
    ) -> None:  # fmt: skip
        """The files of `pieces` into the staging folder; each one the host could not send, or
        that is refused here, said in left_out (and in `mismatched` when its checksum did not
        match: the collector may fetch again). A host that sends more than the `announced`
        bytes is trusted no further: the file that overflows is left out and the transfer
        stops, what came before it kept. Past a cap of `limits` (files, bytes), the transfer
        stops too, said in left_out and over_limits."""
        current: IO[bytes] | None = None
        begun = 0  # regular files begun
        target: Path | None = None
        skipping = False  # the pieces of a file refused at its first piece
        path = ""
        digest = hashlib.sha256()
        size = total = 0
        async for piece in pieces:
            if piece.path:
                if current is not None or skipping:
                    raise ResultError(f"result {path!r} ended without its last piece")
                path = piece.path
                if piece.left_out:
                    if path != "./":  # "./": the whole workspace was made unreadable
                        try:
                            _safe_target(self.staging, path.rstrip("/"))  # sane; never opened
                        except ResultError as e:
                            self.left_out[path] = str(e)
                            continue
                    # Two names not UTF-8 may print alike (each byte as \xNN): both are said.
                    before = self.left_out.get(path)
                    self.left_out[path] = (
                        f"{before}; {piece.left_out}" if before else piece.left_out
                    )
                    continue
                try:
                    target = _safe_target(self.staging, path)
                except ResultError as e:
                    self.left_out[path] = str(e)
                    skipping = not piece.last
                    continue
                if limits is not None and begun >= limits.output_files:
                    self._over(path, f"limits.output_files ({limits.output_files:,} files)")
                    return
                begun += 1
                target.parent.mkdir(parents=True, exist_ok=True)
                current = open(target, "wb")  # noqa: SIM115 - closed on last piece
                os.chmod(target, (piece.mode & 0o755) | 0o600)  # never writable by others
                digest, size = hashlib.sha256(), 0
            elif skipping:
                skipping = not piece.last
                continue
            if current is None or target is None:
                raise ResultError("result piece without a file")
            total += len(piece.data)
            if limits is not None and total > limits.output_bytes:
                current.close()
                target.unlink()
                self._over(path, f"limits.output_bytes ({human_bytes(limits.output_bytes)})")
                return
            if announced is not None and total > announced:
                current.close()
                target.unlink()
                self.left_out[path] = (
                    f"the host sent more than the {announced:,} bytes of results it announced: "
                    "the transfer was stopped here, and what would have followed is not known"
                )
                return
            current.write(piece.data)
            digest.update(piece.data)
            size += len(piece.data)
            if piece.last:
                current.close()
                current = None
                if digest.hexdigest() != piece.sha256:
                    target.unlink()
                    self.mismatched.add(path)
                    self.left_out[path] = "its checksum did not match what the host sent"
                    continue
                self.files[path] = {"size": size, "sha256": piece.sha256}
        if current is not None or skipping:
            if current is not None:
                current.close()
            raise ResultError(f"result {path!r} was cut short")

    def _over(self, path: str, cap: str) -> None:
        self.over_limits.append(f"its output files went over {cap}")
        self.left_out[path] = (f"over {cap}: this file and those after it (in name order) were "
                               "not collected")  # fmt: skip

    def commit(
        self, run: RunRecord, output_of: int | None = None, metrics: Sequence[MetricSpec] = ()
    ) -> None:
        """Write run.json, with the `metrics` read from the files, and move the folder into
        place (replacing an earlier attempt's). The log is the output of `output_of` (default:
        the run's attempt; 0: of none)."""
        of = run.attempt if output_of is None else output_of
        # By the names the run gave; a run that never started made no file to match.
        unmatched = unmatched_outputs(run.outputs, self) if of else {}
        # convoy's own names: a result so named steps aside (output.aN.log and superseded.aN
        # are the logs of earlier attempts and what superseded ones left, added later)
        for name in ("output.log", "run.json", *_reserved_in(self.staging)):
            self._step_aside(name)
        not_collected = dict(self.left_out)
        for key, why in [*unmatched.items(), ("output.log", self.output_missing)]:
            if why:  # two things of one name (a declared output `output.log`): both said
                not_collected[key] = f"{not_collected[key]}; {why}" if key in not_collected else why
        if self.log_path.exists():
            os.rename(self.log_path, self.staging / "output.log")
        read = read_metrics(self.staging, metrics)
        body = json.dumps(run_json(run, self.files, of, not_collected, read), indent=2) + "\n"
        (self.staging / "run.json").write_text(body)
        old = self.final.with_name(f".old-{self.final.name}")
        if self.final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(self.final, old)
            try:
                os.rename(self.staging, self.final)
            except OSError:
                os.rename(old, self.final)  # the earlier attempt's results stay in place
                raise
        else:
            os.rename(self.staging, self.final)
        shutil.rmtree(old, ignore_errors=True)  # also one a crash between the renames left

    def _step_aside(self, name: str) -> None:
        """A result (file or folder, sent or left out) named `name` moves, with what is under
        it, to `<name>.result` (or `.result1`, ...: a name no other result has)."""

        def under(rel: str, top: str) -> bool:
            return rel == top or rel.startswith(top + "/")

        def taken(top: str) -> bool:
            there = self.staging / top
            return there.exists() or there.is_symlink() or any(under(r, top) for r in self.left_out)

        if not taken(name):
            return
        aside, n = f"{name}.result", 1
        while taken(aside):
            aside, n = f"{name}.result{n}", n + 1
        there = self.staging / name
        if there.exists() or there.is_symlink():
            there.rename(self.staging / aside)
        for rel in [r for r in self.files if under(r, name)]:
            self.files[aside + rel[len(name) :]] = self.files.pop(rel)
        for rel in [r for r in self.left_out if under(r, name)]:
            self.left_out[aside + rel[len(name) :]] = self.left_out.pop(rel)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


_RESERVED = re.compile(r"output\.a\d+\.log|superseded\.a\d+")
# Sections of run.json added after its folder was written (results/collect.py): kept when
# run.json is written again.
ADDED_LATER = ("attempt_logs", "superseded")


def _reserved_in(folder: Path) -> list[str]:
    """Names at the top of a result folder that convoy keeps for its own."""
    try:
        return sorted(n for n in os.listdir(folder) if _RESERVED.fullmatch(n))
    except OSError:
        return []


def unmatched_outputs(outputs: Sequence[str], result: RunResult) -> dict[str, str]:
    """The declared outputs that no result matches, sent or left out."""
    names = [*result.files, *(p for p in result.left_out if not p.endswith("/"))]
    hidden = [p.rstrip("/") for p in result.left_out if p.endswith("/")]
    return {
        pat: NOT_MATCHED
        for pat in outputs
        if not filter_outputs(names, [pat]) and not any(may_hold_outputs(d, [pat]) for d in hidden)
    }


def record_unstarted(run: RunRecord, metrics: Sequence[MetricSpec] = ()) -> None:
    """The results folder of a run that ended before (another) attempt started: its run.json
    says why, and what of the `metrics` there are. An earlier attempt's results, when there
    are some, stay (still listed)."""
    folder = Path(run.results_path)
    if folder.is_dir():
        try:
            meta = json.loads((folder / "run.json").read_text())
        except (OSError, ValueError):
            meta = None
        files = meta.get("files") if isinstance(meta, dict) else None
        missed = meta.get("not_collected") if isinstance(meta, dict) else None
        read = from_run_json(meta, metrics) or read_metrics(folder, metrics)
        body = run_json(run, files or {}, output_attempt(meta), missed or {}, read)
        if isinstance(meta, dict):
            body.update({k: meta[k] for k in ADDED_LATER if k in meta})
        write_json(folder / "run.json", body, indent=2)
        return
    result = RunResult(run)
    result.open()
    try:
        with result.log_file():
            pass
        result.commit(run, output_of=0, metrics=metrics)
    except BaseException:
        result.discard()
        raise


def write_runs_csv(path: Path, runs: Sequence[RunRecord]) -> None:
    """One row per run: its parameters, state, exit code and duration. Replaced atomically.

    A parameter's column is `param.NAME`, so that whatever its name (`run`, `state` and `index`
    are allowed), it never makes a second column of one of convoy's: convoy's own columns never
    start with `param.`."""
    params: list[str] = []
    for r in runs:
        params.extend(k for k in r.params if k not in params)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "index", *(PARAM_COLUMN + k for k in params), "state", "code",
                "exit_code", "duration_s", "host", "attempt"])  # fmt: skip
    for r in sorted(runs, key=lambda r: r.index):
        d = duration(r)
        w.writerow([
            r.id, r.index, *(param_text(r.params[k]) if k in r.params else "" for k in params),
            r.state.value,
            r.code.value if r.code else "", "" if r.exit_code is None else r.exit_code,
            "" if d is None else f"{d:.3f}", r.host, r.attempt,
        ])  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
