"""The tables of the PostgreSQL search index (``search.PostgresSearch``), documented here as
the SQLite catalog documents its own in ``schema.create_tables``.

``search_docs``
    One row per directory entry of an indexed file, as in SQLite: ``id`` is
    ``dir_ino << SEARCH_SESSION_SHIFT | seq`` (one session is one id range), ``seq`` from the
    sequence ``search_seq`` (never reused until a rebuild; safe with many writers);
    ``ino``, ``parent``, ``name`` (bytea), ``dir_ino``, ``path``, ``size``, ``digest``: the
    file and the content the text was extracted from; ``extents``: (offset, chunk id) pairs
    flattened into one bigint array.

``search_parts``
    The document's words: ``tsv`` is a tsvector of the tokens FTS5's unicode61 makes
    (``store.core.unicode61``, no stemming, no stop words), with their positions, weight A
    for the title column and D for the body. A column longer than one tsvector can hold
    (16,383 positions, 256 per word, 1 MiB) is cut into several parts that overlap by
    ``search_vectors.OVERLAP`` tokens; ``part`` numbers them, the title's first. A document
    matches a query term when one of its parts does. Rows go with their document
    (``ON DELETE CASCADE``): there are never orphans. GIN index on ``tsv``.

``search_state``
    One row: ``version`` (must equal SEARCH_INDEX_VERSION), ``state`` (``ok``;
    ``rebuilding`` with progress ``done`` of ``total`` sessions; anything else says why the
    index needs a rebuild), as meta ``search_version``/``search_state``/``search_rebuild``
    in SQLite.

The sessions' fields the filters read (``sessions``, ``session_tags``, ``session_topics``)
and the entries of ``dentries`` are the catalog's tables.
"""

from __future__ import annotations

#: Bumped whenever these tables, the tokenizer or ``text_index.extract`` change: the index is rebuilt.
SEARCH_INDEX_VERSION = 1
#: ``search_docs.id`` = ``dir_ino << SEARCH_SESSION_SHIFT | seq``.
SEARCH_SESSION_SHIFT = 32
#: The ``seq`` bits of a ``search_docs.id``.
SEARCH_SEQ_MASK = (1 << SEARCH_SESSION_SHIFT) - 1
#: The search tables, in the order ``drop_search_tables`` drops them.
SEARCH_TABLE_NAMES = ("search_parts", "search_docs", "search_state")

SEARCH_TABLES = """
    CREATE TABLE search_state (
        one     boolean PRIMARY KEY DEFAULT true CHECK (one),
        version integer NOT NULL,
        state   text NOT NULL,
        done    bigint NOT NULL DEFAULT 0,
        total   bigint NOT NULL DEFAULT 0
    );
    CREATE SEQUENCE search_seq MINVALUE 0 START 1;
    CREATE TABLE search_docs (
        id      bigint PRIMARY KEY,
        ino     bigint NOT NULL,
        parent  bigint NOT NULL,
        name    bytea NOT NULL,
        dir_ino bigint NOT NULL,
        path    text NOT NULL,
        size    bigint NOT NULL,
        extents bigint[] NOT NULL,
        digest  bytea NOT NULL
    );
    CREATE INDEX search_docs_by_ino ON search_docs (ino);
    CREATE INDEX search_docs_by_entry ON search_docs (parent, name);
    CREATE TABLE search_parts (
        doc  bigint NOT NULL REFERENCES search_docs (id) ON DELETE CASCADE,
        part integer NOT NULL,
        tsv  tsvector NOT NULL,
        PRIMARY KEY (doc, part)
    );
    CREATE INDEX search_parts_words ON search_parts USING gin (tsv)
"""


def create_search_tables(cur, state: str = "ok") -> None:
    """Create the (empty) search tables, stamped current, in ``state``; ``cur`` is a psycopg
    cursor inside the caller's transaction."""
    for statement in SEARCH_TABLES.split(";\n"):
        cur.execute(statement)
    cur.execute("INSERT INTO search_state (version, state) VALUES (%s, %s)", (SEARCH_INDEX_VERSION, state))


def drop_search_tables(cur) -> None:
    """Drop the search tables, whatever version made them."""
    for name in SEARCH_TABLE_NAMES:
        cur.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
    cur.execute("DROP SEQUENCE IF EXISTS search_seq")
