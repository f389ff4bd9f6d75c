"""The PostgreSQL search index finds what the SQLite one finds: the same documents indexed in a
SqliteCatalog (through the engine, as a store indexes its files) and in a PostgresSearch, and
a few hundred generated queries (words, phrases, prefixes, OR, exclusions, filters, unicode,
case, phrases across the edges of a large document's parts) give equal sets: per clause the
same documents (counted) and sessions, per query the same sessions through the search plan."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from contrib.corpus import generate_session
from pg_server import pg_url, postgres  # noqa: F401  (fixtures)
from store.backends.catalog.postgres import search_vectors
from store.backends.catalog.search import Filters
from store.backends.catalog.sqlite.view import sql
from store.core.errors import BadInputError
from store.core.query import parse_query
from store.core.text_index import columns
from store.core.unicode61 import tokens
from store.engine.store import Store
from store.services.search import MAX_LIMIT, _Plan
from store.services.sessions import SessionStore
from test_pg_search import StandInView, connect_index

N_QUERIES = 400
WIDE = 10 ** 9

UNICODE_TEXT = ("Café CAFÉ cafe naïve Ünïcödé straße STRASSE İstanbul ıi ΣΊΣΥΦΟΣ σίσυφος ς "
                "日本語のテキスト 한국어 텍스트 🙂emoji e-mail auth.py add_argument x_y __init__ "
                "ﬁle ① ²³ ½ Å Å a\u0301b \u0301lead Ωmega")


def special_sessions(rng: random.Random) -> list[tuple[dict, str, dict]]:
    """(metadata, transcription, summary) of sessions with unicode, case and punctuation, and one
    with a transcription long enough to be cut into many parts in PostgreSQL."""
    vocabulary = [f"tok{i}" for i in range(40)] + ["the", "The", "THE", "ŁÓDŹ", "łódź"]
    long_text = " ".join(rng.choice(vocabulary) for _ in range(50_000))
    out = []
    for i, (name, text) in enumerate([("Unicode Ünïcödé", UNICODE_TEXT), ("Long one", long_text),
                                      ("Mixed CASE", UNICODE_TEXT.upper() + " " + UNICODE_TEXT.lower())]):
        meta = {"id": f"special-{i}", "name": name, "description": text[:300], "status": ["done", "draft"][i % 2],
                "startTime": f"2024-0{i + 1}-1{i}T10:00:00.000Z", "tags": [f"tag{i}", "special", "Größe"],
                "topicIds": [f"topic-{i}"], "category": "Unicode"}
        out.append((meta, text, {"narrative": text[:2000], "keyPoints": [text[-500:]]}))
    return out


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    rng = random.Random(1515)
    root = tmp_path_factory.mktemp("differential") / "s"
    with Store.open(root, create=True) as store:
        api = SessionStore(store)
        for i in range(10):
            api.save_full_session(generate_session(15, i, profile="small", attachments=False)[0])
        for meta, text, summary in special_sessions(rng):
            api.save_metadata(meta)
            api.save_transcription(meta["id"], text)
            api.save_summary(meta["id"], summary)
        store.settle()
    store = Store.open(root, readonly=True)
    yield store
    store.close()


def copy_into_postgres(store: Store, conn) -> tuple[dict[int, int], dict[int, tuple[str, str]]]:
    """Index every document of ``store`` in PostgreSQL with the same session directories and copy
    the sessions' fields; ({sqlite doc id: postgres doc id}, {sqlite doc id: (title, body)})."""
    view = store.catalog.reader()
    db = sql(view)
    index = StandInView(conn).search
    ids, texts = {}, {}
    with conn.transaction():
        cur = conn.cursor()
        cur.executemany("INSERT INTO sessions (id, dir_ino, name, status, start_time) VALUES (%s, %s, %s, %s, %s)",
                        db.execute("SELECT id, dir_ino, name, status, start_time FROM sessions").fetchall())
        cur.executemany("INSERT INTO session_tags VALUES (%s, %s)",
                        db.execute("SELECT session_id, tag FROM session_tags").fetchall())
        cur.executemany("INSERT INTO session_topics VALUES (%s, %s)",
                        db.execute("SELECT session_id, topic_id FROM session_topics").fetchall())
        cur.executemany("INSERT INTO dentries VALUES (%s, %s, %s)", db.execute(
            "SELECT parent, name, ino FROM dentries WHERE parent = ?", (store.sessions_ino,)).fetchall())
        for (doc_id,) in db.execute("SELECT id FROM search_docs ORDER BY id").fetchall():
            doc = view.search.document(doc_id)
            texts[doc_id] = columns(list(store.text_index.rows_of(view, doc_id)[1]))
            ids[doc_id] = index.add(doc.ino, doc.parent, doc.name, doc.session_dir, doc.path, doc.size,
                                    list(doc.extents), doc.digest, *texts[doc_id])
        index.optimize()
    return ids, texts


def generated_queries(texts: list[tuple[str, str]], sessions: list[tuple], rng: random.Random) -> list[str]:
    """Queries whose terms come from the documents (so most find something), in other cases and
    accents, with phrases, prefixes, OR, exclusions and words found nowhere."""
    streams = [tokens(t) for pair in texts for t in pair if t]
    words = sorted({w for s in streams for w in s})
    big = max(streams, key=len)
    edges, at = [], 0
    for piece in search_vectors._cut([search_vectors.lexeme(w) for w in big])[:-1]:
        at += len(piece)
        edges.append(at)
        at -= search_vectors.OVERLAP

    def variant(word: str) -> str:
        return rng.choice([word, word.upper(), word.title(), word.replace("e", "é").replace("a", "Å")])

    def phrase() -> str:
        if rng.random() < 0.3:          # across an edge of the large document's parts
            stream, n = big, rng.randrange(4, 10)
            start = rng.choice(edges) - rng.randrange(1, n)
        else:
            stream, n = rng.choice(streams), rng.randrange(2, 6)
            start = rng.randrange(max(1, len(stream) - n))
        return '"' + " ".join(variant(w) for w in stream[start:start + n]) + '"' + ("*" if rng.random() < 0.2 else "")

    def term() -> str:
        kind = rng.random()
        if kind < 0.4:
            return variant(rng.choice(words))
        if kind < 0.6:
            w = rng.choice(words)
            return w[:rng.randrange(1, max(2, len(w)))] + "*"
        if kind < 0.8:
            return phrase()
        if kind < 0.9:
            return rng.choice(["e-mail", "auth.py", "x_y", "CAFE", "strasse", "ΣΊΣΥΦΟΣ*", "日本語", "🙂emoji",
                               "ﬁle", "Ωmega", '"naïve ünïcödé"', "a\u0301b", "lodz", "ŁÓDŹ"])
        return rng.choice(["zzzqqq", "nowhere*", '"tok1 nowhere"'])

    out = []
    for _ in range(N_QUERIES):
        clauses = []
        for _ in range(rng.randrange(1, 4)):
            clause = term()
            while rng.random() < 0.25:
                clause += " OR " + term()
            clauses.append(clause)
        if rng.random() < 0.3:
            clauses.append("-" + term())
        out.append(" ".join(clauses))
    return out


def random_filters(sessions: list[tuple], rng: random.Random) -> Filters:
    if rng.random() < 0.6:
        return Filters()
    _, status, start, tags, topics = rng.choice(sessions)
    pick = rng.random()
    return Filters.make(tags=rng.sample(tags, min(len(tags), rng.randrange(1, 3))) if pick < 0.3 and tags else None,
                        status=status if 0.3 <= pick < 0.5 else None,
                        after=start[:10] if 0.5 <= pick < 0.75 and start else None,
                        before=start if pick >= 0.75 and start else None,
                        topic=topics[:1] if pick < 0.15 and topics else None)


def test_postgres_finds_what_sqlite_finds(sqlite_store, pg_url):  # noqa: F811
    conn = connect_index(pg_url)
    try:
        ids, texts = copy_into_postgres(sqlite_store, conn)
        assert len(ids) > 60
        pg_view, lite_view = StandInView(conn), sqlite_store.catalog.reader()
        pg, lite = pg_view.search, lite_view.search
        db = sql(lite_view)
        sessions = [(r[0], r[1], r[2], [t for (t,) in db.execute("SELECT tag FROM session_tags WHERE session_id = ?",
                                                                 (r[0],))],
                     [t for (t,) in db.execute("SELECT topic_id FROM session_topics WHERE session_id = ?", (r[0],))])
                    for r in db.execute("SELECT id, status, start_time FROM sessions").fetchall()]
        rng = random.Random(15)
        stand_in_store = SimpleNamespace(sessions_ino=sqlite_store.sessions_ino, text_index=SimpleNamespace(garbage=False))
        checked, found, differences = 0, 0, []
        clause_results: dict = {}
        for text in generated_queries(list(texts.values()), sessions, rng):
            try:
                query = parse_query(text)
            except BadInputError:
                continue
            checked += 1
            for clause in query.clauses:
                if clause in clause_results:
                    continue
                mine = (pg.count_upto(clause, WIDE, skip_orphans=False)[0],
                        set(pg.first_per_session(clause, skip_orphans=False)))
                theirs = (lite.count_upto(clause, WIDE, skip_orphans=False)[0],
                          set(lite.first_per_session(clause, skip_orphans=False)))
                clause_results[clause] = theirs
                if mine != theirs:
                    differences.append(f"clause {clause}: postgres {mine[0]} documents, sqlite {theirs[0]}")
            filters = random_filters(sessions, rng)
            got = {d for d, _, _ in _Plan(stand_in_store, pg_view, query, filters, MAX_LIMIT).run()}
            want = {d for d, _, _ in _Plan(sqlite_store, lite_view, query, filters, MAX_LIMIT).run()}
            found += bool(want)
            if got != want:
                differences.append(f"query {text!r} {filters}: postgres {sorted(got)}, sqlite {sorted(want)}")
        assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences[:20])
        assert checked > 300 and found > checked // 3, (checked, found)
        every = Filters()
        assert list(pg.newest_first(Filters.make(status="done"), sqlite_store.sessions_ino)) == \
            list(lite.newest_first(Filters.make(status="done"), sqlite_store.sessions_ino))
        assert set(pg.newest_first(every, sqlite_store.sessions_ino)) == set(lite.newest_first(every, sqlite_store.sessions_ino))
        assert pg.tags() == lite.tags() and pg.start_days() == lite.start_days()
        for tag in pg.tags()[:5]:
            assert pg.tagged(tag) == lite.tagged(tag) and pg.tagged(tag, 1) == lite.tagged(tag, 1)
        for day in pg.start_days()[:5]:
            assert pg.started_on(day) == lite.started_on(day)
        dirs = set(lite.newest_first(every, sqlite_store.sessions_ino))
        assert pg.session_names(dirs, sqlite_store.sessions_ino) == lite.session_names(dirs, sqlite_store.sessions_ino)
    finally:
        conn.close()
