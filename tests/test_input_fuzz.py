"""Hypothesis fuzzing of the input parsers: legacy importer checks, JSON text extraction,
codec framing and the pack reader.

Each gets arbitrary or corrupted input and must either succeed or raise the module's own
clear error type (``LegacyError``, ``IntegrityError``) without hanging (the suite's
pytest-timeout bounds a hang; hypothesis deadlines are off: they judge speed, and flake under
load), and a rejected legacy file writes nothing to the store.
"""

from __future__ import annotations

import json
import random
import shutil

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks import pack_files
from store import IntegrityError, Store
from store.core import codec
from store.core import legacy
from store.core import text_index

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | \
    st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=5) |
                           st.dictionaries(st.text(max_size=12), kids, max_size=6), max_leaves=30)
KEYS = ["id", "name", "description", "status", "startTime", "endTime", "tags", "topicIds", "screenshots",
        "audioSegments", "videoChunks", "summary", "transcription", "audioInsights", "canvasSpec",
        "contextItems", "attachmentId", "analysis", "extractedText", "version", "chunks", "category"]
session_like = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=40), st.sampled_from(["s1", "..", "a/b", "", "x" * 300]), json_values)},
    optional={k: json_values | st.lists(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5),
                                         max_size=4) for k in KEYS[1:]})


def _legacy_ok_or_error(data: bytes):
    try:
        return legacy.prepare_bytes(data, source="fuzz.json")
    except legacy.LegacyError as exc:
        assert str(exc), "a LegacyError without a message"
        return None


@FUZZ
@given(st.binary(max_size=2000))
def test_legacy_arbitrary_bytes(data):
    _legacy_ok_or_error(data)


@FUZZ
@given(session_like)
def test_legacy_session_shaped_documents(doc):
    data = json.dumps(doc).encode()      # stdlib: big integers and Infinity are legal input too
    prepared = _legacy_ok_or_error(data)
    if prepared is not None:
        assert prepared.session_id == doc["id"]
        for path in prepared.files:
            assert ".." not in path.split("/") and not path.startswith("/"), path


@FUZZ
@given(session_like, st.integers(0, 10_000), st.sampled_from(["truncate", "flip", "zero"]))
def test_legacy_corrupted_documents(doc, where, how):
    data = bytearray(json.dumps(doc).encode())
    where %= max(1, len(data))
    if how == "truncate":
        data = data[:where]
    elif how == "flip" and data:
        data[where] ^= 1 << (where % 8)
    else:
        data[where:where + 64] = b"\0" * len(data[where:where + 64])
    _legacy_ok_or_error(bytes(data))


def test_rejected_legacy_file_writes_nothing(tmp_path):
    from store.services.migrate import Migrator
    root = tmp_path / "store"
    src = tmp_path / "legacy" / "sessions"
    src.mkdir(parents=True)
    (tmp_path / "legacy" / "attachments").mkdir()
    rnd = random.Random(5)
    bad = [b"", b"{", b"[1,2]", b'{"id": "../x"}', b'{"id": 5}', b'{"id": "s", "screenshots": 7}',
           b'{"id": "' + b"y" * 300 + b'"}', bytes(rnd.randbytes(500)), b'{"id": "s\\u0000x"}']
    with Store.open(root, create=True) as st_:
        before = st_.statistics()
        mig = Migrator(st_)
        for i, data in enumerate(bad):
            path = src / f"bad{i}.json"
            path.write_bytes(data)
            outcome = mig.import_file(path, check_name=False)
            assert outcome.status == "failed", (data[:40], outcome)
            assert outcome.reason, outcome
            assert path.read_bytes() == data                 # the original is untouched
        st_.flush()
        after = st_.statistics()
        assert st_.list_dir("sessions") == []
        assert (after.files, after.sessions, after.stored_bytes) == (before.files, before.sessions,
                                                                    before.stored_bytes)
    assert not (tmp_path / "x").exists()


@FUZZ
@given(json_values, st.sampled_from(["metadata.json", "summary.json", "transcription.json",
                                     "audio-insights.json", "context-items.json", "canvas-spec.json",
                                     "screenshots/chunk-001.json", "audio-segments/chunk-002.json",
                                     "video-chunks/chunk-001.json", "attachments/x.json", "other.json"]))
def test_text_extraction_never_raises(doc, path):
    rows = text_index.extract(path, doc)
    for field, text in rows:
        assert isinstance(field, str) and isinstance(text, str)
        text_index.column_of(field)
    list(text_index.iter_text(path, doc, joined=True))


@FUZZ
@given(session_like)
def test_text_extraction_of_session_shaped_files(doc):
    for path in ("metadata.json", "summary.json", "screenshots/chunk-001.json", "audio-segments/chunk-001.json"):
        text_index.extract(path, doc)
        text_index.extract(path, {"screenshots": [doc], "segments": [doc], **doc})


def _decode_ok_or_error(framed: bytes):
    try:
        out = codec.decode_block(framed, "fuzz", dicts=lambda i: (_ for _ in ()).throw(
            IntegrityError(f"no dictionary {i}")))
    except IntegrityError as exc:
        assert str(exc)
        return None
    assert len(out) <= codec.MAX_BLOCK_RAW
    return out


@FUZZ
@given(st.binary(max_size=300))
def test_decode_block_arbitrary_bytes(data):
    _decode_ok_or_error(data)
    _decode_ok_or_error(codec.MAGIC + data)


@FUZZ
@given(st.binary(min_size=0, max_size=5000), st.integers(0, 2**32 - 1), st.integers(0, 2), st.integers(0, 2**32 - 1),
       st.data())
def test_decode_block_corrupted_frames(raw, raw_len, codec_id, dict_id, data):
    framed, used = codec.encode_block(raw * 3, level=3)
    assert _decode_ok_or_error(framed) == raw * 3
    mutated = bytearray(framed)
    kind = data.draw(st.sampled_from(["header", "flip", "truncate", "zero"]))
    if kind == "header":
        mutated[:codec.HEADER.size] = codec.HEADER.pack(codec.MAGIC, codec_id, dict_id, raw_len,
                                                        len(framed) - codec.HEADER.size)
    elif kind == "flip":
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        mutated = mutated[:data.draw(st.integers(0, len(mutated) - 1))]
    else:
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i:i + 4096] = b"\0" * len(mutated[i:i + 4096])
    out = _decode_ok_or_error(bytes(mutated))
    # A zstd frame carries a checksum: a damaged payload is refused, never decoded to other
    # bytes. A raw block has none (its damaged payload decodes as is): the store's per-chunk
    # SHA-256 catches that (test_pack_reader_corruption_gives_integrity_errors).
    if out is not None and used != codec.CODEC_RAW and kind in ("flip", "zero"):
        assert out == raw * 3, f"zstd frame damaged by {kind} decoded to other bytes"


# -- the pack reader --------------------------------------------------------------------------
FILES = {f"sessions/s/f{i}.json": orjson.dumps({"i": i, "text": ("word%d " % i) * (2000 + 3000 * i)})
         for i in range(3)}
FILES["sessions/s/bin.dat"] = random.Random(3).randbytes(150_000)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("packfuzz") / "store"
    with Store.open(root, create=True) as s:
        s.write_files(FILES)
        s.flush()
    return root, {str(p.relative_to(root)): p.read_bytes() for p in pack_files(root)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_pack_reader_corruption_gives_integrity_errors(pristine, tmp_path, data):
    root, packs = pristine
    work = tmp_path / "w"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(root, work)
    name = data.draw(st.sampled_from(sorted(packs)))
    blob = bytearray(packs[name])
    kind = data.draw(st.sampled_from(["flip", "flips", "truncate", "zero-page"]))
    if kind == "flip":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "flips":
        for _ in range(data.draw(st.integers(2, 50))):
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= 0xFF
    elif kind == "truncate":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    else:
        page = data.draw(st.integers(0, (len(blob) - 1) // 4096))
        blob[page * 4096:(page + 1) * 4096] = b"\0" * len(blob[page * 4096:(page + 1) * 4096])
    (work / name).write_bytes(bytes(blob))
    with Store.open(work, readonly=True) as s:
        for path, want in FILES.items():
            try:
                got = s.read_path(path)
            except IntegrityError as exc:
                assert str(exc)
                continue
            assert got == want, f"{path}: wrong bytes returned from a corrupted pack ({kind})"
