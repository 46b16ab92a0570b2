"""Which content hash names sync objects: sha256, blake2b-256, blake3 and xxh3-128, measured;
and, with --sync, what a scan and a snapshot of a 10,000-file tree cost with the chosen one.

Each hash reads the files itself, as a scan does: (a) 10,000 files of 2 KB (open and read
dominate), (b) five 20 MB files (the hash's own speed shows). The page cache is warm: a re-scan
reads files that were just written or read. "read" is the floor: the same reading, no hashing.
blake3 (single-threaded, as a scan hashes one file at a time) and xxh3 are measured only when
their packages import; xxh3 is listed for scale only, since it is not collision resistant
and so cannot name objects that a host trusts by name.

    python bench/hashes.py [--small 10000] [--large 5] [--repeat 5]
    python bench/hashes.py --sync [--small 10000] [--repeat 5]

The last line printed is JSON: {algorithm: {"small_s", "large_s", "large_mb_s"}, "chosen": ...};
with --sync, the best of `repeat` for each step of convoy/manifest.py's Scanner and
agent/objects.py's make_revision, in ms, with `cp -al` of the previous snapshot beside it (the
floor of any "reuse the last snapshot" scheme: it makes one hard link per file too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

BUF = 1 << 20
SOUND = ("sha256", "blake2b", "blake3")  # collision resistant: fit to name objects


class Hasher(Protocol):
    def update(self, data: Any, /) -> object: ...
    def hexdigest(self) -> str: ...


def algorithms() -> dict[str, Callable[[], Hasher] | None]:
    algs: dict[str, Callable[[], Hasher] | None] = {
        "read": None,
        "sha256": hashlib.sha256,
        "blake2b": lambda: hashlib.blake2b(digest_size=32),
    }
    try:
        import blake3

        algs["blake3"] = lambda: blake3.blake3(max_threads=1)
    except ImportError:
        pass
    try:
        import xxhash

        algs["xxh3_128"] = xxhash.xxh3_128
    except ImportError:
        pass
    return algs


def read_and_hash(path: Path, make: Callable[[], Hasher] | None, buf: bytearray) -> None:
    view = memoryview(buf)
    h = make() if make is not None else None
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if h is not None:
                h.update(view[:n])
    if h is not None:
        h.hexdigest()


def timed(paths: list[Path], make: Callable[[], Hasher] | None) -> float:
    buf = bytearray(BUF)
    t0 = time.perf_counter()
    for p in paths:
        read_and_hash(p, make, buf)
    return time.perf_counter() - t0


def make_files(root: Path, small: int, large: int) -> tuple[list[Path], list[Path]]:
    small_paths = []
    for i in range(small):
        d = root / "small" / f"d{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i}.txt"
        p.write_bytes(os.urandom(2048))
        small_paths.append(p)
    large_paths = []
    for i in range(large):
        p = root / f"large{i}.bin"
        p.write_bytes(os.urandom(20 << 20))
        large_paths.append(p)
    return small_paths, large_paths


def best_ms(fn: Callable[[], object], repeat: int, setup: Callable[[], object] = list) -> float:
    best = float("inf")
    for _ in range(repeat):
        setup()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2)


def sync_timings(small: int, repeat: int) -> None:
    import shutil
    import subprocess

    from convoy.agent.objects import ObjectStore
    from convoy.manifest import RACY_NS, Scanner

    with tempfile.TemporaryDirectory() as tmp:
        paths, _ = make_files(Path(tmp), small, 0)
        src = Path(tmp) / "small"
        time.sleep(RACY_NS / 1e9 + 0.05)  # past the racy window: a re-scan may trust stat
        out: dict[str, float] = {}
        scanner = Scanner(src)
        out["first_scan_ms"] = best_ms(scanner.scan, 1)
        out["full_scan_no_change_ms"] = best_ms(scanner.scan, repeat)
        assert scanner.hashed == 0
        one = paths[len(paths) // 2]
        rel = one.relative_to(src).as_posix()
        out["one_path_scan_ms"] = best_ms(
            lambda: scanner.scan(changed=[rel]), repeat, lambda: one.write_bytes(os.urandom(2048))
        )
        out["one_path_scan_and_revision_ms"] = best_ms(
            lambda: scanner.scan(changed=[rel]).revision,
            repeat,
            lambda: one.write_bytes(os.urandom(2048)),
        )
        store = ObjectStore(Path(tmp) / "store")
        for p in paths:
            with store.writer(hash_of(p)) as w:
                w.write(p.read_bytes())
                w.commit()
        manifest = scanner.scan()
        out["make_revision_all_new_ms"] = best_ms(
            lambda: store.make_revision(manifest.revision, manifest.entries), 1
        )
        times = []
        for _ in range(repeat):  # each time a revision one file away from the last one
            one.write_bytes(os.urandom(2048))
            with store.writer(hash_of(one)) as w:
                w.write(one.read_bytes())
                w.commit()
            m = scanner.scan(changed=[rel])
            t0 = time.perf_counter()
            store.make_revision(m.revision, m.entries)
            times.append(round((time.perf_counter() - t0) * 1000, 2))
        out["make_revision_one_changed_ms"] = min(times)
        last = store.revision_dir(manifest.revision)
        copy = Path(tmp) / "cp-al"
        out["cp_al_previous_snapshot_ms"] = best_ms(
            lambda: subprocess.run(["cp", "-al", str(last), str(copy)], check=True),
            repeat,
            lambda: shutil.rmtree(copy, ignore_errors=True),
        )
    for k, v in out.items():
        print(f"{k:32} {v:>9.2f}")
    print(json.dumps(out))


def hash_of(path: Path) -> str:
    from convoy.content import hash_file

    return hash_file(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sync", action="store_true", help="time scans and snapshots instead")
    args = ap.parse_args()
    if args.sync:
        sync_timings(args.small, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small_paths, large_paths = make_files(Path(tmp), args.small, args.large)
        algs = algorithms()
        best = {name: [float("inf"), float("inf")] for name in algs}
        for _ in range(args.repeat):  # rounds interleave the algorithms: drift hits all alike
            for name, make in algs.items():
                best[name][0] = min(best[name][0], timed(small_paths, make))
                best[name][1] = min(best[name][1], timed(large_paths, make))
    results: dict[str, Any] = {}
    for name, (s, big) in best.items():
        mb = args.large * 20 / big if big else 0.0
        results[name] = {"small_s": round(s, 4), "large_s": round(big, 4), "large_mb_s": round(mb)}
    sound = [a for a in SOUND if a in results]
    chosen = min(sound, key=lambda a: results[a]["small_s"] + results[a]["large_s"])
    print(f"{'hash':10} {args.small} x 2 KB (s)  {args.large} x 20 MB (s)  20 MB files (MB/s)")
    for name, r in results.items():
        print(f"{name:10} {r['small_s']:>17.3f}  {r['large_s']:>16.3f}  {r['large_mb_s']:>18}")
    print(f"fastest collision-resistant hash: {chosen}")
    results["chosen"] = chosen
    print(json.dumps(results))


if __name__ == "__main__":
    main()
