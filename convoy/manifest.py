"""The source tree's manifest, kept fresh at the cost of the change, not of the tree.

Like git's index, the Scanner remembers each file's (size, mtime_ns, ctime_ns, inode) with its
hash and re-hashes a file only when that stat changes: a rewrite that restores the old mtime
still changes ctime, and a replace-by-rename changes the inode. A file whose timestamps are
within a clock tick of the scan that read it is "racy" (a write in the same tick would leave its
stat unchanged), so it is re-hashed once more by the next full scan, as git does. A file watcher
names what changed; `scan(changed=...)` re-examines only those paths.

Hash (bench/hashes.py, 2-core x86-64 with SHA-NI and AVX-512, warm page cache, best of 5):

    hash        10,000 x 2 KB   5 x 20 MB   MB/s on 20 MB files
    read only       0.050 s      0.013 s    7,400
    sha256          0.080 s      0.085 s    1,180
    blake2b-256     0.098 s      0.162 s      620
    blake3          0.086 s      0.034 s    2,980
    xxh3-128        0.054 s      0.016 s    6,100   (not collision resistant: never a name)

Small files cost the same with every hash (open and read dominate; runs differ by 10-20%);
on large files (datasets use this path too) blake3 is 2.5x sha256 here, and more on hosts
without SHA instructions. So objects are named by BLAKE3 (convoy/content.py), a PyPI wheel.
"""

from __future__ import annotations

import bisect
import errno
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pathspec

from convoy.content import (
    SyncError,
    check_link_target,
    check_relpath,
    hash_bytes,
    hash_file,
    is_inside,
    printable,
    read_file,
    read_limited,
    revision_id,
)
from convoy.files import write_json
from convoy.paths import COOKIE_PREFIX
from convoy.sizes import human_bytes

__all__ = ["Entry", "Manifest", "Scanner", "SyncError", "check_relpath", "hash_bytes", "hash_file"]

ALWAYS_EXCLUDED = frozenset({".git", "convoy-results", ".convoy", "__pycache__"})
IGNORE_FILES = (".gitignore", ".convoyignore")  # in this order: .convoyignore has the last word
IGNORE_FILE_MAX = 1 << 20  # an ignore file is a list of patterns: a larger one is refused


def _unreadable_ignore_file(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "an ignore file must be a regular file; this one is a symbolic link"
    if e.errno == errno.EINVAL:
        return "an ignore file must be a regular file; this one is not (a FIFO, a device?)"
    if e.errno == errno.EFBIG:
        return f"an ignore file of over {IGNORE_FILE_MAX >> 20} MiB is refused"
    if e.errno == errno.EISDIR:
        return "an ignore file must be a regular file; this one is a folder"
    return f"cannot read this ignore file: {e.strerror}"


RACY_NS = 50_000_000  # above a kernel clock tick (1-10 ms) with margin
RACY_COARSE_NS = 2_000_000_000  # timestamps in whole seconds: a 1-2 s granular file system
_CACHE_VERSION = 1

StatKey = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode (-1: re-hash next time)


@dataclass(frozen=True)
class Entry:
    path: str  # relative, '/'-separated
    mode: int  # st_mode: regular file or symlink, with its permission bits
    size: int
    hash: str  # content hash (hex) of a regular file; "" for a symlink
    target: str = ""  # a symlink's target, relative and inside the tree


DEFAULT_MAX_TREE_BYTES = 20 << 30  # sources or an input folder (CONVOY_MAX_TREE_BYTES)
SOURCES_WARN_BYTES = 1 << 30  # sources larger than this get a warning at submit


def max_tree_bytes() -> int:
    """The most a source or input tree may hold: CONVOY_MAX_TREE_BYTES, in the coordinator's
    environment, else DEFAULT_MAX_TREE_BYTES."""
    given = os.environ.get("CONVOY_MAX_TREE_BYTES", "")
    return int(given) if given.isdigit() and int(given) > 0 else DEFAULT_MAX_TREE_BYTES


def _too_large(size: int, limit: int, at_least: str = "") -> str:
    return (f"the tree holds {at_least}{human_bytes(size)}, over the {human_bytes(limit)} "
            "convoy takes (CONVOY_MAX_TREE_BYTES, set where the coordinator starts, raises "
            "it); list what the runs do not need in .convoyignore")  # fmt: skip


SPARSE_MIN = 64 << 20  # a file this large taking under 1/SPARSE_RATIO of it on disk is refused
SPARSE_RATIO = 8


def _check_not_sparse(rel: str, st: os.stat_result) -> None:
    """A sparse file (holes that take no disk) would be stored and sent byte for byte: a
    2 GiB file of holes becomes 2 GiB in each store and on each host. Refused, saying so."""
    on_disk = st.st_blocks * 512
    if st.st_size >= SPARSE_MIN and on_disk * SPARSE_RATIO < st.st_size:
        raise SyncError(
            f"a sparse file: {human_bytes(st.st_size)} long but {human_bytes(on_disk)} on disk "
            "(holes, or its file system compresses it); convoy would store and send every byte "
            "of it. "
            "Make it in the run, or list it in .convoyignore", rel,
        )  # fmt: skip


def _check_name(rel: str) -> None:
    """A name kept (not ignored) must be UTF-8: a manifest, a run's file list and its results
    carry names as text, and a name that is not would fail later, on a host."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise SyncError("the name is not UTF-8: rename it, or list it in .convoyignore",
                        printable(rel)) from None  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]  # sorted by path

    @cached_property
    def revision(self) -> str:
        """The revision id: a hash over every entry's path, mode and content (or link target)."""
        return revision_id(self.entries)

    @property
    def size(self) -> int:
        """The bytes of its regular files."""
        return sum(e.size for e in self.entries if not e.target and e.hash)

    def hashes(self) -> set[str]:
        """The objects the manifest needs (what to ask a host about)."""
        return {e.hash for e in self.entries if e.hash}


class _Ignore:
    """One folder's .gitignore and .convoyignore, with git's last-match-wins semantics.

    pathspec compiles each pattern; which of its matches count is decided here, as git
    decides: a pattern matches a directory itself (`*`, `build/`, `*/`), not only what is
    below it (`dir/**` and `dir/*` do not match `dir`), and a file only by its own path, never
    through a folder above it (the walk has decided the folders already, which is how a
    `!` rule re-includes a file inside an ignored folder's allowed subfolder, and never one
    inside an ignored folder). Checked against git itself in tests/unit/test_manifest.py."""

    def __init__(self, lines: list[str]) -> None:
        self.spec = pathspec.GitIgnoreSpec.from_lines(lines)
        self.rules: list[tuple[re.Pattern[str], re.Pattern[str], bool]] = [
            (p.regex, re.compile(f"(?:{p.regex.pattern})$"), bool(p.include))
            for p in self.spec.patterns
            if p.regex is not None and p.include is not None
        ]
        # A single-regex prefilter: most paths match no pattern, and one search is much cheaper
        # than a loop over the patterns.
        regexes = [r.pattern for r, _, _ in self.rules]
        try:
            joined = "|".join(f"(?:{r})" for r in regexes).replace("(?P<ps_d>", "(?:")
            self.any: re.Pattern[str] | None = re.compile(joined) if regexes else None
        except re.error:
            self.any = re.compile("")  # always consult the patterns
        self.empty = not regexes

    def decide(self, sub: str, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a '!' pattern; None: no pattern matches."""
        probe = sub + "/" if is_dir else sub
        if self.any is None or self.any.search(probe) is None:
            return None
        verdict = None
        for regex, at_end, include in self.rules:
            m = regex.search(sub)
            if m is not None and ("ps_d" not in regex.groupindex or m.start("ps_d") < 0):
                verdict = include  # the path itself, not a folder above it
            elif is_dir:
                m = at_end.search(probe)  # as a folder: the pattern ends at its slash
                if m is not None and "ps_d" in regex.groupindex and m.start("ps_d") == len(sub):
                    verdict = include
        return verdict


Chain = tuple[tuple[str, _Ignore], ...]  # (folder, rules) from the root down


def _ignored(chain: Chain, rel: str, is_dir: bool) -> bool:
    for base, rules in reversed(chain):  # the deepest folder that has a say decides
        sub = rel[len(base) + 1 :] if base else rel
        verdict = rules.decide(sub, is_dir)
        if verdict is not None:
            return verdict
    return False


def _racy(st: os.stat_result, started_ns: int) -> bool:
    m, c = st.st_mtime_ns, st.st_ctime_ns
    if m > started_ns - RACY_NS or c > started_ns - RACY_NS:
        return True
    coarse = m % 1_000_000_000 == 0 and c % 1_000_000_000 == 0
    return coarse and max(m, c) > started_ns - RACY_COARSE_NS


class Scanner:
    """Scans one source tree; re-hashes only the files whose stat changed since the last scan.

    Not thread-safe: a watcher thread should hand its paths to the thread that scans."""

    def __init__(
        self, root: Path, cache_file: Path | None = None, extra_excludes: Sequence[Path] = ()
    ) -> None:
        self.root = Path(root).resolve()
        self._given_root = Path(os.path.abspath(root))
        self._root_s = str(self.root)
        self.cache_file = cache_file
        self._excludes = {str(Path(p).resolve()) for p in extra_excludes}
        self._entries: dict[str, Entry] = {}
        self._keys: dict[str, StatKey] = {}
        self._paths: list[str] = []  # sorted keys of _entries
        self._rules: dict[str, _Ignore | None] = {}  # folder -> its ignore files, as last read
        self._scanned = False  # whether this instance walked the tree (the watcher's baseline)
        self._manifest: Manifest | None = None
        self.hashed = 0  # files hashed by the last scan: what the stat cache did not spare
        # Set on_hashed, and each regular file a scan hashes is handed to it as (absolute path,
        # size, hash, content): the content, read whole to hash it, when the file holds at
        # most `whole_up_to` bytes, else None. The caller can store what is new while the scan
        # goes on, with no second read of a small file, storing exactly what was hashed.
        self.on_hashed: Callable[[str, int, str, bytes | None], None] | None = None
        self.whole_up_to = 0
        self.max_bytes = max_tree_bytes()  # the most a tree may hold; more is refused
        self._walked = 0  # bytes of the regular files a full walk went through so far
        if cache_file is not None and cache_file.exists():
            self._load(cache_file)

    # -- scanning ----------------------------------------------------------------------------

    def scan(self, changed: Iterable[str] | None = None) -> Manifest:
        """The tree's manifest. `changed`: paths (relative, or absolute under the root) that a
        watcher saw change; only those are re-examined. A change to an ignore file, or a first
        scan by this instance, makes it a full walk (which still hashes only stat changes)."""
        self.hashed = 0
        started = time.time_ns()
        rels = None if changed is None else [self._relative(p) for p in changed]
        try:
            if (
                rels is None
                or not self._scanned
                or any(r is not None and r.rpartition("/")[2] in IGNORE_FILES for r in rels)
            ):
                self._full(started)
            else:
                for rel in rels:
                    if rel is not None:
                        self._rescan(rel, started)
        except BaseException:  # half-applied: the next scan walks the tree again
            self._scanned, self._manifest = False, None
            self._paths = sorted(self._entries)
            raise
        if self._manifest is None:
            manifest = Manifest(tuple(self._entries[p] for p in self._paths))
            if (size := manifest.size) > self.max_bytes:  # grown by changes: said now
                self._scanned = False
                raise SyncError(_too_large(size, self.max_bytes))
            self._manifest = manifest
        return self._manifest

    def _full(self, started: int) -> None:
        old_keys, old_entries = self._keys, self._entries
        self._keys, self._entries, self._rules = {}, {}, {}
        self._walked = 0
        self._walk("", (), started, old_keys, old_entries)
        self._paths = sorted(self._entries)
        self._scanned = True
        if self._entries != old_entries:
            self._manifest = None

    def _walk(
        self,
        top: str,
        chain: Chain,
        started: int,
        old_keys: dict[str, StatKey],
        old_entries: dict[str, Entry],
        added: list[str] | None = None,
    ) -> None:
        """Walk the folder `top` ('' is the root), adding what it holds to the entries."""
        stack: list[tuple[str, Chain]] = [(top, chain)]
        while stack:
            rel_dir, chain = stack.pop()
            abs_dir = f"{self._root_s}/{rel_dir}" if rel_dir else self._root_s
            try:
                with os.scandir(abs_dir) as it:
                    items = list(it)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise SyncError(f"cannot list folder: {e.strerror}", rel_dir or ".") from e
            rules = self._read_rules(rel_dir, abs_dir, {d.name for d in items})
            if rules is not None:
                chain = (*chain, (rel_dir, rules))
            for item in items:
                name = item.name
                if name in ALWAYS_EXCLUDED or name.startswith(COOKIE_PREFIX):
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if self._excludes and item.path in self._excludes:
                    continue
                if chain and _ignored(chain, rel, is_dir):
                    continue
                _check_name(rel)
                if is_dir:
                    stack.append((rel, chain))
                else:
                    self._examine(rel, item.path, st, started, old_keys, old_entries, added)

    def _read_rules(self, rel_dir: str, abs_dir: str, names: set[str]) -> _Ignore | None:
        if rel_dir in self._rules:
            return self._rules[rel_dir]
        lines: list[str] = []
        for fname in IGNORE_FILES:
            if fname in names:
                rel = f"{rel_dir}/{fname}" if rel_dir else fname
                try:
                    data = read_limited(f"{abs_dir}/{fname}", IGNORE_FILE_MAX)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise SyncError(_unreadable_ignore_file(e), rel) from None
                lines.extend(data.decode("utf-8", "replace").splitlines())
        rules = _Ignore(lines) if lines else None
        if rules is not None and rules.empty:
            rules = None
        self._rules[rel_dir] = rules
        return rules

    def _examine(
        self,
        rel: str,
        abs_path: str,
        st: os.stat_result,
        started: int,
        old_keys: dict[str, StatKey],
        old_entries: dict[str, Entry],
        added: list[str] | None = None,
    ) -> None:
        """Record one non-folder: a regular file (hashed only when its stat changed) or a
        symlink (checked to stay inside the tree); anything else is refused."""
        mode = st.st_mode
        racy = _racy(st, started)
        key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, -1 if racy else st.st_ino)
        old = old_entries.get(rel)
        if stat.S_ISREG(mode):
            if added is None:  # a full walk: stopped as soon as the tree is too large
                self._walked += st.st_size
                if self._walked > self.max_bytes:
                    raise SyncError(_too_large(self._walked, self.max_bytes, "at least "))
            if old is not None and old.mode == mode and old_keys.get(rel) == (*key[:3], st.st_ino):
                entry = old  # the same object: comparing manifests stays cheap
            else:
                _check_not_sparse(rel, st)
                try:
                    data = None
                    if self.on_hashed is not None and st.st_size <= self.whole_up_to:
                        data = read_file(abs_path, st.st_size)
                        digest = hash_bytes(data)
                    else:
                        digest = hash_file(abs_path)
                except FileNotFoundError:
                    return
                except OSError as e:
                    raise SyncError(f"cannot read: {e.strerror}", rel) from e
                self.hashed += 1
                if self.on_hashed is not None:
                    self.on_hashed(abs_path, st.st_size, digest, data)
                entry = Entry(rel, mode, st.st_size, digest)
        elif stat.S_ISLNK(mode):
            entry = Entry(rel, mode, st.st_size, "", self._link_target(rel, abs_path))
            entry = old if old == entry and old is not None else entry
        else:
            kind = "fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
            raise SyncError(f"a {kind} cannot be synced (ignore it in .convoyignore)", rel)
        self._entries[rel] = entry
        self._keys[rel] = key
        if added is not None:
            added.append(rel)

    def _link_target(self, rel: str, abs_path: str) -> str:
        try:
            target = os.readlink(abs_path)
        except OSError as e:
            raise SyncError(f"cannot read symlink: {e.strerror}", rel) from e
        if target.startswith("/"):
            raise SyncError(f"symlink target {target!r} is absolute", rel)
        check_link_target(rel, target)
        if not is_inside(Path(os.path.realpath(abs_path)), self.root):
            raise SyncError(f"symlink target {target!r} resolves outside the tree", rel)
        return target

    # -- a watcher's paths -------------------------------------------------------------------

    def _relative(self, path: str | os.PathLike[str]) -> str | None:
        p = os.fspath(path)
        if os.path.isabs(p):
            for root in (self._root_s, str(self._given_root)):
                if p.startswith(root + "/"):
                    return p[len(root) + 1 :].rstrip("/") or None
            return None  # outside the tree (or the root itself: a full scan covers that)
        p = p.strip("/")
        try:
            return check_relpath(p)
        except SyncError:
            return None

    def _chain_for(self, rel_dir: str) -> Chain | None:
        """The ignore rules that apply inside `rel_dir`, or None when the folder itself is
        excluded, ignored or not a folder of the tree."""
        chain: Chain = ()
        parts = rel_dir.split("/") if rel_dir else []
        for i in range(len(parts) + 1):
            d = "/".join(parts[:i])
            abs_dir = f"{self._root_s}/{d}" if d else self._root_s
            if i:
                if parts[i - 1] in ALWAYS_EXCLUDED or abs_dir in self._excludes:
                    return None
                if not os.path.isdir(abs_dir) or os.path.islink(abs_dir):
                    return None
                if chain and _ignored(chain, d, True):
                    return None
            if d not in self._rules:
                names = {n for n in IGNORE_FILES if os.path.exists(f"{abs_dir}/{n}")}
                self._read_rules(d, abs_dir, names)
            rules = self._rules[d]
            if rules is not None:
                chain = (*chain, (d, rules))
        return chain

    def _rescan(self, rel: str, started: int) -> None:
        for d in [d for d in self._rules if d == rel or d.startswith(rel + "/")]:
            del self._rules[d]  # a folder moved in brings its own ignore files
        parent, _, name = rel.rpartition("/")
        chain = self._chain_for(parent)
        abs_path = f"{self._root_s}/{rel}"
        st = None
        excluded = name in ALWAYS_EXCLUDED or name.startswith(COOKIE_PREFIX)
        if chain is not None and not excluded and abs_path not in self._excludes:
            try:
                st = os.lstat(abs_path)
            except FileNotFoundError:
                st = None
        if st is not None and chain and _ignored(chain, rel, stat.S_ISDIR(st.st_mode)):
            st = None
        before: dict[str, Entry] = {}
        before_keys: dict[str, StatKey] = {}
        dropped = self._drop(rel, before_keys, before)
        added: list[str] = []
        if st is not None and chain is not None and stat.S_ISDIR(st.st_mode):
            self._walk(rel, chain, started, before_keys, before, added)
        elif st is not None:
            self._examine(rel, abs_path, st, started, before_keys, before, added)
        for p in dropped:
            if p not in self._entries:
                del self._paths[bisect.bisect_left(self._paths, p)]
        for p in added:
            if p not in before:
                bisect.insort(self._paths, p)
        if any(self._entries.get(p) is not before.get(p) for p in (*dropped, *added)):
            self._manifest = None

    def _drop(
        self, rel: str, keep_keys: dict[str, StatKey], keep_entries: dict[str, Entry]
    ) -> list[str]:
        """Forget `rel` and everything under it from the entries (not yet from the sorted paths),
        keeping the old records in the given dicts so that a re-walk re-hashes nothing unchanged;
        the paths dropped."""
        lo = bisect.bisect_left(self._paths, rel + "/")
        hi = bisect.bisect_left(self._paths, rel + "0")  # '0' sorts right after '/'
        gone = [rel, *self._paths[lo:hi]] if rel in self._entries else self._paths[lo:hi]
        for p in gone:
            keep_entries[p] = self._entries.pop(p)
            keep_keys[p] = self._keys.pop(p)
        return gone

    # -- the stat cache on disk --------------------------------------------------------------

    def save(self) -> None:
        """Write the stat cache to cache_file (atomically), for the next Scanner of this tree."""
        self.saver()()

    def saver(self) -> Callable[[], None]:
        """What save() writes, taken now; the returned call writes it (on any thread, while
        scans go on)."""
        cache_file = self.cache_file
        if cache_file is None:
            return lambda: None
        rows = [
            [e.path, e.mode, e.size, e.hash, e.target, *self._keys[p]]
            for p, e in self._entries.items()
        ]
        root = self._root_s

        cache = {"version": _CACHE_VERSION, "root": root, "entries": rows}
        return lambda: write_json(cache_file, cache, durable=True)

    def _load(self, cache_file: Path) -> None:
        """Read a saved stat cache; one that is unreadable or of another version is ignored
        (the next scan then hashes everything, which is slow but right)."""
        try:
            data = json.loads(cache_file.read_text(encoding="utf-8"))
            if data.get("version") != _CACHE_VERSION or data.get("root") != self._root_s:
                return
            for path, mode, size, digest, target, *key in data["entries"]:
                self._entries[path] = Entry(path, mode, size, digest, target)
                self._keys[path] = (key[0], key[1], key[2], key[3])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self._entries, self._keys = {}, {}
        self._paths = sorted(self._entries)
