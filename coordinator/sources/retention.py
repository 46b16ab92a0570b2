"""Which revisions the coordinator's store keeps, and collecting the rest.

Each submission's sources are stored (sync.py: manifests/, packs/, store/), so that a run placed
hours later, a rerun, or a host that connects late gets exactly that revision. Without
collection that store only grew: every save in watch mode adds the files it changed, every new
dataset its bytes.

A revision is kept while anything may still need it: a run that has not ended; a run or
submission made, or a run ended, in the last KEEP_DAYS days (a rerun uses its submission's
revision); a snapshot made or found again in that time (its manifest's mtime: sync.py touches
it, so a submission on its way between its snapshot and its record is never collected from
under it). The rest go: their manifests, then every object no kept revision names (large
objects' files; small ones by rewriting their packs, packs.py).

It runs when the coordinator starts, before it serves anything (so no snapshot or sync is in
flight), at most once a day. A rerun of a collected revision is refused with a message saying
to submit the experiment again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from convoy.coordinator.runs.store import Store
from convoy.coordinator.sources.packs import PackStore

log = logging.getLogger("convoy.retention")

KEEP_DAYS = 30
EVERY_S = 86400.0  # collect at most this often
MARK = "collected"  # its mtime: when the store was last collected


@dataclass(frozen=True)
class CollectReport:
    revisions: int  # revisions collected
    objects: int  # objects removed
    bytes: int  # bytes freed


def manifest_hashes(path: Path) -> set[str]:
    """The content hashes a stored manifest names (rows [path, mode, size, hash, target], or
    the objects of an earlier version's)."""
    rows = json.loads(path.read_text())
    found: set[str] = set()
    for row in rows:
        h = row.get("hash") if isinstance(row, dict) else row[3]
        if h:
            found.add(h)
    return found


def collect_unused(
    home: Path, store: Store, now: float | None = None, keep_days: float = KEEP_DAYS,
    force: bool = False,
) -> CollectReport | None:  # fmt: skip
    """Collect the revisions nothing keeps (see above); None when collected less than a day
    ago (unless `force`), or when a kept manifest cannot be read (nothing is removed then).
    Call it before the Syncer of `home` is made."""
    now = time.time() if now is None else now
    mark = home / MARK
    if not force and mark.exists() and now - mark.stat().st_mtime < EVERY_S:
        return None
    since = now - keep_days * 86400
    in_use = store.revisions_in_use(since)
    manifests = sorted((home / "manifests").glob("*.json"))
    kept: list[Path] = []
    gone: list[Path] = []
    for m in manifests:
        (kept if m.stem in in_use or m.stat().st_mtime >= since else gone).append(m)
    report = CollectReport(0, 0, 0)
    if gone:
        live: set[str] = set()
        for m in kept:
            try:
                live |= manifest_hashes(m)
            except (OSError, ValueError, LookupError, AttributeError) as e:
                # What it names is unknown, so no object is known to be unused: none goes
                # (and not again until tomorrow: each try parses every kept manifest).
                log.warning("not collecting: cannot read the manifest %s: %s", m, e)
                _mark(mark, now)
                return None
        for m in gone:  # first: a crash after this leaves objects the next collection finds
            m.unlink()
        objects, freed = _collect_objects(home, live)
        report = CollectReport(len(gone), objects, freed)
        log.info("collected %d revisions unused for %g days: %d objects, %d bytes",
                 len(gone), keep_days, objects, freed)  # fmt: skip
    _mark(mark, now)
    return report


def _mark(mark: Path, now: float) -> None:
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()
    os.utime(mark, (now, now))


def _collect_objects(home: Path, live: set[str]) -> tuple[int, int]:
    """Remove the objects not in `live` from the store's files and packs."""
    removed = freed = 0
    objects = home / "store" / "objects"  # the Syncer's ObjectStore: objects/ab/cdef...[x]
    for folder in objects.iterdir() if objects.is_dir() else ():
        for f in folder.iterdir():
            h = folder.name + f.name.removesuffix("x")  # "x": its executable copy
            if h not in live:
                freed += f.stat().st_size
                f.unlink()
                removed += 1
    packs = PackStore(home / "packs")
    try:
        dropped, bytes_freed = packs.compact(live)
    finally:
        packs.close()
    return removed + dropped, freed + bytes_freed


def collect_quietly(home: Path, store: Store) -> None:
    """collect_unused at the coordinator's start: a failure is logged, never fatal (the store
    is then as it was, or with fewer unused objects)."""
    try:
        collect_unused(home, store)
    except Exception:
        log.exception("collecting the coordinator's store failed; it goes on uncollected")
