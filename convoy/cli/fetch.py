"""`convoy fetch SUBMISSION [DIR]`: a submission's results folder from the coordinator, here.

For a submission whose results stay on the coordinator (one submitted from another machine,
its sources uploaded), or any other: the coordinator sends the folder's files, reused runs'
included (convoy/client/fetch.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from convoy.client import AsyncClient
from convoy.sizes import human_bytes

SHOW_KEPT = 20  # files left as they were, named one by one


def add_parser(sub: Any) -> None:
    f = sub.add_parser(
        "fetch", help="copy a submission's results folder from the coordinator",
        description="Write a submission's results (every run's files, runs.csv, build logs) "
        "into DIR, by default ./convoy-results/EXPERIMENT/SUBMISSION as `convoy run` lays them "
        "out. A file already there with other content is left as it is unless --force; the "
        "files written are printed.",
    )  # fmt: skip
    f.add_argument("submission")
    f.add_argument("dir", nargs="?", type=Path, help="where to write them")
    f.add_argument("--force", action="store_true",
                   help="replace files already there whose content differs")  # fmt: skip


async def _fetch(home: Path, ns: argparse.Namespace) -> int:
    async with await AsyncClient.connect(home) as client:
        got = await client.fetch(ns.submission, ns.dir, ns.force)
    for rel in got.written:
        print(got.folder / rel)
    said = f"{len(got.written)} files written ({human_bytes(got.bytes)} received)"
    if got.same:
        said += f", {len(got.same)} already there"
    print(f"convoy: {ns.submission}: {said} in {got.folder}", file=sys.stderr)
    if not got.kept:
        return 0
    names = ", ".join(got.kept[:SHOW_KEPT]) + (" ..." if len(got.kept) > SHOW_KEPT else "")
    print(f"convoy: {len(got.kept)} files differ from what is already there and were left as "
          f"they are (--force replaces them): {names}", file=sys.stderr)  # fmt: skip
    return 1


def main(
    home: Path, ns: argparse.Namespace, run_async: Callable[[Coroutine[Any, Any, int]], int]
) -> int:
    return run_async(_fetch(home, ns))
