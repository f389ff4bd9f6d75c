"""The POSIX rules of the ``tree`` domain, written once over a few storage primitives.

What a name operation checks and changes (EEXIST, ENOTEMPTY, a directory moved into itself,
link counts and the times of parents) is the same whatever holds the rows; an
implementation (SQLite, PostgreSQL) gives ``PosixTree`` the primitives below, each one
statement on its own tables, and inherits ``make_node``, ``link``, ``unlink``, ``rmdir``,
``rename``, ``set_attrs``, ``delete_if_unlinked`` and the xattr writes.
"""

from __future__ import annotations

import errno
import stat
from abc import abstractmethod

from store.core.errors import FsError
from .rows import InodeRow
from .tree import RENAME_EXCHANGE, RENAME_NOREPLACE, Tree, check_name


def shown(name: bytes) -> str:
    return name.decode(errors="replace")


class PosixTree(Tree):
    """``Tree`` operations over the primitives (see the module docstring)."""

    # -- primitives ----------------------------------------------------------------------
    @abstractmethod
    def _has_children(self, ino: int) -> bool:
        """Whether directory ``ino`` has any entry."""

    @abstractmethod
    def _parent_of(self, ino: int) -> int | None:
        """A directory holding a name of ``ino`` (its only one, for a directory), or None."""

    @abstractmethod
    def _touch_dir(self, ino: int, now: int, nlink_delta: int = 0) -> None:
        """Set mtime and ctime of directory ``ino`` to ``now``, its link count += ``nlink_delta``."""

    @abstractmethod
    def _set_ctime(self, ino: int, now: int, nlink_delta: int = 0) -> None:
        """Set ctime of ``ino`` to ``now``, its link count += ``nlink_delta``."""

    @abstractmethod
    def _set_dead(self, ino: int, now: int) -> None:
        """Link count 0 and ctime ``now`` (a directory removed)."""

    @abstractmethod
    def _add_entry(self, parent: int, name: bytes, ino: int) -> None:
        """A new directory entry."""

    @abstractmethod
    def _drop_entry(self, parent: int, name: bytes) -> None:
        """Remove a directory entry."""

    @abstractmethod
    def _swap_entries(self, p1: int, n1: bytes, ino1: int, p2: int, n2: bytes, ino2: int, now: int) -> None:
        """Entry (p1, n1) names ``ino2`` and (p2, n2) names ``ino1``; both inodes' ctime ``now``."""

    @abstractmethod
    def _insert_inode(self, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int, now: int,
                      target: bytes | None) -> InodeRow:
        """A new inode with a fresh number, all three times ``now``."""

    @abstractmethod
    def _write_attrs(self, row: InodeRow) -> None:
        """Store ``row``'s mode, uid, gid and times."""

    @abstractmethod
    def _nlink(self, ino: int) -> int | None:
        """The link count of ``ino``, None when there is no such inode."""

    @abstractmethod
    def _put_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        """Set (add or replace) one extended attribute."""

    @abstractmethod
    def _drop_xattr(self, ino: int, name: bytes) -> bool:
        """Remove one extended attribute; False when there was none."""

    # -- checks ----------------------------------------------------------------------------
    def _get_dir(self, ino: int) -> InodeRow:
        row = self.get(ino)
        if not stat.S_ISDIR(row.mode):
            raise FsError(errno.ENOTDIR, f"inode {ino} is not a directory")
        return row

    def _is_ancestor(self, ancestor: int, ino: int) -> bool:
        """True when ``ancestor`` is ``ino`` or one of its parent directories."""
        seen = set()
        while ino not in seen:
            if ino == ancestor:
                return True
            seen.add(ino)
            parent = self._parent_of(ino)
            if parent is None:
                return False
            ino = parent
        return False

    def _existing(self, parent: int, name: bytes) -> int:
        ino = self.lookup(parent, name)
        if ino is None:
            raise FsError(errno.ENOENT, f"{shown(name)} does not exist")
        return ino

    def _refuse_existing(self, parent: int, name: bytes) -> None:
        if self.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST, f"{shown(name)} exists")

    # -- operations --------------------------------------------------------------------------
    def make_node(self, parent: int, name: bytes, mode: int, uid: int, gid: int, now: int,
                  rdev: int = 0, target: bytes | None = None) -> InodeRow:
        check_name(name)
        pdir = self._get_dir(parent)
        if pdir.nlink == 0:
            raise FsError(errno.ENOENT, "parent directory was removed")
        self._refuse_existing(parent, name)
        if pdir.mode & stat.S_ISGID:
            gid = pdir.gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        is_dir = stat.S_ISDIR(mode)
        node = self._insert_inode(mode, 2 if is_dir else 1, uid, gid, rdev, len(target) if target is not None else 0,
                                  now, target)
        self._add_entry(parent, name, node.id)
        self._touch_dir(parent, now, 1 if is_dir else 0)
        return node

    def link(self, ino: int, parent: int, name: bytes, now: int) -> InodeRow:
        check_name(name)
        row = self.get(ino)
        if stat.S_ISDIR(row.mode):
            raise FsError(errno.EPERM, "hard links to directories are not allowed")
        self._get_dir(parent)
        self._refuse_existing(parent, name)
        self._add_entry(parent, name, ino)
        self._set_ctime(ino, now, 1)
        self._touch_dir(parent, now)
        return self.get(ino)

    def unlink(self, parent: int, name: bytes, now: int) -> InodeRow:
        ino = self._existing(parent, name)
        if stat.S_ISDIR(self.get(ino).mode):
            raise FsError(errno.EISDIR, f"{shown(name)} is a directory")
        self._drop_entry(parent, name)
        self._set_ctime(ino, now, -1)
        self._touch_dir(parent, now)
        return self.get(ino)

    def rmdir(self, parent: int, name: bytes, now: int) -> InodeRow:
        ino = self._existing(parent, name)
        if not stat.S_ISDIR(self.get(ino).mode):
            raise FsError(errno.ENOTDIR, f"{shown(name)} is not a directory")
        if self._has_children(ino):
            raise FsError(errno.ENOTEMPTY, f"{shown(name)} is not empty")
        self._drop_entry(parent, name)
        self._set_dead(ino, now)
        self._touch_dir(parent, now, -1)
        return self.get(ino)

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int,
               now: int) -> InodeRow | None:
        check_name(new_name)
        src = self._existing(old_parent, old_name)
        self._get_dir(new_parent)
        src_row = self.get(src)
        src_dir = stat.S_ISDIR(src_row.mode)
        dst = self.lookup(new_parent, new_name)
        if flags & RENAME_NOREPLACE and dst is not None:
            raise FsError(errno.EEXIST, f"{shown(new_name)} exists")
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise FsError(errno.ENOENT, f"{shown(new_name)} does not exist")
            self._exchange(old_parent, old_name, src_row, new_parent, new_name, self.get(dst), now)
            return None
        if dst == src:
            return None
        if src_dir and new_parent != old_parent and self._is_ancestor(src, new_parent):
            raise FsError(errno.EINVAL, "cannot move a directory into itself")
        replaced = None
        if dst is not None:
            replaced = self._replace_target(new_parent, new_name, dst, src_dir, now)
        self._drop_entry(old_parent, old_name)
        self._add_entry(new_parent, new_name, src)
        self._set_ctime(src, now)
        if src_dir and old_parent != new_parent:
            self._touch_dir(old_parent, now, -1)
            self._touch_dir(new_parent, now, 1)
        else:
            self._touch_dir(old_parent, now)
            if new_parent != old_parent:
                self._touch_dir(new_parent, now)
        return replaced

    def _replace_target(self, parent: int, name: bytes, dst: int, src_dir: bool, now: int) -> InodeRow:
        """Remove the entry a rename lands on; returns its inode with the new nlink."""
        dst_dir = stat.S_ISDIR(self.get(dst).mode)
        if src_dir and not dst_dir:
            raise FsError(errno.ENOTDIR, f"{shown(name)} is not a directory")
        if dst_dir and not src_dir:
            raise FsError(errno.EISDIR, f"{shown(name)} is a directory")
        if dst_dir:
            if self._has_children(dst):
                raise FsError(errno.ENOTEMPTY, f"{shown(name)} is not empty")
            self._set_dead(dst, now)
            self._touch_dir(parent, now, -1)
        else:
            self._set_ctime(dst, now, -1)
        self._drop_entry(parent, name)
        return self.get(dst)

    def _exchange(self, p1: int, n1: bytes, r1: InodeRow, p2: int, n2: bytes, r2: InodeRow, now: int) -> None:
        d1, d2 = stat.S_ISDIR(r1.mode), stat.S_ISDIR(r2.mode)
        if p1 != p2 and ((d1 and self._is_ancestor(r1.id, p2)) or (d2 and self._is_ancestor(r2.id, p1))):
            raise FsError(errno.EINVAL, "cannot move a directory into itself")
        self._swap_entries(p1, n1, r1.id, p2, n2, r2.id, now)
        if p1 != p2 and d1 != d2:
            delta = 1 if d2 else -1
            self._touch_dir(p1, now, delta)
            self._touch_dir(p2, now, -delta)
        else:
            self._touch_dir(p1, now)
            self._touch_dir(p2, now)

    def set_attrs(self, ino: int, now: int, *, mode: int | None = None, uid: int | None = None,
                  gid: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                  ctime_ns: int | None = None) -> InodeRow:
        row = self.get(ino)
        if mode is not None:
            row.mode = (row.mode & ~0o7777) | (mode & 0o7777)
        if uid is not None:
            row.uid = uid
        if gid is not None:
            row.gid = gid
        if atime_ns is not None:
            row.atime_ns = atime_ns
        if mtime_ns is not None:
            row.mtime_ns = mtime_ns
        row.ctime_ns = ctime_ns if ctime_ns is not None else now
        self._write_attrs(row)
        return row

    def delete_if_unlinked(self, ino: int, now: int) -> bool:
        if self._nlink(ino) != 0:
            return False
        self.delete_inode(ino, now)
        return True

    def setxattr(self, ino: int, name: bytes, value: bytes, now: int, *, create: bool = False,
                 replace: bool = False) -> None:
        self.get(ino)
        current = self.getxattr(ino, name)
        if create and current is not None:
            raise FsError(errno.EEXIST, "attribute exists")
        if replace and current is None:
            raise FsError(errno.ENODATA, "no such attribute")
        if current == value:
            return
        self._put_xattr(ino, name, value)
        self._set_ctime(ino, now)

    def removexattr(self, ino: int, name: bytes, now: int) -> None:
        if not self._drop_xattr(ino, name):
            raise FsError(errno.ENODATA, "no such attribute")
        self._set_ctime(ino, now)
