"""Ask ext2/3/4 to spread the object store's folders over the file system.

ext4 gives a new folder the block group of its parent, and a new file the group of its folder,
so the store's 256 object folders, and with them the objects written into them (small ones;
large ones are written in tmp/ and linked), would share the group of the agent's home. On an
ext4 without a journal (the root file system of many VMs) a group where files were recently
deleted is slow to create files in: each new inode skips, one by one, every free inode of the
group deleted in the last minute (six while its inode table block is dirty). Measured here,
on the root ext4, right after benchmarks deleted their trees: 10,000 creates of 2 KB objects
took 5.9 s in the home's group and 0.40 s with this flag set.

The flag is chattr's `T` ("top of directory hierarchies"): folders made under a folder that has
it are placed by the Orlov allocator as top-level folders are, in groups with many free inodes
and few folders. Object names are hashes, so nothing is lost in locality. Elsewhere (other file
systems, other kernels) the request fails and nothing changes.
"""

from __future__ import annotations

import fcntl
import os
import platform
import struct

# _IOR/_IOW('f', 1/2, long) in the generic ioctl encoding (x86, Arm, RISC-V); other
# architectures encode ioctls otherwise and are left alone.
_GENERIC = {"x86_64", "aarch64", "riscv64", "i386", "i686", "armv7l", "armv6l"}
_LONG = struct.calcsize("l")
FS_IOC_GETFLAGS = (2 << 30) | (_LONG << 16) | (ord("f") << 8) | 1
FS_IOC_SETFLAGS = (1 << 30) | (_LONG << 16) | (ord("f") << 8) | 2
FS_TOPDIR_FL = 0x00020000


def spread_subfolders(path: str) -> bool:
    """Have folders made in `path` from now on spread over the file system's block groups;
    True when the file system took the request."""
    if platform.system() != "Linux" or platform.machine() not in _GENERIC:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        # The kernel reads and writes an int, whatever the ioctl's encoded size says.
        (flags,) = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL))
        return True
    except OSError:  # ENOTTY, EOPNOTSUPP, EINVAL, EPERM: not ext2/3/4, or not ours
        return False
    finally:
        os.close(fd)
