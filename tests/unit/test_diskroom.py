"""The room granted on the coordinator's disk to results being collected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from convoy.coordinator.results.diskroom import RESERVE_MAX, DiskRoom, reserve_of

GB = 1 << 30


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A disk of 100 GB with `free` bytes free, as shutil.disk_usage reports it."""
    state = {"total": 100 * GB, "free": 10 * GB}

    def usage(path: object) -> shutil._ntuple_diskusage:
        return shutil._ntuple_diskusage(
            state["total"], state["total"] - state["free"], state["free"]
        )

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return state


def test_the_reserve_is_a_twentieth_of_the_disk_and_at_most_a_gibibyte() -> None:
    assert reserve_of(64 << 20) == (64 << 20) // 20
    assert reserve_of(1000 * GB) == RESERVE_MAX == GB


def test_what_fits_is_granted_whole_and_what_does_not_up_to_the_reserve(
    tmp_path: Path, disk: dict[str, int]
) -> None:
    room = DiskRoom()
    with room.grant(tmp_path, 5 * GB) as g:
        assert g.size == 5 * GB
    with room.grant(tmp_path, 50 * GB) as g:
        assert g.size == 9 * GB  # 10 GB free, less the 1 GB reserve
    disk["free"] = GB // 2  # less than the reserve: nothing
    with room.grant(tmp_path, 1) as g:
        assert g.size == 0


def test_collections_in_flight_share_the_room_until_they_end(
    tmp_path: Path, disk: dict[str, int]
) -> None:
    room = DiskRoom()
    first = room.grant(tmp_path, 6 * GB)
    second = room.grant(tmp_path / "not" / "made" / "yet", 6 * GB)  # its nearest folder's disk
    assert (first.size, second.size) == (6 * GB, 3 * GB)
    assert room.promised(tmp_path) == 9 * GB
    first.release()
    first.release()  # once only
    assert room.promised(tmp_path) == 3 * GB
    with room.grant(tmp_path, 8 * GB) as third:
        assert third.size == 6 * GB
    second.release()
    assert room.promised(tmp_path) == 0


def test_what_a_collection_has_written_is_not_counted_twice(
    tmp_path: Path, disk: dict[str, int]
) -> None:
    """The free bytes show what a collection in flight wrote; only the rest of its grant is
    still promised. Counted whole, a long collection of 49 GB of 50 left no room for a run's
    1 KB: its output was cut to nothing and its results left out, with 51 GB free."""
    disk["free"] = 100 * GB
    room = DiskRoom()
    big = room.grant(tmp_path, 50 * GB)
    big.wrote(49 * GB)
    disk["free"] -= 49 * GB
    with room.grant(tmp_path, 1024) as small:
        assert small.size == 1024
    assert room.grant(tmp_path, 100 * GB).size == 51 * GB - GB - GB  # reserve, big's last GB
    big.wrote(10 * GB)  # more than granted (footprints are estimates): promises nothing more
    assert big.unwritten == 0


def test_a_grant_is_given_back_when_its_collection_fails(
    tmp_path: Path, disk: dict[str, int]
) -> None:
    room = DiskRoom()
    with pytest.raises(RuntimeError), room.grant(tmp_path, GB):
        raise RuntimeError("the host went away")
    assert room.promised(tmp_path) == 0
