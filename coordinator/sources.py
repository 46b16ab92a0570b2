"""Make revision R of an experiment's sources available on host H.

Issue 2's version: at submit, the source tree is snapshotted into the coordinator's revision
store (named by its tree hash, so an unchanged tree is stored once), and a host on this machine
reads the snapshot in place. The content-addressed sync to remote hosts replaces `ensure_on_host`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

ALWAYS_EXCLUDED = (".git", "convoy-results", ".convoy", "__pycache__")


@dataclass(frozen=True)
class Revision:
    id: str
    path: Path  # the snapshot on the coordinator's disk


def _ignore_patterns(source: Path) -> list[str]:
    f = source / ".convoyignore"
    if not f.exists():
        return []
    lines = (ln.strip() for ln in f.read_text().splitlines())
    return [ln.rstrip("/") for ln in lines if ln and not ln.startswith("#")]


def _excluded(rel: str, name: str, patterns: list[str]) -> bool:
    if name in ALWAYS_EXCLUDED:
        return True
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def list_tree(source: Path, extra_excludes: tuple[Path, ...] = ()) -> list[str]:
    """Relative paths of the regular files and symlinks that make up the sources, sorted."""
    patterns = _ignore_patterns(source)
    skip = {p.resolve() for p in extra_excludes}
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel_dir = here.relative_to(source)
        kept = sorted(
            d for d in dirnames
            if not _excluded((rel_dir / d).as_posix(), d, patterns)
            and (here / d).resolve() not in skip
        )  # fmt: skip
        out.extend((rel_dir / d).as_posix() for d in kept if (here / d).is_symlink())
        dirnames[:] = [d for d in kept if not (here / d).is_symlink()]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if _excluded(rel, name, patterns):
                continue
            mode = (here / name).lstat().st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                out.append(rel)
    return sorted(out)


def tree_hash(source: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        p = source / rel
        st = p.lstat()
        h.update(rel.encode() + b"\0" + oct(st.st_mode).encode() + b"\0")
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(p).encode())
        else:
            with open(p, "rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def snapshot(source: Path, store: Path, extra_excludes: tuple[Path, ...] = ()) -> Revision:
    """Snapshot `source` into `store/<tree hash>/` unless that revision is already there."""
    files = list_tree(source, extra_excludes)
    rev = tree_hash(source, files)[:20]
    final = store / rev
    if final.exists():
        return Revision(rev, final)
    store.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{rev}-", dir=store))
    try:
        for rel in files:
            src, dst = source / rel, tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
        os.rename(tmp, final)
    except FileExistsError:  # another submission stored the same revision meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Revision(rev, final)


def ensure_on_host(revision: Revision, host: str) -> str:
    """The path, on `host`, of the revision's files. Local hosts read the snapshot in place."""
    return str(revision.path)
