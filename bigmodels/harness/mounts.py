"""Mounting a folder read-only over itself in one step, for tests of a store whose disk
turns read-only while it is written.

``mount --bind`` then ``mount -o remount,bind,ro`` is two steps: a process that opens a
file for writing through the new bind mount between them (SQLite opens its database on
every operation) makes the remount fail with EBUSY. Linux's mount API (5.2+: open_tree,
mount_setattr, move_mount) makes the read-only copy detached, where nobody can write,
and then puts it in place. Root only; x86-64 syscall numbers.
"""
from __future__ import annotations

import ctypes
import os

_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # x86-64 (and every arch since 5.x's table)
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _call(libc, number: int, *args) -> int:
    result = libc.syscall(number, *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def bind_read_only(path: str | os.PathLike) -> None:
    """Cover ``path`` with a read-only view of itself, atomically (undo: ``umount -l path``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    target = os.fsencode(os.fspath(path))
    tree = _call(libc, _SYS_OPEN_TREE, _AT_FDCWD, target, _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC)
    try:
        attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
        _call(libc, _SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))
        _call(libc, _SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, target, _MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(tree)
