"""The catalog schema: every table, column, sentinel and invariant, in one place.

The catalog is one SQLite database (``catalog.db``) in WAL mode. It holds the
file tree, where every byte of every file lives, and the session index.
``create_tables`` is the documentation; nothing else issues CREATE.
"""

from __future__ import annotations

import sqlite3

from . import counters

#: Bumped whenever a table or the meaning of a column changes; checked at open.
#: Older catalogs are upgraded at a writable open (``upgrade``: 1 -> 2 added ``counters``).
FORMAT_VERSION = 2



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
          (the kernel and NFS-style clients cache them). ``rows.ROOT_INO`` is the root.
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
        entry's readdir cookie (``store.backends.catalog.tree``): SQLite gives a
        new row the largest rowid + 1, so a new entry always sorts after every
        existing one and a listing in progress neither skips nor repeats; the
        catalog is never VACUUMed (which may renumber rowids of this table).
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

    ``migrations``, ``migration_attachments`` (MIGRATION_TABLES; ``store.services.migrate``)
        The migration record: one row per legacy file the importer has seen.
        Written by the importer inside the very ``write_files`` group that
        commits the session's files (or removes them again), so a record never
        disagrees with the tree. Also created on demand in catalogs made before
        they existed (``ensure_migration_tables``); a catalog without them has
        simply never imported anything.

        - ``source``: where the legacy file was (unique): its absolute path, or
          ``store:<path>`` for a file dropped into the mount's ``import/``.
        - ``session_id``: the document's ``id`` (may be unsafe or NULL on failure).
        - ``sha256`` (hex), ``size``, ``mtime_ns``: the legacy file as imported.
        - ``digest``: SHA-256 (hex) of the session's JSON values with sorted keys
          (``legacy.canonical_digest``); an export must give the same.
        - ``status``: ``imported`` (files committed, verification pending),
          ``verified`` (export checked equal), ``failed`` (``reason`` says why;
          nothing of the session is in the tree), ``finalized`` (verified, and the
          original was deleted by ``migrate-finalize``).
        - ``stage``: of a failure: read, parse, validate, attachments, exists,
          write or verify.
        - ``imported_at``, ``verified_at``, ``finalized_at``, ``updated_at``: ns.
        At most one row per ``session_id`` is imported, verified or finalized
        (partial unique index): a session is never imported twice.

        ``migration_attachments(migration_id, name, source, sha256, size)``: the
        attachment files a migration copied into ``sessions/<id>/attachments/<name>``,
        from ``source`` (absolute path, or ``store:<path>``), with their SHA-256.

    ``lost_found``, ``dictionaries``, ``recompressed`` (MAINTENANCE_TABLES;
    ``store.services.verify``, ``store.services.recompress``, ``store.services.gc``)
        Created like the migration tables: here, and on demand in older catalogs
        (``ensure_maintenance_tables``, at every writable open). Readers treat a
        missing table as empty.

        ``lost_found(id, ino, path, reason, ranges, found_at)``: files that
        ``sessionfs verify --repair`` found with data that is gone (missing pack,
        corrupt block, missing chunk). The file stays where it is; its damaged
        ranges keep failing with EIO (never zeros or wrong bytes). ``path`` is the
        file's path when found, ``ranges`` a JSON list of ``[start, end)`` byte
        ranges, ``reason`` one line, ``found_at`` ns. An entry whose inode no longer
        refers to a lost chunk (rewritten, deleted) is stale and pruned by repair.
        A *lost chunk* is a ``chunks`` row that repair re-pointed at block id
        ``rows.LOST_BLOCK`` (0, never a real block) with its ``hash`` replaced by
        ``rows.LOST_HASH_PREFIX + the old 32 bytes`` (33 bytes, so it can never match
        a SHA-256 and dedup never hands it to new data); reading it fails.

        ``dictionaries(id, created, data, samples, sample_bytes, small_blocks)``:
        trained zstd dictionaries for blocks of codec CODEC_ZSTD_DICT
        (``blocks.dict_id`` -> ``id``; the dictionary's own zstd dict id equals
        ``id``). Versioned by id: a newer dictionary never replaces an older one
        while a block uses it (gc deletes a dictionary only when no block uses it
        and a newer one exists). ``samples``/``sample_bytes``: what it was trained
        on; ``small_blocks``: small blocks in the store then (a new version is
        trained when there are many more).

        ``recompressed(block_id, level, length_before, done_at)``: blocks the
        background compressor has handled (re-encoded at ``level``, or found not
        worth re-encoding), with their framed length before. A block without a row
        is still as ingested. Rows go with their block.

    ``search_docs``, ``search_fts`` (SEARCH_TABLES; ``search``, ``search_queries``)
        The full-text index of session files, kept in step with the files in the
        same transaction that commits, renames or deletes them. One row per
        directory entry of an indexed file (``text_index.indexed_path``: metadata.json,
        summary.json, audio-insights.json, transcription.json, context-items.json,
        screenshots/ and audio-segments/ chunk files) whose JSON gave text.

        - ``search_docs.id``: the row's rowid in ``search_fts``:
          ``dir_ino << 32 | seq`` (SEARCH_SESSION_SHIFT), so one session's rows are
          one rowid range; ``seq`` comes from meta ``search_seq`` (never reused until a rebuild).
        - ``ino``: the file; ``parent``, ``name``: the directory entry the row was
          derived from; ``dir_ino``: the session directory (its name is the session
          id); ``path``: the entry's path inside the session directory.
        - ``size``, ``extents`` (packed little-endian int64 pairs ``off, chunk_id``),
          ``digest`` (16 bytes of SHA-256 over the chunk hashes and offsets): the
          content the row was extracted from, which is always the file's current
          content. ``search_fts`` is contentless: deleting a row re-derives its text
          from these chunks (still there: a rewrite releases them in the same
          transaction, garbage collection comes later).
        - ``search_fts(title, body)``: FTS5, contentless, tokenizer SEARCH_TOKENIZE;
          ``title`` holds name, tags and category, ``body`` the rest; ``rank`` is
          ``bm25(4.0, 1.0)``. A rowid without a ``search_docs`` row is garbage
          (an old row that could not be deleted); searches never return it and the
          next open rebuilds the index. ``detail=full`` (positions) is kept on purpose:
          measured on the realistic corpus's text, ``detail=column`` is 3.1x smaller and
          ``none`` 6x, but bm25 then sees no term frequencies (the order changed for 48 of
          50 sampled words) and FTS5 refuses phrases, which would have to be checked
          against text re-read from the packs: results and p95 would change.

        meta ``search_tidied``: ``search_seq`` when the index was last compacted into one
        segment (``SqliteSearch.tidy_step``: again once TIDY_SHARE more documents came in).

        meta ``search_version`` (must equal SEARCH_INDEX_VERSION) and
        ``search_state`` (``ok``; ``rebuilding``: usable, being filled by a background
        rebuild whose progress is meta ``search_rebuild``, JSON ``{"done", "total"}``
        sessions; anything else says why the index needs a rebuild) are checked at open;
        a missing, outdated or damaged index is rebuilt from the files in the background
        (``store.engine.search_rebuild``), an interrupted rebuild resumed (``sessionfs reindex``: now).

    The database is made with ``auto_vacuum = INCREMENTAL`` (INCREMENTAL_VACUUM): free pages
    stay in the file until gc releases them (``Maintenance.release_free_pages``). Catalogs made
    before keep ``auto_vacuum = NONE`` (changing it takes a VACUUM) and reuse their free pages.

    ``counters(name, value)`` (``counters``; format 2)
        Store-wide totals that statistics read instead of scanning: ``files`` and
        ``logical_bytes`` (regular inodes, their sizes), ``sessions``,
        ``referenced_bytes`` (chunk bytes over all ``file_chunks`` rows),
        ``unique_bytes``/``unreferenced_bytes`` (chunks with refcount > 0 / <= 0),
        ``blocks``, ``block_bytes``, ``raw_block_bytes``, ``packs``, ``pack_bytes``,
        ``recompressed_blocks`` and ``recompress_bytes_before``/``_after`` (recompressed
        rows whose block exists), ``dictionaries``, ``dictionary_bytes``, ``lost_files``
        (distinct inodes in lost_found). Triggers ``count_<table>_insert``/``_delete``/
        ``_update_<n>`` on those tables keep every value equal to its sum in the same
        statement that changes a row (``counters.TERMS`` gives each row's contribution);
        nothing else writes them but ``verify --repair``, which stores the recounted sums
        (``counters.recount``) when they disagree. The writer runs with
        ``recursive_triggers`` on, so the rows an ``INSERT OR REPLACE`` replaces are
        subtracted.
    """
    db.execute(f"PRAGMA auto_vacuum = {INCREMENTAL_VACUUM}")        # before the first table
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
    db.executescript(MIGRATION_TABLES)
    db.executescript(MAINTENANCE_TABLES)
    create_search_tables(db)
    counters.create(db)


#: ``PRAGMA auto_vacuum`` of catalogs made by ``create_tables``: INCREMENTAL, so that gc can give
#: the pages deletions and index merges free back to the file system (``release_free_pages``).
INCREMENTAL_VACUUM = 2


#: verify/gc/recompress state (see create_tables); IF NOT EXISTS so older catalogs gain it on demand.
MAINTENANCE_TABLES = """
    CREATE TABLE IF NOT EXISTS lost_found (
        id       INTEGER PRIMARY KEY,
        ino      INTEGER NOT NULL,
        path     TEXT,
        reason   TEXT NOT NULL,
        ranges   TEXT NOT NULL,
        found_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS lost_found_by_ino ON lost_found(ino);
    CREATE TABLE IF NOT EXISTS dictionaries (
        id           INTEGER PRIMARY KEY,
        created      INTEGER NOT NULL,
        data         BLOB NOT NULL,
        samples      INTEGER NOT NULL DEFAULT 0,
        sample_bytes INTEGER NOT NULL DEFAULT 0,
        small_blocks INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS recompressed (
        block_id      INTEGER PRIMARY KEY,
        level         INTEGER NOT NULL,
        length_before INTEGER NOT NULL,
        done_at       INTEGER NOT NULL
    );
"""


def has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
        is not None


def ensure_maintenance_tables(db: sqlite3.Connection) -> None:
    """Create the maintenance tables in a catalog made before they existed (idempotent)."""
    for statement in MAINTENANCE_TABLES.split(";"):
        if statement.strip():
            db.execute(statement)


#: The migration record (see create_tables); IF NOT EXISTS so older catalogs gain it on demand.
MIGRATION_TABLES = """
    CREATE TABLE IF NOT EXISTS migrations (
        id           INTEGER PRIMARY KEY,
        source       TEXT NOT NULL UNIQUE,
        session_id   TEXT,
        sha256       TEXT,
        size         INTEGER,
        mtime_ns     INTEGER,
        digest       TEXT,
        status       TEXT NOT NULL CHECK (status IN ('imported', 'verified', 'failed', 'finalized')),
        stage        TEXT,
        reason       TEXT,
        imported_at  INTEGER,
        verified_at  INTEGER,
        finalized_at INTEGER,
        updated_at   INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS migrations_one_per_session ON migrations(session_id)
        WHERE status IN ('imported', 'verified', 'finalized');
    CREATE TABLE IF NOT EXISTS migration_attachments (
        migration_id INTEGER NOT NULL,
        name         TEXT NOT NULL,
        source       TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        PRIMARY KEY (migration_id, name)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS migration_attachments_by_source ON migration_attachments(source);
"""


def has_migration_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'").fetchone() \
        is not None


def ensure_migration_tables(db: sqlite3.Connection) -> None:
    """Create the migration tables in a catalog made before they existed (idempotent).

    Runs each statement on its own (``executescript`` would commit an open transaction)."""
    for statement in MIGRATION_TABLES.split(";"):
        if statement.strip():
            db.execute(statement)


#: Bumped whenever the search tables, the tokenizer or ``text_index.extract`` change: the index is rebuilt.
SEARCH_INDEX_VERSION = 1
#: ``search_docs.id`` = ``dir_ino << SEARCH_SESSION_SHIFT | seq``.
SEARCH_SESSION_SHIFT = 32
#: The ``seq`` bits of a ``search_docs.id``.
SEARCH_SEQ_MASK = (1 << SEARCH_SESSION_SHIFT) - 1
#: The FTS5 tokenizer: ``_`` is part of words, as for ``grep -w`` (``add_argument`` is one word).
SEARCH_TOKENIZE = "unicode61 remove_diacritics 2 tokenchars '_'"

#: The full-text index (see create_tables); ``SqliteSearch.reset`` drops and recreates it on rebuild.
SEARCH_TABLES = f"""
    CREATE TABLE search_docs (
        id      INTEGER PRIMARY KEY,
        ino     INTEGER NOT NULL,
        parent  INTEGER NOT NULL,
        name    BLOB NOT NULL,
        dir_ino INTEGER NOT NULL,
        path    TEXT NOT NULL,
        size    INTEGER NOT NULL,
        extents BLOB NOT NULL,
        digest  BLOB NOT NULL
    );
    CREATE INDEX search_docs_by_ino ON search_docs(ino);
    CREATE INDEX search_docs_by_entry ON search_docs(parent, name);
    CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='', tokenize="{SEARCH_TOKENIZE}");
    INSERT INTO search_fts(search_fts, rank) VALUES ('rank', 'bm25(4.0, 1.0)')
"""


def create_search_tables(db: sqlite3.Connection) -> None:
    """Create the (empty) search tables and stamp them current. Statement by statement, so it
    can run inside an open transaction."""
    for statement in SEARCH_TABLES.split(";\n"):
        if statement.strip():
            db.execute(statement)
    db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                   [("search_version", SEARCH_INDEX_VERSION), ("search_state", "ok"), ("search_seq", 0),
                    ("search_tidied", 0)])


def read_format_version(db: sqlite3.Connection) -> int | None:
    """The stored format version, or None when the database has no catalog."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None
