"""Legacy migration: import, verify, record, resume, export (rollback), status, finalize."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from contrib.corpus import dumps_session, generate_session, write_legacy_store
from checks import LEGACY_EXAMPLE, tree_digest
from store import Store
from store.core import legacy as legacy_mod
from store.core.layout import attachment_refs
from store.core.legacy import LegacyError, Limits
from store.services.migrate import Migrator, load_records
from store.services.migrate_status import migration_status, parse_duration
from store.services.migrate_export import export_sessions
from store.services.sessions import SessionStore
from store.backends.catalog.sqlite.view import sql

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = LEGACY_EXAMPLE
CORPUS_COUNT = 200


# -- helpers --------------------------------------------------------------------------------

def run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "store.cli", *map(str, args)], capture_output=True,
                          cwd=ROOT, env=env, timeout=timeout)


def check_refcounts(store: Store) -> None:
    db = store.catalog.reader()
    wrong = sql(db).execute("SELECT c.id, c.refcount, count(f.chunk_id) FROM chunks c "
                       "LEFT JOIN file_chunks f ON f.chunk_id = c.id GROUP BY c.id "
                       "HAVING c.refcount != count(f.chunk_id)").fetchall()
    assert wrong == [], f"chunks whose refcount is not their number of references: {wrong[:5]}"
    dangling = sql(db).execute("SELECT count(*) FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id "
                          "WHERE c.id IS NULL").fetchone()[0]
    assert dangling == 0
    assert sql(db).execute("SELECT count(*) FROM inodes WHERE nlink = 0").fetchone()[0] == 0


_INDEX: dict[Path, tuple[float, dict[str, list[Path]]]] = {}


def legacy_attachment(legacy_dir: Path, attachment_id: str) -> tuple[str, bytes]:
    directory = legacy_dir / "attachments"
    mtime = directory.stat().st_mtime
    if _INDEX.get(directory, (None,))[0] != mtime:
        index: dict[str, list[Path]] = {}
        for p in directory.iterdir():
            index.setdefault(p.name.rpartition(".")[0], []).append(p)
        _INDEX[directory] = (mtime, index)
    names = _INDEX[directory][1].get(attachment_id, [])
    assert len(names) == 1, (attachment_id, names)
    return names[0].name, names[0].read_bytes()


def assert_session_equals_legacy(sessions: SessionStore, legacy_dir: Path, sid: str) -> None:
    original = orjson.loads((legacy_dir / "sessions" / f"{sid}.json").read_bytes())
    assert sessions.load_full_session(sid) == original
    refs = attachment_refs(original)
    assert sorted(sessions.list_attachments(sid)) == sorted(legacy_attachment(legacy_dir, r)[0] for r in refs)
    for ref in refs:
        _, data = legacy_attachment(legacy_dir, ref)
        assert sessions.load_attachment(sid, ref) == data


def store_session_ids(store: Store) -> set[str]:
    return set(store.list_dir("sessions"))


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("legacy") / "legacy"
    write_legacy_store(out, CORPUS_COUNT, seed=7, profile="small")
    return out


@pytest.fixture(scope="module")
def imported(corpus, tmp_path_factory):
    """The 200-session corpus imported with the CLI (--jobs 2, --report); (store path, report, before-hash)."""
    store = tmp_path_factory.mktemp("imported") / "store"
    before = tree_digest(corpus)
    assert run_cli("init", store).returncode == 0
    report = store.parent / "report.json"
    proc = run_cli("import", store, corpus, "--jobs", "2", "--batch", "8", "--report", report)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    assert b"imported 200 sessions" in proc.stdout
    return store, json.loads(report.read_text()), before


# -- the pure parts -------------------------------------------------------------------------------

def test_canonical_digest_is_value_equality():
    a = {"b": [1, {"y": 2, "x": "s"}], "a": None}
    b = {"a": None, "b": [1, {"x": "s", "y": 2}]}
    assert legacy_mod.canonical_digest(a) == legacy_mod.canonical_digest(b)
    assert legacy_mod.canonical_digest(a) != legacy_mod.canonical_digest({**a, "a": 0})


def test_fast_attachment_ids_agree_with_the_full_walk():
    for i in range(5):
        session, _ = generate_session(3, i, profile="small", attachments=False)
        data = dumps_session(session)
        assert legacy_mod.session_attachment_ids(session, data) == attachment_refs(session)
    # an attachmentId somewhere else: the fast path must notice and walk
    session["contextItems"] = [{"nested": {"attachmentId": "elsewhere-1"}}]
    data = dumps_session(session)
    assert "elsewhere-1" in legacy_mod.session_attachment_ids(session, data)


@pytest.mark.parametrize("doc, expect", [
    ([], "expected a JSON object"),
    ({"name": "x"}, "id: missing"),
    ({"id": 5}, "id: expected a string"),
    ({"id": "../../x"}, "not a safe name"),
    ({"id": "ok", "tags": "a"}, "tags: expected an array of strings"),
    ({"id": "ok", "screenshots": "nope"}, "screenshots: expected an array of objects"),
    ({"id": "ok", "version": "3"}, "version: expected an integer"),
    ({"id": "ok", "screenshots": [{"attachmentId": 7}]}, "screenshots[0].attachmentId"),
    ({"id": "ok", "video": {"chunks": 3}}, "video.chunks"),
])
def test_check_session_names_the_culprit(doc, expect):
    with pytest.raises(LegacyError) as e:
        legacy_mod.check_session(doc)
    assert expect in e.value.reason


def test_string_bound_and_errors_pickle():
    doc = {"id": "s", "summary": {"text": "x" * 101}}
    with pytest.raises(LegacyError) as e:
        legacy_mod.check_session(doc, limits=Limits(max_string_chars=100))
    assert "summary.text" in e.value.reason and "101" in e.value.reason
    again = pickle.loads(pickle.dumps(e.value))
    assert (again.stage, again.reason, again.session_id) == ("validate", e.value.reason, "s")
    assert parse_duration("30d") == 30 * 86400 and parse_duration("0s") == 0 and parse_duration("2h") == 7200
    with pytest.raises(ValueError):
        parse_duration("soon")


# -- imports ----------------------------------------------------------------------------------------

def test_example_store_imports_and_exports_back(tmp_path):
    before = tree_digest(EXAMPLE)
    with Store.open(tmp_path / "store", create=True) as store:
        report = Migrator(store).import_dir(EXAMPLE)
        assert [o.status for o in report.outcomes] == ["imported"]
        assert report.outcomes[0].attachments == 5
        sessions = SessionStore(store)
        sid = report.outcomes[0].session_id
        assert_session_equals_legacy(sessions, EXAMPLE, sid)
        meta = sessions.load_metadata(sid)
        assert meta["chunks"]["screenshots"]["count"] == 3 and meta["storageVersion"] == 1
        assert store.list_dir(f"sessions/{sid}/attachments")
        result = export_sessions(store, tmp_path / "out", legacy=True)
    assert result.errors == [] and result.sessions == [sid]
    for path in (EXAMPLE / "sessions").iterdir():
        assert orjson.loads((tmp_path / "out" / "sessions" / path.name).read_bytes()) == orjson.loads(path.read_bytes())
    for path in (EXAMPLE / "attachments").iterdir():
        assert (tmp_path / "out" / "attachments" / path.name).read_bytes() == path.read_bytes()
    assert tree_digest(EXAMPLE) == before


def test_generated_corpus_imports_and_every_session_exports_back(imported, corpus):
    store_path, report, before = imported
    assert report["totals"]["imported"] == CORPUS_COUNT and report["failed"] == []
    assert report["attachments_not_imported"] == []
    with Store.open(store_path, readonly=True) as store:
        sessions = SessionStore(store)
        ids = sorted(p.stem for p in (corpus / "sessions").iterdir())
        assert sorted(store_session_ids(store)) == ids
        for sid in ids:
            assert_session_equals_legacy(sessions, corpus, sid)
        records = load_records(store.catalog.reader())
        assert len(records) == CORPUS_COUNT and {r.status for r in records} == {"verified"}
        assert sql(store.catalog.reader()).execute("SELECT count(*) FROM sessions").fetchone()[0] == CORPUS_COUNT
        check_refcounts(store)
        stats = store.statistics()
        assert stats.dedup_ratio > 1.0            # shared screenshots are stored once
    assert tree_digest(corpus) == before


def test_rerun_skips_everything_and_export_legacy_round_trips(imported, corpus, tmp_path):
    store_path, _, before = imported
    proc = run_cli("import", store_path, corpus, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert b"imported 0 sessions" in proc.stdout and b"200 already imported" in proc.stdout
    out = tmp_path / "rollback"
    proc = run_cli("export", store_path, out, "--legacy")
    assert proc.returncode == 0, proc.stderr
    for path in (corpus / "sessions").iterdir():
        assert orjson.loads((out / "sessions" / path.name).read_bytes()) == orjson.loads(path.read_bytes())
        # the generator writes like the app: the rollback is even byte-identical
        assert (out / "sessions" / path.name).read_bytes() == path.read_bytes()
    assert sorted(p.name for p in (out / "attachments").iterdir()) == \
        sorted(p.name for p in (corpus / "attachments").iterdir())
    for path in (corpus / "attachments").iterdir():
        assert (out / "attachments" / path.name).read_bytes() == path.read_bytes()
    # a rollback store imports again into a fresh store, and status is clean
    proc = run_cli("migrate-status", store_path, "--json")
    status = json.loads(proc.stdout)
    assert status["counts"]["verified"] == CORPUS_COUNT and status["originals"] == {"identical": CORPUS_COUNT}
    assert tree_digest(corpus) == before


def test_export_of_the_layout_copies_plain_files(imported, tmp_path):
    store_path, _, _ = imported
    with Store.open(store_path, readonly=True) as store:
        sid = sorted(store_session_ids(store))[0]
        result = export_sessions(store, tmp_path / "plain", [sid], legacy=False)
        assert result.errors == [] and result.sessions == [sid]
        base = tmp_path / "plain" / "sessions" / sid
        files = sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
        assert "metadata.json" in files and "screenshots/chunk-001.json" in files
        for rel in files:
            assert (base / rel).read_bytes() == store.read_path(f"sessions/{sid}/{rel}")
        again = export_sessions(store, tmp_path / "plain", [sid], legacy=False)
        assert again.unchanged == len(files) and again.files == 0
        missing = export_sessions(store, tmp_path / "plain", ["no-such-session"], legacy=True)
        assert missing.errors and "no session" in missing.errors[0]["reason"]


# -- broken input -----------------------------------------------------------------------------------

def make_broken_corpus(root: Path) -> dict[str, str]:
    """10 good sessions plus broken files; returns {file name: expected reason fragment}."""
    write_legacy_store(root, 10, seed=21, profile="small")
    sessions = root / "sessions"
    good = sorted(sessions.iterdir())
    bad: dict[str, str] = {}

    def make(index: int, mutate) -> tuple[dict, str]:
        session, files = generate_session(22, index, profile="small")
        for name, data in files.items():
            (root / "attachments" / name).write_bytes(data)
        mutate(session)
        return session, session["id"] if isinstance(session.get("id"), str) else f"bad-{index}"

    truncated = good[0].read_bytes()
    session, sid = make(1, lambda s: None)
    (sessions / f"{sid}.json").write_bytes(dumps_session(session)[: len(truncated) // 2])
    bad[f"{sid}.json"] = "truncated JSON"

    session, sid = make(2, lambda s: s.update(tags="backend", screenshots=5))
    (sessions / f"{sid}.json").write_bytes(dumps_session(session))
    bad[f"{sid}.json"] = "expected an array"

    session, sid = make(3, lambda s: None)
    (sessions / f"{sid}.json").write_bytes(dumps_session(session))
    missing = session["screenshots"][4]["attachmentId"]
    next((root / "attachments").glob(f"{missing}.*")).unlink()
    bad[f"{sid}.json"] = f"missing attachment '{missing}'"

    session, _ = make(4, lambda s: s.update(id="../../x"))
    (sessions / "escape.json").write_bytes(dumps_session(session))
    bad["escape.json"] = "not a safe name"

    (sessions / "00000000-0000-4000-8000-0000000000ee.json").write_bytes(b"")
    bad["00000000-0000-4000-8000-0000000000ee.json"] = "empty file (0 bytes)"

    session, sid = make(5, lambda s: s.update(fullTranscription="word " * (Limits().max_string_chars // 5 + 10)))
    (sessions / f"{sid}.json").write_bytes(dumps_session(session))
    bad[f"{sid}.json"] = "exceeds the bound"

    session, sid = make(6, lambda s: None)
    (sessions / "not-its-id.json").write_bytes(dumps_session(session))
    bad["not-its-id.json"] = "file name says session 'not-its-id'"

    (sessions / "00000000-0000-4000-8000-0000000000ff.json").write_bytes(b"\xff\xfe{not utf8")
    bad["00000000-0000-4000-8000-0000000000ff.json"] = "invalid JSON"
    return bad


def test_broken_files_fail_alone_with_reasons(tmp_path):
    legacy = tmp_path / "legacy"
    bad = make_broken_corpus(legacy)
    good_ids = sorted(p.stem for p in (legacy / "sessions").iterdir() if p.name not in bad)
    assert len(good_ids) == 10
    os.chmod(legacy / "sessions", 0o555)         # read-only: the importer never needs to write there
    before = tree_digest(legacy)
    store_path = tmp_path / "store"
    assert run_cli("init", store_path).returncode == 0
    report_path = tmp_path / "report.json"
    proc = run_cli("import", store_path, legacy, "--report", report_path, "--no-progress")
    assert proc.returncode == 3, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["totals"]["imported"] == 10 and report["totals"]["failed"] == len(bad)
    failed = {Path(f["source"]).name: f for f in report["failed"]}
    assert set(failed) == set(bad)
    for name, fragment in bad.items():
        assert fragment in failed[name]["reason"], (name, failed[name])
        assert name in proc.stdout.decode()             # listed at the end, with the reason
    assert failed["escape.json"]["stage"] == "validate"
    assert tree_digest(legacy) == before
    with Store.open(store_path) as store:
        assert sorted(store_session_ids(store)) == good_ids        # no partial session of a failure
        sessions = SessionStore(store)
        for sid in good_ids:
            assert_session_equals_legacy(sessions, legacy, sid)
        assert store.list_dir("") == ["sessions"]
        check_refcounts(store)
        records = load_records(store.catalog.reader())
        assert sorted(r.status for r in records) == ["failed"] * len(bad) + ["verified"] * 10
        status = migration_status(store)
        assert {Path(r["source"]).name: r["reason"] for r in status["failed"]}.keys() == bad.keys()
    # a rerun imports nothing new, reports the same failures, still changes nothing
    proc = run_cli("import", store_path, legacy, "--no-progress")
    assert proc.returncode == 3 and b"10 already imported" in proc.stdout
    assert tree_digest(legacy) == before
    os.chmod(legacy / "sessions", 0o755)


def test_a_session_that_fails_verification_is_removed_again(tmp_path, monkeypatch):
    legacy = tmp_path / "legacy"
    write_legacy_store(legacy, 3, seed=5, profile="small")
    real = legacy_mod.split_to_bytes

    def lossy(doc):                     # a splitter bug: renames the second session
        files = real(doc)
        if doc["id"].startswith(sorted(p.stem for p in (legacy / "sessions").iterdir())[1]):
            meta = orjson.loads(files["metadata.json"])
            meta["name"] = "changed by a bug"
            files["metadata.json"] = orjson.dumps(meta)
        return files

    monkeypatch.setattr(legacy_mod, "split_to_bytes", lossy)
    with Store.open(tmp_path / "store", create=True) as store:
        report = Migrator(store).import_dir(legacy)
        assert sorted(o.status for o in report.outcomes) == ["failed", "imported", "imported"]
        bad = report.failed[0]
        assert bad.stage == "verify" and "differ" in bad.reason
        assert bad.session_id not in store_session_ids(store)
        check_refcounts(store)
        monkeypatch.setattr(legacy_mod, "split_to_bytes", real)
        again = Migrator(store).import_dir(legacy)
        assert sorted(o.status for o in again.outcomes) == ["imported", "skipped", "skipped"]
        assert_session_equals_legacy(SessionStore(store), legacy, bad.session_id)


def test_never_overwrites_or_duplicates_a_session(tmp_path):
    legacy = tmp_path / "legacy"
    write_legacy_store(legacy, 3, seed=9, profile="small")
    copy = tmp_path / "copy"
    shutil.copytree(legacy, copy)
    ids = sorted(p.stem for p in (legacy / "sessions").iterdir())
    changed = orjson.loads((copy / "sessions" / f"{ids[1]}.json").read_bytes())
    changed["name"] = "edited elsewhere"
    (copy / "sessions" / f"{ids[1]}.json").write_bytes(dumps_session(changed))
    with Store.open(tmp_path / "store", create=True) as store:
        sessions = SessionStore(store)
        sessions.save_metadata({"id": ids[2], "name": "made by the app"})     # already in the store
        m = Migrator(store)
        first = {o.session_id: o for o in m.import_dir(legacy).outcomes}
        assert first[ids[0]].status == first[ids[1]].status == "imported"
        assert first[ids[2]].status == "failed" and "already exists in the store" in first[ids[2]].reason
        second = {o.session_id: o for o in m.import_dir(copy).outcomes}
        assert second[ids[0]].status == "skipped" and "already imported from" in second[ids[0]].reason
        assert second[ids[1]].status == "failed" and "different content" in second[ids[1]].reason
        assert sessions.load_metadata(ids[2])["name"] == "made by the app"
        assert sessions.load_full_session(ids[1])["name"] != "edited elsewhere"
        active = [r for r in load_records(store.catalog.reader()) if r.status in ("imported", "verified")]
        assert sorted(r.session_id for r in active) == ids[:2]


def test_import_file_and_the_dropped_file_path(tmp_path):
    legacy = tmp_path / "legacy"
    write_legacy_store(legacy, 5, seed=13, profile="small")
    files = sorted((legacy / "sessions").iterdir())
    with Store.open(tmp_path / "store", create=True) as store:
        m = Migrator(store)
        outcome = m.import_file(files[0])
        assert outcome.status == "imported" and outcome.attachments > 0
        assert m.import_file(files[0]).status == "skipped"
        # the mount's import/: legacy files and attachments dropped into the store tree
        import_ino = m.ensure_import_dir()
        for path in (legacy / "attachments").iterdir():
            store.write_files({f"import/attachments/{path.name}": path.read_bytes()})
        # left from before the mount started: picked up by start(rescan=True)
        store.write_files({"import/b.json": files[1].read_bytes(), "import/broken.json": b'{"id": "x", '})
        store.settle()
        touched = []
        m.add_entry_listener(touched.extend)
        m.start(rescan=True)
        try:
            assert m.wait_idle(30)
            progress = m.progress()
            assert (progress.state, progress.imported, progress.failed) == ("idle", 1, 1)
            # written through the mount and closed: release -> file_closed(ino)
            store.write_files({"import/c.json": files[2].read_bytes(), "import/notes.txt": b"not a session"})
            store.settle()
            assert m.file_closed(store.resolve("import/c.json"))
            assert not m.file_closed(store.resolve("import/notes.txt"))
            # rsync-style: a temporary name renamed into place -> entry_renamed(parent, name)
            store.write_files({"import/.d.json.tmp": files[3].read_bytes()})
            store.settle()
            store.rename(import_ino, b".d.json.tmp", import_ino, b"d.json")
            assert m.entry_renamed(import_ino, b"d.json") and not m.entry_renamed(import_ino, b".x.json")
            assert m.wait_idle(30)
            progress = m.progress()
            assert (progress.state, progress.imported, progress.failed) == ("idle", 2, 0)
            assert progress.recent_failures[0][0] == "store:import/broken.json"
            assert progress.as_dict()["recent_failures"][0]["reason"].startswith("invalid JSON")
        finally:
            m.stop()
        sessions = SessionStore(store)
        for f in files[1:4]:
            assert_session_equals_legacy(sessions, legacy, f.stem)
        names = set(store.list_dir("import"))
        assert names == {"attachments", "notes.txt", "broken.json", "broken.json.error"}   # imported ones left
        assert b"truncated JSON" in store.read_path("import/broken.json.error")
        assert {("sessions", files[1].stem), ("import", "b.json"), ("import", "broken.json.error")} <= set(touched)
        rec = {r.source: r for r in load_records(store.catalog.reader())}
        assert rec["store:import/b.json"].status == "verified"
        assert rec["store:import/broken.json"].status == "failed"
        check_refcounts(store)


def test_pause_resume_and_cancel(tmp_path):
    legacy = tmp_path / "legacy"
    write_legacy_store(legacy, 6, seed=17, profile="small")
    files = sorted((legacy / "sessions").iterdir())
    with Store.open(tmp_path / "store", create=True) as store:
        m = Migrator(store)
        m.pause()
        m.start()
        try:
            for f in files[:3]:
                m.submit(f)
            time.sleep(0.3)
            p = m.progress()
            assert p.state == "paused" and p.imported == 0 and p.sessions_total == 3
            m.resume()
            assert m.wait_idle(30)
            p = m.progress()
            assert (p.state, p.imported, p.sessions_done, p.bytes_done) == \
                ("idle", 3, 3, sum(f.stat().st_size for f in files[:3]))
            assert {o for o in store_session_ids(store)} == {f.stem for f in files[:3]}
            # cancel drops what is queued; the session in progress completes or is not written
            m.pause()
            for f in files[3:]:
                m.submit(f)
            m.cancel()
            assert m.wait_idle(30)
            assert store_session_ids(store) == {f.stem for f in files[:3]}
        finally:
            m.stop()
        # import_dir can be cancelled from another thread and resumed later
        m2 = Migrator(store)
        done = []
        m2.pause()
        t = threading.Thread(target=lambda: done.append(m2.import_dir(legacy)))
        t.start()
        time.sleep(0.3)
        assert m2.progress().state == "paused"
        m2.cancel()
        t.join(30)
        assert done[0].interrupted
        report = m2.import_dir(legacy)
        assert not report.interrupted and len(report.imported) == 3 and len(report.skipped) == 3


def test_status_and_finalize(tmp_path):
    legacy = tmp_path / "legacy"
    write_legacy_store(legacy, 4, seed=19, profile="small")
    (legacy / "sessions" / "broken.json").write_bytes(b"{")
    files = sorted(p for p in (legacy / "sessions").iterdir() if p.name != "broken.json")
    originals = {f.stem: orjson.loads(f.read_bytes()) for f in files}
    store_path = tmp_path / "store"
    with Store.open(store_path, create=True) as store:
        Migrator(store).import_dir(legacy)
    # an original edited after import is reported, and never deleted
    edited = orjson.loads(files[0].read_bytes())
    edited["name"] = "edited after import"
    files[0].write_bytes(dumps_session(edited))
    proc = run_cli("migrate-status", store_path)
    assert proc.returncode == 0
    assert b"3 identical" in proc.stdout and b"1 changed" in proc.stdout and b"broken.json" in proc.stdout
    proc = run_cli("migrate-finalize", store_path, "--older-than", "30d")
    assert b"deleted 0 original files" in proc.stdout and all(f.exists() for f in files)
    proc = run_cli("migrate-finalize", store_path, "--older-than", "0s", "--dry-run", "--json")
    dry = json.loads(proc.stdout)
    assert sorted(p for p in dry["deleted"] if p.endswith(".json")) == sorted(map(str, files[1:]))
    assert all(f.exists() for f in files)
    before_attachments = set((legacy / "attachments").iterdir())
    proc = run_cli("migrate-finalize", store_path, "--older-than", "0s", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    deleted = set(result["deleted"])
    assert {str(f) for f in files[1:]} <= deleted and str(files[0]) not in deleted
    assert files[0].exists() and (legacy / "sessions" / "broken.json").exists()
    # attachments of the kept session (files[0]) are kept; those only the finalized used are gone
    kept_refs = set(attachment_refs(edited))
    for path in before_attachments:
        if path.name.rpartition(".")[0] in kept_refs:
            assert path.exists(), path
    assert any(str(p) in deleted for p in before_attachments)
    assert all(Path(p).exists() is False for p in deleted)
    with Store.open(store_path, readonly=True) as store:
        status = migration_status(store)
        assert status["counts"]["finalized"] == 3 and status["counts"]["verified"] == 1
        assert status["originals"].get("deleted") == 3
        sessions = SessionStore(store)
        for f in files[1:]:                          # the store still has every finalized session, whole
            assert sessions.load_full_session(f.stem) == originals[f.stem]


def test_memory_stays_bounded_for_one_big_file(tmp_path):
    """A ~40 MB legacy session imports within a few times its size (peak RSS, child process)."""
    session, _ = generate_session(4, 0, profile="small", attachments=False)
    record = session["screenshots"][0]
    record["analysis"]["extractedText"] = [f"line {i} " + "lorem ipsum dolor sit amet " * 3 for i in range(400)]
    session["screenshots"] = [dict(record, id=f"s-{i}", sequenceNumber=i, attachmentId=None)
                              for i in range(1000)]
    session["audioSegments"] = [dict(s, attachmentId=None) for s in session["audioSegments"]]
    data = dumps_session(session)
    legacy = tmp_path / "legacy"
    (legacy / "sessions").mkdir(parents=True)
    (legacy / "sessions" / f"{session['id']}.json").write_bytes(data)
    code = (
        "import resource, sys\n"
        "from store import Store\nfrom store.services.migrate import Migrator\n"
        "store = Store.open(sys.argv[1], create=True)\nm = Migrator(store)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = m.import_dir(sys.argv[2])\nstore.close()\n"
        "assert len(r.imported) == 1, r.as_dict()\n"
        "print(base * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code, tmp_path / "store", legacy], capture_output=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    base, peak = map(int, proc.stdout.split())
    growth = peak - base
    assert len(data) > 30e6
    print(f"peak RSS grew by {growth / 1e6:.0f} MB ({growth / len(data):.1f}x) for a {len(data) / 1e6:.0f} MB file")
    assert growth < 5 * len(data), f"peak grew by {growth / 1e6:.0f} MB for a {len(data) / 1e6:.0f} MB file"
