"""Errors of the catalog's search operations leave it as store errors, and only the index's
own failures mark the index for rebuild: a damaged catalog elsewhere is reported as it is."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from store.backends.catalog.search import IndexUnavailableError
from store.backends.catalog.sqlite.view import sql
from store.core.errors import CatalogError, SearchIndexError
from store.core.query import parse_query
from store.engine.store import Store
from store.services.search import search
from store.services.sessions import SessionStore


def make_store(root) -> None:
    with Store.open(root, create=True) as store:
        api = SessionStore(store)
        for i in range(3):
            api.save_metadata({"id": f"s{i}", "name": f"session {i}", "status": "done", "tags": ["t"],
                               "startTime": f"2024-02-0{i + 1}T08:00:00Z"})
            api.save_summary(f"s{i}", {"narrative": f"the wombat marker{i}"})


def damage(root, sql: str) -> None:
    db = sqlite3.connect(root / "catalog.db", isolation_level=None)
    db.executescript(sql)
    db.close()


def test_a_damaged_index_raises_search_index_error_from_its_operations(tmp_path):
    root = tmp_path / "s"
    make_store(root)
    damage(root, "DELETE FROM search_fts_config;")
    with Store.open(root, readonly=True) as ro:
        index = ro.catalog.reader().search
        with pytest.raises(SearchIndexError, match="fts5") as e:
            index.count_upto(parse_query("wombat").clauses[0], 10, skip_orphans=False)
        assert not isinstance(e.value, sqlite3.Error)
        assert index.problem() is None         # the stored state still says ok: only reading fails
        assert ro.text_index.problem.startswith("damaged: invalid fts5 file format")
        with pytest.raises(IndexUnavailableError, match="sessionfs reindex"):
            search(ro, "wombat")


def test_a_catalog_error_outside_the_index_is_not_taken_for_a_damaged_index(tmp_path):
    root = tmp_path / "s"
    make_store(root)
    damage(root, "DROP TABLE session_topics;")
    with Store.open(root, readonly=True) as ro:
        assert [r.session_id for r in search(ro, "wombat", limit=10)] != []
        with pytest.raises(CatalogError, match="no such table: session_topics") as e:
            search(ro, "wombat", topic="x")
        assert not isinstance(e.value, (SearchIndexError, sqlite3.Error))
        assert ro.text_index.problem is None
        assert {r.session_id for r in search(ro, "wombat", limit=10)} == {"s0", "s1", "s2"}


def test_a_full_check_from_a_read_view_changes_nothing(tmp_path):
    root = tmp_path / "s"
    make_store(root)
    with Store.open(root, readonly=True) as ro:
        view = ro.catalog.reader()
        assert not view.writable
        assert ro.text_index.check(view, full=True) is None
        assert not view.in_transaction
    damage(root, "UPDATE search_fts_data SET block = zeroblob(length(block)) WHERE id > 10;")
    with Store.open(root, readonly=True) as ro:
        problem = ro.text_index.check(ro.catalog.reader(), full=True)
        assert problem is not None and problem.startswith("damaged:")


def test_a_full_catalog_during_index_upkeep_fails_the_transaction_not_the_index(tmp_path):
    """A catalog error that is not the index's (here SQLite's real "database or disk is full")
    inside index upkeep fails the whole transaction, to be retried; the index stays usable."""
    root = tmp_path / "s"
    make_store(root)
    with Store.open(root) as store:
        summary = store.resolve("sessions/s0/summary.json")
        (parent, name), = store.catalog.names_of(summary)
        with pytest.raises(CatalogError) as caught:
            with store.catalog.write() as view:
                db = sql(view)
                db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
                view.search.guarded(lambda: view.search.add(
                    summary, parent, name, store.resolve("sessions/s0"), "summary.json", 1, [], b"d" * 16,
                    "title", " ".join(f"word{i}" for i in range(200_000))))
        assert caught.value.errno == errno.ENOSPC and not isinstance(caught.value, SearchIndexError)
        sql(store.catalog.reader()).execute("PRAGMA max_page_count = 1073741823")
        assert store.catalog.reader().search.statistics().state == "ok"
        assert store.catalog.reader().search.problem() is None and store.text_index.problem is None
        assert {r.session_id for r in search(store, "wombat", limit=10)} == {"s0", "s1", "s2"}
        assert [r.session_id for r in search(store, "word7", limit=10)] == []


def test_a_damaged_index_during_upkeep_marks_it_unusable_and_the_transaction_goes_on(tmp_path):
    root = tmp_path / "s"
    make_store(root)
    with Store.open(root) as store:
        with store.catalog.write() as view:
            def fail():
                sql(view).execute("DELETE FROM search_docs")
                raise SearchIndexError("invalid fts5 file format (injected by the test)")
            assert "invalid fts5" in view.search.guarded(fail)
            view.meta.put("test_marker", "kept")
        view = store.catalog.reader()
        assert view.meta.get("test_marker") == "kept"
        assert view.search.problem().startswith("damaged: an update failed")
        assert sql(view).execute("SELECT count(*) FROM search_docs").fetchone()[0] > 0      # undone
