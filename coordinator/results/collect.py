"""Bringing an attempt's results to the coordinator, the three ways the lifecycle asks for:

- accept: its output log and result files become the run's folder, with run.json (folders.py);
- history: an earlier attempt's output log, kept in the run's folder as output.a<N>.log;
- aside: a superseded attempt's log and files, kept apart in superseded.a<N>/ and noted in
  run.json: never taken for the run's results.

Everything is written within the room the coordinator's disk has (diskroom.py), the output log
first; what does not fit is left out and said.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import IO, Any

import grpc

from convoy.coordinator.hosts.agents import AgentClient
from convoy.coordinator.results.diskroom import DiskRoom, Grant
from convoy.coordinator.results.folders import FilePiece, RunResult
from convoy.coordinator.runs.events import AttemptRecord
from convoy.coordinator.runs.records import RunRecord, over_limits
from convoy.files import write_json
from convoy.footprint import BLOCK, PER_FILE, disk_footprint
from convoy.sizes import human_bytes
from convoy.spec import MetricSpec
from convoy.states import RunState

log = logging.getLogger("convoy.coordinator")


def history_name(attempt: int) -> str:
    return f"output.a{attempt}.log"


def aside_name(attempt: int) -> str:
    return f"superseded.a{attempt}"


CHECKSUM_TRIES = 3  # transfers of a run's results while a file's checksum does not match


class Collector:
    def __init__(
        self, room: DiskRoom, metrics_of: Callable[[str], Sequence[MetricSpec]] = lambda _: ()
    ) -> None:
        self.room = room
        self.metrics_of = metrics_of  # a submission's id -> the metrics its runs' folders hold

    # ---- accept ----------------------------------------------------------------------------

    async def accept(self, run: RunRecord, client: AgentClient) -> str:
        """The attempt's results become the run's folder, written as `run` says; as much as
        the coordinator's disk has room for, the output first, and within the run's limits.
        Which limits it went over ("" when none): a run that succeeded but did is written as
        failed (code output_limit), and the lifecycle told so (Collected.over_limits)."""
        try:
            return await self._accept_within_room(run, client)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # Another process took the room granted: once more, within what is free now
            # (when nothing is, the error stands, and the agent keeps the results).
            log.warning("run %s: the disk filled while its results came (%s); collecting "
                        "them again within the room left", run.id, e.strerror)  # fmt: skip
            return await self._accept_within_room(run, client, full=e)

    async def _accept_within_room(
        self, run: RunRecord, client: AgentClient, full: OSError | None = None
    ) -> str:
        """Fetched again, whole, while a file's checksum does not match (the agent holds the
        files until the run's folder is in place), CHECKSUM_TRIES times at most; then the
        folder is written with the files that did match."""
        for tries in range(1, CHECKSUM_TRIES + 1):
            size, log_size = await client.results_size(run.attempt_id)
            wanted = size + log_size
            result = RunResult(run)
            with self.room.grant(result.final.parent, wanted) as grant:
                if full is not None and grant.size == 0 and wanted:
                    raise full
                await asyncio.to_thread(result.open)
                try:
                    with result.log_file() as f:
                        written = await self._log(run, client, run.attempt_id, result, f, grant,
                                                  announced=log_size)  # fmt: skip
                    limit = None
                    if grant.size < wanted:  # room for less than all: the rest, in files
                        limit = max(0, grant.size - disk_footprint(written))  # the log's too
                    pieces = _counted(client.fetch_results(run.attempt_id, limit), grant)
                    async with contextlib.aclosing(pieces):
                        await result.receive(pieces, announced=size, limits=run.limits)
                    if result.mismatched and tries < CHECKSUM_TRIES:
                        log.warning("run %s: checksum mismatch for %s: fetching its results "
                                    "again (%d of %d)", run.id, sorted(result.mismatched),
                                    tries + 1, CHECKSUM_TRIES)  # fmt: skip
                        result.discard()
                        continue
                    for path in result.mismatched:
                        result.left_out[path] = (
                            f"its checksum did not match in {CHECKSUM_TRIES} transfers"
                        )
                    over = "; ".join(result.over_limits)
                    if over and run.state is RunState.SUCCEEDED:
                        run = over_limits(run, over)
                    metrics = self.metrics_of(run.submission_id)
                    await asyncio.to_thread(result.commit, run, None, metrics)
                    return over
                except BaseException:
                    result.discard()
                    raise
        raise AssertionError("the last try commits or raises")

    async def _log(
        self, run: RunRecord, client: AgentClient, attempt_id: str, result: RunResult,
        f: IO[bytes], grant: Grant, announced: int,
    ) -> int:  # fmt: skip
        """Write the attempt's output to `f`, as much as the grant has room for and no more
        than the host `announced`; over the run's limits.log_bytes, its first and last halves
        only. The bytes written."""
        room = max(0, grant.size - PER_FILE) // BLOCK * BLOCK  # whole blocks
        written = 0
        cap = run.limits.log_bytes
        try:
            if announced > cap and room >= cap + BLOCK:
                length = await client.log_length(attempt_id)  # 0 from an older agent
                if cap < length <= announced:
                    return await self._log_ends(run, client, attempt_id, result, f, grant,
                                                length)  # fmt: skip
            if announced <= room or grant.size >= grant.wanted:  # what was announced fits
                most = announced
                why = (f"cut after the {announced:,} bytes the host announced: it sent more, "
                       "which was refused")  # fmt: skip
            else:
                most = room
                why = f"cut short after {room:,} bytes: the coordinator's disk had no room for more"
            async with contextlib.aclosing(client.read_log(attempt_id, 0, follow=False)) as chunks:
                async for _, data in chunks:
                    if written + len(data) > most:
                        f.write(data[: most - written])
                        grant.wrote(most - written)
                        written = most
                        result.output_missing = why
                        log.warning("run %s: output %s", run.id, result.output_missing)
                        break
                    f.write(data)
                    grant.wrote(len(data))
                    written += len(data)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            # The run put a link or a FIFO in place of its log: its results still come.
            log.warning("run %s: output not collected: %s", run.id, e.details())
            result.output_missing = e.details() or "the run's output cannot be read"
        return written

    async def _log_ends(
        self, run: RunRecord, client: AgentClient, attempt_id: str, result: RunResult,
        f: IO[bytes], grant: Grant, length: int,
    ) -> int:  # fmt: skip
        """The first and the last half of limits.log_bytes of a longer log, a line between
        them saying how much was cut there."""
        cap = run.limits.log_bytes
        head, tail = cap // 2, cap - cap // 2
        cut = length - head - tail
        written = await _copy(client.read_log(attempt_id, 0, follow=False), f, head)
        marker = (f"\n[convoy: {cut:,} bytes of this run's output were cut here: it went over "
                  f"limits.log_bytes ({human_bytes(cap)}); the first {human_bytes(head)} and the "
                  f"last {human_bytes(tail)} are kept]\n").encode()  # fmt: skip
        f.write(marker)
        written += len(marker)
        written += await _copy(client.read_log(attempt_id, length - tail, follow=False), f, tail)
        grant.wrote(written)
        result.output_missing = (
            f"cut in the middle: {length:,} bytes, over limits.log_bytes ({human_bytes(cap)}); "
            f"its first and last {human_bytes(head)} are kept, the {cut:,} bytes between them "
            "are not"
        )
        result.over_limits.append(f"its output went over limits.log_bytes ({human_bytes(cap)})")
        log.warning("run %s: output %s", run.id, result.output_missing)
        return written

    # ---- history and aside -----------------------------------------------------------------

    async def history(self, run: RunRecord, attempt: int, client: AgentClient) -> None:
        """An earlier attempt's output log into the run's folder (output.a<N>.log)."""
        folder = Path(run.results_path)
        if not folder.is_dir():
            return
        aid = f"{run.id}-a{attempt}"
        _, log_size = await client.results_size(aid)
        name = history_name(attempt)
        part = folder / f".{name}.part"
        with self.room.grant(folder, log_size) as grant:
            room = max(0, grant.size - PER_FILE) // BLOCK * BLOCK
            cut = await _stream_to(client, aid, part, room, grant)
        await asyncio.to_thread(os.replace, part, folder / name)
        note = {"log": name, **({"cut_short_after": cut} if cut else {})}
        await asyncio.to_thread(_note, folder, "attempt_logs", str(attempt), note)

    async def aside(self, run: RunRecord, a: AttemptRecord, client: AgentClient) -> None:
        """A superseded attempt's log and files into superseded.a<N>/ of the run's folder,
        noted in run.json; never the run's results."""
        folder = Path(run.results_path)
        if not folder.is_dir():
            return
        name = aside_name(a.number)
        staging = folder / f".{name}.part"
        await asyncio.to_thread(shutil.rmtree, staging, True)
        staging.mkdir()
        size, log_size = await client.results_size(a.id)
        with self.room.grant(folder, size + log_size) as grant:
            room = max(0, grant.size - PER_FILE) // BLOCK * BLOCK
            cut = await _stream_to(client, a.id, staging / "output.log", room, grant)
            result = RunResult(run)
            result.staging = staging / "files"
            result.staging.mkdir()
            limit = max(0, grant.size - disk_footprint(room))
            pieces = _counted(client.fetch_results(a.id, limit if grant.size < size + log_size
                                                   else None), grant)  # fmt: skip
            async with contextlib.aclosing(pieces):
                await result.receive(pieces, announced=size, limits=run.limits)
        await asyncio.to_thread(_replace_dir, staging, folder / name)
        o = a.outcome
        note: dict[str, Any] = {
            "attempt": a.number, "host": a.host, "kept": f"{name}/",
            "code": o.code.value if o else None, "exit_code": o.exit_code if o else None,
            "reason": o.message if o else None, "files": result.files,
            "not_collected": dict(result.left_out, **({"output.log": f"cut short after {cut:,} "
                                                       "bytes"} if cut else {})),
        }  # fmt: skip
        await asyncio.to_thread(_note, folder, "superseded", str(a.number), note)


async def _stream_to(client: AgentClient, attempt_id: str, path: Path, room: int,
                     grant: Grant) -> int:  # fmt: skip
    """An attempt's log into `path`, at most `room` bytes; the size it was cut at (0: whole)."""
    written = 0
    with open(path, "wb") as f:
        async with contextlib.aclosing(client.read_log(attempt_id, 0, follow=False)) as chunks:
            async for _, data in chunks:
                take = data[: max(0, room - written)]
                await asyncio.to_thread(f.write, take)
                grant.wrote(len(take))
                written += len(take)
                if len(take) < len(data):
                    return written
    return 0


def _note(folder: Path, key: str, entry: str, value: object) -> None:
    """Add `entry: value` under `key` in the folder's run.json (rewritten whole)."""
    path = folder / "run.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    section = meta.setdefault(key, {})
    if isinstance(section, dict):
        section[entry] = value
        write_json(path, meta, indent=2)


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    os.rename(src, dst)


async def _copy(chunks: AsyncGenerator[tuple[int, bytes], None], f: IO[bytes], most: int) -> int:
    """At most `most` bytes of a log stream into `f`; the bytes written. Closes the stream."""
    written = 0
    async with contextlib.aclosing(chunks):
        async for _, data in chunks:
            data = data[: most - written]
            f.write(data)
            written += len(data)
            if written >= most:
                break
    return written


async def _counted(
    pieces: AsyncGenerator[FilePiece, None], grant: Grant
) -> AsyncGenerator[FilePiece, None]:
    """The pieces, their bytes counted as written against the grant; closed, it closes them."""
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            grant.wrote(len(piece.data))
            yield piece
