"""Unit tests for agent.workspace: materialising a revision and finding a run's results."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from convoy.agent.workspace import (
    changed_files,
    is_safe_relpath,
    materialise,
    may_hold_outputs,
    select_outputs,
    upper_files,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write(src / "main.py", "print('hi')\n")
    write(src / "data" / "input.csv", "a,b\n1,2\n")
    write(src / "data" / "deep" / "more.txt", "more\n")
    write(src / "results" / "keep.txt", "shipped with the sources\n")
    return src


def test_materialise_copies_files_and_returns_manifest(source: Path, tmp_path: Path) -> None:
    """materialise copies every regular file and records each in the manifest by its path."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    expected = {"main.py", "data/input.csv", "data/deep/more.txt", "results/keep.txt"}
    assert set(manifest) == expected
    for rel in expected:
        assert (work / rel).read_bytes() == (source / rel).read_bytes()
        st = (work / rel).lstat()
        assert manifest[rel] == (st.st_size, st.st_mtime_ns, st.st_ino)


def test_materialise_copies_empty_folders(tmp_path: Path) -> None:
    """An empty folder in the revision exists in the workspace too."""
    src = tmp_path / "src"
    (src / "empty" / "inner").mkdir(parents=True)
    materialise(src, tmp_path / "work")
    assert (tmp_path / "work" / "empty" / "inner").is_dir()


def test_materialise_keeps_file_mode(tmp_path: Path) -> None:
    """An executable script stays executable in the workspace."""
    src = tmp_path / "src"
    script = write(src / "run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    materialise(src, tmp_path / "work")
    assert os.access(tmp_path / "work" / "run.sh", os.X_OK)


def test_symlink_inside_tree_is_copied_as_link(source: Path, tmp_path: Path) -> None:
    """A symlink to a file inside the tree is recreated as the same link."""
    (source / "link.csv").symlink_to("data/input.csv")
    work = tmp_path / "work"
    manifest = materialise(source, work)
    assert (work / "link.csv").is_symlink()
    assert os.readlink(work / "link.csv") == "data/input.csv"
    assert (work / "link.csv").read_text() == "a,b\n1,2\n"
    assert "link.csv" in manifest  # recorded: unchanged, it is not taken for the run's
    assert changed_files(work, manifest) == []


def test_symlink_outside_tree_is_not_copied(source: Path, tmp_path: Path) -> None:
    """Symlinks that leave the tree (relative '..' or absolute) are not copied."""
    secret = write(tmp_path / "secret.txt", "secret\n")
    (source / "rel_escape").symlink_to("../secret.txt")
    (source / "data" / "abs_escape").symlink_to(secret)
    work = tmp_path / "work"
    manifest = materialise(source, work)
    assert not (work / "rel_escape").exists() and not (work / "rel_escape").is_symlink()
    assert not (work / "data" / "abs_escape").is_symlink()
    assert not (work / "data" / "abs_escape").exists()
    assert "rel_escape" not in manifest and "data/abs_escape" not in manifest


def test_symlink_escaping_via_inner_link_is_not_copied(source: Path, tmp_path: Path) -> None:
    """A link to an inner link that itself points outside is not copied (resolved fully)."""
    write(tmp_path / "secret.txt", "secret\n")
    (source / "data" / "out").symlink_to("../../secret.txt")
    (source / "hop").symlink_to("data/out")
    work = tmp_path / "work"
    materialise(source, work)
    assert not (work / "hop").is_symlink()
    assert not (work / "data" / "out").is_symlink()


def test_symlink_to_folder_inside_tree_is_copied_as_link(source: Path, tmp_path: Path) -> None:
    """A symlink to a folder inside the tree is recreated as a link (its files reachable)."""
    (source / "data_link").symlink_to("data")
    work = tmp_path / "work"
    materialise(source, work)
    assert (work / "data_link").is_symlink()
    assert (work / "data_link" / "input.csv").read_text() == "a,b\n1,2\n"


def test_symlink_to_folder_outside_tree_is_not_copied(source: Path, tmp_path: Path) -> None:
    """A symlink to a folder outside the tree leaves nothing at its path in the workspace."""
    outside = tmp_path / "outside"
    write(outside / "x.txt", "x\n")
    (source / "escape_dir").symlink_to(outside)
    work = tmp_path / "work"
    materialise(source, work)
    assert not (work / "escape_dir").exists() and not (work / "escape_dir").is_symlink()


def test_fifo_is_skipped(tmp_path: Path) -> None:
    """Special files such as fifos are not copied."""
    src = tmp_path / "src"
    write(src / "a.txt", "a")
    os.mkfifo(src / "pipe")
    manifest = materialise(src, tmp_path / "work")
    assert set(manifest) == {"a.txt"}
    assert not (tmp_path / "work" / "pipe").exists()


# ---- changed_files ---------------------------------------------------------------------------


def test_changed_files_empty_when_nothing_changed(source: Path, tmp_path: Path) -> None:
    """Right after materialise, nothing counts as changed."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    assert changed_files(work, manifest) == []


def test_changed_files_finds_new_files(source: Path, tmp_path: Path) -> None:
    """New files, including in new folders, are reported, sorted."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    write(work / "out.txt", "new")
    write(work / "results" / "sub" / "r.csv", "1")
    assert changed_files(work, manifest) == ["out.txt", "results/sub/r.csv"]


def test_changed_files_finds_modified_content(source: Path, tmp_path: Path) -> None:
    """A file rewritten with different content is reported; untouched ones are not."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    (work / "main.py").write_text("print('changed, and longer')\n")
    assert changed_files(work, manifest) == ["main.py"]


def test_changed_files_same_size_later_mtime(source: Path, tmp_path: Path) -> None:
    """A file with the same size but a later mtime counts as changed."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    target = work / "data" / "input.csv"
    st = target.stat()
    target.write_text("x,y\n3,4\n")  # same length as before
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert target.stat().st_size == st.st_size
    assert changed_files(work, manifest) == ["data/input.csv"]


def test_changed_files_mtime_only(source: Path, tmp_path: Path) -> None:
    """Touching a file to a later mtime without changing its bytes counts as changed."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    target = work / "main.py"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert changed_files(work, manifest) == ["main.py"]


def test_changed_files_replaced_file(source: Path, tmp_path: Path) -> None:
    """A file replaced by a new one (new inode) with identical size and mtime is reported."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    target = work / "main.py"
    st = target.stat()
    tmp = write(work / "main.py.new", target.read_text())
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, target)
    assert target.stat().st_ino != st.st_ino
    assert changed_files(work, manifest) == ["main.py"]


def test_links_fifos_and_sockets_a_run_makes_are_listed_to_be_said(
    source: Path, tmp_path: Path
) -> None:
    """They were dropped silently; now they are listed, and FetchResults leaves each out with
    why (it opens nothing that is not a regular file). The sources' own links are not."""
    (source / "srclink").symlink_to("main.py")
    work = tmp_path / "work"
    manifest = materialise(source, work)
    assert "srclink" in manifest
    (work / "newlink").symlink_to("main.py")
    os.mkfifo(work / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(work / "sock"))
        assert changed_files(work, manifest) == ["newlink", "pipe", "sock"]


def test_an_overlay_whiteout_is_no_result(tmp_path: Path) -> None:
    """Deletions in an overlay's upper folder are character devices 0/0: not listed."""
    upper = tmp_path / "upper"
    upper.mkdir()
    write(upper / "new.txt", "n")
    try:
        os.mknod(upper / "deleted.txt", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    except PermissionError:
        pytest.skip("making a device node needs root")
    assert upper_files(upper) == ["new.txt"]


# ---- select_outputs --------------------------------------------------------------------------


@pytest.fixture
def ran(source: Path, tmp_path: Path) -> tuple[Path, dict[str, tuple[int, int, int]]]:
    """A workspace after a run that wrote several outputs."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    write(work / "results" / "a.txt", "a")
    write(work / "results" / "nested" / "deeper" / "b.txt", "b")
    write(work / "summary.csv", "s")
    write(work / "logs" / "run.csv", "l")
    write(work / "scratch.tmp", "t")
    write(work / "resultsX" / "c.txt", "c")
    return work, manifest


@pytest.mark.parametrize("pattern", ["results/", "results"])
def test_select_outputs_folder(pattern: str, ran: tuple[Path, dict]) -> None:
    """A folder pattern (with or without '/') selects the new files at any depth below it only."""
    work, manifest = ran
    assert select_outputs(work, [pattern], manifest) == [
        "results/a.txt",
        "results/nested/deeper/b.txt",
    ]


def test_select_outputs_folder_does_not_return_unchanged_inputs(ran: tuple[Path, dict]) -> None:
    """An input file under an output folder that the run did not touch is not returned."""
    work, manifest = ran
    assert "results/keep.txt" not in select_outputs(work, ["results/"], manifest)


def test_select_outputs_returns_changed_inputs(ran: tuple[Path, dict]) -> None:
    """An input file under an output folder that the run changed is returned."""
    work, manifest = ran
    (work / "results" / "keep.txt").write_text("rewritten by the run, longer than before\n")
    assert "results/keep.txt" in select_outputs(work, ["results/"], manifest)


def test_select_outputs_glob(ran: tuple[Path, dict]) -> None:
    """A glob selects matching new files; an unchanged input matching it is not returned."""
    work, manifest = ran
    selected = select_outputs(work, ["*.csv"], manifest)
    assert "summary.csv" in selected
    assert "data/input.csv" not in selected
    assert "scratch.tmp" not in selected
    assert "results/a.txt" not in selected


def test_select_outputs_nested_folder(ran: tuple[Path, dict]) -> None:
    """A nested folder pattern selects only what is below that folder."""
    work, manifest = ran
    assert select_outputs(work, ["results/nested"], manifest) == ["results/nested/deeper/b.txt"]


def test_select_outputs_glob_folder(ran: tuple[Path, dict]) -> None:
    """A glob that matches a folder selects everything below the matching folders."""
    work, manifest = ran
    assert select_outputs(work, ["log?"], manifest) == ["logs/run.csv"]


def test_select_outputs_exact_file(ran: tuple[Path, dict]) -> None:
    """A plain file path selects just that file."""
    work, manifest = ran
    assert select_outputs(work, ["summary.csv"], manifest) == ["summary.csv"]


def test_select_outputs_several_patterns_no_duplicates(ran: tuple[Path, dict]) -> None:
    """A file matched by several patterns is returned once; results are sorted."""
    work, manifest = ran
    selected = select_outputs(work, ["results/", "results/*.txt", "summary.csv"], manifest)
    assert selected == ["results/a.txt", "results/nested/deeper/b.txt", "summary.csv"]


def test_select_outputs_no_patterns(ran: tuple[Path, dict]) -> None:
    """With no patterns nothing is selected."""
    work, manifest = ran
    assert select_outputs(work, [], manifest) == []


def test_select_outputs_dot_slash_prefix(ran: tuple[Path, dict]) -> None:
    """A pattern written './results/' selects the same files as 'results/'."""
    work, manifest = ran
    assert select_outputs(work, ["./results/"], manifest) == select_outputs(
        work, ["results/"], manifest
    )


# ---- is_safe_relpath -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["a.txt", "results/a.txt", "a/b/c", "a..b", "..a/b"])
def test_is_safe_relpath_accepts_relative(path: str) -> None:
    """Plain relative paths (even with '..' inside a name) are safe."""
    assert is_safe_relpath(path)


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "a\\b", "..\\x", "C:\\x"]
)
def test_is_safe_relpath_rejects(path: str) -> None:
    """Empty, absolute, '..'-containing and backslash paths are unsafe."""
    assert not is_safe_relpath(path)


# ---- folders that hide results ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "patterns", "may"),
    [
        ("results", ["results/"], True),  # the folder itself
        ("results/deep", ["results"], True),  # below a declared folder
        ("results", ["results/sub/x.csv"], True),  # above a declared file
        ("other", ["results/"], False),
        ("resultsx", ["results"], False),
        ("a/b", ["a/c/x"], False),
        ("a/b", ["./a/b/x"], True),  # patterns are normalised as the agent matches them
        ("anything", ["*.csv"], True),  # fnmatch's * crosses '/': a glob may match below
        ("cache", ["data/?.csv"], False),  # the glob's literal folder is data/
        ("data", ["data/?.csv"], True),
        ("data/deeper", ["data/*.csv"], True),  # data/*.csv matches data/deeper/x.csv
        ("da", ["data*/x"], False),
        ("data2/y", ["data*/x"], True),
        (".", ["x"], True),  # the workspace itself
        (".", [], False),
    ],
)
def test_may_hold_outputs(folder: str, patterns: list[str], may: bool) -> None:
    assert may_hold_outputs(folder, patterns) is may


def test_changed_files_names_the_folders_it_cannot_look_into(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission bits do not bind root: an unreadable folder is made by failing its listing."""
    work = tmp_path / "work"
    manifest = materialise(source, work)
    (work / "locked" / "in").mkdir(parents=True)
    (work / "locked" / "in" / "r.csv").write_text("x")
    (work / "new.txt").write_text("x")
    real = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == work / "locked" / "in":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    hidden: list[str] = []
    assert changed_files(work, manifest, hidden) == ["new.txt"]
    assert hidden == ["locked/in"]
