"""The PostgreSQL search index on a real PostgreSQL: its state, documents, parts of large
documents, errors and guarded upkeep. (Equal result sets to SQLite: test_pg_search_differential.)

The catalog view is a stand-in holding what the index needs of pg's view: ``cursor()`` on the
view's connection, inside its transaction, and ``writable``."""

from __future__ import annotations

import errno
import random

import psycopg
import pytest

from pg_server import pg_url, postgres  # noqa: F401  (fixtures)
from store.backends.catalog.postgres import search_vectors
from store.backends.catalog.postgres.search import PostgresSearch
from store.backends.catalog.postgres.search_schema import SEARCH_INDEX_VERSION, create_search_tables
from store.backends.catalog.search import REBUILDING
from store.core.errors import CatalogError, SearchIndexError
from store.core.query import Atom, Clause, parse_query

#: The catalog tables the index's queries read (pg's catalog creates them; here a stand-in).
CATALOG_TABLES = """
    CREATE TABLE sessions (id text PRIMARY KEY, dir_ino bigint NOT NULL UNIQUE, name text, status text,
                           start_time text);
    CREATE TABLE session_tags (session_id text NOT NULL, tag text NOT NULL, PRIMARY KEY (tag, session_id));
    CREATE TABLE session_topics (session_id text NOT NULL, topic_id text NOT NULL,
                                 PRIMARY KEY (topic_id, session_id));
    CREATE TABLE dentries (parent bigint NOT NULL, name bytea NOT NULL, ino bigint NOT NULL,
                           PRIMARY KEY (parent, name))
"""


class StandInView:
    """What the index uses of a catalog view (outside a pinned transaction: nothing is remembered)."""

    in_transaction = False
    epoch = 0

    def __init__(self, conn: psycopg.Connection, *, writable: bool = True):
        self.conn, self.writable = conn, writable
        self.search = PostgresSearch(self)

    def cursor(self) -> psycopg.Cursor:
        return self.conn.cursor()


def connect_index(url: str) -> psycopg.Connection:
    """A connection to a database holding the catalog's stand-in tables and the search tables."""
    conn = psycopg.connect(url)
    with conn.transaction():
        cur = conn.cursor()
        cur.execute(CATALOG_TABLES)
        create_search_tables(cur)
    return conn


@pytest.fixture
def conn(pg_url):  # noqa: F811
    c = connect_index(pg_url)
    yield c
    c.close()


def clause(text: str):
    return parse_query(text).clauses[0]


def add(index, session_dir: int, ino: int, title: str, body: str, name: bytes = b"summary.json") -> int:
    return index.add(ino, session_dir, name, session_dir, name.decode(), 10, [(0, 7), (5, 9)], b"d" * 16, title, body)


def test_documents_are_stored_found_and_removed(conn):
    index = StandInView(conn).search
    with conn.transaction():
        a = add(index, 5, 50, "Café", "the auth bug")
        b = add(index, 5, 51, "", "login", name=b"metadata.json")
        c = add(index, 6, 60, "", "auth flow")
    assert a >> 32 == b >> 32 == 5 and c >> 32 == 6 and len({a, b, c}) == 3
    doc = index.document(a)
    assert (doc.ino, doc.parent, doc.name, doc.session_dir, doc.extents) == (50, 5, b"summary.json", 5, ((0, 7), (5, 9)))
    assert index.documents_of(50) == [doc] and index.indexed_at(5, b"summary.json") == [50]
    assert index.is_indexed(51) and not index.is_indexed(52) and index.holds_indexed(5)
    assert index.paths([a, c, 999]) == {a: "summary.json", c: "summary.json"}
    assert index.first_per_session(clause("auth"), skip_orphans=False) == {5: a, 6: c}
    assert index.first_per_session(clause("CAFE"), skip_orphans=False) == {5: a}
    assert index.first_in_session(clause("auth"), 6, skip_orphans=False) == c
    assert index.count_upto(clause('"auth bug"'), 10, skip_orphans=False) == (1, 1.0)
    ranked = index.best_per_session(clause("auth OR café"), skip_orphans=False)
    assert ranked[5][1] == a and ranked[5][0] < ranked[6][0] < 0       # the title ranks above the body
    with conn.transaction():
        index.remove(doc, None)
    assert index.document(a) is None and index.first_per_session(clause("auth"), skip_orphans=False) == {6: c}
    assert conn.execute("SELECT count(*) FROM search_parts WHERE doc = %s", (a,)).fetchone()[0] == 0
    assert index.orphans() == 0 and index.integrity(full=True) is None


def test_state_follows_marks_resets_and_rebuilds(conn):
    index = StandInView(conn).search
    assert index.problem() is None and index.maintained() and index.statistics().state == "ok"
    with conn.transaction():
        add(index, 5, 50, "", "old words")
        index.mark_unusable("damaged: a test")
    assert index.problem() == "damaged: a test" and not index.maintained()
    with conn.transaction():
        index.reset()
        index.rebuild_progress(2, 7)
    stats = index.statistics()
    assert (stats.state, stats.sessions_done, stats.sessions_total) == (REBUILDING, 2, 7)
    assert index.problem() is None and index.maintained()
    assert index.first_per_session(clause("old"), skip_orphans=False) == {}
    with conn.transaction():
        first = add(index, 5, 50, "", "new words")
        index.rebuild_finished()
        index.optimize()
    assert first & 0xFFFFFFFF == 1                 # ids start afresh
    assert index.statistics().state == "ok" and index.problem() is None
    with conn.transaction():
        conn.execute("UPDATE search_state SET version = version + 1")
    assert index.problem() == (f"built by another version of sessionfs (index version {SEARCH_INDEX_VERSION + 1}, "
                               f"expected {SEARCH_INDEX_VERSION})")
    with conn.transaction():
        conn.execute("ALTER TABLE search_state DROP COLUMN version")
        assert index.problem() == 'damaged: column "version" does not exist'       # the transaction goes on
        conn.execute("DROP TABLE search_parts")
    assert index.problem() == "missing"


def test_an_index_fault_in_upkeep_is_undone_and_marks_the_index(conn):
    index = StandInView(conn).search
    with conn.transaction():
        kept = add(index, 5, 50, "", "kept")

        def broken():
            add(index, 5, 51, "", "lost")
            conn.execute("SELECT 'a b'::tsvector @@ 'a &'::tsquery")      # PostgreSQL refuses the query

        reason = index.guarded(broken)
        assert reason is not None and reason.endswith("no operand in tsquery: \"a &\"")
        conn.execute("UPDATE dentries SET ino = 1")          # the transaction goes on
    assert index.problem().startswith("damaged: an update failed:") and index.is_indexed(50)
    assert not index.is_indexed(51) and index.document(kept) is not None
    with conn.transaction():
        index.rebuild_finished()
    with pytest.raises(CatalogError) as e, conn.transaction():
        index.guarded(lambda: conn.execute("SELECT 1 / 0"))     # not the index's fault: the transaction fails
    assert not isinstance(e.value, SearchIndexError) and isinstance(e.value.__cause__, psycopg.errors.DivisionByZero)
    assert index.problem() is None


def test_errors_leave_as_store_errors(conn):
    index = StandInView(conn).search
    conn.execute("DROP TABLE search_parts")
    with pytest.raises(SearchIndexError, match="search_parts") as e:
        index.count_upto(clause("x"), 10, skip_orphans=False)
    assert isinstance(e.value.__cause__, psycopg.Error)
    conn.rollback()
    conn.execute("DROP TABLE sessions")
    with pytest.raises(CatalogError) as e:
        list(index.newest_first(parse_filters(), 1))
    assert e.value.errno == errno.EIO
    conn.rollback()


def parse_filters():
    from store.backends.catalog.search import Filters
    return Filters.make(tags="x")


def test_large_columns_are_cut_into_parts_within_the_limits_and_phrases_survive_the_edges(conn):
    """A body of 60,000 words from a small vocabulary (each word far more often than 256 times):
    several parts; every phrase of 2..OVERLAP+1 words ending at a part edge is found, and so
    are phrases anywhere; a column of a million bytes of distinct words fits too."""
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(60)]
    words = [rng.choice(vocabulary) for _ in range(60_000)]
    pieces = search_vectors._cut(words)
    assert len(pieces) > 4 and all(len(p) <= search_vectors.MAX_POSITION for p in pieces)
    index = StandInView(conn).search
    long_words = " ".join(f"{rng.getrandbits(64):016x}{i}" for i in range(60_000))      # ~1.2 MB
    huge = "x" * 5000
    with conn.transaction():
        doc = add(index, 5, 50, "", " ".join(words))
        other = add(index, 5, 51, "", long_words + " " + huge)
    assert conn.execute("SELECT count(*) FROM search_parts WHERE doc = %s", (doc,)).fetchone()[0] == len(pieces)
    assert conn.execute("SELECT count(*) FROM search_parts WHERE doc = %s", (other,)).fetchone()[0] > 1
    edges, at = [], 0
    for piece in pieces[:-1]:
        at += len(piece)
        edges.append(at)
        at -= search_vectors.OVERLAP
    checks = [(e - n, e) for e in edges for n in (2, 3, search_vectors.OVERLAP + 1)]
    checks += [(s, s + rng.randrange(2, 8)) for s in (rng.randrange(len(words) - 8) for _ in range(40))]
    missing = [(s, e) for s, e in checks
               if index.first_in_session(clause('"' + " ".join(words[s + 1:e + 1]) + '"'), 5, skip_orphans=False) != doc]
    assert not missing
    assert index.first_in_session(Clause((Atom(huge),)), 5, skip_orphans=False) == other     # stored hashed
    assert index.first_in_session(Clause((Atom("x" * 4999),)), 5, skip_orphans=False) is None
    assert index.first_in_session(clause("x" * 999 + "*"), 5, skip_orphans=False) == other
    assert index.first_in_session(clause(long_words.split()[-1]), 5, skip_orphans=False) == other
