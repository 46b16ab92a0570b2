"""What the coordinator and the agent must agree on to sync content: object names and paths.

Both sides import this module (the agent imports no coordinator code). An object is named by
the BLAKE3 hash of its bytes, as 64 lowercase hex digits; bench/hashes.py measured the choice
(see convoy/manifest.py). Paths on the wire are relative and '/'-separated, and
are checked here on both sides, because a path is where a bad manifest would write outside its
tree.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from blake3 import blake3

from convoy.errors import ConvoyError

HASH_HEX_LEN = 64
FILE, EXECUTABLE, LINK = 0, 1, 2  # the kinds of entry a tree holds
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_READ_BUF = 1 << 20


class EntryLike(Protocol):
    """A manifest entry: convoy/manifest.py's Entry and the wire's ManifestEntry both fit."""

    @property
    def path(self) -> str: ...
    @property
    def mode(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def target(self) -> str: ...


class SyncError(ConvoyError):
    """Content could not be synced: a bad path, a bad object, a missing object."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path  # the path or object the error is about, when there is one
        self.message = message


def printable(rel: str) -> str:
    """A path as text: bytes of its name that are not UTF-8 written as \\xNN."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    return blake3(data).hexdigest()


def revision_id(entries: Iterable[EntryLike]) -> str:
    """The revision id of a tree: a hash over each entry's path, mode and content or link
    target, in path order. Both sides compute it, so a host can check that a revision's name
    is its content, and an existing revision of that name is the same tree."""
    parts = [f"{e.path}\0{e.mode:o}\0{e.hash or e.target}\0" for e in entries]
    return hash_bytes("".join(parts).encode("utf-8", "surrogateescape"))[:20]


def new_hasher() -> blake3:
    """An incremental hasher, for content that arrives in chunks."""
    return blake3()


def open_regular_fd(path: str | os.PathLike[str]) -> int:
    """A file of a source tree, opened for reading as it is: a symbolic link is not followed
    (ELOOP), a FIFO is not waited on (non-blocking), and anything but a regular file is refused
    (EINVAL) before a byte is read: a tree may change between its scan and its reading."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "a folder", str(path))
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """A small regular file whole (open_regular_fd); OSError EFBIG beyond `limit` bytes."""
    fd = open_regular_fd(path)
    try:
        if os.fstat(fd).st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
        data = os.read(fd, limit + 1)
        if len(data) > limit:  # it grew meanwhile
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
        return data
    finally:
        os.close(fd)


def hash_file(path: str | os.PathLike[str]) -> str:
    """Hash a file's content, reading it once; follows no symlink (the caller lstat-ed it)."""
    h = blake3()
    fd = open_regular_fd(path)
    try:
        while chunk := os.read(fd, _READ_BUF):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def read_file(path: str | os.PathLike[str], size: int = -1) -> bytes:
    """A whole (small) file's content; follows no symlink (the caller lstat-ed it). With the
    `size` that stat gave, one read of one byte more usually finds the end: a file of that
    size, then, is taken as read whole, sparing the second read that would find the end (a
    tenth of a 10,000-file tree's first scan). Anything else is read to the end."""
    fd = open_regular_fd(path)
    try:
        parts = []
        if 0 <= size < _READ_BUF:
            first = os.read(fd, size + 1)
            if len(first) == size:
                return first
            parts.append(first)
        while chunk := os.read(fd, _READ_BUF):
            parts.append(chunk)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def check_hash(value: str) -> str:
    """A hash names a file in the object store: anything but 64 lowercase hex digits is refused."""
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        raise SyncError("not a content hash", repr(value)[:80])
    return value


def check_relpath(path: str) -> str:
    """Refuse a path that could name something outside its tree, or be read two ways.

    Non-empty, relative, '/'-separated, no '', '.' or '..' segment, no backslash, no NUL.
    """
    if not isinstance(path, str) or not path:
        raise SyncError("empty path", repr(path))
    if "\x00" in path:
        raise SyncError("NUL in path", repr(path))
    if "\\" in path:
        raise SyncError("backslash in path", path)
    if path.startswith("/"):
        raise SyncError("absolute path", path)
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise SyncError(f"path segment {part!r} not allowed", path)
    return path


def check_link_target(path: str, target: str) -> str:
    """A symlink at `path` (relative to the tree) may only point inside the tree, relatively.

    This is the lexical check, the one a manifest allows; whoever builds the tree also resolves
    the links it made (see agent/objects.py), since a link through another link can escape.
    """
    check_relpath(path)
    if not target or "\x00" in target or "\\" in target:
        raise SyncError(f"bad symlink target {target!r}", path)
    if target.startswith("/"):
        raise SyncError(f"symlink target {target!r} is absolute", path)
    depth = path.count("/")  # folders above the link, inside the tree
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise SyncError(f"symlink target {target!r} leaves the tree", path)
        elif part not in ("", "."):
            depth += 1
    return target


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path` (already resolved) is `root` or below it (also resolved)."""
    return path == root or root in path.parents


Checked = tuple[EntryLike, int]  # an entry and its kind


def entry_kind(e: EntryLike) -> int:
    """FILE, EXECUTABLE (any x bit: the only permission a snapshot keeps) or LINK."""
    if stat.S_ISLNK(e.mode):
        return LINK
    if stat.S_ISREG(e.mode):
        return EXECUTABLE if e.mode & 0o111 else FILE
    raise SyncError(f"mode {e.mode:o} is not a regular file or symlink", e.path)


def check_entries(entries: Sequence[EntryLike]) -> dict[str, Checked]:
    """The entries by path, in path order, each checked: a safe path, a known kind, a hash or a
    link target inside the tree, no path twice, and no path below a file or symlink."""
    want: dict[str, Checked] = {}
    for e in sorted(entries, key=lambda e: e.path):
        check_relpath(e.path)
        if e.path in want:
            raise SyncError("path listed twice", e.path)
        kind = entry_kind(e)
        if kind == LINK:
            check_link_target(e.path, e.target)
        else:
            check_hash(e.hash)
        want[e.path] = (e, kind)
    clash = sorted(folders_of(want) & want.keys())
    if clash:
        raise SyncError("a file or symlink is also a folder of another entry", clash[0])
    return want


def folders_of(paths: Iterable[str]) -> set[str]:
    """Every folder the paths need, parents included ('' not)."""
    out: set[str] = set()
    for p in paths:
        parent = p.rpartition("/")[0]
        while parent and parent not in out:
            out.add(parent)
            parent = parent.rpartition("/")[0]
    return out
