"""Where convoy keeps its state on this machine: one definition for the CLI and the coordinator."""

from __future__ import annotations

import os
from pathlib import Path

# The coordinator's watcher briefly creates files of this name in a watched source folder
# (coordinator/sources/watcher.py); they are never part of a tree, and watch mode ignores them.
COOKIE_PREFIX = ".convoy-cookie-"


def default_home() -> Path:
    """$CONVOY_HOME, else the XDG state folder ($XDG_STATE_HOME/convoy, ~/.local/state/convoy)."""
    if env := os.environ.get("CONVOY_HOME"):
        return Path(env).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "convoy"


def coordinator_socket(home: Path) -> Path:
    return home / "coordinator.sock"
