"""The ``tree`` domain on PostgreSQL: tables ``inodes``, ``dentries`` and ``xattrs``.

A readdir cookie is the entry's ``dentries.cookie`` (a bigserial: ``schema`` says why it
keeps the interface's contract). Every write notes the inodes whose rows it changed
(``Changes.inodes``) and the files whose chunk lists it emptied (``Changes.contents``).
"""

from __future__ import annotations

import errno
import stat
from collections.abc import Iterable

from ..rows import ROOT_INO, InodeRow
from ..tree import RENAME_EXCHANGE, RENAME_NOREPLACE, Tree, check_name
from .content import release_content
from .domain import Domain
from .errors import translated
from store.core.errors import FsError

INODE_COLUMNS = "id, mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, content_seq, target"
_JOINED_COLUMNS = ", ".join("i." + c.strip() for c in INODE_COLUMNS.split(","))


def _shown(name: bytes) -> str:
    return name.decode(errors="replace")


@translated
class PostgresTree(Domain, Tree):
    """``Tree`` over one view (see ``store.backends.catalog.tree``)."""

    # -- reads -------------------------------------------------------------------------
    def inode(self, ino: int) -> InodeRow | None:
        row = self._one(f"SELECT {INODE_COLUMNS} FROM inodes WHERE id = %s", (ino,))
        return InodeRow(*row) if row else None

    def lookup(self, parent: int, name: bytes) -> int | None:
        row = self._one("SELECT ino FROM dentries WHERE parent = %s AND name = %s", (parent, name))
        return row[0] if row else None

    def readdir(self, parent: int, after: int, limit: int) -> list[tuple[int, bytes, InodeRow]]:
        rows = self._x(
            f"SELECT d.cookie, d.name, {_JOINED_COLUMNS} FROM dentries d JOIN inodes i ON i.id = d.ino "
            "WHERE d.parent = %s AND d.cookie > %s ORDER BY d.cookie LIMIT %s", (parent, after, limit)).fetchall()
        return [(r[0], r[1], InodeRow(*r[2:])) for r in rows]

    def named(self, parents: Iterable[int], name: bytes) -> dict[int, InodeRow]:
        rows = self._x(
            f"SELECT d.parent, {_JOINED_COLUMNS} FROM dentries d JOIN inodes i ON i.id = d.ino "
            "WHERE d.parent = ANY(%s) AND d.name = %s", (list(parents), name))
        return {r[0]: InodeRow(*r[1:]) for r in rows}

    def names_of(self, ino: int) -> list[tuple[int, bytes]]:
        return [(p, n) for p, n in self._x("SELECT parent, name FROM dentries WHERE ino = %s ORDER BY cookie", (ino,))]

    def has_entry_in(self, ino: int, parent: int) -> bool:
        return self._one("SELECT 1 FROM dentries WHERE ino = %s AND parent = %s", (ino, parent)) is not None

    def unlinked_inodes(self) -> list[int]:
        return [r[0] for r in self._x("SELECT id FROM inodes WHERE nlink = 0 AND id <> %s", (ROOT_INO,))]

    def count_inodes(self) -> int:
        return self._one("SELECT count(*) FROM inodes")[0]

    def xattr_names(self) -> set[bytes]:
        return {r[0] for r in self._x("SELECT DISTINCT name FROM xattrs")}

    def getxattr(self, ino: int, name: bytes) -> bytes | None:
        row = self._one("SELECT value FROM xattrs WHERE ino = %s AND name = %s", (ino, name))
        return None if row is None else row[0]

    def listxattr(self, ino: int) -> list[bytes]:
        return [r[0] for r in self._x("SELECT name FROM xattrs WHERE ino = %s ORDER BY name", (ino,))]

    def _get_dir(self, ino: int) -> InodeRow:
        row = self.get(ino)
        if not stat.S_ISDIR(row.mode):
            raise FsError(errno.ENOTDIR, f"inode {ino} is not a directory")
        return row

    def _has_children(self, ino: int) -> bool:
        return self._one("SELECT 1 FROM dentries WHERE parent = %s LIMIT 1", (ino,)) is not None

    def _is_ancestor(self, ancestor: int, ino: int) -> bool:
        """True when ``ancestor`` is ``ino`` or one of its parent directories."""
        seen = set()
        while ino not in seen:
            if ino == ancestor:
                return True
            seen.add(ino)
            row = self._one("SELECT parent FROM dentries WHERE ino = %s LIMIT 1", (ino,))
            if row is None:
                return False
            ino = row[0]
        return False

    # -- writes ------------------------------------------------------------------------
    def _touch_dir(self, ino: int, now: int, nlink_delta: int = 0) -> None:
        self._x("UPDATE inodes SET mtime_ns = %s, ctime_ns = %s, nlink = nlink + %s WHERE id = %s",
                (now, now, nlink_delta, ino))
        self._touched.inodes.add(ino)

    def _set_ctime(self, ino: int, now: int, nlink_delta: int = 0) -> None:
        self._x("UPDATE inodes SET nlink = nlink + %s, ctime_ns = %s WHERE id = %s", (nlink_delta, now, ino))
        self._touched.inodes.add(ino)

    def _set_dead(self, ino: int, now: int) -> None:
        self._x("UPDATE inodes SET nlink = 0, ctime_ns = %s WHERE id = %s", (now, ino))
        self._touched.inodes.add(ino)

    def _add_entry(self, parent: int, name: bytes, ino: int) -> None:
        self._x("INSERT INTO dentries (parent, name, ino) VALUES (%s, %s, %s)", (parent, name, ino))
        self._touched.entries.add((parent, name))

    def _drop_entry(self, parent: int, name: bytes) -> None:
        self._x("DELETE FROM dentries WHERE parent = %s AND name = %s", (parent, name))
        self._touched.entries.add((parent, name))

    def _existing(self, parent: int, name: bytes) -> int:
        ino = self.lookup(parent, name)
        if ino is None:
            raise FsError(errno.ENOENT, f"{_shown(name)} does not exist")
        return ino

    def _refuse_existing(self, parent: int, name: bytes) -> None:
        if self.lookup(parent, name) is not None:
            raise FsError(errno.EEXIST, f"{_shown(name)} exists")

    def create_root(self, uid: int, gid: int, now: int) -> None:
        self._x("INSERT INTO inodes (id, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns) "
                "VALUES (%s, %s, 2, %s, %s, %s, %s, %s)", (ROOT_INO, stat.S_IFDIR | 0o755, uid, gid, now, now, now))
        self._touched.inodes.add(ROOT_INO)

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
        size = len(target) if target is not None else 0
        row = self._one(
            "INSERT INTO inodes (mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, target) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {INODE_COLUMNS}",
            (mode, 2 if is_dir else 1, uid, gid, rdev, size, now, now, now, target))
        node = InodeRow(*row)
        self._touched.inodes.add(node.id)
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
            raise FsError(errno.EISDIR, f"{_shown(name)} is a directory")
        self._drop_entry(parent, name)
        self._set_ctime(ino, now, -1)
        self._touch_dir(parent, now)
        return self.get(ino)

    def rmdir(self, parent: int, name: bytes, now: int) -> InodeRow:
        ino = self._existing(parent, name)
        if not stat.S_ISDIR(self.get(ino).mode):
            raise FsError(errno.ENOTDIR, f"{_shown(name)} is not a directory")
        if self._has_children(ino):
            raise FsError(errno.ENOTEMPTY, f"{_shown(name)} is not empty")
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
            raise FsError(errno.EEXIST, f"{_shown(new_name)} exists")
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise FsError(errno.ENOENT, f"{_shown(new_name)} does not exist")
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
            raise FsError(errno.ENOTDIR, f"{_shown(name)} is not a directory")
        if dst_dir and not src_dir:
            raise FsError(errno.EISDIR, f"{_shown(name)} is a directory")
        if dst_dir:
            if self._has_children(dst):
                raise FsError(errno.ENOTEMPTY, f"{_shown(name)} is not empty")
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
        self._x("UPDATE dentries SET ino = %s WHERE parent = %s AND name = %s", (r2.id, p1, n1))
        self._x("UPDATE dentries SET ino = %s WHERE parent = %s AND name = %s", (r1.id, p2, n2))
        self._touched.entries.update(((p1, n1), (p2, n2)))
        self._x("UPDATE inodes SET ctime_ns = %s WHERE id IN (%s, %s)", (now, r1.id, r2.id))
        self._touched.inodes.update((r1.id, r2.id))
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
        self._x("UPDATE inodes SET mode = %s, uid = %s, gid = %s, atime_ns = %s, mtime_ns = %s, ctime_ns = %s "
                "WHERE id = %s", (row.mode, row.uid, row.gid, row.atime_ns, row.mtime_ns, row.ctime_ns, ino))
        self._touched.inodes.add(ino)
        return row

    def delete_inode(self, ino: int, now: int) -> None:
        release_content(self, ino, now)
        self._x("DELETE FROM xattrs WHERE ino = %s", (ino,))
        if self._x("DELETE FROM inodes WHERE id = %s", (ino,)).rowcount:
            self._touched.inodes.add(ino)

    def delete_if_unlinked(self, ino: int, now: int) -> bool:
        row = self._one("SELECT nlink FROM inodes WHERE id = %s", (ino,))
        if row is None or row[0] != 0:
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
        self._x("INSERT INTO xattrs (ino, name, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value", (ino, name, value))
        self._set_ctime(ino, now)

    def removexattr(self, ino: int, name: bytes, now: int) -> None:
        if self._x("DELETE FROM xattrs WHERE ino = %s AND name = %s", (ino, name)).rowcount == 0:
            raise FsError(errno.ENODATA, "no such attribute")
        self._set_ctime(ino, now)
