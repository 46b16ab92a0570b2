"""A hostile source tree changes nothing (issue H3): the files convoy reads from it, ignore files
included, are opened without following links, regular files only, within a size limit; a FIFO
or a device is never opened for reading, so nothing hangs and nothing reads forever."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from convoy.content import SyncError, hash_file, read_file, read_limited
from convoy.manifest import IGNORE_FILE_MAX, Scanner


def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "sim.py").write_text("print('hi')\n")
    return src


def test_an_ignore_file_linked_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    """.gitignore -> /dev/zero exhausted the coordinator's memory: now a clear refusal."""
    src = tree(tmp_path)
    (src / ".gitignore").symlink_to("/dev/zero")
    with pytest.raises(SyncError, match="symbolic link") as info:
        Scanner(src).scan()
    assert info.value.path == ".gitignore"


def test_an_ignore_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO named .convoyignore hung the submission (and every later one): refused, no wait."""
    src = tree(tmp_path)
    (src / "sub").mkdir()
    os.mkfifo(src / "sub" / ".convoyignore")
    with pytest.raises(SyncError, match=r"not a regular file|FIFO") as info:
        Scanner(src).scan()
    assert info.value.path == "sub/.convoyignore"


def test_a_huge_ignore_file_is_refused(tmp_path: Path) -> None:
    src = tree(tmp_path)
    with open(src / ".gitignore", "wb") as f:
        f.truncate(IGNORE_FILE_MAX + 1)  # sparse: costs no disk
    with pytest.raises(SyncError, match="MiB is refused"):
        Scanner(src).scan()


def test_an_ignore_file_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    src = tree(tmp_path)
    (src / ".gitignore").mkdir()
    with pytest.raises(SyncError, match="folder"):
        Scanner(src).scan()


def test_ordinary_ignore_files_still_work(tmp_path: Path) -> None:
    src = tree(tmp_path)
    (src / ".gitignore").write_text("*.log\n")
    (src / "out.log").write_text("x")
    assert [e.path for e in Scanner(src).scan().entries] == [".gitignore", "sim.py"]


def test_a_source_file_swapped_for_a_fifo_after_its_scan_is_not_waited_on(tmp_path: Path) -> None:
    """Reading what the scan saw as a file: a FIFO there now is refused (EINVAL), not read."""
    fifo = tmp_path / "data"
    os.mkfifo(fifo)
    for read in (hash_file, read_file, lambda p: read_limited(p, 10)):
        with pytest.raises(OSError) as info:
            read(fifo)  # type: ignore[operator]
        assert info.value.errno == errno.EINVAL
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")
    with pytest.raises(OSError) as info:
        hash_file(link)
    assert info.value.errno == errno.ELOOP


def test_a_name_that_is_not_utf8_is_refused_unless_ignored(tmp_path: Path) -> None:
    """Such a name was accepted at submit and failed later, on a host; now the scan names it
    (escaped) and says what to do, and an ignored one is no matter."""
    src = tree(tmp_path)
    (src / "data").mkdir()
    bad = os.fsencode(src / "data") + b"/caf\xe9.txt"
    with open(bad, "wb") as f:
        f.write(b"x")
    with pytest.raises(SyncError, match="not UTF-8: rename it") as info:
        Scanner(src).scan()
    assert info.value.path == "data/caf\\xe9.txt"
    (src / ".convoyignore").write_bytes(b"data/caf*\n")
    Scanner(src).scan()  # ignored: no error


def test_a_sparse_file_is_refused_saying_why(tmp_path: Path) -> None:
    """A 2 GiB file of holes (no disk) became 4.2 GB on disk between the two stores; now it is
    refused with its sizes and what to do."""
    src = tree(tmp_path)
    with open(src / "holes.bin", "wb") as f:
        f.truncate(2 << 30)
    if os.stat(src / "holes.bin").st_blocks:
        pytest.skip("this file system does not make sparse files")
    with pytest.raises(SyncError, match=r"a sparse file: 2\.0GiB long but 0B on disk") as info:
        Scanner(src).scan()
    assert info.value.path == "holes.bin" and ".convoyignore" in str(info.value)
    (src / ".convoyignore").write_text("holes.bin\n")
    Scanner(src).scan()  # ignored: no error


def test_a_small_or_dense_file_is_not_taken_for_sparse(tmp_path: Path) -> None:
    src = tree(tmp_path)
    with open(src / "small-holes.bin", "wb") as f:
        f.truncate(1 << 20)  # under the size worth refusing
    (src / "dense.bin").write_bytes(os.urandom(1 << 16) * 1100)  # 70 MiB, all on disk
    Scanner(src).scan()


def test_a_tree_over_the_limit_is_refused_during_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources had no size limit: now a tree over CONVOY_MAX_TREE_BYTES is refused as soon as
    the walk has seen that much (before storing the rest), saying how to raise it."""
    monkeypatch.setenv("CONVOY_MAX_TREE_BYTES", "1000")
    src = tree(tmp_path)
    for i in range(5):
        (src / f"f{i}.bin").write_bytes(b"x" * 400)
    with pytest.raises(SyncError, match=r"holds at least .* over the 1000B convoy takes"):
        Scanner(src).scan()


def test_a_tree_grown_over_the_limit_by_an_edit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVOY_MAX_TREE_BYTES", "1000")
    src = tree(tmp_path)
    scanner = Scanner(src)
    assert scanner.scan().size < 1000
    (src / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(SyncError, match="CONVOY_MAX_TREE_BYTES"):
        scanner.scan([str(src / "big.bin")])  # a watcher's change: no full walk


def test_sources_over_a_gibibyte_get_a_warning_not_a_refusal() -> None:
    from convoy.coordinator.runs.submissions import source_warnings

    assert source_warnings("/src", 1 << 30) == []
    (said,) = source_warnings("/src", 3 << 30)
    assert said.startswith("the sources (/src) hold 3.0GiB: each host is sent all of it")
