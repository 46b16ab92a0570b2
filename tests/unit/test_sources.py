"""Unit tests for coordinator.sources: listing a source tree and snapshotting revisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coordinator.sources import Revision, ensure_on_host, list_tree, snapshot, tree_hash


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write(src / "experiment.yaml", "name: exp\n")
    write(src / "sim.py", "print(1)\n")
    write(src / "lib" / "util.py", "X = 1\n")
    write(src / "lib" / "deep" / "data.csv", "a,b\n")
    return src


BASE = ["experiment.yaml", "lib/deep/data.csv", "lib/util.py", "sim.py"]


def test_list_tree_lists_files_sorted(source: Path) -> None:
    """list_tree lists every regular file by relative posix path, sorted."""
    assert list_tree(source) == BASE


def test_list_tree_always_excludes(source: Path) -> None:
    """.git, convoy-results, .convoy and __pycache__ are never part of the sources."""
    write(source / ".git" / "HEAD", "ref\n")
    write(source / "convoy-results" / "exp" / "r.txt", "r")
    write(source / ".convoy" / "x", "x")
    write(source / "__pycache__" / "sim.cpython-311.pyc", "pyc")
    write(source / "lib" / "__pycache__" / "util.cpython-311.pyc", "pyc")
    assert list_tree(source) == BASE


def test_list_tree_convoyignore(source: Path) -> None:
    """Patterns in .convoyignore exclude files and folders, by name or relative path."""
    write(source / "big.bin", "b")
    write(source / "notes.log", "n")
    write(source / "lib" / "debug.log", "d")
    write(source / "data" / "huge.csv", "h")
    write(source / "lib" / "deep" / "keep.txt", "k")
    write(source / ".convoyignore", "# a comment\n\n*.log\ndata/\nbig.bin\nlib/deep\n")
    assert list_tree(source) == [".convoyignore", "experiment.yaml", "lib/util.py", "sim.py"]


def test_list_tree_extra_excludes(source: Path, tmp_path: Path) -> None:
    """Folders passed as extra_excludes (by any path spelling) are left out."""
    write(source / "out" / "x.txt", "x")
    write(source / "store" / "rev" / "y.txt", "y")
    assert list_tree(source, (source / "out", source / "lib" / ".." / "store")) == BASE


def test_list_tree_includes_file_symlinks(source: Path) -> None:
    """A symlink to a file is listed (as itself)."""
    (source / "link.py").symlink_to("sim.py")
    assert "link.py" in list_tree(source)


def test_list_tree_includes_folder_symlinks(source: Path) -> None:
    """A symlink to a folder is part of the sources (as a link)."""
    (source / "lib_link").symlink_to("lib")
    assert "lib_link" in list_tree(source)


def test_list_tree_skips_fifos(source: Path) -> None:
    """Special files such as fifos are not sources."""
    os.mkfifo(source / "pipe")
    assert list_tree(source) == BASE


def test_tree_hash_depends_on_mode(source: Path) -> None:
    """Making a file executable changes the tree hash."""
    files = list_tree(source)
    before = tree_hash(source, files)
    (source / "sim.py").chmod(0o755)
    assert tree_hash(source, files) != before


def test_snapshot_holds_the_files(source: Path, tmp_path: Path) -> None:
    """A snapshot is a folder named by the revision id holding a copy of every listed file."""
    store = tmp_path / "revisions"
    rev = snapshot(source, store)
    assert rev.path == store / rev.id
    assert len(rev.id) == 20
    copied = sorted(p.relative_to(rev.path).as_posix() for p in rev.path.rglob("*") if p.is_file())
    assert copied == BASE
    for rel in BASE:
        assert (rev.path / rel).read_bytes() == (source / rel).read_bytes()
    assert [p.name for p in store.iterdir()] == [rev.id]  # no temporary folder left


def test_snapshot_leaves_out_excluded(source: Path, tmp_path: Path) -> None:
    """Excluded files are not in the snapshot."""
    write(source / ".git" / "HEAD", "ref\n")
    write(source / "tmp.log", "x")
    write(source / ".convoyignore", "*.log\n")
    rev = snapshot(source, tmp_path / "revisions")
    assert not (rev.path / ".git").exists()
    assert not (rev.path / "tmp.log").exists()
    assert (rev.path / ".convoyignore").exists()


def test_snapshot_copies_symlinks_as_links(source: Path, tmp_path: Path) -> None:
    """A file symlink is stored as the same link, not as a copy of its target."""
    (source / "link.py").symlink_to("sim.py")
    rev = snapshot(source, tmp_path / "revisions")
    assert (rev.path / "link.py").is_symlink()
    assert os.readlink(rev.path / "link.py") == "sim.py"


def test_snapshot_twice_same_revision_no_copy(source: Path, tmp_path: Path) -> None:
    """Snapshotting an unchanged tree again gives the same id and does not copy again."""
    store = tmp_path / "revisions"
    first = snapshot(source, store)
    st_dir = first.path.stat()
    st_file = (first.path / "sim.py").stat()
    second = snapshot(source, store)
    assert second == first
    assert first.path.stat().st_ino == st_dir.st_ino
    assert first.path.stat().st_mtime_ns == st_dir.st_mtime_ns
    assert (first.path / "sim.py").stat().st_ino == st_file.st_ino
    assert [p.name for p in store.iterdir()] == [first.id]


def test_snapshot_id_ignores_mtime(source: Path, tmp_path: Path) -> None:
    """Touching a file without changing it keeps the same revision id."""
    store = tmp_path / "revisions"
    first = snapshot(source, store)
    st = (source / "sim.py").stat()
    os.utime(source / "sim.py", ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    assert snapshot(source, store).id == first.id


def test_one_byte_change_gives_new_revision(source: Path, tmp_path: Path) -> None:
    """Changing one byte of one file gives a new revision holding the new content."""
    store = tmp_path / "revisions"
    first = snapshot(source, store)
    (source / "lib" / "util.py").write_text("X = 2\n")
    second = snapshot(source, store)
    assert second.id != first.id
    assert (second.path / "lib" / "util.py").read_text() == "X = 2\n"
    assert (first.path / "lib" / "util.py").read_text() == "X = 1\n"
    assert sorted(p.name for p in store.iterdir()) == sorted([first.id, second.id])


def test_renaming_a_file_gives_new_revision(source: Path, tmp_path: Path) -> None:
    """Renaming a file (same content) gives a new revision id."""
    store = tmp_path / "revisions"
    first = snapshot(source, store)
    (source / "sim.py").rename(source / "sim2.py")
    assert snapshot(source, store).id != first.id


def test_adding_an_ignored_file_keeps_revision(source: Path, tmp_path: Path) -> None:
    """A new file in an always-excluded folder does not change the revision."""
    store = tmp_path / "revisions"
    first = snapshot(source, store)
    write(source / "__pycache__" / "x.pyc", "x")
    assert snapshot(source, store).id == first.id


def test_snapshot_store_inside_source_is_excluded(source: Path) -> None:
    """With the store inside the tree and passed as extra_excludes, snapshots stay stable."""
    store = source / "revs"
    first = snapshot(source, store, extra_excludes=(store,))
    second = snapshot(source, store, extra_excludes=(store,))
    assert second.id == first.id
    assert not (first.path / "revs").exists()


def test_ensure_on_host_is_the_local_snapshot(tmp_path: Path) -> None:
    """A local host reads the snapshot in place."""
    rev = Revision("abc", tmp_path / "abc")
    assert ensure_on_host(rev, "local") == str(tmp_path / "abc")
