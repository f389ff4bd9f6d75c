"""Clients of a real mount: the TypeScript reader and storage API (Node), the Rust std::fs
reader, the systemd user unit and the mount(8) helper.

One module-scoped mount holds a generated corpus written through the mount as files
(``split_session`` of ``contrib.corpus`` sessions, plus variants that exercise the
``_legacy`` record, and directories that are not sessions). What the Python session
API (``SessionStore`` over the store opened read-only beside the daemon) returns is
dumped to a JSON file; the Node tests (``contrib/tauri/test``) and the Rust program
(``contrib/rust-reader``) must read exactly those values through the mount.

The TypeScript SessionStorage writes on a second, empty mount: a plan of operations run
through it and through the Python SessionStore (on a store of its own, same clock) must
give byte-identical session trees; a recording by appends must read back equal through
the Python API; a Node recorder killed at random points must lose no flushed append.

Needs: FUSE (else skipped like every mount test); Node >= 18 with npm and the npm
registry for ``npm ci`` (TypeScript is a devDependency; skipped with a reason when
node/npm are missing); rustc (skipped with a reason when missing).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from contrib.corpus import generate_session
from fusefs import mount_helper
from mounting import FUSE_AVAILABLE, Mount, process_alive, sessionfs
from store.core.errors import BadInputError, ConflictError, FsError
from store.engine.store import Store
from store.services import session_ops
from store.core.layout import ARRAY_KINDS, LARGE_OBJECTS, split_session
from store.services.sessions import SessionStore

ROOT = Path(__file__).resolve().parents[1]
TAURI = ROOT / "contrib" / "tauri"
RUST = ROOT / "contrib" / "rust-reader"
UNIT = ROOT / "contrib" / "systemd" / "sessionfs@.service"

SEED = 9
N_SESSIONS = 12
KINDS = tuple(ARRAY_KINDS)          # screenshots, audioSegments, videoChunks

needs_fuse = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here (/dev/fuse or fusermount3 missing)")


# -- the corpus -------------------------------------------------------------------------------


def corpus() -> list[dict]:
    """Small generated sessions, some changed so that every ``_legacy`` entry is needed."""
    sessions = [generate_session(SEED, i, profile="small", attachments=False)[0] for i in range(N_SESSIONS - 1)]
    sessions.append(generate_session(SEED, N_SESSIONS - 1, profile="small", attachments=False,
                                     screenshots=45, audio_segments=130)[0])   # 3 and 2 chunks
    s = sessions
    s[1]["summary"] = None                                   # null large object
    del s[2]["audioSegments"]                                # absent array
    del s[3]["video"]["chunks"]                              # video without chunks
    s[4]["hasSummary"] = "legacy value"                      # reserved keys in the legacy doc
    s[4]["storageVersion"] = 0
    s[5]["video"] = None                                     # no video at all
    s[5]["screenshots"] = None                               # null array
    s[6] = {"summary": s[6].pop("summary"), **s[6]}          # large object first: order record
    s[7]["name"] = "Débogage 🐛 日本語 \u2028 \"quoted\" \\ back"
    s[7]["customField"] = {"nested": [1, 2.5, -0.0, 1e-7, 12345678901234, "x", None, True]}
    s[7]["__proto__"] = {"polluted": True}                   # a plain key, not a prototype
    s[8]["tags"] = ["backend", "docs"]
    s[9]["startTime"] = s[10]["startTime"]                   # a tie: ordered by id
    return sessions


def dump_json(value: object) -> bytes:
    """What SessionStore writes: 2-space indent and a final newline."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())      # committed, so a read-only Store sees it


def write_session(sessions_dir: Path, session: dict) -> None:
    files = split_session(session)
    meta = files.pop("metadata.json")
    for rel, value in files.items():
        write_file(sessions_dir / session["id"] / rel, dump_json(value))
    write_file(sessions_dir / session["id"] / "metadata.json", dump_json(meta))   # last, like the app


def python_values(store_path: Path, sessions: list[dict], search: dict) -> dict:
    """Everything the clients must read, as the Python session API returns it."""
    store = Store.open(store_path, readonly=True)
    try:
        api = SessionStore(store)
        listed = api.list_metadata()
        assert [m["id"] for m in listed] != [], "the corpus is not visible to a read-only store"
        starts = sorted({m["startTime"] for m in listed})
        some_topic = sessions[0]["topicIds"][0]
        filters = [
            {"status": "completed"},
            {"status": ["paused", "active", "interrupted"]},
            {"tags": ["backend", "docs"]},
            {"topicIds": some_topic},
            {"startAfter": starts[2], "startBefore": starts[-3]},
            {"limit": 4, "offset": 3},
            {"status": "completed", "tags": "python", "limit": 2},
        ]
        filter_results = []
        for f in filters:
            got = api.list_metadata(status=f.get("status"), start_after=f.get("startAfter"),
                                    start_before=f.get("startBefore"), tags=f.get("tags"),
                                    topic_ids=f.get("topicIds"), limit=f.get("limit"), offset=f.get("offset", 0))
            filter_results.append({"filter": f, "ids": [m["id"] for m in got]})
        per_session = {}
        for meta in listed:
            sid = meta["id"]
            chunks = {}
            for kind in KINDS:
                entry = meta["chunks"][kind]
                chunks[kind] = [api.load_chunk(kind, sid, i) for i in range(entry["chunkCount"])]
            per_session[sid] = {
                "metadata": api.load_metadata(sid),
                "chunks": chunks,
                "all": {kind: api.load_all(kind, sid) for kind in KINDS},
                "full": api.load_full_session(sid),
                "summary": api.load_summary(sid),
                "transcription": api.load_transcription(sid),
                "attachments": api.list_attachments(sid),
            }
        return {"list": listed, "filters": filter_results, "sessions": per_session, "search": search}
    finally:
        store.close()


def search_case(mnt: Path, sessions: list[dict]) -> dict:
    """Queries built from one session's name (a word; two words, so a space in the path), with what
    listing search/<query>/ gives through the mount, if the view exists."""
    if not (mnt / "search").is_dir():
        return {"available": False,
                "reason": f"{mnt}/search does not exist: this build of the mount has no search view yet"}
    session = sessions[0]
    words = sorted(re.findall(r"\b[A-Za-z]{4,}\b", session["name"]), key=len, reverse=True)
    queries = [words[0], " ".join(words[:2])] if len(words) > 1 else words[:1]
    return {"available": True, "mustInclude": [session["id"]],
            "cases": [{"query": q, "ids": os.listdir(mnt / "search" / q)} for q in queries]}


class Corpus:
    def __init__(self, mount: Mount, sessions: list[dict], expected: Path, values: dict):
        self.mount = mount
        self.sessions = sessions
        self.expected = expected
        self.values = values


@pytest.fixture(scope="module")
def client_corpus(tmp_path_factory) -> Corpus:
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    base = tmp_path_factory.mktemp("clients")
    m = Mount(base / "store", base / "mnt")
    try:
        m.start()
        sessions = corpus()
        for session in sessions:
            write_session(m.sessions, session)
        first = sessions[0]
        shot = first["screenshots"][0]["attachmentId"]
        write_file(m.sessions / first["id"] / "attachments" / f"{shot}.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
        write_file(m.sessions / "not-a-session" / "notes.txt", b"no metadata here\n")
        write_file(m.sessions / "broken-session" / "metadata.json", b"{not json\n")
        values = python_values(m.store, sessions, search_case(m.path, sessions))
        assert len(values["list"]) == N_SESSIONS
        expected = base / "expected.json"
        expected.write_bytes(orjson.dumps(values))
        yield Corpus(m, sessions, expected, values)
    finally:
        m.cleanup()


def test_corpus_round_trips_through_the_python_api(client_corpus):
    """The ground truth itself: load_full_session gives back every generated document."""
    for session in client_corpus.sessions:
        full = client_corpus.values["sessions"][session["id"]]["full"]
        assert full == session
        assert list(full) == list(session)


# -- TypeScript / Node -------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def node_build(tmp_path_factory) -> Path:
    """contrib/tauri copied, ``npm ci`` (lockfile), compiled with tsc; the core also without Node's types."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the TypeScript reader tests (install Node >= 18 and npm)")
    build = tmp_path_factory.mktemp("tauri") / "tauri"
    shutil.copytree(TAURI, build, ignore=shutil.ignore_patterns("node_modules", "dist"))
    _run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], build, timeout=300)
    tsc = [node, str(build / "node_modules" / "typescript" / "bin" / "tsc")]
    _run([*tsc, "-p", "tsconfig.json"], build, timeout=120)
    _run([*tsc, "-p", "tsconfig.core.json"], build, timeout=120)
    return build


SEARCH_TEST = "search(query) lists search/<query>/"
TAP_LINE = re.compile(r"^\s*(ok|not ok) \d+ - (.*?)(?: # (SKIP|TODO)\b ?(.*))?$")


def node_test(build: Path, tests: list[str], env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """``node --test`` on compiled test files; TAP results by test name: (ok | not ok, skip reason)."""
    proc = subprocess.run([shutil.which("node"), "--test", "--test-reporter=tap", *tests], cwd=build,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, **env))
    results = {}
    for line in proc.stdout.splitlines():
        if (m := TAP_LINE.match(line)) is not None:
            results[m.group(2)] = (m.group(1), m.group(3) and (m.group(4) or m.group(3)))
    return proc, results


STORAGE_TESTS = "dist/test/storage.test.js"


@pytest.fixture(scope="module")
def node_run(node_build, client_corpus) -> tuple[subprocess.CompletedProcess, dict[str, tuple[str, str | None]]]:
    tests = sorted(str(p.relative_to(node_build)) for p in (node_build / "dist" / "test").glob("*.test.js"))
    return node_test(node_build, [t for t in tests if t != STORAGE_TESTS],
                     {"SESSIONFS_MNT": str(client_corpus.mount.path), "SESSIONFS_EXPECTED": str(client_corpus.expected)})


def test_node_reader_reads_what_the_python_api_returns(node_run):
    """list, filters, load, progressive chunk loading, full-session merge, watch: all in Node."""
    proc, results = node_run
    print("\n".join(line.strip() for line in proc.stdout.splitlines() if " seen " in line))   # watch latency
    assert results, proc.stdout[-8000:] + proc.stderr[-2000:]
    failed = [name for name, (status, _) in results.items() if status != "ok" and name != SEARCH_TEST
              and name != "SessionReader on a sessionfs mount"]     # the suite fails with any of its tests
    assert not failed, proc.stdout[-8000:]
    for name in ("listAllMetadata returns what SessionStore.list_metadata returns, in its order",
                 "progressive loading: chunk by chunk equals load_chunk, concatenated equals load_all",
                 "loadFullSession equals load_full_session, top-level key order included",
                 "watch sees the chunk files another process creates through the mount",
                 "mergeSession restores the legacy document: null, absent, reserved fields, key order"):
        assert results.get(name, (None, None)) == ("ok", None), (name, results.get(name), proc.stdout[-4000:])


def test_node_search_lists_the_search_view(node_run, client_corpus):
    search = client_corpus.values["search"]
    if not search["available"]:
        pytest.skip(search["reason"])
    proc, results = node_run
    assert results.get(SEARCH_TEST) == ("ok", None), proc.stdout[-4000:]


# -- TypeScript storage API (SessionStorage) ---------------------------------------------------

PLAN_NOW = "2025-03-01T12:00:00.000Z"
KILL_RUNS_CI = 10


def as_js(value):
    """A value as a JavaScript app holds it: a number has no int/float distinction, so an integral
    float below 1e16 is the integer (what both APIs then write as an integer)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return int(value)
    if isinstance(value, dict):
        return {k: as_js(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_js(v) for v in value]
    return value


def app_metadata(session: dict) -> dict:
    """The fields the app saves with saveMetadata: no arrays, no large objects, video without chunks."""
    meta = {k: v for k, v in session.items() if k not in ("screenshots", "audioSegments", *LARGE_OBJECTS)}
    if isinstance(meta.get("video"), dict):
        meta["video"] = {k: v for k, v in meta["video"].items() if k != "chunks"}
    return meta


def storage_plan() -> dict:
    """Operations with the errors both APIs must raise, a 2-hour recording, and a conflict case."""
    def gen(index: int, **sizes) -> dict:
        return as_js(generate_session(SEED + 1, index, profile="small", attachments=False, **sizes)[0])

    a, b, c = gen(0, screenshots=25, audio_segments=5), gen(1, screenshots=45), gen(2)
    sa, meta = a["id"], app_metadata(a)
    v1 = (meta.get("version") or 0) + 1
    odd = {"id": "numbers", "sessionId": sa, "timestamp": a["startTime"], "attachmentId": None,
           "values": [1.5e-6, 0.1, 1e-7, 12345678901234, -0.5, 1e300, 5e-324, 2.5e16, 0],
           "text": "é 🐛 \u2028 \x00 \"quoted\" \\\\ /", "empty": {"list": [], "dict": {}}}
    ops = [
        ("saveMetadata", [meta]),
        ("saveMetadata", [{**meta, "version": v1, "name": "renamed"}]),
        ("saveMetadata", [{**meta, "version": v1}], "ConflictError"),
        ("saveMetadata", [{**meta, "name": "stale"}, v1], "ConflictError"),
        ("saveSummary", [sa, a["summary"]]),
        ("saveAudioInsights", [sa, a["audioInsights"]]),
        ("saveCanvasSpec", [sa, a["canvasSpec"]]),
        ("saveTranscription", [sa, a["fullTranscription"]]),
        ("saveContextItems", [sa, a["contextItems"]]),
        *[("appendScreenshot", [sa, shot]) for shot in a["screenshots"]],
        *[("appendAudioSegment", [sa, seg]) for seg in a["audioSegments"]],
        ("saveVideoChunks", [sa, a["video"]["chunks"][:2]]),
        ("appendVideoChunk", [sa, a["video"]["chunks"][2]]),
        ("saveSummary", [sa, None]),
        ("saveScreenshots", [sa, a["screenshots"][:7]]),
        ("appendScreenshot", [sa, odd]),
        ("appendScreenshot", ["no-such-session", a["screenshots"][0]], "NotFoundError"),
        ("appendScreenshot", [sa, "not a record"], "BadInputError"),
        ("saveMetadata", [{"id": "a/b"}], "BadInputError"),
        ("saveLargeObject", [sa, "notes", {}], "BadInputError"),
        ("saveFullSession", [b]),
        ("saveFullSession", [{**b, "screenshots": b["screenshots"][:5], "summary": None}]),
        ("migrateFromLegacy", [c]),
        ("migrateFromLegacy", [{**c, "name": "not migrated twice"}]),
        ("saveMetadata", [{"id": "deleted", "name": "soon gone"}]),
        ("appendScreenshot", ["deleted", {"id": "s", "sessionId": "deleted", "timestamp": PLAN_NOW}]),
        ("deleteSession", ["deleted"]),
    ]
    rec = as_js(generate_session(SEED + 2, 0, profile="json-only", attachments=False,
                                 screenshots=120, audio_segments=40)[0])
    return {
        "now": PLAN_NOW,
        "ops": [{"op": op[0], "args": op[1], "error": op[2] if len(op) > 2 else None} for op in ops],
        "sessions": [sa, b["id"], c["id"], "deleted"],
        "recording": {"meta": app_metadata(rec), "screenshots": rec["screenshots"],
                      "audioSegments": rec["audioSegments"], "flushEvery": 10},
        "conflict": {"meta": {"id": "conflict", "name": "two writers", "version": 1}},
    }


def python_op(api: SessionStore, name: str):
    """The Python API's method for an operation of the plan (migrateFromLegacy: skip if chunked)."""
    if name == "migrateFromLegacy":
        return lambda session: False if api.is_chunked(session["id"]) else api.save_full_session(session) or True
    return getattr(api, re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name))


def run_plan_in_python(store_path: Path, plan: dict, monkeypatch) -> None:
    errors = {"ConflictError": ConflictError, "BadInputError": BadInputError, "NotFoundError": FsError}
    monkeypatch.setattr(session_ops, "now_iso", lambda: plan["now"])
    store = Store.open(store_path, create=True)
    try:
        api = SessionStore(store)
        for i, op in enumerate(plan["ops"]):
            fn = python_op(api, op["op"])
            if op["error"] is None:
                fn(*op["args"])
                continue
            with pytest.raises(errors[op["error"]]) as raised:
                fn(*op["args"])
            assert op["error"] != "NotFoundError" or raised.value.errno == errno.ENOENT, (i, op["op"])
        store.flush()
    finally:
        store.close()


def store_tree(store: Store, base: str) -> dict[str, bytes]:
    """Every file under ``base`` in a store: relative path -> bytes."""
    out: dict[str, bytes] = {}

    def walk(rel: str) -> None:
        for name in store.list_dir(f"{base}/{rel}".rstrip("/")):
            path = f"{rel}{name}"
            try:
                out[path] = store.read_path(f"{base}/{path}")
            except FsError as exc:
                if exc.errno != errno.EISDIR:
                    raise
                walk(path + "/")

    if store.exists(base):
        walk("")
    return out


def mount_tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


class StorageRun:
    def __init__(self, mount: Mount, plan: dict, proc: subprocess.CompletedProcess, results: dict):
        self.mount, self.plan, self.proc, self.results = mount, plan, proc, results


@pytest.fixture(scope="module")
def storage_run(node_build, tmp_path_factory) -> StorageRun:
    """An empty mount on which test/storage.test.ts runs the plan, the recording and the rest."""
    if not FUSE_AVAILABLE:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    base = tmp_path_factory.mktemp("storage")
    plan = storage_plan()
    (base / "plan.json").write_bytes(orjson.dumps(plan))
    m = Mount(base / "store", base / "mnt")
    try:
        m.start()
        proc, results = node_test(node_build, [STORAGE_TESTS],
                                  {"SESSIONFS_RW_MNT": str(m.path), "SESSIONFS_PLAN": str(base / "plan.json")})
        yield StorageRun(m, plan, proc, results)
    finally:
        m.cleanup()


def test_node_storage_suite_passes_on_a_mount(storage_run):
    """Plan, recording, two-writer conflict, bad input, coalescing, failed writes, LRU: all in Node."""
    proc, results = storage_run.proc, storage_run.results
    assert results, proc.stdout[-8000:] + proc.stderr[-2000:]
    failed = [name for name, (status, _) in results.items() if status != "ok"]
    assert not failed and proc.returncode == 0, proc.stdout[-8000:]
    for name in ("the plan's operations through SessionStorage (same errors as the Python API)",
                 "a 2-hour session recorded by appends reads back equal through SessionReader",
                 "a version conflict between two writers is detected",
                 "bad input: typed errors naming the thing, nothing written"):
        assert results.get(name) == ("ok", None), (name, proc.stdout[-4000:])


def test_ts_and_python_storage_write_byte_identical_trees(storage_run, tmp_path, monkeypatch):
    """The plan through SessionStorage (on the mount) and through SessionStore (on a store of
    its own): every session directory holds the same files with the same bytes."""
    plan = storage_run.plan
    run_plan_in_python(tmp_path / "py-store", plan, monkeypatch)
    store = Store.open(tmp_path / "py-store", readonly=True)
    try:
        for sid in plan["sessions"]:
            python_files = store_tree(store, f"sessions/{sid}")
            ts_files = mount_tree(storage_run.mount.sessions / sid)
            assert (sid == "deleted") == (not python_files), sid
            assert sorted(ts_files) == sorted(python_files), sid
            for path, data in python_files.items():
                assert ts_files[path] == data, f"{sid}/{path} differs"
    finally:
        store.close()
    assert sorted(plan["sessions"][:3]) == sorted(p.name for p in storage_run.mount.sessions.iterdir()
                                                  if p.name in plan["sessions"])


def test_ts_recording_reads_back_equal_through_the_python_api(storage_run):
    rec = storage_run.plan["recording"]
    store = Store.open(storage_run.mount.store, readonly=True)
    try:
        api = SessionStore(store)
        sid = rec["meta"]["id"]
        assert api.load_all("screenshots", sid) == rec["screenshots"]
        assert api.load_all("audioSegments", sid) == rec["audioSegments"]
        full = api.load_full_session(sid)
        assert full["screenshots"] == rec["screenshots"] and full["audioSegments"] == rec["audioSegments"]
        count = len(rec["screenshots"])
        assert count > 100 and len(rec["audioSegments"]) >= count // 3
        assert api.load_metadata(sid)["chunks"]["screenshots"] == {"count": count, "chunkCount": -(-count // 20),
                                                                   "chunkSize": 20}
    finally:
        store.close()


def test_killed_node_recorder_loses_no_flushed_append(storage_run, node_build):
    """contrib/tauri/bench/kill_runs.py with 10 runs (the contrib script's default is 50)."""
    proc = _run([sys.executable, str(TAURI / "bench" / "kill_runs.py"), "--runs", str(KILL_RUNS_CI),
                 "--build", str(node_build), "--mount", str(storage_run.mount.path),
                 "--store", str(storage_run.mount.store)], ROOT, timeout=300)
    summary = json.loads(proc.stdout)
    assert summary["runs"] == KILL_RUNS_CI and summary["finalScreenshots"] >= summary["flushedScreenshots"] > 0
    print(proc.stdout)


# -- Rust ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rust_reader(tmp_path_factory) -> Path:
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("rustc is not installed: the Rust std::fs reader is not built")
    out = tmp_path_factory.mktemp("rust")
    exe = out / "sessionfs-reader"
    _run([rustc, "-O", "--edition", "2021", "-o", str(exe), str(RUST / "src" / "main.rs")], RUST, timeout=300)
    return exe


def test_rust_json_parser_unit_tests(rust_reader, tmp_path):
    exe = tmp_path / "json-tests"
    _run([shutil.which("rustc"), "--edition", "2021", "--test", "-o", str(exe), str(RUST / "src" / "main.rs")],
         RUST, timeout=300)
    _run([str(exe), "--quiet"], RUST, timeout=60)


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "str", list: "list", dict: "dict"}[type(value)]


def rust_list_summary(listed: list[dict]) -> dict:
    def count(meta, kind):
        chunks = meta.get("chunks")
        return chunks.get(kind, {}).get("count") if isinstance(chunks, dict) else None
    return {"count": len(listed), "sessions": [
        {"id": m["id"], "name": m.get("name"), "status": m.get("status"), "startTime": m.get("startTime"),
         "tags": m.get("tags"), "topicIds": m.get("topicIds"), "version": m.get("version"),
         "counts": {kind: count(m, kind) for kind in KINDS}}
        for m in listed]}


def rust_session_summary(api: SessionStore, sid: str) -> dict:
    """What sessionfs-reader load prints, computed from the Python API."""
    meta = api.load_metadata(sid)
    large = {}
    for field in LARGE_OBJECTS:
        value = api.load_large_object(sid, field)
        large[field] = ({"present": False} if value is None else
                        {"present": True, "type": _type_name(value), "size": len(value)})
    summary = api.load_summary(sid)
    arrays = {}
    for kind in KINDS:
        records = api.load_all(kind, sid)
        entry = {"count": len(records), "chunkCount": meta["chunks"][kind]["chunkCount"],
                 "ids": [r.get("id") for r in records],
                 "first": records[0] if records else None, "last": records[-1] if records else None}
        if kind == "screenshots":
            entry["ocrLines"] = sum(len(r["analysis"]["extractedText"]) for r in records
                                    if isinstance(r.get("analysis"), dict)
                                    and isinstance(r["analysis"].get("extractedText"), list))
        if kind == "audioSegments":
            total = 0.0
            for r in records:
                if isinstance(r.get("duration"), (int, float)) and not isinstance(r.get("duration"), bool):
                    total += r["duration"]
            entry["totalDuration"] = total
            entry["nonEmpty"] = sum(1 for r in records if r.get("isEmpty") is False)
        arrays[kind] = entry
    return {"id": sid, "metadata": meta, "largeObjects": large,
            "summaryKeys": list(summary) if isinstance(summary, dict) else None,
            "arrays": arrays, "attachments": api.list_attachments(sid)}


def test_rust_reader_lists_and_loads_what_the_python_api_returns(rust_reader, client_corpus):
    mnt = client_corpus.mount.path
    proc = _run([str(rust_reader), "list", str(mnt)], ROOT, timeout=60)
    assert json.loads(proc.stdout) == rust_list_summary(client_corpus.values["list"])
    store = Store.open(client_corpus.mount.store, readonly=True)
    try:
        api = SessionStore(store)
        for meta in client_corpus.values["list"]:
            proc = _run([str(rust_reader), "load", str(mnt), meta["id"]], ROOT, timeout=60)
            got = json.loads(proc.stdout)
            want = rust_session_summary(api, meta["id"])
            assert got == want, meta["id"]
            assert math.isclose(got["arrays"]["audioSegments"]["totalDuration"],
                                want["arrays"]["audioSegments"]["totalDuration"])
    finally:
        store.close()
    missing = subprocess.run([str(rust_reader), "load", str(mnt), "no-such-session"], capture_output=True, text=True)
    assert missing.returncode == 1 and "no metadata.json" in missing.stderr, missing.stderr
    usage = subprocess.run([str(rust_reader)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


# -- systemd unit, without systemd ----------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> [(key, value)], keeping repeated keys; backslash continuations joined."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def specifiers(value: str, home: Path, instance: str) -> str:
    return re.sub(r"%([%hi])", lambda m: {"%": "%", "h": str(home), "i": instance}[m.group(1)], value)


class UnitCommands:
    """The unit's commands for one instance, expanded the way systemd expands them."""

    def __init__(self, home: Path, instance: str, path_prefix: str):
        unit = parse_unit(UNIT.read_text())
        service = unit["Service"]
        self.home, self.instance = home, instance
        self.env = dict(os.environ, HOME=str(home))
        for key, value in service:
            if key == "Environment":
                name, _, val = specifiers(value, home, instance).partition("=")
                self.env[name] = val
        # A drop-in would set PATH to where sessionfs is installed (this venv).
        self.env["PATH"] = path_prefix + os.pathsep + self.env["PATH"]
        self.service = dict(service)

    def run(self, key: str, **kw) -> subprocess.CompletedProcess:
        """Run an Exec line to completion; a '-' prefix means its failure is ignored, as in systemd."""
        proc = subprocess.run(self.command(key), env=self.env, capture_output=True, text=True, **kw)
        assert proc.returncode == 0 or self.service[key].startswith("-"), f"{key} failed: {proc.stderr}"
        return proc

    def command(self, key: str) -> list[str]:
        words = shlex.split(specifiers(self.service[key].lstrip("-@:+!"), self.home, self.instance))
        out = []
        for word in words:
            if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):          # $VAR: split into words
                out += self.env.get(word[1:], "").split()
            else:                                                       # ${VAR}: one word
                out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: self.env.get(m.group(1), ""), word))
        return out


def sessionfs_on_path(tmp_path: Path) -> str:
    """A directory with the ``sessionfs`` command: this venv's console script, else a shim."""
    venv_bin = Path(sys.executable).parent
    if (venv_bin / "sessionfs").exists():
        return str(venv_bin)
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / "sessionfs"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)} "
                    f"-m store.cli \"$@\"\n")
    shim.chmod(0o755)
    return str(shim_dir)


def wait_mounted(mnt: Path, proc: subprocess.Popen, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ExecStart exited with {proc.returncode}"
        try:
            return json.loads((mnt / ".sessionfs" / "stats.json").read_bytes())["pid"]
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"{mnt} was not mounted within {timeout} s")


def test_systemd_unit_is_valid_where_systemd_analyze_exists(tmp_path):
    unit = parse_unit(UNIT.read_text())
    service = dict(unit["Service"])
    assert service["Restart"] == "on-failure"
    assert "--foreground" in service["ExecStart"] and "sessionfs mount" in service["ExecStart"]
    assert "sessionfs umount" in service["ExecStop"]
    assert dict(unit["Install"])["WantedBy"] == "default.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the unit's commands are still run by the next test")
    copy_ = tmp_path / "sessionfs@test.service"
    shutil.copy(UNIT, copy_)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    proc = subprocess.run([analyze, "verify", "--user", str(copy_)], capture_output=True, text=True, env=env)
    if "Failed to initialize manager" in proc.stderr or "RuntimeDirectory" in proc.stderr:
        proc = subprocess.run([analyze, "verify", str(copy_)], capture_output=True, text=True)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if copy_.name in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr


@needs_fuse
def test_systemd_unit_commands_mount_unmount_and_restart(tmp_path):
    """ExecStartPre + ExecStart (foreground, in the background) ... ExecStop, as systemd runs them;
    then a crash (SIGKILL: Restart=on-failure applies) and the restart's ExecStart again."""
    home = tmp_path / "home"
    home.mkdir()
    unit = UnitCommands(home, "sessions", sessionfs_on_path(tmp_path))
    mnt = home / "sessions"
    store = home / ".local" / "share" / "sessionfs-stores" / "sessions"
    assert unit.command("ExecStart")[-2:] == [str(store), str(mnt)]

    def start() -> tuple[subprocess.Popen, int]:
        unit.run("ExecStartPre", timeout=30)
        proc = subprocess.Popen(unit.command("ExecStart"), env=unit.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        return proc, wait_mounted(mnt, proc)

    proc, pid = start()
    try:
        assert pid == proc.pid or process_alive(pid)
        write_file(mnt / "sessions" / "s1" / "metadata.json", b'{"id": "s1", "name": "from the unit"}\n')
        # A crash: systemd sees the main process die on a signal and restarts it (Restart=on-failure).
        proc.kill()
        proc.wait(timeout=10)
        assert proc.returncode != 0
        proc, pid = start()             # the restart: stale mount cleaned up, store reopened
        assert (mnt / "sessions" / "s1" / "metadata.json").read_bytes().startswith(b'{"id": "s1"')
        # Logout: ExecStop commits, unmounts and waits; ExecStart's process exits 0 (no restart).
        unit.run("ExecStop", timeout=150)
        assert proc.wait(timeout=30) == 0, proc.stdout.read()
        assert not (mnt / ".sessionfs").exists()
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
            proc.kill()
            proc.wait(timeout=10)
    listing = sessionfs("cat", str(store), "sessions/s1/metadata.json")
    assert "from the unit" in listing.stdout


# -- the mount(8) helper ------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "command"), [
    (["/s", "/m"], ["sessionfs", "mount", "/s", "/m"]),
    (["/s", "/m", "-o", "rw,allow_other,cache_size=64M,noauto,user,_netdev,x-systemd.automount,nofail"],
     ["sessionfs", "mount", "/s", "/m", "--allow-other", "--cache-size", "64M"]),
    (["sessionfs#/s", "/m", "-n", "-o", "defaults", "-o", "cache-size=1G,debug", "-t", "fuse.sessionfs"],
     ["sessionfs", "mount", "/s", "/m", "--cache-size", "1G", "--debug"]),
    (["/s", "/m", "-ocomment=x,log_level=debug,allow_other,allow_other"],
     ["sessionfs", "--log-level", "debug", "mount", "/s", "/m", "--allow-other"]),
])
def test_mount_helper_translates_mount_options(argv, command):
    assert mount_helper.parse_args(argv).command() == command


@pytest.mark.parametrize(("argv", "message"), [
    (["/s"], "expected STORE and MOUNTPOINT"),
    (["/s", "/m", "-o", "ro"], "read-only mounts are not supported"),
    (["/s", "/m", "-r"], "read-only mounts are not supported"),
    (["/s", "/m", "-o", "bogus=1"], "unknown mount option 'bogus=1'"),
    (["/s", "/m", "-t", "ext4"], "this helper mounts fuse.sessionfs"),
    (["/s", "/m", "-o"], "needs a value"),
])
def test_mount_helper_refuses_what_it_cannot_do(argv, message):
    with pytest.raises(mount_helper.HelperError, match=re.escape(message)):
        mount_helper.parse_args(argv)


def test_mount_helper_sloppy_and_fake(capsys):
    assert mount_helper.main(["/s", "/m", "-s", "-f", "-o", "bogus,allow_other"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "sessionfs mount /s /m --allow-other"
    assert "ignoring unknown option 'bogus'" in err


def helper_command() -> list[str]:
    script = Path(sys.executable).parent / "mount.fuse.sessionfs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fusefs.mount_helper"]


def allow_other_permitted() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        return any(line.strip() == "user_allow_other" for line in Path("/etc/fuse.conf").read_text().splitlines())
    except OSError:
        return False


def mountinfo(mnt: Path) -> tuple[str, str] | None:
    """(fstype, super options) of the mount at ``mnt``."""
    target = os.path.realpath(mnt)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == target:
            rest = fields[fields.index("-") + 1:]
            return rest[0], rest[2]
    return None


@needs_fuse
def test_mount_helper_mounts_as_mount8_calls_it(tmp_path):
    """``mount.fuse.sessionfs STORE MNT -o ...`` as mount(8) runs it for fstab / ``mount -t fuse.sessionfs``."""
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    mnt.mkdir()
    opts = "rw,noauto,user,_netdev,x-systemd.automount,cache_size=64M"
    if allow_other_permitted():
        opts += ",allow_other"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([*helper_command(), str(store), str(mnt), "-n", "-o", opts], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    try:
        fstype, options = mountinfo(mnt)
        assert fstype == "fuse.sessionfs"
        assert ("allow_other" in options.split(",")) == ("allow_other" in opts)
        write_file(mnt / "sessions" / "s1" / "metadata.json", b'{"id": "s1"}\n')
        assert json.loads((mnt / ".sessionfs" / "stats.json").read_bytes())["pid"] > 0
    finally:
        sessionfs("umount", str(mnt))
    assert mountinfo(mnt) is None
    assert "s1" in sessionfs("ls", str(store), "sessions").stdout
    again = subprocess.run([*helper_command(), str(store), str(tmp_path / "missing"), "-o", "rw"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == mount_helper.EXIT_MOUNT_FAILURE
    assert "missing" in again.stderr and "Traceback" not in again.stderr
