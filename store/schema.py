"""The catalog schema: every table, column, sentinel and invariant, in one place.

The catalog is one SQLite database (``catalog.db``) in WAL mode. It holds the
file tree, where every byte of every file lives, and the session index.
``create_tables`` is the documentation; nothing else issues CREATE.
"""

from __future__ import annotations

import sqlite3

#: Bumped whenever a table or the meaning of a column changes; checked at open.
FORMAT_VERSION = 1

#: Inode of the mount root (a directory). Created by ``create_tables``.
ROOT_INO = 1


def create_tables(db: sqlite3.Connection) -> None:
    """Create an empty catalog. Tables, in the order a read walks them:

    ``meta(key, value)``
        Store-wide settings. ``format_version`` (int, must equal
        FORMAT_VERSION), ``created`` (ns since the epoch), ``store_id`` (hex).

    ``inodes``
        One row per file, directory or symlink, including files that are
        unlinked but still open (``nlink`` = 0; removed when the last handle
        closes, or at the next open after a crash).

        - ``id``: inode number. AUTOINCREMENT so numbers are never reused
          (the kernel and NFS-style clients cache them). ROOT_INO is the root.
        - ``mode``: st_mode with the file type bits (S_IFREG, S_IFDIR, S_IFLNK).
        - ``nlink``: directory entries pointing here; for a directory
          2 + its subdirectories. Maintained by every namespace change.
        - ``uid``, ``gid``, ``rdev``: as stat(2).
        - ``size``: logical size in bytes. Bytes in [0, size) not covered by
          a ``file_chunks`` row are a hole and read as zeros.
        - ``atime_ns``, ``mtime_ns``, ``ctime_ns``: nanoseconds since the epoch.
        - ``content_seq``: sequence number of the last staged write applied
          to this inode (0 = none). Replaying staged writes after a crash
          skips those with a sequence <= content_seq, so replay is idempotent.
        - ``target``: symlink target (BLOB), NULL for other types.

    ``dentries``
        Directory entries. ``(parent, name)`` is unique; ``rowid`` is the
        entry's stable readdir offset (a new entry always sorts after every
        existing one, so a listing in progress neither skips nor repeats).
        ``name`` is a BLOB (file names are bytes). ``ino`` -> ``inodes.id``.

    ``file_chunks``
        The content of regular files: an ordered list of chunk references.
        ``(ino, off)``: the chunk starting at byte ``off`` of file ``ino``.
        Invariants: rows of one file do not overlap; ``off + chunks.length``
        <= ``inodes.size``; gaps are holes.

    ``chunks``
        Content-addressed chunks. ``hash`` is the SHA-256 of the chunk's
        bytes (unique). ``length`` its size. The bytes are at ``block_off``
        inside the decoded block ``block_id``. ``refcount`` equals the number
        of ``file_chunks`` rows naming the chunk; a chunk whose refcount fell to
        0 keeps its row (it may be reused by dedup) with ``unref_since`` (ns)
        set, until garbage collection reclaims it after a grace period.

    ``blocks``
        Framed, possibly compressed runs of chunks inside a pack (see
        ``codec``). ``pack_id``, ``offset`` and ``length`` locate the frame
        (header included); ``raw_length`` is the decoded size; ``codec`` and
        ``dict_id`` say how it was encoded; ``created`` (ns) orders blocks for
        background recompression.

    ``packs``
        Append-only pack files ``packs/<id>.pack``. ``size`` is the committed
        length: bytes past it are a torn tail from a crash and are truncated at
        the next writable open; a pack file without a row is an orphan from an
        uncommitted batch. ``sealed`` = 1 once the pack is full.

    ``xattrs``
        Extended attributes ``(ino, name) -> value`` (``user.*`` only).

    ``sessions``, ``session_tags``, ``session_topics``
        The indexed fields of each session directory
        ``sessions/<id>/metadata.json``, kept in step with that file in the
        same transaction that commits it (or renames or deletes it).
        ``sessions.dir_ino`` is the session directory's inode, ``id`` its name.
        A session directory without a valid metadata.json has no row.
    """
    db.executescript(
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value NOT NULL
        );
        CREATE TABLE inodes (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            mode        INTEGER NOT NULL,
            nlink       INTEGER NOT NULL,
            uid         INTEGER NOT NULL,
            gid         INTEGER NOT NULL,
            rdev        INTEGER NOT NULL DEFAULT 0,
            size        INTEGER NOT NULL DEFAULT 0,
            atime_ns    INTEGER NOT NULL,
            mtime_ns    INTEGER NOT NULL,
            ctime_ns    INTEGER NOT NULL,
            content_seq INTEGER NOT NULL DEFAULT 0,
            target      BLOB
        );
        CREATE TABLE dentries (
            parent INTEGER NOT NULL,
            name   BLOB NOT NULL,
            ino    INTEGER NOT NULL,
            UNIQUE (parent, name)
        );
        CREATE INDEX dentries_by_parent ON dentries(parent);
        CREATE INDEX dentries_by_ino ON dentries(ino);
        CREATE TABLE file_chunks (
            ino      INTEGER NOT NULL,
            off      INTEGER NOT NULL,
            chunk_id INTEGER NOT NULL,
            PRIMARY KEY (ino, off)
        ) WITHOUT ROWID;
        CREATE INDEX file_chunks_by_chunk ON file_chunks(chunk_id);
        CREATE TABLE chunks (
            id          INTEGER PRIMARY KEY,
            hash        BLOB NOT NULL UNIQUE,
            length      INTEGER NOT NULL,
            block_id    INTEGER NOT NULL,
            block_off   INTEGER NOT NULL,
            refcount    INTEGER NOT NULL,
            unref_since INTEGER
        );
        CREATE INDEX chunks_by_block ON chunks(block_id);
        CREATE TABLE blocks (
            id         INTEGER PRIMARY KEY,
            pack_id    INTEGER NOT NULL,
            offset     INTEGER NOT NULL,
            length     INTEGER NOT NULL,
            raw_length INTEGER NOT NULL,
            codec      INTEGER NOT NULL,
            dict_id    INTEGER NOT NULL DEFAULT 0,
            created    INTEGER NOT NULL
        );
        CREATE INDEX blocks_by_pack ON blocks(pack_id);
        CREATE TABLE packs (
            id      INTEGER PRIMARY KEY,
            size    INTEGER NOT NULL,
            sealed  INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL
        );
        CREATE TABLE xattrs (
            ino   INTEGER NOT NULL,
            name  BLOB NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (ino, name)
        ) WITHOUT ROWID;
        CREATE TABLE sessions (
            id          TEXT PRIMARY KEY,
            dir_ino     INTEGER NOT NULL UNIQUE,
            name        TEXT,
            status      TEXT,
            start_time  TEXT,
            end_time    TEXT,
            category    TEXT,
            version     INTEGER,
            updated_at  TEXT,
            meta_size   INTEGER NOT NULL
        );
        CREATE INDEX sessions_by_status ON sessions(status, start_time);
        CREATE INDEX sessions_by_start ON sessions(start_time);
        CREATE TABLE session_tags (
            session_id TEXT NOT NULL,
            tag        TEXT NOT NULL,
            PRIMARY KEY (tag, session_id)
        ) WITHOUT ROWID;
        CREATE INDEX session_tags_by_session ON session_tags(session_id);
        CREATE TABLE session_topics (
            session_id TEXT NOT NULL,
            topic_id   TEXT NOT NULL,
            PRIMARY KEY (topic_id, session_id)
        ) WITHOUT ROWID;
        CREATE INDEX session_topics_by_session ON session_topics(session_id);
        """
    )


def read_format_version(db: sqlite3.Connection) -> int | None:
    """The stored format version, or None when the database has no catalog."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None
