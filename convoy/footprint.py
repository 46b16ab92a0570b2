"""What a result takes on the coordinator's disk: the measure of the room it is granted."""

from __future__ import annotations

BLOCK = 4096  # file systems allocate whole blocks
PER_FILE = 512  # its inode, its entry in a folder and its line in run.json, about


def disk_footprint(size: int) -> int:
    """The bytes a file of `size` bytes takes: whole blocks, and a little for the file itself
    (a million one-byte results take 4.5 GB, not 1 MB)."""
    return -(-size // BLOCK) * BLOCK + PER_FILE
