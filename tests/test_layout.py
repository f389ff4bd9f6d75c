"""Tests of store.core.layout: the chunked session layout and its exact round trip. No disk writes."""

import copy
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks import LEGACY_EXAMPLE
from store.core.layout import (
    ARRAY_KINDS,
    LARGE_OBJECTS,
    LEGACY_KEY,
    METADATA_FILE,
    RESERVED_KEYS,
    STORAGE_VERSION,
    ArrayKind,
    LayoutError,
    attachment_refs,
    build_manifest_entry,
    chunk_file_name,
    chunk_path,
    chunk_records,
    merge_session,
    parse_chunk_file_name,
    split_session,
    validate_name,
    validate_session_id,
)

LEGACY_STORE = LEGACY_EXAMPLE
EXAMPLE_ID = "6f1c2a4e-3b7d-4c1e-9a55-2d8e0f4b7c11"
SID = "00000000-0000-4000-8000-000000000001"


def example() -> dict:
    return json.loads((LEGACY_STORE / "sessions" / f"{EXAMPLE_ID}.json").read_text())


def assert_round_trip(session: dict) -> dict[str, object]:
    original = copy.deepcopy(session)
    files = split_session(session)
    assert session == original, "split_session must not modify its input"
    merged = merge_session(files)
    assert merged == original
    assert list(merged) == list(original)
    # The files are plain JSON: the same holds after encoding every value.
    assert merge_session({path: orjson.dumps(value) for path, value in files.items()}) == original
    return files


def screenshot(i: int, sid: str = SID) -> dict:
    return {
        "id": f"shot-{i}",
        "sessionId": sid,
        "sequenceNumber": i,
        "attachmentId": f"att-{i}",
        "analysis": {"summary": f"s{i}", "extractedText": [f"line {i}"]},
    }


# --- the example legacy session ------------------------------------------------------------


def test_example_round_trip():
    session = example()
    files = assert_round_trip(session)
    assert set(files) == {
        METADATA_FILE,
        *LARGE_OBJECTS.values(),
        "screenshots/chunk-001.json",
        "audio-segments/chunk-001.json",
        "video-chunks/chunk-001.json",
    }
    meta = files[METADATA_FILE]
    assert len(orjson.dumps(meta)) < 10_000
    assert not set(meta) & {"screenshots", "audioSegments", *LARGE_OBJECTS}
    assert meta["video"] == {k: v for k, v in session["video"].items() if k != "chunks"}
    assert meta["chunks"] == {
        "screenshots": {"count": 3, "chunkCount": 1, "chunkSize": 20},
        "audioSegments": {"count": 2, "chunkCount": 1, "chunkSize": 100},
        "videoChunks": {"count": 1, "chunkCount": 1, "chunkSize": 100},
    }
    assert [meta[f] for f in ("hasSummary", "hasAudioInsights", "hasCanvasSpec", "hasTranscription", "hasVideo")] == [True] * 5
    assert meta["storageVersion"] == STORAGE_VERSION
    # The example has the arrays in the middle of the document: only their order is recorded.
    assert set(meta[LEGACY_KEY]) == {"order"}
    assert files["screenshots/chunk-001.json"] == {
        "sessionId": EXAMPLE_ID,
        "chunkIndex": 0,
        "screenshots": session["screenshots"],
    }
    assert files["audio-segments/chunk-001.json"]["segments"] == session["audioSegments"]
    assert files["video-chunks/chunk-001.json"]["chunks"] == session["video"]["chunks"]
    assert files["transcription.json"] == session["fullTranscription"]


def test_example_attachment_refs_exist():
    refs = attachment_refs(example())
    assert len(refs) == 5
    stems = {p.stem for p in (LEGACY_STORE / "attachments").iterdir()}
    assert set(refs) == stems


# --- synthetic sessions --------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 20, 21, 250])
def test_screenshot_counts(n):
    session = {"id": SID, "name": "n", "screenshots": [screenshot(i) for i in range(n)]}
    files = assert_round_trip(session)
    chunk_count = -(-n // 20)
    paths = sorted(p for p in files if p.startswith("screenshots/"))
    assert paths == [f"screenshots/chunk-{i + 1:03d}.json" for i in range(chunk_count)]
    for i, path in enumerate(paths):
        chunk = files[path]
        assert chunk["chunkIndex"] == i and chunk["sessionId"] == SID
        assert chunk["screenshots"] == session["screenshots"][i * 20 : (i + 1) * 20]
    assert files[METADATA_FILE]["chunks"]["screenshots"] == {
        "count": n,
        "chunkCount": chunk_count,
        "chunkSize": 20,
    }
    assert files[METADATA_FILE][LEGACY_KEY] == {"absent": ["audioSegments"]}


def test_audio_and_video_chunk_sizes():
    segments = [{"id": f"a{i}", "attachmentId": f"w{i}"} for i in range(250)]
    chunks = [{"id": f"v{i}"} for i in range(101)]
    session = {"id": SID, "audioSegments": segments, "video": {"path": "v.mp4", "chunks": chunks}}
    files = assert_round_trip(session)
    assert [len(files[f"audio-segments/chunk-{i:03d}.json"]["segments"]) for i in (1, 2, 3)] == [100, 100, 50]
    assert [len(files[f"video-chunks/chunk-{i:03d}.json"]["chunks"]) for i in (1, 2)] == [100, 1]
    assert files[METADATA_FILE]["video"] == {"path": "v.mp4"}


EDGE_SESSIONS = {
    "only id": {"id": SID},
    "empty arrays": {"id": SID, "screenshots": [], "audioSegments": []},
    "null arrays": {"id": SID, "screenshots": None, "audioSegments": None},
    "video null": {"id": SID, "screenshots": [], "audioSegments": [], "video": None},
    "video without chunks": {"id": SID, "screenshots": [], "audioSegments": [], "video": {"path": "p"}},
    "video empty": {"id": SID, "screenshots": [], "audioSegments": [], "video": {}},
    "video chunks empty": {"id": SID, "screenshots": [], "audioSegments": [], "video": {"chunks": []}},
    "video chunks null": {"id": SID, "screenshots": [], "audioSegments": [], "video": {"chunks": None}},
    "video chunks first": {"id": SID, "video": {"chunks": [{"id": "c"}], "path": "p"}},
    "large objects null": {"id": SID, **dict.fromkeys(LARGE_OBJECTS)},
    "large objects falsy": {
        "id": SID,
        "summary": {},
        "audioInsights": False,
        "canvasSpec": 0,
        "fullTranscription": "",
        "contextItems": [],
    },
    "null scalar fields": {"id": SID, "name": None, "endTime": None, "trackingNoteId": None},
    "reserved keys present": {
        "id": SID,
        "storageVersion": 7,
        "hasSummary": "yes",
        "hasVideo": None,
        "chunks": [1, 2],
        LEGACY_KEY: {"absent": "not a list", "order": None},
        "summary": {"x": 1},
    },
    "id last, arrays first": {
        "contextItems": [{"k": 1}],
        "screenshots": [screenshot(0)],
        "storageVersion": 0,
        "name": "x",
        "id": SID,
    },
    "unknown fields": {"id": SID, "futureField": {"nested": [1, None, "x"]}, "x-y": 1.5},
}


@pytest.mark.parametrize("session", list(EDGE_SESSIONS.values()), ids=list(EDGE_SESSIONS))
def test_edge_round_trip(session):
    assert_round_trip(session)


def test_absent_vs_empty_vs_null_are_distinct():
    merged = [
        merge_session(split_session(EDGE_SESSIONS[name]))
        for name in ("only id", "empty arrays", "null arrays")
    ]
    assert "screenshots" not in merged[0]
    assert merged[1]["screenshots"] == []
    assert merged[2]["screenshots"] is None


def test_split_adds_nothing_to_the_merged_document():
    session = {"id": SID, "name": "n", "screenshots": [], "audioSegments": [], "summary": {"a": 1}}
    files = split_session(session)
    meta = files[METADATA_FILE]
    assert LEGACY_KEY not in meta  # canonical order, nothing absent or null: no record needed
    assert {"chunks", "hasSummary", "storageVersion"} <= set(meta)
    assert merge_session(files) == session


def test_null_large_object_has_no_file():
    files = split_session({"id": SID, "summary": None, "canvasSpec": {"a": 1}})
    assert "summary.json" not in files and files["canvas-spec.json"] == {"a": 1}
    meta = files[METADATA_FILE]
    assert meta["hasSummary"] is False and meta["hasCanvasSpec"] is True
    assert meta[LEGACY_KEY]["null"] == ["summary"]


def test_reserved_keys_keep_their_original_values():
    session = EDGE_SESSIONS["reserved keys present"]
    meta = split_session(session)[METADATA_FILE]
    assert meta["storageVersion"] == STORAGE_VERSION and meta["hasSummary"] is True
    assert meta[LEGACY_KEY]["fields"]["storageVersion"] == 7
    merged = merge_session(split_session(session))
    assert merged["storageVersion"] == 7 and merged["chunks"] == [1, 2]
    assert merged[LEGACY_KEY] == session[LEGACY_KEY]


def test_files_written_later_win_over_the_record():
    files = split_session({"id": SID, "summary": None})  # screenshots absent, summary null
    files["screenshots/chunk-001.json"] = {"sessionId": SID, "chunkIndex": 0, "screenshots": [{"id": "s"}]}
    files[METADATA_FILE]["chunks"]["screenshots"] = build_manifest_entry("screenshots", 1)
    files["summary.json"] = {"narrative": "later"}
    merged = merge_session(files)
    assert merged["screenshots"] == [{"id": "s"}] and merged["summary"] == {"narrative": "later"}


def test_merge_ignores_unknown_files():
    files = split_session(example())
    files["attachments/00000000-0000-0000-0000-000000001000.png"] = b"\x89PNG"
    files["notes.txt"] = "hello"
    files["screenshots/README"] = "x"
    assert merge_session(files) == example()


# --- property ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
records = st.dictionaries(st.sampled_from(["id", "attachmentId", "t", "x"]) | st.text(max_size=4), json_values, max_size=3)
array_values = st.none() | st.lists(records, max_size=45)
video_values = st.none() | st.builds(
    lambda base, chunks: base if chunks == "absent" else {**base, "chunks": chunks},
    st.dictionaries(st.sampled_from(["path", "optimizedPath", "duration"]) | st.text(max_size=4), json_values, max_size=3)
    .map(lambda d: {k: v for k, v in d.items() if k != "chunks"}),
    st.just("absent") | array_values,
)
session_ids = st.text(st.characters(min_codepoint=0x30, max_codepoint=0x2FF, exclude_categories=["Cc"], exclude_characters="./\\"), min_size=1, max_size=12)
KNOWN = ["screenshots", "audioSegments", "video", *LARGE_OBJECTS, *RESERVED_KEYS, "name", "status", "tags"]


def value_for(key: str):
    if key in ("screenshots", "audioSegments"):
        return array_values
    if key == "video":
        return video_values
    return json_values


@st.composite
def sessions(draw):
    keys = draw(st.lists(st.sampled_from(KNOWN) | st.text(max_size=6), unique=True, max_size=10))
    keys = [k for k in keys if k != "id"]
    entries = {"id": draw(session_ids), **{k: draw(value_for(k)) for k in keys}}
    order = draw(st.permutations(list(entries)))
    return {k: entries[k] for k in order}


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_property_merge_split_is_identity(session):
    assert_round_trip(session)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session, needle",
    [
        ({"id": "a/b"}, "id 'a/b'"),
        ({"id": ".."}, "id '..'"),
        ({"id": "."}, "id '.'"),
        ({"name": "no id"}, "id: missing"),
        ({"id": 7}, "id: expected a str, got int"),
        ({"id": SID, "screenshots": "many"}, "screenshots: expected a list, got str"),
        ({"id": SID, "screenshots": [{}, 3]}, "screenshots[1]: expected a dict, got int"),
        ({"id": SID, "audioSegments": {"a": 1}}, "audioSegments: expected a list, got dict"),
        ({"id": SID, "video": {"chunks": [None]}}, "video.chunks[0]: expected a dict, got null"),
        ({"id": SID, "video": "v.mp4"}, "video: expected a dict or null, got str"),
        (["not", "a", "dict"], "session: expected a dict, got list"),
    ],
)
def test_split_rejects_bad_input(session, needle):
    with pytest.raises(LayoutError) as info:
        split_session(session)
    assert needle in str(info.value)


BAD_NAMES = ["", ".", "..", ".hidden", "a/b", "a\\b", "a\0b", "a\nb", "a\x7fb", "a\x85b", "x" * 256, "é" * 128, "\ud800", 5, None, b"abc"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_validate_rejects(name):
    with pytest.raises(LayoutError, match="session id"):
        validate_session_id(name)
    with pytest.raises(LayoutError, match="name"):
        validate_name(name)


@pytest.mark.parametrize("name", [SID, "a", "a.b", "a..b", "é" * 127, "x" * 255, "with space", "名前"])
def test_validate_accepts(name):
    assert validate_session_id(name) == name
    assert validate_name(name) == name


# --- chunk names, chunks, manifest -----------------------------------------------------------


def test_chunk_file_names():
    assert chunk_file_name(0) == "chunk-001.json"
    assert chunk_file_name(998) == "chunk-999.json"
    assert chunk_file_name(999) == "chunk-1000.json"
    for index0 in [*range(1100), 123_456]:
        assert parse_chunk_file_name(chunk_file_name(index0)) == index0
    assert chunk_path(ARRAY_KINDS["audioSegments"], 4) == "audio-segments/chunk-005.json"
    assert chunk_path("videoChunks", 0) == "video-chunks/chunk-001.json"


@pytest.mark.parametrize(
    "name",
    ["chunk-1.json", "chunk-01.json", "chunk-000.json", "chunk-0001.json", "chunk-001.JSON",
     "chunk-001.json.bak", "chunk-١٢٣.json", "screenshots/chunk-001.json", "", None, 1],
)
def test_parse_chunk_file_name_rejects(name):
    assert parse_chunk_file_name(name) is None


@pytest.mark.parametrize("index0", [-1, True, 1.0, "1"])
def test_chunk_file_name_rejects(index0):
    with pytest.raises(LayoutError, match="chunk index"):
        chunk_file_name(index0)


def test_chunk_records_and_manifest():
    kind = ARRAY_KINDS["screenshots"]
    assert isinstance(kind, ArrayKind) and (kind.directory, kind.key, kind.per_chunk) == ("screenshots", "screenshots", 20)
    shots = [screenshot(i) for i in range(25)]
    chunks = chunk_records(kind, SID, shots, start_index0=2)
    assert list(chunks) == ["screenshots/chunk-003.json", "screenshots/chunk-004.json"]
    assert chunks["screenshots/chunk-004.json"] == {"sessionId": SID, "chunkIndex": 3, "screenshots": shots[20:]}
    assert chunk_records(kind, SID, []) == {}
    with pytest.raises(LayoutError, match=r"screenshots\[41\]"):
        chunk_records(kind, SID, [{}, "x"], start_index0=2)
    with pytest.raises(LayoutError, match="session id"):
        chunk_records(kind, "../x", [])
    assert build_manifest_entry(kind, 0) == {"count": 0, "chunkCount": 0, "chunkSize": 20}
    assert build_manifest_entry(kind, 41) == {"count": 41, "chunkCount": 3, "chunkSize": 20}
    assert build_manifest_entry("audioSegments", 100) == {"count": 100, "chunkCount": 1, "chunkSize": 100}
    with pytest.raises(LayoutError, match="count"):
        build_manifest_entry(kind, -1)
    with pytest.raises(LayoutError, match="kind"):
        build_manifest_entry("pictures", 1)


# --- merge rejects inconsistent files ---------------------------------------------------------


def split_45() -> dict:
    return split_session({"id": SID, "screenshots": [screenshot(i) for i in range(45)], "video": {"chunks": [{"id": "c"}]}})


def test_merge_rejects_wrong_chunk_index():
    files = split_45()
    files["screenshots/chunk-002.json"]["chunkIndex"] = 0
    with pytest.raises(LayoutError, match=r"screenshots/chunk-002\.json: chunkIndex 0, expected 1"):
        merge_session(files)


def corrupt(files, change):
    change(files)
    return files


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda f: f.pop(METADATA_FILE), "metadata.json: missing"),
        (lambda f: f.pop("screenshots/chunk-002.json"), "screenshots/chunk-002.json: missing"),
        (lambda f: f["screenshots/chunk-003.json"].update(sessionId="other"), "screenshots/chunk-003.json: sessionId"),
        (lambda f: f["screenshots/chunk-001.json"].update(chunkIndex=True), "screenshots/chunk-001.json: chunkIndex"),
        (lambda f: f["screenshots/chunk-003.json"]["screenshots"].pop(), "screenshots/chunk-003.json: 4 records, expected 5"),
        (lambda f: f["screenshots/chunk-001.json"].pop("screenshots"), "screenshots/chunk-001.json: screenshots: expected a list"),
        (lambda f: f["screenshots/chunk-002.json"]["screenshots"].__setitem__(3, 1), r"screenshots/chunk-002.json: screenshots[3]"),
        (lambda f: f.update({"screenshots/chunk-004.json": {}}), "screenshots/chunk-004.json: beyond chunkCount 3"),
        (lambda f: f[METADATA_FILE]["chunks"]["screenshots"].update(count=61), "chunks.screenshots.chunkCount: expected 4"),
        (lambda f: f[METADATA_FILE]["chunks"].pop("screenshots"), "screenshots/chunk-001.json: not in the manifest"),
        (lambda f: f[METADATA_FILE].pop("video"), "video-chunks: 1 video chunks but metadata.json has no video"),
        (lambda f: f[METADATA_FILE].pop("id"), "metadata.json: id: missing"),
        (lambda f: f[METADATA_FILE].update(id="../x"), "metadata.json: id '../x'"),
        (lambda f: f[METADATA_FILE].update(summary={}), "metadata.json: summary"),
        (lambda f: f[METADATA_FILE].update({LEGACY_KEY: {"order": {"x": -1}}}), "metadata.json: _legacy.order"),
        (lambda f: f.update({"summary.json": b"{not json"}), "summary.json: invalid JSON"),
        (lambda f: f.update({METADATA_FILE: [1]}), "metadata.json: expected a dict, got list"),
    ],
)
def test_merge_rejects_inconsistent_files(change, needle):
    files = corrupt(split_45(), change)
    with pytest.raises(LayoutError) as info:
        merge_session(files)
    assert needle in str(info.value)


# --- attachment references -------------------------------------------------------------------


def test_attachment_refs_order_dedup_and_nesting():
    session = {
        "id": SID,
        "summary": {"keyMoments": [{"attachmentId": "m1"}]},
        "screenshots": [screenshot(1), screenshot(0), screenshot(1), {"attachmentId": None}],
        "audioSegments": [{"attachmentId": "w"}],
        "video": {"chunks": [{"attachmentId": "att-0"}, {"attachmentId": "v"}]},
        "contextItems": [{"a": {"attachmentId": "ctx"}, "attachmentId": "outer"}],
    }
    assert attachment_refs(session) == ["m1", "att-1", "att-0", "w", "v", "ctx", "outer"]
    assert attachment_refs(session["screenshots"]) == ["att-1", "att-0"]
    assert attachment_refs(split_session(session)["screenshots/chunk-001.json"]) == ["att-1", "att-0"]
    assert attachment_refs({"id": SID}) == []


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"screenshots": [{}, {"attachmentId": "../etc/passwd"}]}, "screenshots[1].attachmentId '../etc/passwd'"),
        ([{"attachmentId": 5}], "[0].attachmentId: expected a str, got int"),
        ("nope", "attachment_refs"),
    ],
)
def test_attachment_refs_rejects(doc, needle):
    with pytest.raises(LayoutError) as info:
        attachment_refs(doc)
    assert needle in str(info.value)
