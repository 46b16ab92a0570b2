"""The object store asks ext2/3/4 to spread its object folders over the block groups."""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

import pytest

from convoy.agent.objects import ObjectStore
from convoy.agent.spread import FS_IOC_GETFLAGS, FS_TOPDIR_FL, spread_subfolders


def _flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))[0])
    finally:
        os.close(fd)


def test_the_objects_folder_has_the_top_of_hierarchy_flag(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    if not spread_subfolders(str(probe)):
        pytest.skip("this file system takes no chattr flags (not ext2/3/4)")
    store = ObjectStore(tmp_path / "store")
    assert _flags(store.root / "objects") & FS_TOPDIR_FL
    assert not _flags(store.root / "revisions") & FS_TOPDIR_FL  # only where objects go


def test_elsewhere_it_is_a_no_op(tmp_path: Path) -> None:
    assert spread_subfolders(str(tmp_path / "missing")) is False
    if Path("/proc/self").is_dir():  # procfs takes no such flag
        assert spread_subfolders("/proc/self") is False


def test_the_ioctl_numbers_are_the_kernel_s() -> None:
    """_IOR('f', 1, long) and _IOW('f', 2, long) as <linux/fs.h> gives them on 64-bit Linux."""
    if struct.calcsize("l") != 8:
        pytest.skip("the figures below are those of 64-bit Linux")
    from convoy.agent.spread import FS_IOC_SETFLAGS

    assert (FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_TOPDIR_FL) == (0x80086601, 0x40086602, 0x20000)
