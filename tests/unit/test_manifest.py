"""Unit tests for convoy.manifest: the source tree's manifest and its stat cache."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from convoy.content import SyncError, check_link_target, check_relpath, hash_bytes
from convoy.manifest import RACY_NS, Entry, Manifest, Scanner


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def settle() -> None:
    """Wait out the racy window, so that a scan may trust the stat of what was just written."""
    time.sleep(RACY_NS / 1e9 + 0.02)


def paths(m: Manifest) -> list[str]:
    return [e.path for e in m.entries]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root / "sim.py", "print(1)\n")
    write(root / "lib" / "util.py", "X = 1\n")
    write(root / "lib" / "deep" / "data.csv", "a,b\n")
    return root


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", "/abs", "../x", "a/../b", "a/./b", "./a", "a//b", "a/", "a\\b", "a\x00b", ".."]
)
def test_check_relpath_refuses_unsafe_paths(bad: str) -> None:
    """check_relpath refuses empty, absolute, '..', '.', empty-segment, backslash and NUL paths."""
    with pytest.raises(SyncError):
        check_relpath(bad)


def test_check_relpath_accepts_plain_paths() -> None:
    """Relative '/'-separated paths, dot-files and names with dots in them are fine."""
    for ok in ["a", "a/b.txt", ".gitignore", "x/..y/z..", "dir/.hidden"]:
        assert check_relpath(ok) == ok


def test_check_link_target_counts_depth() -> None:
    """A link may climb as many folders as it sits below the root, no more."""
    assert check_link_target("a/b/l", "../../x") == "../../x"
    with pytest.raises(SyncError):
        check_link_target("a/l", "../../x")
    with pytest.raises(SyncError):
        check_link_target("l", "/etc/passwd")


# -- what is in the tree -----------------------------------------------------------------------


def test_scan_lists_files_sorted_with_hashes(src: Path) -> None:
    """A scan lists regular files by relative '/' path, sorted, each with its content hash."""
    m = Scanner(src).scan()
    assert paths(m) == ["lib/deep/data.csv", "lib/util.py", "sim.py"]
    sim = m.entries[-1]
    assert sim.hash == hash_bytes(b"print(1)\n") and sim.size == 9
    assert sim.mode == os.lstat(src / "sim.py").st_mode


def test_nested_gitignore_with_negation(src: Path) -> None:
    """.gitignore files apply at every level; a deeper file's '!pattern' re-includes a path."""
    write(src / ".gitignore", "*.log\n!keep.log\nbuild/\n/top.txt\n")
    write(src / "a.log", "x")
    write(src / "keep.log", "x")
    write(src / "top.txt", "x")
    write(src / "lib" / "top.txt", "x")  # '/top.txt' is anchored to the root
    write(src / "build" / "out.bin", "x")
    write(src / "lib" / "build" / "out.bin", "x")  # 'build/' matches at any depth
    write(src / "lib" / ".gitignore", "!debug.log\n*.tmp\n")
    write(src / "lib" / "debug.log", "x")
    write(src / "lib" / "other.log", "x")
    write(src / "lib" / "x.tmp", "x")
    write(src / "y.tmp", "x")  # lib's rules do not reach above lib
    got = paths(Scanner(src).scan())
    assert got == [
        ".gitignore",
        "keep.log",
        "lib/.gitignore",
        "lib/debug.log",
        "lib/deep/data.csv",
        "lib/top.txt",
        "lib/util.py",
        "sim.py",
        "y.tmp",
    ]


def test_convoyignore_has_the_last_word(src: Path) -> None:
    """.convoyignore uses the same syntax, at any level, and can re-include what git ignores."""
    write(src / ".gitignore", "data/\n")
    write(src / ".convoyignore", "!data/\n*.ckpt\n")
    write(src / "data" / "in.csv", "x")
    write(src / "model.ckpt", "x")
    write(src / "lib" / ".convoyignore", "util.py\n")
    got = paths(Scanner(src).scan())
    assert "data/in.csv" in got
    assert "model.ckpt" not in got and "lib/util.py" not in got


def test_always_excluded_folders(src: Path) -> None:
    """.git, convoy-results, .convoy and __pycache__ are never part of the tree, at any level."""
    for d in [".git", "convoy-results", ".convoy", "__pycache__", "lib/__pycache__", "lib/.git"]:
        write(src / d / "f", "x")
    assert paths(Scanner(src).scan()) == ["lib/deep/data.csv", "lib/util.py", "sim.py"]


def test_extra_excludes(src: Path) -> None:
    """extra_excludes (absolute folders or files inside the tree) are left out."""
    write(src / "results" / "r.txt", "x")
    write(src / "state.db", "x")
    m = Scanner(
        src, extra_excludes=[src / "results", src / "state.db", src / "lib" / "deep"]
    ).scan()
    assert paths(m) == ["lib/util.py", "sim.py"]


# -- safety ------------------------------------------------------------------------------------


def test_symlink_inside_is_kept(src: Path) -> None:
    """A relative symlink to a path inside the tree is an entry with its target and no hash."""
    (src / "link").symlink_to("lib/util.py")
    (src / "lib" / "up").symlink_to("../sim.py")
    (src / "dirlink").symlink_to("lib")  # a link to a folder is not followed
    m = Scanner(src).scan()
    by = {e.path: e for e in m.entries}
    assert by["link"].target == "lib/util.py" and by["link"].hash == ""
    assert by["lib/up"].target == "../sim.py"
    assert by["dirlink"].target == "lib" and "dirlink/util.py" not in by


def test_symlink_outside_is_rejected(src: Path, tmp_path: Path) -> None:
    """A symlink resolving outside the tree is refused, naming the path."""
    write(tmp_path / "secret", "s")
    (src / "lib" / "out").symlink_to("../../secret")
    with pytest.raises(SyncError, match="lib/out"):
        Scanner(src).scan()


def test_symlink_escaping_through_another_link_is_rejected(src: Path) -> None:
    """A link that is inside by its text but escapes through another link is refused."""
    (src / "lib" / "deep" / "top").symlink_to("../..")  # the root: inside
    (src / "lib" / "deep" / "esc").symlink_to("top/..")  # root/.. : outside
    with pytest.raises(SyncError, match="lib/deep/esc"):
        Scanner(src).scan()


def test_absolute_symlink_is_rejected(src: Path) -> None:
    """An absolute symlink is refused even when it points inside the tree."""
    (src / "abs").symlink_to(src / "sim.py")
    with pytest.raises(SyncError, match=r"abs.*absolute"):
        Scanner(src).scan()


def test_fifo_is_rejected_unless_ignored(src: Path) -> None:
    """A fifo is refused, naming it; the same fifo in an ignored folder is not looked at."""
    os.mkfifo(src / "lib" / "pipe")
    with pytest.raises(SyncError, match=r"lib/pipe.*fifo"):
        Scanner(src).scan()
    write(src / ".gitignore", "pipe\n")
    assert "lib/pipe" not in paths(Scanner(src).scan())


def test_failed_scan_leaves_the_scanner_usable(src: Path) -> None:
    """After a refused path, removing it makes the next scan (even a one-path one) succeed."""
    s = Scanner(src)
    s.scan()
    os.mkfifo(src / "pipe")
    with pytest.raises(SyncError):
        s.scan(changed=["pipe"])
    (src / "pipe").unlink()
    (src / "sim.py").unlink()
    assert paths(s.scan(changed=["pipe"])) == ["lib/deep/data.csv", "lib/util.py"]


# -- the stat cache ----------------------------------------------------------------------------


def test_unchanged_second_scan_hashes_nothing(src: Path) -> None:
    """A second full scan of an unchanged tree hashes no file and returns the same manifest."""
    settle()
    s = Scanner(src)
    first = s.scan()
    assert s.hashed == 3
    second = s.scan()
    assert s.hashed == 0 and second == first


def test_rewrite_with_same_size_and_mtime_in_place_is_noticed(src: Path) -> None:
    """Same size, mtime put back with utime, written in place: ctime changed, so it is re-hashed."""
    f = src / "sim.py"
    settle()
    s = Scanner(src)
    before = s.scan()
    st = os.stat(f)
    f.write_text("print(2)\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = s.scan()
    assert s.hashed == 1
    assert after.entries[-1].hash == hash_bytes(b"print(2)\n") != before.entries[-1].hash


def test_replace_by_rename_with_same_mtime_is_noticed(src: Path) -> None:
    """Same size and mtime, new file renamed over the old: the inode changed, so it is re-hashed."""
    f = src / "sim.py"
    settle()
    s = Scanner(src)
    s.scan()
    st = os.stat(f)
    new = write(src / "sim.py.new", "print(3)\n")
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, f)
    after = s.scan()
    assert after.entries[-1].hash == hash_bytes(b"print(3)\n")


def test_racy_file_is_hashed_again_by_the_next_scan(src: Path) -> None:
    """A file written within a clock tick of the scan is not trusted by stat the next time."""
    settle()
    s = Scanner(src)
    s.scan()
    write(src / "sim.py", "print(4)\n")  # fresh: its stat could repeat in the same tick
    s.scan()
    assert s.hashed == 1
    s.scan()
    assert s.hashed == 1  # still racy, or was: re-hashed once more
    settle()
    s.scan()
    s.scan()
    assert s.hashed == 0


def test_revision_is_stable_and_follows_content(src: Path) -> None:
    """The revision id is the same across scans and instances and changes with one byte or mode."""
    r1 = Scanner(src).scan().revision
    assert len(r1) == 20 and Scanner(src).scan().revision == r1
    write(src / "lib" / "util.py", "X = 2\n")
    r2 = Scanner(src).scan().revision
    assert r2 != r1
    os.chmod(src / "sim.py", 0o755)
    assert Scanner(src).scan().revision != r2


def test_changed_paths_pick_up_modified_new_and_deleted(src: Path) -> None:
    """scan(changed=...) re-examines only the named paths: modified, new, deleted, new folders."""
    settle()
    s = Scanner(src)
    s.scan()
    write(src / "sim.py", "print(5)\n")
    write(src / "new.py", "n")
    (src / "lib" / "util.py").unlink()
    write(src / "pkg" / "a.py", "a")
    write(src / "pkg" / "sub" / "b.py", "b")
    m = s.scan(changed=["sim.py", "new.py", "lib/util.py", str(src / "pkg")])
    assert paths(m) == ["lib/deep/data.csv", "new.py", "pkg/a.py", "pkg/sub/b.py", "sim.py"]
    assert m.entries[-1].hash == hash_bytes(b"print(5)\n")
    assert s.hashed == 4
    assert m == Scanner(src).scan()  # the same as a full scan


def test_changed_paths_honour_ignores_and_folder_deletes(src: Path) -> None:
    """A named path that is ignored (or under an ignored or excluded folder) stays out; a
    deleted folder takes its files with it."""
    write(src / ".gitignore", "*.tmp\nbuild/\n")
    s = Scanner(src, extra_excludes=[src / "results"])
    s.scan()
    write(src / "x.tmp", "t")
    write(src / "build" / "out.py", "o")
    write(src / "results" / "r.py", "r")
    write(src / ".git" / "HEAD", "h")
    for p in (src / "lib" / "deep").iterdir():
        p.unlink()
    (src / "lib" / "deep").rmdir()
    m = s.scan(changed=["x.tmp", "build/out.py", "results/r.py", ".git/HEAD", "lib/deep"])
    assert paths(m) == [".gitignore", "lib/util.py", "sim.py"]


def test_changed_paths_before_any_scan_walk_the_tree(src: Path) -> None:
    """A Scanner that has not walked the tree yet has no baseline: it does a full scan."""
    assert paths(Scanner(src).scan(changed=["sim.py"])) == [
        "lib/deep/data.csv",
        "lib/util.py",
        "sim.py",
    ]


def test_changed_ignore_file_rescans_everything(src: Path) -> None:
    """A change to a .gitignore changes what is in the tree, so it makes a full scan."""
    s = Scanner(src)
    s.scan()
    write(src / "lib" / ".gitignore", "deep/\n")
    m = s.scan(changed=["lib/.gitignore"])
    assert paths(m) == ["lib/.gitignore", "lib/util.py", "sim.py"]


def test_one_path_scan_hashes_only_that_path(tmp_path: Path) -> None:
    """10,000 files in 100 folders: an unchanged re-scan hashes nothing, a one-path scan one."""
    root = tmp_path / "big"
    for d in range(100):
        (root / f"d{d:02d}").mkdir(parents=True)
        for i in range(100):
            (root / f"d{d:02d}" / f"f{i}.txt").write_bytes(os.urandom(2048))
    settle()
    s = Scanner(root)
    first = s.scan()
    assert s.hashed == 10_000 and len(first.entries) == 10_000
    s.scan()
    assert s.hashed == 0
    write(root / "d42" / "f7.txt", b"changed")
    m = s.scan(changed=["d42/f7.txt"])
    assert s.hashed == 1 and m.revision != first.revision


def test_cache_persists_across_scanners(src: Path, tmp_path: Path) -> None:
    """A saved stat cache lets a new Scanner (as in a new process) re-hash nothing unchanged."""
    cache = tmp_path / "state" / "scan.json"
    settle()
    s1 = Scanner(src, cache_file=cache)
    m1 = s1.scan()
    s1.save()
    assert cache.exists() and not list(cache.parent.glob("*.tmp"))
    s2 = Scanner(src, cache_file=cache)
    m2 = s2.scan()
    assert s2.hashed == 0 and m2 == m1
    write(src / "sim.py", "print(6)\n")
    assert Scanner(src, cache_file=cache).scan().revision != m1.revision


def test_corrupt_cache_is_ignored(src: Path, tmp_path: Path) -> None:
    """An unreadable cache file costs a full hash, not an error."""
    cache = write(tmp_path / "scan.json", "{not json")
    s = Scanner(src, cache_file=cache)
    assert len(s.scan().entries) == 3 and s.hashed == 3


def test_manifest_hashes_are_the_objects_needed() -> None:
    """Manifest.hashes() lists each file's content hash once, and no symlink."""
    h = hash_bytes(b"x")
    m = Manifest(
        (
            Entry("a", 0o100644, 1, h),
            Entry("b", 0o100644, 1, h),
            Entry("c", 0o120777, 1, "", "a"),
        )
    )
    assert m.hashes() == {h}


def test_on_hashed_gets_each_file_a_scan_hashes_with_small_contents(tmp_path: Path) -> None:
    """on_hashed is handed every file a scan hashes: the bytes that were hashed when the file
    holds at most whole_up_to bytes, else None; files the stat cache spared are not handed."""
    src = tmp_path / "k"
    write(src / "a.txt", "alpha")
    write(src / "big.bin", b"z" * 5000)
    settle()  # else the next scan hashes them again, as it must with files this fresh
    scanner = Scanner(src)
    seen: list[tuple[str, int, str, bytes | None]] = []
    scanner.on_hashed = lambda path, size, digest, data: seen.append((path, size, digest, data))
    scanner.whole_up_to = 1000
    scanner.scan()
    assert sorted(seen) == [
        (str(src.resolve() / "a.txt"), 5, hash_bytes(b"alpha"), b"alpha"),
        (str(src.resolve() / "big.bin"), 5000, hash_bytes(b"z" * 5000), None),
    ]
    seen.clear()
    write(src / "b.txt", "beta")
    scanner.scan()
    assert seen == [(str(src.resolve() / "b.txt"), 4, hash_bytes(b"beta"), b"beta")]


_GIT_FILES = [
    "a.py", "a.txt", "src/a.py", "src/b.txt", "src/deep/c.py", "src/deep/d.log", "dir/keep.txt",
    "dir/x.txt", "dir/sub/keep.txt", "build/out.o", "docs/build/x", "logs/a.log", "x/y/z.py",
    "src/build/y.o",
]  # fmt: skip
_GIT_POOL = [
    "*", "*/", "*.py", "*.txt", "*.log", "dir/**", "dir/*", "build/", "/build", "build",
    "**/deep", "deep/", "src/", "src/**", "src/*", "src/**/c.py", "/a.txt", "a.txt",
    "**/keep.txt", "keep.txt", "sub/", "x/", "x/**/z.py", "**", "docs/", "logs", "*.o", "y",
]  # fmt: skip
_GIT_IDIOMS = [
    (["dir/**", "!dir/keep.txt"], []),  # everything in dir but one file
    (["*", "!*/", "!*.py"], []),  # an allow-list: only Python files, in every folder
    (["*/"], []),  # every folder, no file at the top
    (["*.log", "!logs/a.log"], []),
    (["src/", "!src/a.py"], []),  # no way back into an ignored folder
    (["*.txt"], ["!b.txt"]),  # a subfolder's file re-included by its own .gitignore
]


def _git_untracked(root: Path) -> set[str]:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--others", "--exclude-standard", "-z"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return {p for p in out.decode().split("\0") if p}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is the reference")
def test_ignore_rules_leave_out_exactly_what_git_leaves_out(tmp_path: Path) -> None:
    """git is the reference: for common idioms and 120 random .gitignore files (with a
    subfolder's own, and negations), the scan holds exactly the files git would add."""
    rnd = random.Random(7)
    cases = list(_GIT_IDIOMS)
    for _ in range(120):
        top = [("!" if rnd.random() < 0.35 else "") + rnd.choice(_GIT_POOL)
               for _ in range(rnd.randint(1, 4))]  # fmt: skip
        sub = [("!" if rnd.random() < 0.5 else "") + rnd.choice(_GIT_POOL)
               for _ in range(rnd.randint(1, 2))] if rnd.random() < 0.4 else []  # fmt: skip
        cases.append((top, sub))
    for n, (top, sub) in enumerate(cases):
        root = tmp_path / f"case{n}"
        for f in _GIT_FILES:
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            (root / f).write_text(f)
        (root / ".gitignore").write_text("\n".join(top) + "\n")
        if sub:
            (root / "src" / ".gitignore").write_text("\n".join(sub) + "\n")
        scanned = {e.path for e in Scanner(root, tmp_path / f"cache{n}.json").scan(None).entries}
        assert scanned == _git_untracked(root), (top, sub)
