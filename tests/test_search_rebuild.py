"""A damaged search index is rebuilt in the background while the mount serves.

The store is served from a thread of this process (``mounting.served``) so that the test
can hold the rebuild after its first transaction (``search_rebuild._hook``) and look at the mount
in that state: it serves at once, searches answer from what is indexed so far and say
so (CLI notice, ``--json`` field, stats.json), and commits meanwhile are indexed. Once it
is released and done, the index equals the one a fresh ``reindex`` builds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from checks import index_dump
from mounting import FUSE_AVAILABLE, served, sessionfs
from store import Store
from store.backends.catalog.search import SearchIndexStatistics
from store.backends.catalog.sqlite.view import sql
from store.engine import search_rebuild as search_mod
from store.services.search import search
from store.services.sessions import SessionStore


SESSIONS = 24
BATCH = 5
QUERIES = ("wombat", "marker3", "marker20", "latecomer", "rewritten", "wombat -marker1")


def make_store(root) -> None:
    with Store.open(root, create=True) as store:
        api = SessionStore(store)
        for i in range(SESSIONS):
            sid = f"s{i:02d}"
            api.save_metadata({"id": sid, "name": f"session {i}", "status": "done", "tags": ["t"],
                               "startTime": f"2024-02-{i + 1:02d}T08:00:00Z"})
            api.save_summary(sid, {"narrative": f"the wombat marker{i} dug a burrow" + " deep" * i})
    db = sqlite3.connect(root / "catalog.db", isolation_level=None)
    db.execute("DELETE FROM search_fts_config")         # damaged: invalid fts5 file format
    db.close()


def answers(store: Store) -> dict:
    return {q: sorted((r.session_id, round(r.score, 9), r.file, r.snippet) for r in search(store, q, limit=None))
            for q in QUERIES}


@pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")
def test_a_damaged_index_is_rebuilt_in_the_background_while_the_mount_serves(tmp_path, monkeypatch):
    root = tmp_path / "store"
    make_store(root)
    paused, release = threading.Event(), threading.Event()

    def hold_after_the_first_batch(point: str) -> None:
        if point == "batch" and not paused.is_set():
            paused.set()
            assert release.wait(300), "the test never released the rebuild"
    monkeypatch.setattr(search_mod, "_hook", hold_after_the_first_batch)
    monkeypatch.setattr(search_mod, "REBUILD_BATCH", BATCH)

    store = Store.open(root)
    try:
        assert paused.wait(120), "the background rebuild did not start"
        with served(store, tmp_path / "mnt") as mnt:
            # The mount serves at once: listing, reading, stats.json.
            assert sorted(os.listdir(mnt / "sessions")) == [f"s{i:02d}" for i in range(SESSIONS)]
            assert b"marker23" in (mnt / "sessions" / "s23" / "summary.json").read_bytes()
            stats = orjson.loads((mnt / ".sessionfs" / "stats.json").read_bytes())
            assert stats["search"] == {"state": "rebuilding", "sessions_done": BATCH, "sessions_total": SESSIONS}

            # Searches answer from what is indexed so far, and say so.
            indexed = {f"s{i:02d}" for i in range(BATCH)}
            assert set(os.listdir(mnt / "search" / "wombat")) == indexed
            r = sessionfs("search", str(mnt), "wombat", "--json", "--limit", "100")
            assert "search index is being rebuilt (5 of 24 sessions done)" in r.stderr
            out = json.loads(r.stdout)
            assert {x["session_id"] for x in out} == indexed
            assert all(x["index_rebuilding"] == {"sessions_done": BATCH, "sessions_total": SESSIONS} for x in out)
            r = sessionfs("search", str(mnt), "wombat")
            assert "being rebuilt" in r.stderr and "s00" in r.stdout

            # Commits during the rebuild are indexed by their own transactions: a new session,
            # and a session the rebuild has not reached yet, rewritten.
            (mnt / "sessions" / "late").mkdir()
            (mnt / "sessions" / "late" / "metadata.json").write_bytes(
                orjson.dumps({"id": "late", "name": "latecomer wombat", "status": "done"}))
            (mnt / "sessions" / "s20" / "summary.json").write_bytes(
                orjson.dumps({"narrative": "rewritten by the wombat while the index was rebuilt"}))
            store.settle()
            assert [x.session_id for x in search(store, "latecomer")] == ["late"]
            assert [x.session_id for x in search(store, "rewritten")] == ["s20"]

            release.set()
            assert store.text_index.wait(300), "the background rebuild did not finish"
            stats = orjson.loads((mnt / ".sessionfs" / "stats.json").read_bytes())
            assert stats["search"] == {"state": "ok", "sessions_done": 0, "sessions_total": 0}
            assert set(os.listdir(mnt / "search" / "wombat")) == {f"s{i:02d}" for i in range(SESSIONS)} | {"late"}
            r = sessionfs("search", str(mnt), "wombat", "--json", "--limit", "100")
            assert "being rebuilt" not in r.stderr
            assert search(store, "marker20") == []          # the rewrite replaced its old text
        background = (answers(store), index_dump(store))
    finally:
        release.set()
        store.close()

    fresh = tmp_path / "fresh"
    shutil.copytree(root, fresh)
    sessionfs("reindex", str(fresh))
    with Store.open(fresh, readonly=True) as store:
        assert (answers(store), index_dump(store)) == background


KILL_AFTER_FIRST_BATCH = """
import os, signal, sys
from store import Store
from store.engine import search_rebuild
search_rebuild.REBUILD_BATCH = int(sys.argv[2])
search_rebuild._hook = lambda point: os.kill(os.getpid(), signal.SIGKILL)
Store.open(sys.argv[1]).text_index.wait(300)
"""


def test_a_rebuild_killed_half_way_resumes_at_the_next_open(tmp_path, monkeypatch, caplog):
    root = tmp_path / "store"
    make_store(root)
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_BATCH, str(root), str(BATCH)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    with Store.open(root, readonly=True) as ro:
        assert ro.statistics().search == SearchIndexStatistics("rebuilding", BATCH, SESSIONS)
        assert {r.session_id for r in search(ro, "wombat", limit=None)} == {f"s{i:02d}" for i in range(BATCH)}
    with caplog.at_level(logging.WARNING, logger="sessionfs.search"):
        store = Store.open(root)
    with store:
        assert "resuming an interrupted rebuild" in caplog.text
        assert store.text_index.wait(300)
        assert store.statistics().search.state == "ok"
        resumed = (answers(store), index_dump(store))
    fresh = tmp_path / "fresh"
    shutil.copytree(root, fresh)
    sessionfs("reindex", str(fresh))
    with Store.open(fresh, readonly=True) as store:
        assert (answers(store), index_dump(store)) == resumed


def test_a_rebuild_transaction_failing_on_a_full_catalog_is_retried_and_the_rebuild_finishes(tmp_path, monkeypatch):
    """SQLite's real "database or disk is full" (the writer capped at its current size, the free
    pages taken) fails one rebuild transaction; it is retried once the space is back."""
    root = tmp_path / "store"
    make_store(root)
    opened, points = threading.Event(), []
    holder = {}

    def hook(point: str) -> None:
        points.append(point)
        assert opened.wait(300)
        store = holder["store"]
        if points == ["batch"]:
            with store.catalog.write() as view:
                db = sql(view)
                db.execute("CREATE TABLE test_filler (x BLOB)")
                page = db.execute("PRAGMA page_size").fetchone()[0]
                free = db.execute("PRAGMA freelist_count").fetchone()[0]
                db.execute("INSERT INTO test_filler VALUES (zeroblob(?))", ((free + 4) * page,))
            with store.catalog.write() as view:
                db = sql(view)
                db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        elif point == "retry":
            with store.catalog.write() as view:
                sql(view).execute("PRAGMA max_page_count = 1073741823")
                sql(view).execute("DROP TABLE test_filler")
    monkeypatch.setattr(search_mod, "_hook", hook)
    monkeypatch.setattr(search_mod, "REBUILD_BATCH", BATCH)
    monkeypatch.setattr(search_mod, "REBUILD_RETRY_PAUSE", 0.01)
    with Store.open(root) as store:
        holder["store"] = store
        opened.set()
        assert store.text_index.wait(300)
        assert points.count("retry") == 1 and points.count("batch") == -(-SESSIONS // BATCH) - 1, points
        assert store.text_index.problem is None
        assert store.statistics().search == SearchIndexStatistics("ok")
        assert {r.session_id for r in search(store, "wombat", limit=None)} == {f"s{i:02d}" for i in range(SESSIONS)}
