"""Store-wide totals that never serialize commits: delta rows written by triggers, summed on read.

Each counter is a sum over the rows of one or two tables (``TERMS``). A statement-level
trigger on each table computes, from the statement's transition tables, how much the
statement changed each counter and *appends* one row per changed counter to
``counter_deltas``: an insert into a table without an index, which no writer reads, so
concurrent commits of many mounts never wait for each other nor conflict over a total
(one hot row would serialize every commit). A read sums the rows
(``SELECT name, sum(value) ... GROUP BY name``); ``fold`` replaces the rows it sees by
their sums (a checkpoint runs it when they pile up). The deltas commit or roll back with
the rows they sum.

``recount`` computes the same sums with full scans (``verify`` compares, ``--repair``
stores the difference as one more delta).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Term:
    """Contribution of a set of rows ``r`` of ``table`` to ``counter``: ``added`` an aggregate
    over the rows a statement inserted (or the new versions of updated ones), ``removed``
    over those it deleted (or the old versions), evaluated after the statement (default
    ``added``)."""
    counter: str
    table: str
    added: str
    removed: str | None = None


_REG = "r.mode & 61440 = 32768"
_HAS_BLOCK = "EXISTS (SELECT 1 FROM blocks b WHERE b.id = r.block_id)"
_WAS_RECOMPRESSED = "EXISTS (SELECT 1 FROM recompressed x WHERE x.block_id = r.id)"

TERMS: tuple[Term, ...] = (
    Term("files", "inodes", f"count(*) FILTER (WHERE {_REG})"),
    Term("logical_bytes", "inodes", f"sum(r.size) FILTER (WHERE {_REG})"),
    Term("sessions", "sessions", "count(*)"),
    Term("referenced_bytes", "file_chunks", "sum((SELECT c.length FROM chunks c WHERE c.id = r.chunk_id))"),
    Term("referenced_bytes", "chunks", "sum(r.length * (SELECT count(*) FROM file_chunks f WHERE f.chunk_id = r.id))"),
    Term("unique_bytes", "chunks", "sum(r.length) FILTER (WHERE r.refcount > 0)"),
    Term("unreferenced_bytes", "chunks", "sum(r.length) FILTER (WHERE r.refcount <= 0)"),
    Term("blocks", "blocks", "count(*)"),
    Term("block_bytes", "blocks", "sum(r.length)"),
    Term("raw_block_bytes", "blocks", "sum(r.raw_length)"),
    Term("packs", "packs", "count(*)"),
    Term("pack_bytes", "packs", "sum(r.size)"),
    Term("recompressed_blocks", "recompressed", f"count(*) FILTER (WHERE {_HAS_BLOCK})"),
    Term("recompressed_blocks", "blocks", f"count(*) FILTER (WHERE {_WAS_RECOMPRESSED})"),
    Term("recompress_bytes_before", "recompressed", f"sum(r.length_before) FILTER (WHERE {_HAS_BLOCK})"),
    Term("recompress_bytes_before", "blocks",
         "sum((SELECT x.length_before FROM recompressed x WHERE x.block_id = r.id))"),
    Term("recompress_bytes_after", "recompressed", "sum((SELECT b.length FROM blocks b WHERE b.id = r.block_id))"),
    Term("recompress_bytes_after", "blocks", f"sum(r.length) FILTER (WHERE {_WAS_RECOMPRESSED})"),
    Term("dictionaries", "dictionaries", "count(*)"),
    Term("dictionary_bytes", "dictionaries", "sum(length(r.data))"),
    # distinct inodes: counted when the statement added an inode's first rows / removed its last
    Term("lost_files", "lost_found",
         "count(DISTINCT r.ino) FILTER (WHERE (SELECT count(*) FROM lost_found l WHERE l.ino = r.ino) = "
         "(SELECT count(*) FROM {rows} n WHERE n.ino = r.ino))",
         removed="count(DISTINCT r.ino) FILTER (WHERE NOT EXISTS (SELECT 1 FROM lost_found l WHERE l.ino = r.ino))"),
)

#: Every counter's name, in a stable order.
NAMES: tuple[str, ...] = tuple(dict.fromkeys(t.counter for t in TERMS))

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

#: How many delta rows a checkpoint lets pile up before it folds them (a commit of a few files
#: adds tens; at this bound the table stays a few pages, read whole by every ``stats``).
FOLD_AFTER = 1_000


def _sum(aggregate: str, rows: str) -> str:
    return f"coalesce((SELECT {aggregate.format(rows=rows)} FROM {rows} r), 0)"


def _delta(term: Term, event: str) -> str:
    added = _sum(term.added, "new_rows")
    removed = _sum(term.removed or term.added, "old_rows")
    return {"insert": added, "delete": f"-{removed}", "update": f"{added} - {removed}"}[event]


def trigger_statements() -> list[str]:
    """The trigger functions and triggers appending to ``counter_deltas`` (see ``TERMS``)."""
    out = []
    for table in dict.fromkeys(t.table for t in TERMS):
        terms = [t for t in TERMS if t.table == table]
        for event in ("insert", "delete", "update"):
            values = ", ".join(f"('{t.counter}', {_delta(t, event)})" for t in terms)
            name = f"count_{table}_{event}"
            out.append(f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO counter_deltas (name, value)
                    SELECT name, sum(d) FROM (VALUES {values}) AS v(name, d) GROUP BY name HAVING sum(d) <> 0;
                    RETURN NULL;
                END $$""")
            tables = {"insert": "NEW TABLE AS new_rows", "delete": "OLD TABLE AS old_rows",
                      "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}[event]
            out.append(f"CREATE TRIGGER {name} AFTER {event.upper()} ON {table} REFERENCING {tables} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()")
    return out


def create(cur: psycopg.Cursor) -> None:
    """The deltas table and the triggers (in the caller's transaction, on empty tables)."""
    cur.execute("CREATE TABLE counter_deltas (name text NOT NULL, value bigint NOT NULL)")
    for statement in trigger_statements():
        cur.execute(statement)


def recount(cur) -> dict[str, int]:
    """Every counter computed from the tables (full scans)."""
    return {name: int(cur.execute(_RECOUNT[name]).fetchone()[0]) for name in NAMES}


def read(cur) -> dict[str, int]:
    """The counters: the sums of their delta rows."""
    stored = dict(cur.execute("SELECT name, sum(value) FROM counter_deltas GROUP BY name").fetchall())
    return {name: int(stored.get(name, 0)) for name in NAMES}


def store_sums(cur, sums: dict[str, int]) -> None:
    """Make the counters equal ``sums`` (one more delta row for each that differs)."""
    now = read(cur)
    cur.executemany("INSERT INTO counter_deltas (name, value) VALUES (%s, %s)",
                    [(n, sums[n] - now[n]) for n in NAMES if sums[n] != now[n]])


def disagreements(cur) -> dict[str, tuple[int, int]]:
    """{counter: (stored, recounted)} where they differ (the caller gives one snapshot)."""
    stored, actual = read(cur), recount(cur)
    return {name: (stored[name], actual[name]) for name in NAMES if stored[name] != actual[name]}


def fold(cur) -> bool:
    """Replace the delta rows this transaction sees by one row per counter (inside a
    REPEATABLE READ transaction: rows committed meanwhile stay as they are). False when
    there were too few to bother."""
    if cur.execute("SELECT count(*) FROM counter_deltas").fetchone()[0] < FOLD_AFTER:
        return False
    cur.execute("WITH gone AS (DELETE FROM counter_deltas RETURNING name, value) "
                "INSERT INTO counter_deltas (name, value) SELECT name, sum(value) FROM gone GROUP BY name")
    return True
