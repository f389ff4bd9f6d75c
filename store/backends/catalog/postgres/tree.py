"""The ``tree`` domain on PostgreSQL: tables ``inodes``, ``dentries`` and ``xattrs``.

A readdir cookie is the entry's ``dentries.cookie`` (a bigserial: ``schema`` says why it
keeps the interface's contract). Every write notes the inodes whose rows it changed
(``Changes.inodes``) and the files whose chunk lists it emptied (``Changes.contents``).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable

from ..posix_tree import PosixTree
from ..rows import ROOT_INO, InodeRow
from .content import release_content
from .domain import Domain
from .errors import translated

INODE_COLUMNS = "id, mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, content_seq, target"
_JOINED_COLUMNS = ", ".join("i." + c.strip() for c in INODE_COLUMNS.split(","))


@translated
class PostgresTree(Domain, PosixTree):
    """``Tree`` over one view (see ``store.backends.catalog.tree``); the POSIX rules are
    ``PosixTree``'s, over the primitives below."""

    # -- reads -------------------------------------------------------------------------
    def inode(self, ino: int) -> InodeRow | None:
        row = self._one(f"SELECT {INODE_COLUMNS} FROM inodes WHERE id = %s", (ino,))
        return InodeRow(*row) if row else None

    def lookup(self, parent: int, name: bytes) -> int | None:
        row = self._one("SELECT ino FROM dentries WHERE parent = %s AND name = %s", (parent, name))
        return row[0] if row else None

    def entry(self, parent: int, name: bytes) -> tuple[InodeRow, int] | None:
        row = self._one(
            f"SELECT {_JOINED_COLUMNS}, (SELECT coalesce(sum(c.length), 0) FROM file_chunks f "
            "JOIN chunks c ON c.id = f.chunk_id WHERE f.ino = i.id) "
            "FROM dentries d JOIN inodes i ON i.id = d.ino WHERE d.parent = %s AND d.name = %s", (parent, name))
        return (InodeRow(*row[:-1]), int(row[-1])) if row else None

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

    def _has_children(self, ino: int) -> bool:
        return self._one("SELECT 1 FROM dentries WHERE parent = %s LIMIT 1", (ino,)) is not None

    def _parent_of(self, ino: int) -> int | None:
        row = self._one("SELECT parent FROM dentries WHERE ino = %s LIMIT 1", (ino,))
        return None if row is None else row[0]

    def _nlink(self, ino: int) -> int | None:
        row = self._one("SELECT nlink FROM inodes WHERE id = %s", (ino,))
        return None if row is None else row[0]

    # -- writes (each notes what it changed for Changes) ---------------------------------
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

    def _swap_entries(self, p1: int, n1: bytes, ino1: int, p2: int, n2: bytes, ino2: int, now: int) -> None:
        self._x("UPDATE dentries SET ino = %s WHERE parent = %s AND name = %s", (ino2, p1, n1))
        self._x("UPDATE dentries SET ino = %s WHERE parent = %s AND name = %s", (ino1, p2, n2))
        self._x("UPDATE inodes SET ctime_ns = %s WHERE id IN (%s, %s)", (now, ino1, ino2))
        self._touched.inodes.update((ino1, ino2))
        self._touched.entries.update(((p1, n1), (p2, n2)))

    def _insert_inode(self, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int, now: int,
                      target: bytes | None) -> InodeRow:
        row = self._one(
            "INSERT INTO inodes (mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, target) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {INODE_COLUMNS}",
            (mode, nlink, uid, gid, rdev, size, now, now, now, target))
        node = InodeRow(*row)
        self._touched.inodes.add(node.id)
        return node

    def _write_attrs(self, row: InodeRow) -> None:
        self._x("UPDATE inodes SET mode = %s, uid = %s, gid = %s, atime_ns = %s, mtime_ns = %s, ctime_ns = %s "
                "WHERE id = %s", (row.mode, row.uid, row.gid, row.atime_ns, row.mtime_ns, row.ctime_ns, row.id))
        self._touched.inodes.add(row.id)

    def _put_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        self._x("INSERT INTO xattrs (ino, name, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value", (ino, name, value))

    def _drop_xattr(self, ino: int, name: bytes) -> bool:
        return self._x("DELETE FROM xattrs WHERE ino = %s AND name = %s", (ino, name)).rowcount > 0

    def create_root(self, uid: int, gid: int, now: int) -> None:
        self._x("INSERT INTO inodes (id, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns) "
                "VALUES (%s, %s, 2, %s, %s, %s, %s, %s)", (ROOT_INO, stat.S_IFDIR | 0o755, uid, gid, now, now, now))
        self._touched.inodes.add(ROOT_INO)

    def delete_inode(self, ino: int, now: int) -> None:
        release_content(self, ino, now)
        self._x("DELETE FROM xattrs WHERE ino = %s", (ino,))
        if self._x("DELETE FROM inodes WHERE id = %s", (ino,)).rowcount:
            self._touched.inodes.add(ino)
