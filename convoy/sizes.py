"""Sizes as people read them."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """ "512B", "1.5KiB", "2.0GiB": binary units, one decimal."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{n}B"
