"""POSIX namespace operations on the catalog, each inside the caller's write transaction.

Every function takes the open write connection and raises ``FsError`` with
the errno a local filesystem would give. Content never changes here except
by deletion: file bytes are committed by the persistence worker.
"""

from __future__ import annotations

import errno
import sqlite3
import stat

from .catalog import INODE_COLUMNS, InodeRow
from store.core.errors import FsError

NAME_MAX = 255
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def check_name(name: bytes) -> None:
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise FsError(errno.EINVAL, f"invalid file name {name!r}")
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"name longer than {NAME_MAX} bytes")


def get(db: sqlite3.Connection, ino: int) -> InodeRow:
    row = db.execute(f"SELECT {INODE_COLUMNS} FROM inodes WHERE id = ?", (ino,)).fetchone()
    if row is None:
        raise FsError(errno.ENOENT, f"inode {ino} does not exist")
    return InodeRow(*row)


def get_dir(db: sqlite3.Connection, ino: int) -> InodeRow:
    row = get(db, ino)
    if not stat.S_ISDIR(row.mode):
        raise FsError(errno.ENOTDIR, f"inode {ino} is not a directory")
    return row


def lookup(db: sqlite3.Connection, parent: int, name: bytes) -> int | None:
    row = db.execute("SELECT ino FROM dentries WHERE parent = ? AND name = ?", (parent, name)).fetchone()
    return row[0] if row else None


def touch_dir(db: sqlite3.Connection, ino: int, now: int, nlink_delta: int = 0) -> None:
    db.execute("UPDATE inodes SET mtime_ns = ?, ctime_ns = ?, nlink = nlink + ? WHERE id = ?",
               (now, now, nlink_delta, ino))


def make_node(db: sqlite3.Connection, parent: int, name: bytes, mode: int, uid: int, gid: int, now: int,
              rdev: int = 0, target: bytes | None = None) -> InodeRow:
    """Create a file, directory, symlink or device node named ``name`` in ``parent``."""
    check_name(name)
    pdir = get_dir(db, parent)
    if pdir.nlink == 0:
        raise FsError(errno.ENOENT, "parent directory was removed")
    if lookup(db, parent, name) is not None:
        raise FsError(errno.EEXIST, f"{name.decode(errors='replace')} exists")
    if pdir.mode & stat.S_ISGID:
        gid = pdir.gid
        if stat.S_ISDIR(mode):
            mode |= stat.S_ISGID
    is_dir = stat.S_ISDIR(mode)
    size = len(target) if target is not None else 0
    cur = db.execute(
        "INSERT INTO inodes (mode, nlink, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, target) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (mode, 2 if is_dir else 1, uid, gid, rdev, size, now, now, now, target))
    ino = cur.lastrowid
    db.execute("INSERT INTO dentries (parent, name, ino) VALUES (?, ?, ?)", (parent, name, ino))
    touch_dir(db, parent, now, 1 if is_dir else 0)
    return get(db, ino)


def link(db: sqlite3.Connection, ino: int, parent: int, name: bytes, now: int) -> InodeRow:
    check_name(name)
    row = get(db, ino)
    if stat.S_ISDIR(row.mode):
        raise FsError(errno.EPERM, "hard links to directories are not allowed")
    get_dir(db, parent)
    if lookup(db, parent, name) is not None:
        raise FsError(errno.EEXIST, f"{name.decode(errors='replace')} exists")
    db.execute("INSERT INTO dentries (parent, name, ino) VALUES (?, ?, ?)", (parent, name, ino))
    db.execute("UPDATE inodes SET nlink = nlink + 1, ctime_ns = ? WHERE id = ?", (now, ino))
    touch_dir(db, parent, now)
    return get(db, ino)


def unlink(db: sqlite3.Connection, parent: int, name: bytes, now: int) -> InodeRow:
    """Remove a non-directory entry; returns the inode with its new nlink."""
    ino = lookup(db, parent, name)
    if ino is None:
        raise FsError(errno.ENOENT, f"{name.decode(errors='replace')} does not exist")
    row = get(db, ino)
    if stat.S_ISDIR(row.mode):
        raise FsError(errno.EISDIR, f"{name.decode(errors='replace')} is a directory")
    db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (parent, name))
    db.execute("UPDATE inodes SET nlink = nlink - 1, ctime_ns = ? WHERE id = ?", (now, ino))
    touch_dir(db, parent, now)
    return get(db, ino)


def rmdir(db: sqlite3.Connection, parent: int, name: bytes, now: int) -> InodeRow:
    ino = lookup(db, parent, name)
    if ino is None:
        raise FsError(errno.ENOENT, f"{name.decode(errors='replace')} does not exist")
    row = get(db, ino)
    if not stat.S_ISDIR(row.mode):
        raise FsError(errno.ENOTDIR, f"{name.decode(errors='replace')} is not a directory")
    if db.execute("SELECT 1 FROM dentries WHERE parent = ? LIMIT 1", (ino,)).fetchone():
        raise FsError(errno.ENOTEMPTY, f"{name.decode(errors='replace')} is not empty")
    db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (parent, name))
    db.execute("UPDATE inodes SET nlink = 0, ctime_ns = ? WHERE id = ?", (now, ino))
    touch_dir(db, parent, now, -1)
    return get(db, ino)


def is_ancestor(db: sqlite3.Connection, ancestor: int, ino: int) -> bool:
    """True when ``ancestor`` is ``ino`` or one of its parent directories."""
    seen = set()
    while ino not in seen:
        if ino == ancestor:
            return True
        seen.add(ino)
        row = db.execute("SELECT parent FROM dentries WHERE ino = ? LIMIT 1", (ino,)).fetchone()
        if row is None:
            return False
        ino = row[0]
    return False


def rename(db: sqlite3.Connection, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes,
           flags: int, now: int) -> InodeRow | None:
    """rename(2)/renameat2(2). Returns the inode that lost its entry (replaced target), if any."""
    check_name(new_name)
    src = lookup(db, old_parent, old_name)
    if src is None:
        raise FsError(errno.ENOENT, f"{old_name.decode(errors='replace')} does not exist")
    get_dir(db, new_parent)
    src_row = get(db, src)
    src_dir = stat.S_ISDIR(src_row.mode)
    dst = lookup(db, new_parent, new_name)
    if flags & RENAME_NOREPLACE and dst is not None:
        raise FsError(errno.EEXIST, f"{new_name.decode(errors='replace')} exists")
    if flags & RENAME_EXCHANGE:
        if dst is None:
            raise FsError(errno.ENOENT, f"{new_name.decode(errors='replace')} does not exist")
        return _exchange(db, old_parent, old_name, src_row, new_parent, new_name, get(db, dst), now)
    if dst == src:
        return None
    if src_dir and new_parent != old_parent and is_ancestor(db, src, new_parent):
        raise FsError(errno.EINVAL, "cannot move a directory into itself")
    replaced = None
    if dst is not None:
        dst_row = get(db, dst)
        dst_dir = stat.S_ISDIR(dst_row.mode)
        if src_dir and not dst_dir:
            raise FsError(errno.ENOTDIR, f"{new_name.decode(errors='replace')} is not a directory")
        if dst_dir and not src_dir:
            raise FsError(errno.EISDIR, f"{new_name.decode(errors='replace')} is a directory")
        if dst_dir:
            if db.execute("SELECT 1 FROM dentries WHERE parent = ? LIMIT 1", (dst,)).fetchone():
                raise FsError(errno.ENOTEMPTY, f"{new_name.decode(errors='replace')} is not empty")
            db.execute("UPDATE inodes SET nlink = 0, ctime_ns = ? WHERE id = ?", (now, dst))
            touch_dir(db, new_parent, now, -1)
        else:
            db.execute("UPDATE inodes SET nlink = nlink - 1, ctime_ns = ? WHERE id = ?", (now, dst))
        db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (new_parent, new_name))
        replaced = get(db, dst)
    db.execute("DELETE FROM dentries WHERE parent = ? AND name = ?", (old_parent, old_name))
    db.execute("INSERT INTO dentries (parent, name, ino) VALUES (?, ?, ?)", (new_parent, new_name, src))
    db.execute("UPDATE inodes SET ctime_ns = ? WHERE id = ?", (now, src))
    if src_dir and old_parent != new_parent:
        touch_dir(db, old_parent, now, -1)
        touch_dir(db, new_parent, now, 1)
    else:
        touch_dir(db, old_parent, now)
        if new_parent != old_parent:
            touch_dir(db, new_parent, now)
    return replaced


def _exchange(db, p1, n1, r1: InodeRow, p2, n2, r2: InodeRow, now: int) -> None:
    d1, d2 = stat.S_ISDIR(r1.mode), stat.S_ISDIR(r2.mode)
    if p1 != p2 and ((d1 and is_ancestor(db, r1.id, p2)) or (d2 and is_ancestor(db, r2.id, p1))):
        raise FsError(errno.EINVAL, "cannot move a directory into itself")
    db.execute("UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?", (r2.id, p1, n1))
    db.execute("UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?", (r1.id, p2, n2))
    db.execute("UPDATE inodes SET ctime_ns = ? WHERE id IN (?, ?)", (now, r1.id, r2.id))
    if p1 != p2 and d1 != d2:
        delta = 1 if d2 else -1
        touch_dir(db, p1, now, delta)
        touch_dir(db, p2, now, -delta)
    else:
        touch_dir(db, p1, now)
        touch_dir(db, p2, now)
    return None


def release_content(db: sqlite3.Connection, ino: int, now: int) -> None:
    """Drop every chunk reference of ``ino`` (its content becomes empty)."""
    db.execute(
        "UPDATE chunks SET refcount = refcount - r.n, "
        "unref_since = CASE WHEN refcount - r.n = 0 THEN ? ELSE unref_since END "
        "FROM (SELECT chunk_id, count(*) AS n FROM file_chunks WHERE ino = ? GROUP BY chunk_id) AS r "
        "WHERE chunks.id = r.chunk_id", (now, ino))
    db.execute("DELETE FROM file_chunks WHERE ino = ?", (ino,))


def delete_inode(db: sqlite3.Connection, ino: int, now: int) -> None:
    """Remove an inode that has no entries and no users, releasing its chunks."""
    release_content(db, ino, now)
    db.execute("DELETE FROM xattrs WHERE ino = ?", (ino,))
    db.execute("DELETE FROM inodes WHERE id = ?", (ino,))


def set_attrs(db: sqlite3.Connection, ino: int, now: int, *, mode: int | None = None, uid: int | None = None,
              gid: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
              ctime_ns: int | None = None) -> InodeRow:
    row = get(db, ino)
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
    db.execute("UPDATE inodes SET mode = ?, uid = ?, gid = ?, atime_ns = ?, mtime_ns = ?, ctime_ns = ? "
               "WHERE id = ?", (row.mode, row.uid, row.gid, row.atime_ns, row.mtime_ns, row.ctime_ns, ino))
    return row
