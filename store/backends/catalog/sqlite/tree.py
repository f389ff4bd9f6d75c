"""The ``tree`` domain on SQLite: tables ``inodes``, ``dentries`` and ``xattrs``.

A readdir cookie is the entry's ``dentries`` rowid (``schema`` says why it keeps the
interface's contract: a new row takes the largest rowid + 1, and the catalog is never
VACUUMed, which could renumber them).
"""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterable

from ..posix_tree import PosixTree
from ..rows import ROOT_INO, InodeRow
from .content import release_content
from store.backends.catalog.sqlite.errors import translated

INODE_COLUMNS = "id, mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, content_seq, target"
_JOINED_COLUMNS = ", ".join("i." + c.strip() for c in INODE_COLUMNS.split(","))


@translated
class SqliteTree(PosixTree):
    """``Tree`` over one connection (see ``store.backends.catalog.tree``); the POSIX rules are
    ``PosixTree``'s, over the primitives below."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    # -- reads -------------------------------------------------------------------------
    def inode(self, ino: int) -> InodeRow | None:
        row = self._db.execute(f"SELECT {INODE_COLUMNS} FROM inodes WHERE id = ?", (ino,)).fetchone()
        return InodeRow(*row) if row else None

    def lookup(self, parent: int, name: bytes) -> int | None:
        row = self._db.execute("SELECT ino FROM dentries WHERE parent = ? AND name = ?", (parent, name)).fetchone()
        return row[0] if row else None

    def entry(self, parent: int, name: bytes) -> tuple[InodeRow, int] | None:
        row = self._db.execute(
            f"SELECT {_JOINED_COLUMNS}, (SELECT coalesce(sum(c.length), 0) FROM file_chunks f "
            "JOIN chunks c ON c.id = f.chunk_id WHERE f.ino = i.id) "
            "FROM dentries d JOIN inodes i ON i.id = d.ino WHERE d.parent = ? AND d.name = ?", (parent, name)).fetchone()
        return (InodeRow(*row[:-1]), row[-1]) if row else None

    def readdir(self, parent: int, after: int, limit: int) -> list[tuple[int, bytes, InodeRow]]:
        rows = self._db.execute(
            f"SELECT d.rowid, d.name, {_JOINED_COLUMNS} FROM dentries d JOIN inodes i ON i.id = d.ino "
            "WHERE d.parent = ? AND d.rowid > ? ORDER BY d.rowid LIMIT ?", (parent, after, limit)).fetchall()
        return [(r[0], bytes(r[1]), InodeRow(*r[2:])) for r in rows]

    def named(self, parents: Iterable[int], name: bytes) -> dict[int, InodeRow]:
        rows = self._db.execute(
            f"SELECT d.parent, {_JOINED_COLUMNS} FROM dentries d JOIN inodes i ON i.id = d.ino "
            "WHERE d.parent IN (SELECT value FROM json_each(?)) AND d.name = ?", (json.dumps(list(parents)), name))
        return {r[0]: InodeRow(*r[1:]) for r in rows}

    def names_of(self, ino: int) -> list[tuple[int, bytes]]:
        return [(p, bytes(n)) for p, n in self._db.execute(
            "SELECT parent, name FROM dentries WHERE ino = ? ORDER BY rowid", (ino,))]

    def has_entry_in(self, ino: int, parent: int) -> bool:
        return self._db.execute("SELECT 1 FROM dentries WHERE ino = ? AND parent = ?",
                                (ino, parent)).fetchone() is not None

    def unlinked_inodes(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT id FROM inodes WHERE nlink = 0 AND id != ?", (ROOT_INO,))]

    def count_inodes(self) -> int:
        return self._db.execute("SELECT count(*) FROM inodes").fetchone()[0]

    def xattr_names(self) -> set[bytes]:
        return {bytes(r[0]) for r in self._db.execute("SELECT DISTINCT name FROM xattrs")}

    def getxattr(self, ino: int, name: bytes) -> bytes | None:
        row = self._db.execute("SELECT value FROM xattrs WHERE ino = ? AND name = ?", (ino, name)).fetchone()
        return None if row is None else bytes(row[0])

    def listxattr(self, ino: int) -> list[bytes]:
        return [bytes(r[0]) for r in self._db.execute("SELECT name FROM xattrs WHERE ino = ? ORDER BY name", (ino,))]

    def _has_children(self, ino: int) -> bool:
        return self._db.execute("SELECT 1 FROM dentries WHERE parent = ? LIMIT 1", (ino,)).fetchone() is not None

    def _parent_of(self, ino: int) -> int | None:
        row = self._db.execute("SELECT parent FROM dentries WHERE ino = ? LIMIT 1", (ino,)).fetchone()
        return None if row is None else row[0]

    def _nlink(self, ino: int) -> int | None:
        row = self._db.execute("SELECT nlink FROM inodes WHERE id = ?", (ino,)).fetchone()
        return None if row is None else row[0]

    # -- writes ------------------------------------------------------------------------
    def _touch_dir(self, ino: int, now: int, nlink_delta: int = 0) -> None:
        self._db.execute("UPDATE inodes SET mtime_ns = ?, ctime_ns = ?, nlink = nlink + ? WHERE id = ?",
                         (now, now, nlink_delta, ino))

    def _set_ctime(self, ino: int, now: int, nlink_delta: int = 0) -> None:
        self._db.execute("UPDATE inodes SET nlink = nlink + ?, ctime_ns = ? WHERE id = ?", (nlink_delta, now, ino))

    def _set_dead(self, ino: int, now: int) -> None:
        self._db.execute("UPDATE inodes SET nlink = 0, ctime_ns = ? WHERE id = ?", (now, ino))

    def _add_entry(self, parent: int, name: bytes, ino: int) -> None:
        self._db.execute("INSERT INTO dentries (parent, name, ino) VALUES (?, ?, ?)", (parent, name, ino))

    def _drop_entry(self, parent: int, name: bytes) -> None:
        self._db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (parent, name))

    def _swap_entries(self, p1: int, n1: bytes, ino1: int, p2: int, n2: bytes, ino2: int, now: int) -> None:
        self._db.execute("UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?", (ino2, p1, n1))
        self._db.execute("UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?", (ino1, p2, n2))
        self._db.execute("UPDATE inodes SET ctime_ns = ? WHERE id IN (?, ?)", (now, ino1, ino2))

    def _insert_inode(self, mode: int, nlink: int, uid: int, gid: int, rdev: int, size: int, now: int,
                      target: bytes | None) -> InodeRow:
        cur = self._db.execute(
            "INSERT INTO inodes (mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, target) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (mode, nlink, uid, gid, rdev, size, now, now, now, target))
        return self.get(cur.lastrowid)

    def _write_attrs(self, row: InodeRow) -> None:
        self._db.execute("UPDATE inodes SET mode = ?, uid = ?, gid = ?, atime_ns = ?, mtime_ns = ?, ctime_ns = ? "
                         "WHERE id = ?", (row.mode, row.uid, row.gid, row.atime_ns, row.mtime_ns, row.ctime_ns, row.id))

    def _put_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?, ?, ?)", (ino, name, value))

    def _drop_xattr(self, ino: int, name: bytes) -> bool:
        return self._db.execute("DELETE FROM xattrs WHERE ino = ? AND name = ?", (ino, name)).rowcount > 0

    def create_root(self, uid: int, gid: int, now: int) -> None:
        self._db.execute("INSERT INTO inodes (id, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns) "
                         "VALUES (?, ?, 2, ?, ?, ?, ?, ?)", (ROOT_INO, stat.S_IFDIR | 0o755, uid, gid, now, now, now))

    def delete_inode(self, ino: int, now: int) -> None:
        release_content(self._db, ino, now)
        self._db.execute("DELETE FROM xattrs WHERE ino = ?", (ino,))
        self._db.execute("DELETE FROM inodes WHERE id = ?", (ino,))
