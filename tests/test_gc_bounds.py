"""gc leaves no dead byte indefinitely: a pack older than ``max_dead_age`` holding any dead
byte is compacted (below the 5% store-wide bound too), and the catalog's free pages and the
search index's merged-away segments are given back, with every search answering the same."""

from __future__ import annotations

import random

from contrib.corpus import generate_session
from store import Store
from store.services.gc import GcOptions, collect
from store.services.search import search
from store.services.sessions import SessionStore
from store.services.verify import verify
from store.backends.catalog.sqlite.view import sql

FILES = 40


def dead_bytes(store) -> float:
    return sum(p.size - p.exact for p in store.catalog.reader().maintenance.pack_liveness(0.5))


def test_an_aged_pack_with_a_little_dead_data_is_compacted(tmp_path):
    rnd = random.Random(3)
    files = {f"sessions/s1/attachments/{i:02d}.bin": rnd.randbytes(50_000) for i in range(FILES)}
    Store.init(tmp_path / "store")
    with Store.open(tmp_path / "store") as store:
        store.write_files(files)
        store.flush()
        gone = next(iter(files))
        store.write_files({gone: None})              # 1 of 40 files: 2.5%, below every share bound
        store.flush()
        fresh = collect(store, GcOptions(grace=0))
        assert fresh.chunks_reclaimed > 0 and fresh.packs_compacted == 0
        assert dead_bytes(store) >= 50_000
        aged = collect(store, GcOptions(grace=0, max_dead_age=0))
        assert aged.packs_compacted == 1
        assert dead_bytes(store) == 0
        again = collect(store, GcOptions(grace=0, max_dead_age=0))
        assert again.bytes_copied == 0               # nothing dead: no churn
        for path, data in files.items():
            if path != gone:
                assert store.read_path(path) == data, path
        report = verify(store, data=True)
        assert not report.problems, [p.line() for p in report.problems]


QUERIES = ("auth", "meeting OR review", '"the user"', "bug -flaky", "dashboard*")


def answers(store) -> dict[str, list]:
    return {q: [(r.session_id, r.score, r.file) for r in search(store, q, limit=50)] for q in QUERIES}


def test_gc_tidies_the_index_and_frees_catalog_pages(tmp_path):
    Store.init(tmp_path / "store")
    with Store.open(tmp_path / "store") as store:
        db = sql(store.catalog.reader())
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        api = SessionStore(store)
        ids = []
        for i in range(60):
            session = generate_session(11, i, profile="small", attachments=False)[0]
            api.save_full_session(session)
            ids.append(session["id"])
        store.flush()
        for sid in ids[::2]:
            api.delete_session(sid)
        store.flush()
        before = answers(store)
        assert any(before.values())
        result = collect(store, GcOptions(grace=0))
        assert result.catalog_pages_released > 0
        db = sql(store.catalog.reader())
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('search_seq', 'search_tidied')"))
        assert int(meta["search_tidied"]) == int(meta["search_seq"]) > 0
        assert answers(store) == before
