"""A run's working directory: materialised from its revision, and what it created or changed.

Issue 2's plain-copy workspace: the revision's files are copied in and their stat recorded; after
the run, a file is a result when it is new or its (size, mtime, inode) changed. The overlay
workspace (upper directory = the run's changes) replaces the comparison where overlayfs exists.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import shutil
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath

Manifest = dict[str, tuple[int, int, int]]


def is_safe_relpath(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and "\\" not in path


def materialise(source: Path, work: Path) -> Manifest:
    """Copy the revision's regular files and folders into `work`; return their stat manifest.

    Symlinks are copied as links only when they stay inside the tree; device files, sockets and
    fifos are skipped.
    """
    work.mkdir(parents=True, exist_ok=True)
    manifest: Manifest = {}
    src_root = source.resolve()
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = Path(dirpath).relative_to(source)
        real_dirs = []
        for d in dirnames:
            if (Path(dirpath) / d).is_symlink():  # os.walk lists links to folders as folders
                if _link_if_inside(Path(dirpath) / d, work / rel_dir / d, src_root):
                    manifest[(rel_dir / d).as_posix()] = _key((work / rel_dir / d).lstat())
                continue
            (work / rel_dir / d).mkdir(exist_ok=True)
            real_dirs.append(d)
        dirnames[:] = real_dirs
        for name in filenames:
            src = Path(dirpath) / name
            dst = work / rel_dir / name
            st = src.lstat()
            if stat.S_ISLNK(st.st_mode):
                if _link_if_inside(src, dst, src_root):  # the sources' own: not a result
                    manifest[(rel_dir / name).as_posix()] = _key(dst.lstat())
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            shutil.copy2(src, dst)
            manifest[(rel_dir / name).as_posix()] = _key(dst.lstat())
    return manifest


def _link_if_inside(src: Path, dst: Path, root: Path) -> bool:
    target = os.readlink(src)
    if (src.parent / target).resolve().is_relative_to(root):
        os.symlink(target, dst)
        return True
    return False


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _walk_files(
    work: Path, hidden: list[str] | None = None
) -> Iterator[tuple[str, os.stat_result]]:
    """What the run left under `work` that is not a folder, with its lstat, links not
    followed: regular files, and links, FIFOs, sockets and devices (never results, but said to
    be left out; an overlay's whiteouts, its deletions, are not yielded). The run made the
    tree: a folder it made unreadable is passed over (and named in `hidden`, when given, '.'
    for `work` itself), and no depth overflows the stack (the walk keeps its own)."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        found = []
        unreadable = False  # cannot be listed, or what it holds cannot be looked at
        try:
            with os.scandir(work / rel_dir if rel_dir else work) as entries:
                for e in entries:
                    try:
                        found.append((e.name, e.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        pass  # gone meanwhile: that entry only
                    except OSError:
                        unreadable = True
        except FileNotFoundError:
            pass  # removed meanwhile: nothing was in it
        except OSError:
            unreadable = True
        if unreadable and hidden is not None:
            hidden.append(rel_dir or ".")
        for name, st in found:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            elif not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):  # a whiteout
                yield rel, st


def disk_bytes(root: Path) -> int:
    """The disk blocks, in bytes, of what _walk_files finds under `root`."""
    return sum(st.st_blocks * 512 for _, st in _walk_files(root)) if root.exists() else 0


def changed_files(work: Path, manifest: Manifest, hidden: list[str] | None = None) -> list[str]:
    """What the run created or changed in `work` (see _walk_files), sorted; folders that could
    not be read are added to `hidden`."""
    return sorted(rel for rel, st in _walk_files(work, hidden) if manifest.get(rel) != _key(st))


def upper_files(upper: Path, hidden: list[str] | None = None) -> list[str]:
    """What a run created or changed in an overlay workspace: what its upper folder holds
    (see _walk_files), sorted; folders that could not be read are added to `hidden`."""
    return sorted(rel for rel, _ in _walk_files(upper, hidden)) if upper.exists() else []


def select_outputs(
    work: Path, patterns: Iterable[str], manifest: Manifest, hidden: list[str] | None = None
) -> list[str]:
    """Files matching the declared outputs: a folder means everything below it; globs allowed.

    Only files the run created or changed count, so inputs that match a pattern do not come back.
    """
    return filter_outputs(changed_files(work, manifest, hidden), patterns)


def filter_outputs(changed: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The changed files that match the declared outputs (see select_outputs)."""
    pats = [posixpath.normpath(p).rstrip("/") for p in patterns]
    out = []
    for rel in changed:
        for pat in pats:
            if fnmatch.fnmatchcase(rel, pat) or rel.startswith(pat + "/"):
                out.append(rel)
                break
            parts = rel.split("/")
            if any(fnmatch.fnmatchcase("/".join(parts[:i]), pat) for i in range(1, len(parts))):
                out.append(rel)
                break
    return out


def may_hold_outputs(folder: str, patterns: Sequence[str]) -> bool:
    """Whether files below `folder` could match the declared outputs (see filter_outputs): the
    text of a pattern before its first glob character (all of it, as a folder, for a pattern
    with none) names the folder, something in it or a folder above it. Past a glob, any depth
    may match (fnmatch's `*` crosses '/'), so a folder that may hold a match is named."""
    if folder == ".":  # the workspace itself
        return bool(patterns)
    below = folder + "/"
    for pat in (posixpath.normpath(p).rstrip("/") for p in patterns):
        glob = min((i for i, c in enumerate(pat) if c in "*?["), default=-1)
        lead = pat + "/" if glob < 0 else pat[:glob]
        if below.startswith(lead) or lead.startswith(below):
            return True
    return False
