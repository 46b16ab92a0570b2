"""The fake runtime's images: ids made up from names, or read from a `docker save` stream.

Reading the stream's manifest (not its layers) is enough for a fake host to report, after a
coordinator shipped it an image, the same id the coordinator's engine has for it; the
coordinator compares the two to decide whether the host has the image.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

from convoy.errors import RuntimeFailure


def fake_image_id(image: str) -> str:
    """A stable id per image name, recognisably not Docker's."""
    return "sha256:fake" + hashlib.sha256(image.encode()).hexdigest()[4:]


def saved_images(chunks: Iterator[bytes]) -> dict[str, str]:
    """Image name -> id ("sha256:<config digest>") from a `docker save` tar's manifest.json."""
    try:
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:
            for member in tar:
                if member.name.lstrip("./") == "manifest.json" and member.isfile():
                    f = tar.extractfile(member)
                    manifest = json.loads(f.read()) if f is not None else []
                    break
            else:
                raise RuntimeFailure("cannot load image: the stream has no manifest.json")
    except (tarfile.TarError, ValueError, OSError) as e:
        raise RuntimeFailure(f"cannot load image: {e}") from e
    found: dict[str, str] = {}
    for entry in manifest if isinstance(manifest, list) else []:
        config = str(entry.get("Config", ""))
        digest = config.rsplit("/", 1)[-1].removesuffix(".json")
        for name in entry.get("RepoTags") or []:
            found[str(name)] = f"sha256:{digest}" if digest else ""
    return found


class _ChunkReader(io.RawIOBase):
    """An iterator of byte chunks as a file to read (for tarfile's stream mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n
