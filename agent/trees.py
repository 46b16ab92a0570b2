"""File-tree helpers for the object store's snapshots: manifest rows, deltas, hard-linked
copies of trees, and the checks a built tree must pass."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from convoy.content import (
    EXECUTABLE,
    LINK,
    Checked,
    EntryLike,
    SyncError,
    folders_of,
    is_inside,
)


@dataclass(frozen=True)
class ManifestRow:
    path: str
    mode: int
    size: int
    hash: str
    target: str


def apply_delta(
    base: Sequence[EntryLike], changed: Sequence[EntryLike], removed: Iterable[str]
) -> list[EntryLike]:
    """A revision's entries from its base's: `changed` replace or add, `removed` go."""
    gone = set(removed)
    by_path: dict[str, EntryLike] = {e.path: e for e in base if e.path not in gone}
    for e in changed:
        by_path[e.path] = e
    return [by_path[p] for p in sorted(by_path)]


def kinds_clash(top: set[str], base: set[str]) -> bool:
    """True when a path is a file on one side and a folder on the other (layers cannot say)."""
    return bool(top & folders_of(base)) or bool(folders_of(top) & base)


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link `src`'s files (and copy its symlinks) into `dst`, replacing what is there."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst / rel if rel != "." else dst
        target.mkdir(parents=True, exist_ok=True)
        for name in [
            *filenames,
            *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))),
        ]:
            s, d = os.path.join(dirpath, name), target / name
            if d.is_symlink() or d.is_file():
                d.unlink()
            if os.path.islink(s):
                os.symlink(os.readlink(s), d)
            else:
                os.link(s, d)


def own_tree(root: Path | str, owner: tuple[int, int] | None) -> int:
    """Give a tree (its folders, files and links, the files being objects' inodes) to `owner`
    (uid, gid), where it is not theirs already; the number changed. None: nothing to do. So a
    run that executes as that user may write its workspace over these (agent/policy.py)."""
    if owner is None:
        return 0
    uid, gid = owner
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (".", *dirnames, *filenames):
            path = dirpath if name == "." else os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(path, uid, gid)
                changed += 1
    return changed


def check_links(staging: Path, want: dict[str, Checked]) -> None:
    """Resolve every symlink as built: each is inside by itself, but a link through another
    link can still leave the tree."""
    root = staging.resolve()
    for path, (e, kind) in want.items():
        if kind == LINK and not is_inside(Path(os.path.realpath(staging / path)), root):
            raise SyncError(f"symlink target {e.target!r} resolves outside the tree", path)


def link_or_copy(obj: str, dst: str, kind: int) -> None:
    """Hard-link an object; copy it when it is in as many snapshots as the fs allows (EMLINK:
    65,000 on ext4, reached by a common file such as an empty __init__.py)."""
    try:
        os.link(obj, dst)
    except OSError as err:
        if err.errno != errno.EMLINK:
            raise
        copy_object(obj, dst, kind)


def copy_object(obj: str, dst: str, kind: int) -> None:
    shutil.copyfile(obj, dst)
    os.chmod(dst, 0o755 if kind == EXECUTABLE else 0o644)


class ObjectsMissing(SyncError):
    """A snapshot cannot be built for want of objects: the store lacks them (collected since
    the coordinator learned the host had them). MakeRevision answers NOT_FOUND."""


def lacking(absent: Sequence[str], revision: str) -> ObjectsMissing:
    """The error of a snapshot that cannot be built for want of objects (sorted hashes)."""
    more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
    return ObjectsMissing(f"missing objects: {', '.join(absent[:3])}{more}", revision)


def rmtree_quiet(path: Path | str) -> None:
    """Remove a tree, quietly. Runs and builds may leave folders that their owner cannot write
    or search (a Go module cache is read-only; `chmod 000`), which a plain rmtree would leave
    on the host for good, or trees deeper than Python's recursion (shutil.rmtree recurses):
    then the folders are made the owner's to change (0700) and `rm -rf` removes the rest.
    No symlink is followed, even one swapped in while this runs. What still cannot go
    (another user's files) stays."""
    with contextlib.suppress(RecursionError):
        shutil.rmtree(path, ignore_errors=True)
    if os.path.isdir(path) and not os.path.islink(path):
        _make_removable(os.fspath(path))
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", "--", os.fspath(path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)  # fmt: skip


_FOLDER = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LEVELS = 200  # descriptors held at most (one per level): the agent's others need theirs


def _make_removable(top: str) -> None:
    """chmod 0700 every folder of the tree, depth first. Each is opened by name within its
    parent's descriptor, without following a link (O_PATH opens a folder of mode 000 too), and
    changed through that descriptor: a folder swapped for a link meanwhile is not followed.
    The descriptors held are one per level, so folders deeper than _LEVELS are left as they
    are (rm -rf still removes them if their modes let it). Without /proc, folders are listed
    but not changed."""
    try:
        fd = os.open(top, _FOLDER)
    except OSError:
        return
    frames: list[tuple[int, list[str]]] = []
    while True:
        subfolders: list[str] = []
        with contextlib.suppress(OSError):
            os.chmod(f"/proc/self/fd/{fd}", 0o700)  # the folder opened, whatever its name is now
        if len(frames) < _LEVELS:
            with contextlib.suppress(OSError):
                listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                try:
                    with os.scandir(listing) as entries:
                        subfolders = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
                finally:
                    os.close(listing)
        frames.append((fd, subfolders))
        while frames:
            parent, rest = frames[-1]
            if rest:
                try:
                    fd = os.open(rest.pop(), _FOLDER, dir_fd=parent)
                except OSError:
                    continue
                break
            os.close(parent)
            frames.pop()
        else:
            return
