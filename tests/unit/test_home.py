"""convoy's state folder is the user's own (M2): one that belongs to another user, or that
others may write to, is refused with a clear error (exit 2) before anything is written; its
files are opened without following symbolic links."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convoy.errors import UsageError
from convoy.paths import checked_home, open_state, write_state


def test_a_missing_home_is_made_for_its_user_alone(tmp_path: Path) -> None:
    home = checked_home(tmp_path / "a" / "home")
    assert home.is_dir() and (home.stat().st_mode & 0o777) == 0o700


def test_a_home_others_may_write_to_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o777)
    with pytest.raises(UsageError, match=r"may be written by others \(mode 0777\)"):
        checked_home(home)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_home_of_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    with pytest.raises(UsageError, match="belongs to another user"):
        checked_home(home)


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("")
    with pytest.raises(UsageError, match=r"cannot be made|not a folder"):
        checked_home(tmp_path / "home")


def test_state_files_are_not_followed_as_links(tmp_path: Path) -> None:
    """A coordinator.log linked to another file is refused, not appended to."""
    target = tmp_path / "someone-elses-file"
    target.write_text("theirs\n")
    (tmp_path / "coordinator.log").symlink_to(target)
    with pytest.raises(OSError) as info:
        open_state(tmp_path / "coordinator.log")
    assert info.value.errno == errno.ELOOP
    (tmp_path / "agent.pid").symlink_to(target)
    with pytest.raises(OSError):
        write_state(tmp_path / "agent.pid", "123\n")
    assert target.read_text() == "theirs\n"
    with open_state(tmp_path / "own.log") as f:
        f.write(b"ok\n")
    assert (tmp_path / "own.log").stat().st_mode & 0o777 == 0o600


def test_the_cli_refuses_such_a_home_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o757)
    out = subprocess.run(
        [sys.executable, "-m", "convoy.cli.main", "--home", str(home), "runs"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out
    assert "may be written by others" in out.stderr and "Traceback" not in out.stderr
    assert list(home.iterdir()) == []
