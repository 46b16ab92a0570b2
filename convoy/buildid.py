"""Which build of convoy this is: a digest of its own files, as a host's agent gets them.

The coordinator ships the agent (coordinator/hosts/bundle.py) and compares the build an agent
reports (Describe) with its own: an agent of another build (an upgrade, a changed checkout at
the same version number) is replaced, one of the same build is kept, whatever else differs.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import convoy

# convoy's subpackages a host does not need (and whose imports, textual, it may not have).
NOT_SHIPPED = ("coordinator", "tui")
_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def own_files() -> Iterator[tuple[str, Path]]:
    """(name in a bundle, local file) of convoy's package, less NOT_SHIPPED, in name order.
    Its agent subpackage is a link in a checkout (convoy/agent -> ../agent): walked through."""
    assert convoy.__file__ is not None
    root = Path(convoy.__file__).parent
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in NOT_SHIPPED]
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS)
        for name in sorted(filenames):
            path = here / name
            if path.suffix not in _SKIP_SUFFIXES and path.is_file():
                yield (Path("convoy") / rel_dir / name).as_posix(), path


@functools.cache
def own_build() -> str:
    """The digest of own_files: names and contents (12 hex digits)."""
    h = hashlib.sha256()
    for name, path in own_files():
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]
