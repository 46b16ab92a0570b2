"""The coordinator's collection of a run's output and results within the room on its disk
(Collector.accept with an agent client that records what it is asked)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from convoy.coordinator.results.collect import Collector
from convoy.coordinator.results.diskroom import DiskRoom, reserve_of
from convoy.coordinator.results.folders import FilePiece, RunResult
from convoy.footprint import PER_FILE, disk_footprint
from convoy.spec import Limits
from tests.unit.test_results import finished, make_run

MB = 1 << 20


class Client:
    """An agent's answers: a log, and one result file sent whole (when asked without a limit
    or with room for it)."""

    def __init__(self, log: bytes, data: bytes, log_error: grpc.StatusCode | None = None) -> None:
        self.log, self.data, self.log_error = log, data, log_error
        self.asked: list[int | None] = []
        self.log_read = 0

    async def results_size(self, attempt_id: str) -> tuple[int, int]:
        return disk_footprint(len(self.data)), disk_footprint(len(self.log))

    async def read_log(
        self, attempt_id: str, offset: int, follow: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        if self.log_error is not None:
            raise grpc.aio.AioRpcError(self.log_error, None, None, "replaced by a link")  # type: ignore[arg-type, call-arg]
        for i in range(0, len(self.log), 1000):
            self.log_read = i + 1000
            yield i, self.log[i : i + 1000]

    async def fetch_results(
        self, attempt_id: str, max_bytes: int | None = None
    ) -> AsyncIterator[FilePiece]:
        self.asked.append(max_bytes)
        if max_bytes is None or disk_footprint(len(self.data)) <= max_bytes:
            yield FilePiece("r.bin", 0o644, self.data, True, hashlib.sha256(self.data).hexdigest())
        else:
            yield FilePiece("r.bin", 0, b"", True, "", left_out="does not fit")


def collect(
    tmp_path: Path, client: Client, free: int | list[int], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Collect one finished run through `client`, with `free` bytes free on the disk (a list:
    one figure for each look, the last repeated)."""
    total = 100 << 30
    looks = [free] if isinstance(free, int) else list(free)

    def usage(path: object) -> shutil._ntuple_diskusage:
        now = looks.pop(0) if len(looks) > 1 else looks[0]
        return shutil._ntuple_diskusage(total, total - now, now)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    coordinator = Collector(DiskRoom())
    run = finished(make_run(tmp_path))
    asyncio.run(coordinator.accept(run, client))  # type: ignore[arg-type]
    assert coordinator.room.promised(tmp_path) == 0  # given back
    folder = Path(run.results_path)
    return folder, json.loads((folder / "run.json").read_text())


def test_with_room_for_all_nothing_is_limited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(b"x" * 5000, b"y" * 3000)
    folder, meta = collect(
        tmp_path, client, free=reserve_of(100 << 30) + MB, monkeypatch=monkeypatch
    )
    assert client.asked == [None]
    assert (folder / "output.log").read_bytes() == b"x" * 5000
    assert (folder / "r.bin").read_bytes() == b"y" * 3000 and meta["not_collected"] == {}


def test_the_log_comes_first_and_is_cut_where_the_room_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(b"x" * 20_000, b"y" * 10)
    room = 10_000
    folder, meta = collect(
        tmp_path, client, free=reserve_of(100 << 30) + room, monkeypatch=monkeypatch
    )
    kept = (room - PER_FILE) // 4096 * 4096  # whole blocks: 8192
    assert (folder / "output.log").read_bytes() == b"x" * kept
    assert client.log_read < 20_000  # the rest of the log was not read
    assert client.asked == [room - disk_footprint(kept)]  # the rest: too little for r.bin
    assert meta["not_collected"] == {
        "output.log": f"cut short after {kept:,} bytes: the coordinator's disk had no room "
        "for more",
        "r.bin": "does not fit",
    }


def test_the_files_get_the_room_the_log_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(b"x" * 100, b"y" * 9000)  # the file takes 3 blocks and a little
    room = disk_footprint(100) + disk_footprint(9000) - 1
    folder, meta = collect(
        tmp_path, client, free=reserve_of(100 << 30) + room, monkeypatch=monkeypatch
    )
    assert client.asked == [room - disk_footprint(100)]
    assert (folder / "output.log").read_bytes() == b"x" * 100
    assert meta["not_collected"] == {"r.bin": "does not fit"}


def test_a_log_the_run_replaced_is_said_and_the_files_still_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(b"", b"y", log_error=grpc.StatusCode.FAILED_PRECONDITION)
    folder, meta = collect(tmp_path, client, free=10 << 30, monkeypatch=monkeypatch)
    assert (folder / "r.bin").read_bytes() == b"y"
    assert meta["not_collected"] == {"output.log": "replaced by a link"}


def test_a_disk_another_process_filled_meanwhile_gets_a_second_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room granted is a promise among collections: another process writing to the disk
    can take it. ENOSPC then failed the run with a coordinator error and no results folder;
    now the collection starts over, granted what is free then."""
    real = RunResult.receive
    calls = []

    async def receive(self: RunResult, pieces: AsyncIterator[FilePiece], **kw: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        await real(self, pieces, **kw)

    monkeypatch.setattr(RunResult, "receive", receive)
    client = Client(b"x" * 100, b"y" * 10)
    folder, _ = collect(tmp_path, client, free=10 << 30, monkeypatch=monkeypatch)
    assert len(calls) == 2 and (folder / "r.bin").read_bytes() == b"y" * 10
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_second_full_disk_is_the_run_s_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def receive(self: RunResult, pieces: AsyncIterator[FilePiece], **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunResult, "receive", receive)
    with pytest.raises(OSError, match="No space left"):
        collect(tmp_path, Client(b"x", b"y"), free=10 << 30, monkeypatch=monkeypatch)


def test_an_empty_log_still_takes_its_file_s_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(b"", b"y" * 9000)
    room = disk_footprint(9000) - 1  # a byte short of the file's room, with the log's too
    folder, meta = collect(
        tmp_path, client, free=reserve_of(100 << 30) + room, monkeypatch=monkeypatch
    )
    assert client.asked == [room - PER_FILE]  # output.log exists, empty
    assert (folder / "output.log").read_bytes() == b""
    assert meta["not_collected"] == {"r.bin": "does not fit"}


def test_no_room_at_all_on_the_second_try_is_the_first_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second collection granted nothing would write an empty log and leave every file out,
    and the agent would then drop them all: the error stands instead, the results stay there."""

    async def receive(self: RunResult, pieces: AsyncIterator[FilePiece], **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunResult, "receive", receive)
    reserve = reserve_of(100 << 30)
    with pytest.raises(OSError, match="No space left"):
        collect(tmp_path, Client(b"x", b"y"), free=[10 << 30, reserve], monkeypatch=monkeypatch)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("run.json"))


class Flaky(Client):
    """Sends its file with a wrong checksum the first `bad` times it is asked."""

    def __init__(self, bad: int) -> None:
        super().__init__(b"out\n", b"z" * 10)
        self.bad = bad

    async def fetch_results(
        self, attempt_id: str, max_bytes: int | None = None
    ) -> AsyncIterator[FilePiece]:
        self.asked.append(max_bytes)
        digest = hashlib.sha256(self.data).hexdigest()
        if len(self.asked) <= self.bad:
            digest = hashlib.sha256(b"garbled on the way").hexdigest()
        yield FilePiece("r.bin", 0o644, self.data, True, digest)


def test_a_checksum_mismatch_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mismatch was not retried although the agent still held the files."""
    client = Flaky(bad=2)
    folder, meta = collect(tmp_path, client, free=10 << 30, monkeypatch=monkeypatch)
    assert len(client.asked) == 3
    assert (folder / "r.bin").read_bytes() == b"z" * 10 and meta["not_collected"] == {}


def test_a_file_that_never_matches_is_left_out_and_the_folder_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Flaky(bad=99)
    folder, meta = collect(tmp_path, client, free=10 << 30, monkeypatch=monkeypatch)
    assert len(client.asked) == 3  # CHECKSUM_TRIES
    assert not (folder / "r.bin").exists() and (folder / "output.log").read_bytes() == b"out\n"
    assert meta["not_collected"] == {"r.bin": "its checksum did not match in 3 transfers"}


class Liar(Client):
    """Announces a tiny log and no files, then sends far more of both."""

    async def results_size(self, attempt_id: str) -> tuple[int, int]:
        return 0, 8


def test_a_host_sending_more_than_it_announced_is_cut_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Liar(b"L" * 5000, b"F" * 5000)
    folder, meta = collect(tmp_path, client, free=10 << 30, monkeypatch=monkeypatch)
    assert (folder / "output.log").read_bytes() == b"L" * 8
    assert not (folder / "r.bin").exists()
    assert "it sent more, which was refused" in meta["not_collected"]["output.log"]
    assert "sent more than the 0 bytes of results it announced" in meta["not_collected"]["r.bin"]


class Many(Client):
    """Many small result files, and a log that honours the offset it is read from."""

    def __init__(self, files: int, log: bytes) -> None:
        super().__init__(log, b"")
        self.names = [f"out/{i:03d}.txt" for i in range(files)]

    async def results_size(self, attempt_id: str) -> tuple[int, int]:
        return disk_footprint(4) * len(self.names), disk_footprint(len(self.log))

    async def log_length(self, attempt_id: str) -> int:
        return len(self.log)

    async def read_log(
        self, attempt_id: str, offset: int, follow: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        for i in range(offset, len(self.log), 1000):
            yield i, self.log[i : i + 1000]

    async def fetch_results(
        self, attempt_id: str, max_bytes: int | None = None
    ) -> AsyncIterator[FilePiece]:
        for name in self.names:
            data = name[-7:-4].encode() + b"\n"
            yield FilePiece(name, 0o644, data, True, hashlib.sha256(data).hexdigest())


def collect_limited(
    tmp_path: Path, client: Client, limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, Any], str]:
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1 << 40, 0, 1 << 40)
    )
    run = finished(replace(make_run(tmp_path), limits=limits))
    over = asyncio.run(Collector(DiskRoom()).accept(run, client))  # type: ignore[arg-type]
    folder = Path(run.results_path)
    return folder, json.loads((folder / "run.json").read_text()), over


def test_past_output_files_the_rest_is_named_and_the_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10^6 empty files took 6 minutes and made a 128 MB run.json: now the first N come, the
    one where the cap was reached is named, and the run fails with output_limit."""
    folder, meta, over = collect_limited(tmp_path, Many(50, b"log\n"), Limits(output_files=10),
                                         monkeypatch)  # fmt: skip
    assert sorted(meta["files"]) == [f"out/{i:03d}.txt" for i in range(10)]
    assert meta["not_collected"] == {
        "out/010.txt": "over limits.output_files (10 files): this "
        "file and those after it (in name order) were not collected"
    }
    assert over == "its output files went over limits.output_files (10 files)"
    assert (meta["state"], meta["code"]) == ("failed", "output_limit")
    assert "but its output files went over limits.output_files" in meta["reason"]
    assert len(list((folder / "out").iterdir())) == 10


def test_past_output_bytes_the_rest_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, meta, over = collect_limited(tmp_path, Many(50, b"log\n"), Limits(output_bytes=18),
                                    monkeypatch)  # fmt: skip
    assert sorted(meta["files"]) == ["out/000.txt", "out/001.txt", "out/002.txt", "out/003.txt"]
    assert "out/004.txt" in meta["not_collected"] and "limits.output_bytes (18B)" in over


def test_a_log_over_its_cap_keeps_its_first_and_last_halves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = b"".join(b"line %06d\n" % i for i in range(10_000))  # 120,000 bytes
    folder, meta, over = collect_limited(tmp_path, Many(0, log), Limits(log_bytes=2400),
                                         monkeypatch)  # fmt: skip
    kept = (folder / "output.log").read_bytes()
    head, rest = kept[:1200], kept[1200:]
    marker, tail = rest.split(b"]\n", 1)
    assert head == log[:1200] and tail == log[-1200:]
    assert marker.startswith(b"\n[convoy: 117,600 bytes of this run's output were cut here")
    assert "cut in the middle: 120,000 bytes" in meta["not_collected"]["output.log"]
    assert over == "its output went over limits.log_bytes (2.3KiB)"
    assert meta["code"] == "output_limit"


def test_within_its_limits_a_run_is_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, meta, over = collect_limited(tmp_path, Many(5, b"log\n"), Limits(), monkeypatch)
    assert over == "" and meta["state"] == "succeeded" and meta["not_collected"] == {}
