"""Where convoy keeps its state on this machine: one definition for the CLI and the coordinator.

The state folder ($CONVOY_HOME) holds the store, the sockets, the logs and the known host keys:
it must be the user's own and writable by nobody else (`checked_home`), and the files in it are
opened without following symbolic links (`open_state`), so that another user cannot point
convoy's writes at a file of their choosing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from convoy.errors import UsageError

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


def checked_home(home: Path, create: bool = True) -> Path:
    """`home`, made (0700) if it does not exist (unless not `create`: a command that only reads
    makes nothing); refused unless it is a folder this user owns that no one else may write to."""
    try:
        if not create and not os.path.lexists(home):
            return home
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.stat(home)
    except OSError as e:
        raise UsageError(f"convoy's state folder {home} cannot be made: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"convoy's state folder {home} is not a folder")
    if st.st_uid != os.geteuid():
        raise UsageError(
            f"convoy's state folder {home} belongs to another user (uid {st.st_uid}); use a "
            "folder of your own (--home DIR or CONVOY_HOME)"
        )
    if st.st_mode & 0o022:
        raise UsageError(
            f"convoy's state folder {home} may be written by others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); make it yours alone: chmod 700 {home}"
        )
    return home


def open_state(path: Path, mode: str = "ab") -> IO[bytes]:
    """A file of the state folder, opened without following a symbolic link (ELOOP), created
    0600: 'ab' appends, 'wb' replaces its content."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if mode == "ab" else os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    return os.fdopen(fd, mode)


def write_state(path: Path, text: str) -> None:
    """Replace a small state file's content (a pid), following no link."""
    with open_state(path, "wb") as f:
        f.write(text.encode())
