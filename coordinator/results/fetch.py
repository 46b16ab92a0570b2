"""Which files a submission's results folder gives a client that fetches it (`convoy fetch`).

A client on another machine cannot read the coordinator's results folders, so the Fetch RPC
sends one's files. Only regular files travel, named relative to the submission's folder. A run
that reused an earlier run's result has, for its folder, a relative link to that run's
(submissions.py `_reusing`): its files are sent under the run's own name, so the fetched folder
holds every run's result whatever was fetched before; the link is followed only when it leads
to the folder the store says that run's result is in. No other link is followed (a run's
results are regular files; anything else there is left out).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from convoy.coordinator.runs.records import SubmissionRecord
from convoy.coordinator.runs.store import Store


def result_files(store: Store, sub: SubmissionRecord) -> Iterator[tuple[str, str]]:
    """(relative path, absolute path) of each regular file of the submission's results
    folder, reused runs' included, folder by folder in name order. Blocking: a worker
    thread's."""
    top = Path(sub.results_dir)
    if not top.is_dir():
        return
    reused = {Path(r.results_path).name: r.reused_from
              for r in store.runs(sub.id) if r.reused_from}  # fmt: skip
    for name in sorted(os.listdir(top)):
        path = top / name
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            yield name, str(path)
        elif stat.S_ISDIR(st.st_mode):
            yield from _walk(path, name)
        elif stat.S_ISLNK(st.st_mode) and name in reused:
            origin = store.run(reused[name])
            real = os.path.realpath(path)
            if origin is not None and real == os.path.realpath(origin.results_path):
                yield from _walk(Path(real), name)


def _walk(folder: Path, prefix: str) -> Iterator[tuple[str, str]]:
    """The regular files under `folder`, following no link."""
    for root, dirs, files in os.walk(folder):  # os.walk follows no link to a folder
        dirs.sort()
        rel_root = os.path.relpath(root, folder)
        for f in sorted(files):
            path = os.path.join(root, f)
            if stat.S_ISREG(os.lstat(path).st_mode):
                rel = f if rel_root == "." else f"{rel_root}/{f}"
                yield f"{prefix}/{rel}", path
