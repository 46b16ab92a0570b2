"""Files written whole or not at all: a reader (or a crash) sees the old content or the new."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_json(path: Path, value: Any, *, indent: int | None = None, durable: bool = False) -> None:
    """Write `value` as JSON to `path` through a temporary file beside it (a name of its own,
    so that writers of one path do not trip on each other), making its folder if need be.
    `durable`: on disk before it takes the name (fsync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    text = json.dumps(value, indent=indent) + ("\n" if indent is not None else "")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
