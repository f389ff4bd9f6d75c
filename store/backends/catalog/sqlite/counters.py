"""Store-wide totals kept exact by SQLite triggers, so statistics read a few rows, never a table.

Each counter is a sum over the rows of one or two tables (``TERMS``): a row's
*contribution* is an SQL expression of that row, and a trigger on each table adds
the contribution of an inserted row, subtracts that of a deleted one, and on an
update of a column the contribution reads subtracts the old and adds the new. The
triggers run inside the statement that changes the row, so the ``counters`` table
changes in the same transaction as the rows it sums: a crash or a rollback keeps
both or neither. A sum over a join (bytes of file references, of recompressed
blocks) has a term on each side, each looking its partner up through an index.

The triggers are stored in each catalog: a change to ``TERMS`` needs a format
upgrade step (``upgrade``) that drops and recreates them.

``recount`` computes the same sums with full scans: the format upgrade stores
them once, ``verify`` compares them with the counters (``--repair`` stores them
again), and a read-only open of a catalog made before the counters reads them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

#: The first catalog format holding ``counters``.
COUNTERS_FORMAT = 2


@dataclass(frozen=True)
class Term:
    """Contribution of each row of ``table`` to ``counter`` (at most one term per pair):
    ``added`` (an SQL expression of the row ``{r}``, NEW after it changed) and ``removed``
    (of OLD, after it changed; default ``added``). ``columns``: the columns it reads (an
    update of others changes nothing)."""
    counter: str
    table: str
    added: str
    columns: tuple[str, ...] = ()
    removed: str | None = None


_REG = "({r}.mode & 61440 = 32768)"
_HAS_BLOCK = "EXISTS (SELECT 1 FROM blocks b WHERE b.id = {r}.block_id)"
_WAS_RECOMPRESSED = "EXISTS (SELECT 1 FROM recompressed x WHERE x.block_id = {r}.id)"

TERMS: tuple[Term, ...] = (
    Term("files", "inodes", _REG, ("mode",)),
    Term("logical_bytes", "inodes", f"CASE WHEN {_REG} THEN {{r}}.size ELSE 0 END", ("mode", "size")),
    Term("sessions", "sessions", "1"),
    # file bytes that are not holes: sum of chunks.length over file_chunks JOIN chunks
    Term("referenced_bytes", "file_chunks",
         "coalesce((SELECT c.length FROM chunks c WHERE c.id = {r}.chunk_id), 0)", ("chunk_id",)),
    Term("referenced_bytes", "chunks",
         "{r}.length * (SELECT count(*) FROM file_chunks f WHERE f.chunk_id = {r}.id)", ("id", "length")),
    Term("unique_bytes", "chunks", "CASE WHEN {r}.refcount > 0 THEN {r}.length ELSE 0 END", ("refcount", "length")),
    Term("unreferenced_bytes", "chunks", "CASE WHEN {r}.refcount <= 0 THEN {r}.length ELSE 0 END",
         ("refcount", "length")),
    Term("blocks", "blocks", "1"),
    Term("block_bytes", "blocks", "{r}.length", ("length",)),
    Term("raw_block_bytes", "blocks", "{r}.raw_length", ("raw_length",)),
    Term("packs", "packs", "1"),
    Term("pack_bytes", "packs", "{r}.size", ("size",)),
    # recompressed JOIN blocks: how many, their framed bytes before and now
    Term("recompressed_blocks", "recompressed", _HAS_BLOCK, ("block_id",)),
    Term("recompressed_blocks", "blocks", _WAS_RECOMPRESSED, ("id",)),
    Term("recompress_bytes_before", "recompressed", f"CASE WHEN {_HAS_BLOCK} THEN {{r}}.length_before ELSE 0 END",
         ("block_id", "length_before")),
    Term("recompress_bytes_before", "blocks",
         "coalesce((SELECT x.length_before FROM recompressed x WHERE x.block_id = {r}.id), 0)", ("id",)),
    Term("recompress_bytes_after", "recompressed",
         "coalesce((SELECT b.length FROM blocks b WHERE b.id = {r}.block_id), 0)", ("block_id",)),
    Term("recompress_bytes_after", "blocks", f"CASE WHEN {_WAS_RECOMPRESSED} THEN {{r}}.length ELSE 0 END",
         ("id", "length")),
    Term("dictionaries", "dictionaries", "1"),
    Term("dictionary_bytes", "dictionaries", "length({r}.data)", ("data",)),
    # distinct inodes: a row counts when it is its inode's first (added) or last (removed)
    Term("lost_files", "lost_found", "((SELECT count(*) FROM lost_found l WHERE l.ino = {r}.ino) = 1)", ("ino",),
         removed="(NOT EXISTS (SELECT 1 FROM lost_found l WHERE l.ino = {r}.ino))"),
)

#: Every counter's name, in a stable order.
NAMES: tuple[str, ...] = tuple(dict.fromkeys(t.counter for t in TERMS))

#: The same sums by full scans (``recount``).
_RECOUNT = {
    "files": "SELECT count(*) FROM inodes WHERE mode & 61440 = 32768",
    "logical_bytes": "SELECT coalesce(sum(size), 0) FROM inodes WHERE mode & 61440 = 32768",
    "sessions": "SELECT count(*) FROM sessions",
    "referenced_bytes": "SELECT coalesce(sum(c.length), 0) FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id",
    "unique_bytes": "SELECT coalesce(sum(length), 0) FROM chunks WHERE refcount > 0",
    "unreferenced_bytes": "SELECT coalesce(sum(length), 0) FROM chunks WHERE refcount <= 0",
    "blocks": "SELECT count(*) FROM blocks",
    "block_bytes": "SELECT coalesce(sum(length), 0) FROM blocks",
    "raw_block_bytes": "SELECT coalesce(sum(raw_length), 0) FROM blocks",
    "packs": "SELECT count(*) FROM packs",
    "pack_bytes": "SELECT coalesce(sum(size), 0) FROM packs",
    "recompressed_blocks": "SELECT count(*) FROM recompressed x JOIN blocks b ON b.id = x.block_id",
    "recompress_bytes_before": "SELECT coalesce(sum(x.length_before), 0) FROM recompressed x "
                               "JOIN blocks b ON b.id = x.block_id",
    "recompress_bytes_after": "SELECT coalesce(sum(b.length), 0) FROM recompressed x "
                              "JOIN blocks b ON b.id = x.block_id",
    "dictionaries": "SELECT count(*) FROM dictionaries",
    "dictionary_bytes": "SELECT coalesce(sum(length(data)), 0) FROM dictionaries",
    "lost_files": "SELECT count(DISTINCT ino) FROM lost_found",
}

COUNTERS_TABLE = """
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID
"""


def _delta(terms: list[Term], old: str | None, new: str | None) -> str:
    """One UPDATE adding, to each counter of ``terms``, the contribution of the row ``new``
    minus that of the row ``old`` (either may be None)."""
    cases = []
    for t in terms:
        parts = ([f"({t.added.format(r=new)})"] if new else []) + \
                ([f"({(t.removed or t.added).format(r=old)})"] if old else [])
        cases.append(f"WHEN '{t.counter}' THEN {' - '.join(parts) if new else '-' + parts[0]}")
    names = ", ".join(f"'{n}'" for n in dict.fromkeys(t.counter for t in terms))
    return f"UPDATE counters SET value = value + CASE name {' '.join(cases)} END WHERE name IN ({names});"


def trigger_statements() -> list[str]:
    """CREATE TRIGGER statements keeping ``counters`` in step with the tables (see ``TERMS``)."""
    out = []
    for table in dict.fromkeys(t.table for t in TERMS):
        terms = [t for t in TERMS if t.table == table]
        for event, old, new in (("insert", None, "NEW"), ("delete", "OLD", None)):
            out.append(f"CREATE TRIGGER count_{table}_{event} AFTER {event.upper()} ON {table} "
                       f"BEGIN {_delta(terms, old, new)} END")
        for i, t in enumerate(t for t in terms if t.columns):
            changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in t.columns)
            out.append(f"CREATE TRIGGER count_{table}_update_{i} AFTER UPDATE OF {', '.join(t.columns)} ON {table} "
                       f"WHEN {changed} BEGIN {_delta([t], 'OLD', 'NEW')} END")
    return out


def create(db: sqlite3.Connection) -> None:
    """Create the counters table and its triggers, and store the current sums (in the caller's
    transaction: statement by statement, never ``executescript``)."""
    db.execute(COUNTERS_TABLE)
    for statement in trigger_statements():
        db.execute(statement)
    store_sums(db, recount(db))


def recount(db: sqlite3.Connection) -> dict[str, int]:
    """Every counter computed from the tables (full scans)."""
    return {name: db.execute(_RECOUNT[name]).fetchone()[0] for name in NAMES}


def read(db: sqlite3.Connection) -> dict[str, int]:
    """The stored counters (a few rows)."""
    stored = dict(db.execute("SELECT name, value FROM counters").fetchall())
    return {name: stored.get(name, 0) for name in NAMES}


def store_sums(db: sqlite3.Connection, sums: dict[str, int]) -> None:
    db.executemany("INSERT INTO counters (name, value) VALUES (?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = excluded.value", list(sums.items()))


def disagreements(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """{counter: (stored, recounted)} where they differ, read in one snapshot (the caller's
    read transaction, or one opened here)."""
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")
    try:
        stored, actual = read(db), recount(db)
    finally:
        if own:
            db.execute("COMMIT")
    return {name: (stored[name], actual[name]) for name in NAMES if stored[name] != actual[name]}
