"""Search over real stores (tmp_path), without a mount: the index kept in step by every kind
of change equals a rebuilt one, filters, ranking, rebuild at open, the CLI."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import sqlite3
import stat
import subprocess
import sys

import orjson
import pytest

from checks import index_dump
from contrib.corpus import generate_session
from store.backends.catalog.sqlite.search import unpack_extents
from store.engine.search_text import TextCache
from store.services import search as search_mod
from store.engine.store import Store
from store.core.errors import BadInputError, FsError
from store.backends.catalog.search import IndexUnavailableError
from store.services.search import search
from store.services.sessions import SessionStore
from store.services.verify import verify
from store.backends.catalog.sqlite.view import sql

REG = stat.S_IFREG | 0o644
N_SESSIONS = 16


def sessions_docs(n: int, start: int = 0) -> list[dict]:
    return [generate_session(3, i, profile="small", attachments=False)[0] for i in range(start, start + n)]


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return sessions_docs(N_SESSIONS)


@pytest.fixture
def store(tmp_path):
    Store.init(tmp_path / "s")
    s = Store.open(tmp_path / "s")
    yield s
    s.close()


@pytest.fixture
def filled(store, corpus):
    api = SessionStore(store)
    for doc in corpus:
        api.save_full_session(doc)
    store.settle()
    return store


def ids(results) -> set[str]:
    return {r.session_id for r in results}


# ------------------------------------------------------------------------- incremental == rebuilt
def test_incremental_index_equals_a_rebuilt_one(filled, corpus):
    store = filled
    api = SessionStore(store)
    sid = [d["id"] for d in corpus]
    # appends: new chunk files and rewrites of the last one
    for s in sid[:4]:
        for k in range(23):
            api.append_screenshot(s, {"id": f"extra-{k}", "analysis": {"summary": f"zebracorn step {k}",
                                                                     "extractedText": ["appended line"]}})
        api.append_audio_segment(s, {"id": "seg-x", "transcription": "a quokka said hello"})
    # rewrites
    api.save_summary(sid[4], {"narrative": "Completely new narrative about quokkas."})
    api.save_transcription(sid[5], "rewritten transcript")
    meta = api.load_metadata(sid[6])
    api.save_metadata({**meta, "name": "Rebadged ptarmigan", "tags": ["alpha", "beta"]},
                      expected_version=meta["version"])
    api.save_context_items(sid[7], None)
    # deletes
    api.delete_session(sid[8])
    api.delete_session(sid[9])
    # a file that is not JSON (stored, not indexed) and one that was JSON and no longer is
    store.write_files({f"sessions/{sid[10]}/summary.json": b"{not json", f"sessions/{sid[10]}/notes.txt": b"x"})
    store.settle()
    sess = store.sessions_ino
    # renames through the inode API: a session, a file away and back, a chunk directory, a whole
    # session moved into another one (no longer a session), an atomic save by rename over a file
    d11 = store.lookup(sess, sid[11].encode()).id
    store.rename(sess, sid[11].encode(), sess, b"renamed-session")
    store.rename(d11, b"summary.json", d11, b"summary.bak")
    store.rename(d11, b"summary.bak", d11, b"summary.json")
    store.rename(d11, b"audio-insights.json", d11, b"insights.old")
    d12 = store.lookup(sess, sid[12].encode()).id
    store.rename(d12, b"screenshots", d12, b"shots")
    d13 = store.lookup(sess, sid[13].encode()).id
    store.rename(sess, sid[14].encode(), d13, b"nested")
    store.write_files({f"sessions/{sid[15]}/tmp.json": orjson.dumps("transcript via rename")})
    store.settle()
    d15 = store.lookup(sess, sid[15].encode()).id
    store.rename(d15, b"tmp.json", d15, b"transcription.json")
    # a hard link of a transcription into another session, then the original goes
    t13 = store.lookup(d13, b"transcription.json").id
    store.link(t13, d12, b"transcription.json") if not store.catalog.lookup(d12, b"transcription.json") else None
    store.unlink(d13, b"transcription.json")
    # writes through the inode API (the mount's path): truncate and rewrite a summary
    s12 = store.lookup(d12, b"summary.json").id
    store.truncate(s12, 0)
    store.write(s12, 0, orjson.dumps({"narrative": "overlay written wombat"}))
    store.seal(s12)
    # a new session made file by file
    dn = store.make_node(sess, b"made-by-hand", stat.S_IFDIR | 0o755, 0, 0).id
    f = store.make_node(dn, b"metadata.json", REG, 0, 0).id
    store.write(f, 0, orjson.dumps({"id": "made-by-hand", "name": "handmade narwhal", "tags": ["gamma"]}))
    store.seal(f)
    store.settle()

    assert ids(search(store, "zebracorn")) == set(sid[:4])
    assert ids(search(store, "quokka*")) == set(sid[:4]) | {sid[4]}
    assert ids(search(store, "wombat")) == {sid[12]}
    assert ids(search(store, "narwhal")) == {"made-by-hand"}
    assert ids(search(store, '"transcript via rename"')) == {sid[15]}
    assert not ids(search(store, "zebracorn OR quokka OR wombat", limit=None)) & {sid[8], sid[9], sid[14]}
    assert ids(search(store, "ptarmigan")) == ids(search(store, "", tags=["alpha", "beta"])) == {sid[6]}

    assert store.text_index.unindexed_files() == [f"sessions/{sid[10]}/summary.json"]
    incremental = index_dump(store)
    assert not [t for t in incremental if t[0] == "GARBAGE"]
    assert {t[0] for t in incremental} >= {"renamed-session", "made-by-hand"}
    assert not {t[1] for t in incremental if t[0] == sid[11]} & {"audio-insights.json", "insights.old"}
    report = store.text_index.rebuild()
    assert report.sessions == N_SESSIONS - 2 + 1 - 1
    assert index_dump(store) == incremental
    with store.catalog.write() as db:
        assert store.text_index.check(db, full=True) is None


def test_damaged_chunk_of_an_old_version_leaves_garbage_that_is_never_returned(filled, corpus, caplog):
    store = filled
    sid = corpus[0]["id"]
    db = store.catalog.reader()
    (blob,) = sql(db).execute("SELECT extents FROM search_docs WHERE path = 'summary.json' AND dir_ino = "
                         "(SELECT dir_ino FROM sessions WHERE id = ?)", (sid,)).fetchone()
    old_chunks = [cid for _, cid in unpack_extents(blob)]
    word = search(store, "", tags=corpus[0]["tags"][0], limit=1)  # filters only: works
    assert word
    store.text_index.cache = TextCache(1 << 20)       # force re-reading the old version
    with store.catalog.write() as w:                             # the old chunks vanish (a bug, a bad gc)
        sql(w).executemany("UPDATE chunks SET hash = randomblob(32) WHERE id = ?", [(c,) for c in old_chunks])
    with caplog.at_level(logging.WARNING, logger="sessionfs.search"):
        SessionStore(store).save_summary(sid, {"narrative": "fresh text about ocelots"})
        store.settle()
    assert "garbage" in caplog.text
    assert ids(search(store, "ocelots")) == {sid}
    old_word = corpus[0]["summary"]["narrative"].split()[0]
    assert all(r.file != "summary.json" or r.session_id != sid for r in search(store, f'"{old_word}"', limit=None))
    assert store.text_index.garbage and "damaged" in store.text_index.check(store.catalog.reader())


# ------------------------------------------------------------------------- queries and filters
def test_filters_match_the_metadata(filled, corpus):
    store = filled
    docs = {d["id"]: d for d in corpus}
    tag = corpus[0]["tags"][0]
    assert ids(search(store, "", tags=tag, limit=None)) == {s for s, d in docs.items() if tag in d["tags"]}
    two = corpus[1]["tags"][:2]
    assert ids(search(store, "", tags=two, limit=None)) == {s for s, d in docs.items() if set(two) <= set(d["tags"])}
    assert ids(search(store, "", status=["active", "paused"], limit=None)) == \
        {s for s, d in docs.items() if d["status"] in ("active", "paused")}
    day = corpus[5]["startTime"][:10]
    assert ids(search(store, "", after=day, before=day, limit=None)) == \
        {s for s, d in docs.items() if d["startTime"][:10] == day}
    assert ids(search(store, "", after=day, limit=None)) == {s for s, d in docs.items() if d["startTime"][:10] >= day}
    topic = corpus[2]["topicIds"][0]
    assert ids(search(store, "", topic=topic, limit=None)) == {s for s, d in docs.items() if topic in d["topicIds"]}
    word = corpus[3]["name"].split()[1]
    assert ids(search(store, word, tags=corpus[3]["tags"], limit=None)) >= {corpus[3]["id"]}
    newest = search(store, "", status=list({d["status"] for d in corpus}), limit=3)
    assert [r.session_id for r in newest] == [d["id"] for d in sorted(corpus, key=lambda d: d["startTime"])][::-1][:3]


def test_ranking_snippets_and_boolean_semantics(filled, corpus):
    store = filled
    api = SessionStore(store)
    a, b, c = (d["id"] for d in corpus[:3])
    api.save_summary(a, {"narrative": "The kestrel flew. " + "Kestrel again. " * 9})
    api.save_summary(b, {"narrative": "One kestrel was seen among many other birds and words " * 5})
    api.save_context_items(c, [{"title": "kestrel notes", "content": "a falcon", "source": "x"}])
    api.save_transcription(b, "we spoke about the falcon")
    results = search(store, "kestrel")
    order = [r.session_id for r in results]
    assert set(order) == {a, b, c} and order.index(a) < order.index(b)     # more hits, shorter text
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True) and results[-1].score > 0
    top_a = results[order.index(a)]
    assert top_a.file == "summary.json" and "[kestrel]" in top_a.snippet.lower()
    assert top_a.snippet.startswith("summary.narrative: ")
    assert results[order.index(c)].file == "context-items.json"
    # session-level AND: words in different files of one session
    assert ids(search(store, "kestrel falcon")) == {b, c}
    assert ids(search(store, "kestrel -falcon")) == {a}
    assert ids(search(store, "kestrel OR falcon -birds")) == {a, c}
    assert ids(search(store, '"kestrel flew"')) == {a}
    assert ids(search(store, "kestr*")) == {a, b, c}
    assert len(search(store, "kestrel", limit=2)) == 2
    for bad in ("", "(x)", '"open'):
        with pytest.raises(BadInputError):
            search(store, bad)
    with pytest.raises(BadInputError):
        search(store, "x", limit=0)
    with pytest.raises(BadInputError):
        search(store, "x", after="last tuesday")


def test_common_words_come_newest_first(filled, corpus, monkeypatch):
    store = filled
    monkeypatch.setattr(search_mod, "RANK_CAP", 3)
    newest = [d["id"] for d in sorted(corpus, key=lambda d: d["startTime"], reverse=True)]
    results = search(store, "the", limit=5)
    assert [r.session_id for r in results] == newest[:5] and all(r.score == 0 for r in results)
    assert all(r.snippet and r.file for r in results)
    # rare AND common: ranked by the rare word, checked for the common one. The corpus never
    # says "lonely" or "axolotl": the one transcription below is all that can match.
    assert not any(word in json.dumps(d) for d in corpus for word in ("lonely", "axolotl"))
    SessionStore(store).save_transcription(newest[-1], "the lonely axolotl")
    assert ids(search(store, "axolotl the")) == {newest[-1]}
    assert ids(search(store, "the -the")) == set()
    monkeypatch.setattr(search_mod, "SCAN_BUDGET", 2)
    assert ids(search(store, "the lonely")) == {newest[-1]}


# ------------------------------------------------------------------------- open, rebuild, damage
def damage_and_reopen(root, sql: str, caplog) -> Store:
    db = sqlite3.connect(root / "catalog.db", isolation_level=None)
    db.executescript(sql)
    db.close()
    with caplog.at_level(logging.WARNING, logger="sessionfs.search"):
        return Store.open(root)


@pytest.mark.parametrize("sql, why", [
    ("UPDATE meta SET value = 0 WHERE key = 'search_version';", "another version"),
    ("DROP TABLE search_fts;", "missing"),
    ("DELETE FROM search_docs WHERE rowid % 3 = 0;", "holding rows of old file versions"),
    ("UPDATE meta SET value = 'incomplete: x' WHERE key = 'search_state';", "incomplete"),
    ("DELETE FROM search_fts_config;", "damaged: invalid fts5 file format"),
])
def test_a_missing_or_damaged_index_is_rebuilt_at_open(tmp_path, corpus, caplog, sql, why):
    root = tmp_path / "s"
    Store.init(root)
    with Store.open(root) as store:
        for doc in corpus[:4]:
            SessionStore(store).save_full_session(doc)
        store.settle()
        before = index_dump(store)
    with Store.open(root, readonly=True) as ro:
        search(ro, "the")
    damaged = sqlite3.connect(root / "catalog.db", isolation_level=None)
    damaged.executescript(sql)
    damaged.close()
    with Store.open(root, readonly=True) as ro:
        if why.startswith("holding"):      # garbage rows: searches skip them, the next writable open cleans up
            assert ro.text_index.garbage and search(ro, "the")
        else:
            with pytest.raises(IndexUnavailableError) as e:
                search(ro, "the")
            assert why in str(e.value) and "sessionfs reindex" in str(e.value)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sessionfs.search"):
        store = Store.open(root)
    try:
        assert f"is {why}" in caplog.text or why in caplog.text
        assert store.text_index.wait(120)
        assert "rebuilding it from the files" in caplog.text and "search index rebuilt: " in caplog.text
        assert store.text_index.rebuilt_at_open is not None
        assert index_dump(store) == before
        assert search(store, "the")
    finally:
        store.close()


def test_an_index_error_never_fails_the_commit(store, corpus, monkeypatch, caplog):
    api = SessionStore(store)
    api.save_full_session(corpus[0])
    store.settle()

    def broken(*args):
        raise sqlite3.DatabaseError("database disk image is malformed")
    monkeypatch.setattr(store.text_index, "_refresh_inode", broken)
    with caplog.at_level(logging.ERROR, logger="sessionfs.search"):
        api.save_summary(corpus[0]["id"], {"narrative": "still saved"})
        store.settle()
    assert api.load_summary(corpus[0]["id"]) == {"narrative": "still saved"}
    assert "search index update failed" in caplog.text
    with pytest.raises(IndexUnavailableError):
        search(store, "still")
    monkeypatch.undo()
    api.save_summary(corpus[0]["id"], {"narrative": "saved again"})     # no more index updates
    store.settle()
    root = store.root
    store.close()
    with Store.open(root) as again:
        assert again.text_index.wait(120)       # rebuilt in the background
        assert ids(search(again, "saved again")) == {corpus[0]["id"]}


# ------------------------------------------------------------------------- the CLI
def cli(*args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "store.cli", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_cli_search_and_reindex(filled, corpus):
    store = filled
    root = str(store.root)
    word = corpus[2]["name"].split()[1]
    expected = ids(search(store, word, limit=None))
    tag = corpus[2]["tags"][0]
    expected_tagged = ids(search(store, word, tags=tag, limit=None))
    store.close()
    out = json.loads(cli("search", root, word, "--json", "--limit", "100").stdout)
    assert {r["session_id"] for r in out} == expected
    assert all(set(r) == {"session_id", "score", "snippet", "file", "name", "index_rebuilding"} for r in out)
    assert all(r["index_rebuilding"] is None for r in out)
    assert corpus[2]["name"] in {r["name"] for r in out}
    out = json.loads(cli("search", root, word, "--tag", tag, "--json", "--limit", "100").stdout)
    assert {r["session_id"] for r in out} == expected_tagged
    text = cli("search", root, word, "--status", corpus[2]["status"]).stdout
    assert corpus[2]["id"] in text and "[" in text
    for bad in ('"unterminated', "(a b)", "a OR", "-only"):
        r = cli("search", root, "--", bad, check=False)
        assert r.returncode == 1 and r.stderr.startswith("sessionfs: ") and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = cli("search", root, "x", "--after", "soon", check=False)
    assert r.returncode == 1 and "after" in r.stderr
    r = cli("reindex", root)
    assert "search index rebuilt" in r.stdout and "reindex" in r.stderr      # the tqdm bar
    assert cli("reindex", root, "--check").stdout == "search index: ok\n"
    assert {r["session_id"] for r in json.loads(cli("search", root, word, "--json", "--limit", "100").stdout)} \
        == expected


def test_session_rows_and_search_index_follow_names_changed_one_by_one(tmp_path):
    """Namespace operations refresh a session's row only when its metadata.json or the session
    directory itself is among the changed names, and the search index only for the changed
    names: after random creates, links, renames and unlinks (metadata.json among them)
    ``verify`` finds the session rows right and the index matches a rebuild."""
    rnd = random.Random(11)
    store = Store.open(tmp_path / "s", create=True)
    try:
        sess = store.sessions_ino
        uid, gid, mode = os.getuid(), os.getgid(), stat.S_IFDIR | 0o755
        dirs = [store.make_node(sess, b"s%d" % k, mode, uid, gid).id for k in range(3)]
        dirs.append(store.make_node(dirs[0], b"screenshots", mode, uid, gid).id)
        names = [b"metadata.json", b"summary.json", b"transcription.json", b"chunk-001.json", b"notes.txt"]
        for step in range(300):
            op = rnd.choice(["write", "write", "link", "rename", "rename", "unlink", "session"])
            d, name = rnd.choice(dirs), rnd.choice(names)
            try:
                if op == "write":
                    ino = store.catalog.lookup(d, name) or store.make_node(d, name, REG, uid, gid).id
                    doc = {"id": f"x{step}", "name": f"name {step}", "tags": [f"t{step % 3}"],
                           "narrative": f"word{step}", "transcription": f"spoken{step}"}
                    store.truncate(ino, 0)
                    store.write(ino, 0, orjson.dumps(doc))
                    store.seal(ino)
                elif op == "link":
                    src = store.catalog.lookup(d, name)
                    if src:
                        store.link(src, rnd.choice(dirs), rnd.choice(names))
                elif op == "rename":
                    store.rename(d, name, rnd.choice(dirs), rnd.choice(names))
                elif op == "unlink":
                    store.unlink(d, name)
                else:
                    k = rnd.randrange(3)
                    store.rename(sess, b"s%d" % k, sess, b"s%d-%d" % (k, step))
                    store.rename(sess, b"s%d-%d" % (k, step), sess, b"s%d" % k)
            except FsError as exc:
                assert exc.errno in (errno.ENOENT, errno.EEXIST, errno.EISDIR, errno.ENOTDIR), exc
        store.settle()
        report = verify(store)
        assert not report.errors, report.errors
        assert sql(store.catalog.reader()).execute("SELECT count(*) FROM sessions").fetchone()[0] > 0
        docs = "SELECT ino, parent, name, dir_ino, path, size FROM search_docs ORDER BY ino, parent, name"
        incremental = sql(store.catalog.reader()).execute(docs).fetchall()
        assert incremental, "nothing was indexed: the test checked nothing"
        store.text_index.rebuild()
        assert sql(store.catalog.reader()).execute(docs).fetchall() == incremental
    finally:
        store.close()
