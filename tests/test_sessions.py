"""Tests of store.sessions: the app's storage API over real (tmp_path) stores."""

import contextlib
import copy
import errno
import json
import random
import threading

import pytest

from checks import LEGACY_EXAMPLE
from store.engine.store import Store
from store.core.errors import BadInputError, ConflictError, FsError, StoreError
from store.core.layout import LayoutError, chunk_path
from store.services.sessions import SessionStore
from store.backends.catalog.sqlite.view import sql

LEGACY_STORE = LEGACY_EXAMPLE
SID = "00000000-0000-4000-8000-000000000001"
OTHER = "00000000-0000-4000-8000-000000000002"

WORDS = (
    "the auth middleware token request header verify session user error function return const async "
    "await import export class interface type string number boolean null undefined config build test "
    "deploy server client database query index cache memory store write read file path directory "
    "commit branch merge review pull push status editor terminal browser window tab panel sidebar "
    "button click scroll search filter sort list item table column row value key map set array object "
    "json yaml html css style layout grid flex margin padding border color font size width height image "
    "screenshot audio video record transcript summary analysis activity focus meeting email slack "
    "calendar document note task project deadline priority issue bug fix feature refactor performance "
    "latency throughput metric log trace span debug info warn retry timeout queue worker thread lock "
    "pool connection socket route handler controller service model schema migration backup restore"
).split()


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    Store.init(tmp_path / "s")
    s = Store.open(tmp_path / "s")
    yield s
    s.close()


@pytest.fixture
def sessions(store):
    return SessionStore(store)


def example() -> dict:
    (path,) = sorted((LEGACY_STORE / "sessions").glob("*.json"))
    return json.loads(path.read_text())


def metadata(sid: str = SID, **fields) -> dict:
    return {"id": sid, "name": f"session {sid[-4:]}", "status": "active",
            "startTime": "2025-01-01T09:00:00.000Z", "tags": [], "topicIds": [], **fields}


def screenshot(i: int, sid: str = SID, size: int = 300, seed: int | None = None) -> dict:
    """A screenshot record with OCR-like text made of words, about ``size`` bytes of JSON."""
    rng = random.Random(i if seed is None else seed)
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        lines.append(line)
        total += len(line) + 4
    return {
        "id": f"shot-{i:05d}", "sessionId": sid, "timestamp": f"2025-01-01T09:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "sequenceNumber": i, "attachmentId": f"att-{i:05d}",
        "analysis": {"summary": " ".join(rng.choice(WORDS) for _ in range(40)), "detectedActivity": "coding",
                     "extractedText": lines, "keyElements": rng.sample(WORDS, 5), "confidence": 0.9,
                     "curiosity": 0.2, "curiosityReason": "routine"},
        "isDuplicate": False, "duplicateOf": None, "perceptualHash": f"{rng.getrandbits(64):016x}",
    }


def sizes(store: Store) -> dict:
    """Statistics that describe stored content (not the cache or queue counters)."""
    stats = store.statistics().as_dict()
    return {k: v for k, v in stats.items() if k not in ("cache", "queue", "attr_cache", "dir_cache")}


def tree(store: Store, path: str = "sessions") -> dict:
    """Every file under ``path`` with its bytes."""
    out = {}
    for name in store.list_dir(path):
        child = f"{path}/{name}"
        try:
            out[child] = store.read_path(child)
        except FsError as exc:
            assert exc.errno == errno.EISDIR
            out.update(tree(store, child))
    return out


def snapshot(store: Store) -> tuple:
    store.flush()
    return sizes(store), tree(store)


def chunk_ids_under(store: Store, path: str) -> set[int]:
    ino = store.resolve(path)
    rows = sql(store.catalog.reader()).execute(
        "WITH RECURSIVE t(ino) AS (SELECT ? UNION SELECT d.ino FROM dentries d JOIN t ON d.parent = t.ino) "
        "SELECT DISTINCT chunk_id FROM file_chunks WHERE ino IN (SELECT ino FROM t)", (ino,)).fetchall()
    return {r[0] for r in rows}


def refcount_sum(store: Store, ids: set[int]) -> int:
    marks = ", ".join("?" * len(ids))
    return sql(store.catalog.reader()).execute(
        f"SELECT coalesce(sum(refcount), 0) FROM chunks WHERE id IN ({marks})", list(ids)).fetchone()[0]


def count_calls(monkeypatch, store: Store, name: str) -> list:
    calls = []
    original = getattr(store, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, name, wrapper)
    return calls


# -- whole sessions ----------------------------------------------------------------------------


def test_example_round_trips_and_survives_reopen(tmp_path):
    session = example()
    Store.init(tmp_path / "s")
    with Store.open(tmp_path / "s") as store:
        sessions = SessionStore(store)
        sessions.save_full_session(copy.deepcopy(session))
        loaded = sessions.load_full_session(session["id"])
        assert loaded == session and list(loaded) == list(session)
        assert sessions.is_chunked(session["id"])
    with Store.open(tmp_path / "s") as store:
        sessions = SessionStore(store)
        assert sessions.load_full_session(session["id"]) == session
        assert sessions.load_all_screenshots(session["id"]) == session["screenshots"]
        assert sessions.load_all_video_chunks(session["id"]) == session["video"]["chunks"]
        assert sessions.load_summary(session["id"]) == session["summary"]
        assert sessions.load_transcription(session["id"]) == session["fullTranscription"]
        assert store.statistics().sessions == 1


def test_save_full_session_replaces_an_older_version(sessions, store):
    session = {**metadata(), "screenshots": [screenshot(i) for i in range(45)], "summary": {"a": 1}}
    sessions.save_full_session(session)
    store.write_files({f"sessions/{SID}/notes.txt": b"mine"})
    smaller = {**metadata(), "screenshots": [screenshot(i) for i in range(5)]}
    sessions.save_full_session(smaller)
    assert sessions.load_full_session(SID) == smaller
    assert set(store.list_dir(f"sessions/{SID}/screenshots")) == {"chunk-001.json"}
    assert "summary.json" not in store.list_dir(f"sessions/{SID}")
    assert store.read_path(f"sessions/{SID}/notes.txt") == b"mine"


def test_missing_session_loads_as_none(sessions):
    assert sessions.load_metadata(SID) is None
    assert sessions.load_full_session(SID) is None
    assert sessions.load_summary(SID) is None
    assert sessions.load_all_screenshots(SID) == []
    assert not sessions.is_chunked(SID)
    with pytest.raises(FsError, match=SID):
        sessions.append_screenshot(SID, screenshot(0))


# -- metadata ---------------------------------------------------------------------------------


def test_optimistic_locking(sessions):
    first = sessions.save_metadata(metadata(version=1))
    assert first["version"] == 2 and first["updatedAt"].endswith("Z")
    a, b = sessions.load_metadata(SID), sessions.load_metadata(SID)
    assert a == first
    a["name"] = "renamed by A"
    assert sessions.save_metadata(a)["version"] == 3
    b["name"] = "renamed by B"
    with pytest.raises(ConflictError) as info:
        sessions.save_metadata(b)
    assert SID in str(info.value) and "3" in str(info.value) and "2" in str(info.value)
    assert sessions.load_metadata(SID)["name"] == "renamed by A"
    assert sessions.save_metadata(b, expected_version=3)["version"] == 4
    assert b["version"] == 2, "the caller's dict is not modified"


def test_store_fields_survive_a_stale_app_copy(sessions):
    sessions.save_metadata(metadata())
    meta = sessions.load_metadata(SID)
    sessions.append_screenshot(SID, screenshot(0))
    sessions.save_summary(SID, {"text": "hi"})
    meta["name"] = "edited"
    saved = sessions.save_metadata(meta)  # appends and large objects do not bump the version
    assert saved["chunks"]["screenshots"]["count"] == 1 and saved["hasSummary"] is True
    assert sessions.load_all_screenshots(SID) == [screenshot(0)]


def test_list_metadata_filters(sessions):
    rows = [
        ("a", "active", "2025-01-01T09:00:00.000Z", ["work"], ["t1"]),
        ("b", "completed", "2025-01-02T09:00:00.000Z", ["work", "auth"], []),
        ("c", "completed", "2025-01-03T09:00:00.000Z", ["home"], ["t1", "t2"]),
        ("d", "paused", "2025-01-04T09:00:00.000Z", [], ["t2"]),
        ("e", "interrupted", "2025-01-05T09:00:00.000Z", ["auth"], []),
    ]
    for sid, status, start, tags, topics in rows:
        sessions.save_metadata(metadata(sid, status=status, startTime=start, tags=tags, topicIds=topics))

    def ids(**kw):
        return [m["id"] for m in sessions.list_metadata(**kw)]

    assert ids() == ["e", "d", "c", "b", "a"]
    assert ids(status="completed") == ["c", "b"]
    assert ids(status=["active", "paused"]) == ["d", "a"]
    assert ids(tags=["auth"]) == ["e", "b"]
    assert ids(tags=["home", "work"]) == ["c", "b", "a"]
    assert ids(topic_ids=["t2"]) == ["d", "c"]
    assert ids(start_after="2025-01-03T09:00:00.000Z") == ["e", "d", "c"]
    assert ids(start_before="2025-01-02T09:00:00.000Z") == ["b", "a"]
    assert ids(start_after="2025-01-02T00:00:00.000Z", start_before="2025-01-04T00:00:00.000Z") == ["c", "b"]
    assert ids(limit=2) == ["e", "d"]
    assert ids(limit=2, offset=2) == ["c", "b"]
    assert ids(offset=4) == ["a"]
    assert ids(status="completed", tags="work", topic_ids="t1") == []
    assert sessions.list_metadata(status="active")[0] == sessions.load_metadata("a")
    with pytest.raises(BadInputError, match="limit"):
        sessions.list_metadata(limit=-1)


def test_session_index_names_and_undated_sessions_last(sessions, store):
    sessions.save_metadata(metadata("dated", name="Dated", startTime="2025-01-01T09:00:00.000Z"))
    sessions.save_metadata({"id": "undated", "name": "Undated"})
    sessions.save_metadata({"id": "nameless", "startTime": "2025-01-02T09:00:00.000Z"})
    assert [m["id"] for m in sessions.list_metadata()] == ["nameless", "dated", "undated"]
    store.settle()
    names = store.catalog.reader().sessions.names(["dated", "undated", "nameless", "absent"])
    assert names == {"dated": "Dated", "undated": "Undated", "nameless": None}


# -- large objects ----------------------------------------------------------------------------


def test_large_objects_keep_has_flags_in_step(sessions, store, monkeypatch):
    sessions.save_metadata(metadata())
    writes = count_calls(monkeypatch, store, "write_files")
    sessions.save_summary(SID, {"text": "s"})
    sessions.save_audio_insights(SID, {"mood": "calm"})
    sessions.save_canvas_spec(SID, {"cards": []})
    sessions.save_transcription(SID, "hello world")
    sessions.save_context_items(SID, [{"id": "c1"}])
    assert len(writes) == 5
    assert f"sessions/{SID}/metadata.json" in writes[0][0] and f"sessions/{SID}/summary.json" in writes[0][0]
    meta = sessions.load_metadata(SID)
    assert all(meta[f] for f in ("hasSummary", "hasAudioInsights", "hasCanvasSpec", "hasTranscription"))
    assert sessions.load_transcription(SID) == "hello world"
    assert sessions.load_context_items(SID) == [{"id": "c1"}]
    sessions.save_summary(SID, None)
    assert sessions.load_summary(SID) is None and sessions.load_metadata(SID)["hasSummary"] is False
    assert not store.exists(f"sessions/{SID}/summary.json")
    full = sessions.load_full_session(SID)
    assert full["fullTranscription"] == "hello world" and "summary" not in full


# -- arrays -----------------------------------------------------------------------------------


def test_append_across_a_chunk_boundary(sessions, store, monkeypatch):
    sessions.save_metadata(metadata())
    for i in range(20):
        sessions.append_screenshot(SID, screenshot(i))
    assert sessions.load_metadata(SID)["chunks"]["screenshots"] == {"count": 20, "chunkCount": 1, "chunkSize": 20}
    writes = count_calls(monkeypatch, store, "write_files")
    reads = count_calls(monkeypatch, store, "read_path")
    sessions.append_screenshot(SID, screenshot(20))
    assert len(writes) == 1
    assert set(writes[0][0]) == {f"sessions/{SID}/screenshots/chunk-002.json", f"sessions/{SID}/metadata.json"}
    assert {r[0] for r in reads} <= {f"sessions/{SID}/metadata.json"}
    reads.clear()
    sessions.append_screenshot(SID, screenshot(21))
    assert {r[0] for r in reads} == {f"sessions/{SID}/metadata.json", f"sessions/{SID}/screenshots/chunk-002.json"}
    assert set(store.list_dir(f"sessions/{SID}/screenshots")) == {"chunk-001.json", "chunk-002.json"}
    assert sessions.load_metadata(SID)["chunks"]["screenshots"] == {"count": 22, "chunkCount": 2, "chunkSize": 20}
    assert sessions.load_screenshots_chunk(SID, 1) == [screenshot(20), screenshot(21)]
    assert sessions.load_all_screenshots(SID) == [screenshot(i) for i in range(22)]


def test_save_all_rechunks_and_drops_stale_chunks(sessions, store):
    sessions.save_metadata(metadata())
    segments = [{"id": f"seg-{i}", "sessionId": SID, "transcription": f"t{i}"} for i in range(250)]
    sessions.save_audio_segments(SID, segments)
    assert sessions.load_all_audio_segments(SID) == segments
    assert sessions.load_audio_segments_chunk(SID, 2) == segments[200:]
    sessions.save_audio_segments(SID, segments[:30])
    assert set(store.list_dir(f"sessions/{SID}/audio-segments")) == {"chunk-001.json"}
    assert sessions.load_metadata(SID)["chunks"]["audioSegments"] == {"count": 30, "chunkCount": 1,
                                                                      "chunkSize": 100}
    sessions.append_audio_segment(SID, {"id": "late"})
    assert sessions.load_all_audio_segments(SID)[-1] == {"id": "late"}
    sessions.save_audio_segments(SID, [])
    assert sessions.load_all_audio_segments(SID) == []
    assert store.list_dir(f"sessions/{SID}/audio-segments") == []


def test_video_chunks_need_a_video_object(sessions):
    sessions.save_metadata(metadata())
    with pytest.raises(BadInputError, match="video"):
        sessions.append_video_chunk(SID, {"id": "v0"})
    meta = sessions.load_metadata(SID)
    sessions.save_metadata({**meta, "video": {"path": "/v.mp4"}})
    sessions.append_video_chunk(SID, {"id": "v0"})
    sessions.save_video_chunks(SID, [{"id": "v0"}, {"id": "v1"}])
    assert sessions.load_video_chunks_chunk(SID, 0) == [{"id": "v0"}, {"id": "v1"}]
    assert sessions.load_full_session(SID)["video"] == {"path": "/v.mp4", "chunks": [{"id": "v0"}, {"id": "v1"}]}
    assert sessions.load_metadata(SID)["hasVideo"] is True


def test_concurrent_appends_lose_nothing(sessions):
    sessions.save_metadata(metadata())

    def worker(t: int) -> None:
        for i in range(30):
            sessions.append_screenshot(SID, {"id": f"{t}-{i}"})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = sessions.load_full_session(SID)["screenshots"]
    assert sorted(r["id"] for r in records) == sorted(f"{t}-{i}" for t in range(4) for i in range(30))
    for t in range(4):
        assert [r["id"] for r in records if r["id"].startswith(f"{t}-")] == [f"{t}-{i}" for i in range(30)]
    assert sessions.load_metadata(SID)["chunks"]["screenshots"]["chunkCount"] == 6


# -- storage growth ----------------------------------------------------------------------------


def test_same_attachment_in_two_sessions_is_stored_once(sessions, store):
    data = random.Random(7).randbytes(1 << 20)
    path = sessions.save_attachment(SID, "att-1", "png", data)
    assert path == f"sessions/{SID}/attachments/att-1.png"
    store.flush()
    before = store.statistics().stored_bytes
    sessions.save_attachment(OTHER, "att-9", ".png", data)
    store.flush()
    growth = store.statistics().stored_bytes - before
    print(f"dedup: second copy of a {len(data)} B attachment grew stored_bytes by {growth} B "
          f"({100 * growth / len(data):.3f}%)")
    assert growth < 0.01 * len(data)
    assert sessions.load_attachment(OTHER, "att-9") == data
    assert sessions.list_attachments(SID) == ["att-1.png"]
    assert sessions.load_attachment(SID, "att-2") is None


def test_appending_to_a_1mb_chunk_file_stores_little(sessions, store):
    sessions.save_metadata(metadata())
    sessions.save_screenshots(SID, [screenshot(i, size=45_000) for i in range(19)])
    store.flush()
    before = store.statistics().stored_bytes
    sessions.append_screenshot(SID, screenshot(19, size=45_000))
    store.flush()
    growth = store.statistics().stored_bytes - before
    file_size = len(store.read_path(f"sessions/{SID}/{chunk_path('screenshots', 0)}"))
    print(f"append: rewriting a {file_size} B chunk file with one more record grew stored_bytes by "
          f"{growth} B ({100 * growth / file_size:.2f}%)")
    assert 0.9e6 < file_size < 1.2e6
    assert growth < 0.05 * file_size
    assert len(sessions.load_screenshots_chunk(SID, 0)) == 20


# -- delete -----------------------------------------------------------------------------------


def test_delete_session_removes_everything_and_releases_references(sessions, store):
    session = example()
    sid = session["id"]
    shared = random.Random(1).randbytes(200_000)
    sessions.save_full_session(session)
    sessions.save_attachment(sid, "own", "png", random.Random(2).randbytes(200_000))
    sessions.save_attachment(sid, "shared", "png", shared)
    sessions.save_attachment(OTHER, "shared", "png", shared)
    store.flush()
    mine = chunk_ids_under(store, f"sessions/{sid}")
    theirs = chunk_ids_under(store, f"sessions/{OTHER}")
    assert refcount_sum(store, mine - theirs) > 0
    sessions.delete_session(sid)
    assert sessions.load_metadata(sid) is None
    store.flush()
    assert refcount_sum(store, mine - theirs) == 0
    assert refcount_sum(store, theirs) == len(theirs)
    assert store.list_dir("sessions") == [OTHER]
    assert store.statistics().sessions == 0
    assert sessions.list_metadata() == []
    assert sessions.load_attachment(OTHER, "shared") == shared


# -- transactions ------------------------------------------------------------------------------


def test_transaction_commits_everything_in_one_group(sessions, store, monkeypatch):
    sessions.save_metadata(metadata())
    writes = count_calls(monkeypatch, store, "write_files")
    with sessions.transaction() as tx:
        tx.append_screenshot(SID, screenshot(0))
        tx.append_screenshot(SID, screenshot(1))
        assert tx.load_all_screenshots(SID) == [screenshot(0), screenshot(1)]
        assert sessions.load_all_screenshots(SID) == [], "not visible outside before commit"
        meta = tx.save_metadata({**tx.load_metadata(SID), "name": "in tx"})
        tx.save_summary(SID, {"s": 1})
        tx.write(f"sessions/{SID}/notes.json", {"n": 1})
        tx.write(f"sessions/{SID}/raw.bin", b"\x00\x01")
        tx.save_attachment(SID, "a1", "wav", b"RIFF")
        assert tx.list_attachments(SID) == ["a1.wav"]
        tx.delete(f"sessions/{SID}/raw.bin")
    assert len(writes) == 1
    assert sessions.load_all_screenshots(SID) == [screenshot(0), screenshot(1)]
    assert sessions.load_metadata(SID) == {**meta, "hasSummary": True}
    assert json.loads(store.read_path(f"sessions/{SID}/notes.json")) == {"n": 1}
    assert not store.exists(f"sessions/{SID}/raw.bin")
    assert sessions.load_attachment(SID, "a1") == b"RIFF"
    with pytest.raises(StoreError, match="transaction is over"):
        tx.save_summary(SID, {})


def test_transaction_is_all_or_nothing(sessions, store):
    sessions.save_metadata(metadata())
    sessions.append_screenshot(SID, screenshot(0))
    before = snapshot(store)
    with pytest.raises(RuntimeError):
        with sessions.transaction() as tx:
            tx.append_screenshot(SID, screenshot(1))
            tx.save_summary(SID, {"s": 1})
            tx.delete_session(OTHER)
            tx.write("sessions/new/metadata.json", metadata("new"))
            raise RuntimeError("boom")
    assert snapshot(store) == before


def recreate_in_one_transaction(sessions: SessionStore) -> None:
    sessions.save_metadata(metadata())
    sessions.append_screenshot(SID, screenshot(0))
    with sessions.transaction() as tx:
        tx.delete_session(SID)
        tx.save_metadata(metadata())
        with pytest.raises(BadInputError):
            tx.append_screenshot(SID, "not a record")  # a failing call adds nothing to the transaction
        tx.append_screenshot(SID, screenshot(5))
        assert tx.load_all_screenshots(SID) == [screenshot(5)]


def test_transaction_deleting_and_recreating_a_session_commits_the_new_one(sessions, store):
    recreate_in_one_transaction(sessions)
    store.settle()
    assert sessions.load_all_screenshots(SID) == [screenshot(5)]
    assert sessions.load_metadata(SID)["chunks"]["screenshots"]["count"] == 1


@contextlib.contextmanager
def queue_held(store: Store):
    """Keep every group queued (the persistence worker waits) until the block ends."""
    gate = threading.Event()
    commit = store.persister._commit_batch

    def held(items, durable):
        gate.wait()
        return commit(items, durable)

    store.persister._commit_batch = held
    try:
        yield
    finally:
        gate.set()
        store.persister._commit_batch = commit


def test_queued_write_inside_a_tree_deleted_by_the_same_group_is_visible(store):
    store.write_files({"sessions/x/a.json": b"old"})
    store.settle()
    with queue_held(store):
        store.write_files({"sessions/x/a.json": b"new"}, delete_trees=["sessions/x"])
        assert store.exists("sessions/x/a.json")
        assert store.read_path("sessions/x/a.json") == b"new"


def test_session_recreated_in_a_transaction_is_visible_while_queued(sessions, store):
    with queue_held(store):
        recreate_in_one_transaction(sessions)
        assert sessions.load_all_screenshots(SID) == [screenshot(5)]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["a/b", "..", "../etc", ".hidden", ""])
def test_bad_session_ids_are_refused(sessions, store, bad_id):
    sessions.save_full_session(example())
    before = snapshot(store)
    calls = [
        lambda: sessions.load_metadata(bad_id),
        lambda: sessions.save_metadata(metadata(bad_id)),
        lambda: sessions.save_full_session({**example(), "id": bad_id}),
        lambda: sessions.append_screenshot(bad_id, screenshot(0)),
        lambda: sessions.delete_session(bad_id),
        lambda: sessions.save_attachment(bad_id, "a", "png", b"x"),
    ]
    for call in calls:
        with pytest.raises(BadInputError) as info:
            call()
        assert repr(bad_id)[1:-1] in str(info.value) or "empty" in str(info.value)
    assert snapshot(store) == before


def test_metadata_without_id_is_refused(sessions, store):
    before = snapshot(store)
    for call in (lambda: sessions.save_metadata({"name": "x"}),
                 lambda: sessions.save_full_session({"name": "x"})):
        with pytest.raises(BadInputError, match="id: missing"):
            call()
    with pytest.raises(BadInputError, match="summary"):
        sessions.save_metadata({**metadata(), "summary": {}})
    assert snapshot(store) == before


def test_metadata_that_is_not_json_is_named(sessions, store):
    sessions.save_metadata(metadata())
    path = f"sessions/{OTHER}/metadata.json"
    store.write_files({path: b"{not json"})
    before = snapshot(store)
    for call in (lambda: sessions.load_metadata(OTHER), lambda: sessions.load_full_session(OTHER),
                 lambda: sessions.save_summary(OTHER, {"s": 1}),
                 lambda: sessions.append_screenshot(OTHER, screenshot(0))):
        with pytest.raises(BadInputError) as info:
            call()
        assert path in str(info.value) and "not valid JSON" in str(info.value)
    assert [m["id"] for m in sessions.list_metadata()] == [SID]
    assert snapshot(store) == before


def test_chunk_index_that_does_not_exist(sessions, store):
    sessions.save_metadata(metadata())
    sessions.append_screenshot(SID, screenshot(0))
    before = snapshot(store)
    for index in (1, -1, 99, "0"):
        with pytest.raises(BadInputError) as info:
            sessions.load_screenshots_chunk(SID, index)
        message = str(info.value)
        assert SID in message and "screenshots" in message and repr(index) in message
    with pytest.raises(BadInputError, match="audioSegments chunk 0"):
        sessions.load_audio_segments_chunk(SID, 0)
    assert snapshot(store) == before


def test_other_bad_input(sessions, store):
    sessions.save_metadata(metadata())
    before = snapshot(store)
    cases = [
        (lambda: sessions.save_screenshots(SID, [1, 2]), "screenshots\\[0\\]"),
        (lambda: sessions.save_screenshots(SID, "nope"), "screenshots"),
        (lambda: sessions.save_summary(SID, {1: "non-str key"}), "summary.json"),
        (lambda: sessions.save_attachment(SID, "a", "tar.gz", b"x"), "extension"),
        (lambda: sessions.save_attachment(SID, "../a", "png", b"x"), "name"),
        (lambda: sessions.save_attachment(SID, "a", "png", "text"), "bytes"),
        (lambda: sessions.load_chunk("thumbnails", SID, 0), "unknown"),
        (lambda: sessions.list_metadata(status=3), "status"),
    ]
    for call, pattern in cases:
        with pytest.raises(BadInputError, match=pattern):
            call()
    with pytest.raises(BadInputError):
        with sessions.transaction() as tx:
            tx.write("sessions/../x", b"1")
    assert snapshot(store) == before
    assert issubclass(LayoutError, BadInputError) and issubclass(LayoutError, ValueError)


# -- cache ------------------------------------------------------------------------------------


def test_cache_helpers(sessions, store):
    sessions.save_full_session(example())
    store.flush()
    sid = example()["id"]
    sessions.clear_cache()
    assert sessions.cache_statistics().entries == 0
    sessions.load_full_session(sid)
    assert sessions.cache_statistics().entries > 0
    sessions.clear_cache(sid)
    assert sessions.cache_statistics().entries == 0
    sessions.load_full_session(sid)
    assert sessions.cache_statistics().hits >= 0
