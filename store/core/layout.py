"""The chunked layout of one session: split a legacy document into files and merge it back.

Pure functions over dicts; no I/O. Paths are relative to the session directory,
"/"-separated::

    metadata.json                  every top-level field except the large objects and
                                   the arrays; ``video`` without its ``chunks``; plus the
                                   ``chunks`` manifest, the has* flags, ``storageVersion``
    summary.json, audio-insights.json, canvas-spec.json, transcription.json,
    context-items.json             one file per large object (LARGE_OBJECTS)
    screenshots/chunk-001.json     {"sessionId", "chunkIndex": 0, "screenshots": [<= 20]}
    audio-segments/chunk-001.json  {"sessionId", "chunkIndex": 0, "segments": [<= 100]}
    video-chunks/chunk-001.json    {"sessionId", "chunkIndex": 0, "chunks": [<= 100]}

Chunk file names are 1-based and zero-padded to 3 digits; ``chunkIndex`` is 0-based.
The manifest always lists all three kinds (``count`` 0 when there are none). A large
object's file exists iff the field is present and not null, and its has* flag says
the same; ``hasVideo`` says ``video`` is a dict.

Round-trip record. ``merge_session(split_session(s)) == s`` for every valid ``s``,
including the top-level key order. What the layout above cannot express goes into
metadata.json under the reserved key ``_legacy`` (LEGACY_KEY), written only when needed,
with any of these entries:

``"absent": [...]``
    arrays that were missing: ``"screenshots"``, ``"audioSegments"``, ``"videoChunks"``
    (``video`` without a ``chunks`` key). Without an entry an array merges back,
    as ``[]`` when it has no records.
``"null": [...]``
    arrays (as above) and large objects (legacy field names) that were null. Without
    an entry, a large object with no file is absent.
``"fields": {key: value}``
    original values of the top-level keys the layout reserves (RESERVED_KEYS:
    ``chunks``, the has* flags, ``storageVersion``, ``_legacy``). Reserved keys without
    an entry are dropped on merge.
``"order": {key: index}``
    original top-level positions of the keys metadata.json does not hold in place
    (arrays, large objects, reserved keys); only when appending them after the
    metadata fields in MERGE_ORDER would not restore the original order.

Files win over the record: records in chunk files or a large-object file are merged
even when ``_legacy`` lists the field as absent or null, so data written after an
import is never dropped. Inside ``video``, ``chunks`` comes back as the last key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from .errors import BadInputError

SCREENSHOTS_PER_CHUNK = 20
AUDIO_SEGMENTS_PER_CHUNK = 100
VIDEO_CHUNKS_PER_CHUNK = 100
STORAGE_VERSION = 1
METADATA_FILE = "metadata.json"
LEGACY_KEY = "_legacy"


class LayoutError(BadInputError):
    """A session document or session file set is invalid; the message names the culprit.

    A BadInputError, hence also a ValueError."""


@dataclass(frozen=True)
class ArrayKind:
    """One chunked array: its manifest key, directory, key inside a chunk file, chunk size."""

    field: str
    directory: str
    key: str
    per_chunk: int


ARRAY_KINDS: dict[str, ArrayKind] = {
    "screenshots": ArrayKind("screenshots", "screenshots", "screenshots", SCREENSHOTS_PER_CHUNK),
    "audioSegments": ArrayKind("audioSegments", "audio-segments", "segments", AUDIO_SEGMENTS_PER_CHUNK),
    "videoChunks": ArrayKind("videoChunks", "video-chunks", "chunks", VIDEO_CHUNKS_PER_CHUNK),
}
_VIDEO = ARRAY_KINDS["videoChunks"]
_TOP_ARRAYS = ("screenshots", "audioSegments")

LARGE_OBJECTS: dict[str, str] = {
    "summary": "summary.json",
    "audioInsights": "audio-insights.json",
    "canvasSpec": "canvas-spec.json",
    "fullTranscription": "transcription.json",
    "contextItems": "context-items.json",
}

HAS_FLAGS: dict[str, str] = {
    "hasSummary": "summary",
    "hasAudioInsights": "audioInsights",
    "hasCanvasSpec": "canvasSpec",
    "hasTranscription": "fullTranscription",
    "hasVideo": "video",
}

RESERVED_KEYS: tuple[str, ...] = ("chunks", *HAS_FLAGS, "storageVersion", LEGACY_KEY)

# Where merge puts the keys metadata.json does not hold, absent an "order" record.
MERGE_ORDER: tuple[str, ...] = (*_TOP_ARRAYS, *LARGE_OBJECTS, *RESERVED_KEYS)
_EXTRACTED = frozenset(MERGE_ORDER)

_CHUNK_NAME = re.compile(r"chunk-([0-9]{3,})\.json")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: object) -> bool:
    return type(value) is int


def _check_component(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise LayoutError(f"{what}: expected a str, got {_type_name(value)}")
    shown = f"{what} {value[:80]!r}"
    if not value:
        raise LayoutError(f"{what}: must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise LayoutError(f"{shown}: not valid UTF-8") from None
    if size > 255:
        raise LayoutError(f"{shown}: longer than 255 UTF-8 bytes ({size})")
    if value.startswith("."):
        raise LayoutError(f"{shown}: must not start with '.'")
    for ch in value:
        if ch in "/\\":
            raise LayoutError(f"{shown}: must not contain {ch!r}")
        if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            raise LayoutError(f"{shown}: must not contain control character U+{ord(ch):04X}")
    return value


def validate_session_id(sid: object) -> str:
    """Return ``sid`` if it is usable as a directory name, else raise LayoutError."""
    return _check_component(sid, "session id")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a safe single path component (same rules as session ids)."""
    return _check_component(name, "name")


def chunk_file_name(index0: int) -> str:
    """0 -> "chunk-001.json"; 1-based, at least 3 digits."""
    if not _is_int(index0) or index0 < 0:
        raise LayoutError(f"chunk index: expected a non-negative int, got {index0!r}")
    return f"chunk-{index0 + 1:03d}.json"


def parse_chunk_file_name(name: object) -> int | None:
    """Inverse of chunk_file_name (0-based index); None unless ``name`` is canonical."""
    if not isinstance(name, str):
        return None
    match = _CHUNK_NAME.fullmatch(name)
    if match is None:
        return None
    index0 = int(match.group(1)) - 1
    return index0 if index0 >= 0 and chunk_file_name(index0) == name else None


def _kind(kind: ArrayKind | str) -> ArrayKind:
    if isinstance(kind, ArrayKind):
        return kind
    if isinstance(kind, str) and kind in ARRAY_KINDS:
        return ARRAY_KINDS[kind]
    raise LayoutError(f"kind: unknown array kind {kind!r}")


def chunk_path(kind: ArrayKind | str, index0: int) -> str:
    """Relative path of chunk ``index0`` of ``kind``: "screenshots/chunk-001.json"."""
    return f"{_kind(kind).directory}/{chunk_file_name(index0)}"


def _check_records(records: object, what: str, first: int = 0) -> list:
    if not isinstance(records, list):
        raise LayoutError(f"{what}: expected a list, got {_type_name(records)}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise LayoutError(f"{what}[{first + i}]: expected a dict, got {_type_name(record)}")
    return records


def _chunks(kind: ArrayKind, sid: str, records: list, start_index0: int) -> dict[str, dict]:
    n = kind.per_chunk
    return {
        chunk_path(kind, start_index0 + i): {
            "sessionId": sid,
            "chunkIndex": start_index0 + i,
            kind.key: records[i * n : (i + 1) * n],
        }
        for i in range(-(-len(records) // n))
    }


def chunk_records(
    kind: ArrayKind | str, session_id: str, records: list, start_index0: int = 0
) -> dict[str, dict]:
    """Cut ``records`` into chunk files, the first being chunk ``start_index0``: path -> chunk dict."""
    kind = _kind(kind)
    sid = validate_session_id(session_id)
    chunk_file_name(start_index0)
    _check_records(records, kind.field, start_index0 * kind.per_chunk)
    return _chunks(kind, sid, records, start_index0)


def build_manifest_entry(kind: ArrayKind | str, count: int) -> dict:
    """Manifest entry for ``count`` records: {"count", "chunkCount", "chunkSize"}."""
    kind = _kind(kind)
    if not _is_int(count) or count < 0:
        raise LayoutError(f"{kind.field} count: expected a non-negative int, got {count!r}")
    return {"count": count, "chunkCount": -(-count // kind.per_chunk), "chunkSize": kind.per_chunk}


def split_session(session: dict) -> dict[str, object]:
    """Split a legacy monolithic session into its files: relative path -> JSON value.

    The values share nested objects with ``session``; do not mutate one and expect the
    other unchanged.
    """
    if not isinstance(session, dict):
        raise LayoutError(f"session: expected a dict, got {_type_name(session)}")
    if "id" not in session:
        raise LayoutError("id: missing")
    sid = _check_component(session["id"], "id")

    meta: dict = {}
    large: dict[str, object] = {}
    arrays: dict[str, list] = {}
    absent = [key for key in _TOP_ARRAYS if key not in session]
    nulls: list[str] = []
    fields: dict = {}
    for key, value in session.items():
        if key in _TOP_ARRAYS:
            if value is None:
                nulls.append(key)
            else:
                arrays[key] = _check_records(value, key)
        elif key in LARGE_OBJECTS:
            if value is None:
                nulls.append(key)
            else:
                large[LARGE_OBJECTS[key]] = value
        elif key in RESERVED_KEYS:
            fields[key] = value
        elif key == "video" and isinstance(value, dict):
            meta[key] = {k: v for k, v in value.items() if k != "chunks"}
            if "chunks" not in value:
                absent.append(_VIDEO.field)
            elif value["chunks"] is None:
                nulls.append(_VIDEO.field)
            else:
                arrays[_VIDEO.field] = _check_records(value["chunks"], "video.chunks")
        elif key == "video" and value is not None:
            raise LayoutError(f"video: expected a dict or null, got {_type_name(value)}")
        else:
            meta[key] = value

    files: dict[str, object] = {METADATA_FILE: meta, **large}
    manifest = {}
    for kind in ARRAY_KINDS.values():
        records = arrays.get(kind.field, [])
        manifest[kind.field] = build_manifest_entry(kind, len(records))
        files.update(_chunks(kind, sid, records, 0))
    meta["chunks"] = manifest
    for flag, field in HAS_FLAGS.items():
        value = session.get(field)
        meta[flag] = isinstance(value, dict) if field == "video" else value is not None
    meta["storageVersion"] = STORAGE_VERSION

    keys = list(session)
    moved = [key for key in keys if key in _EXTRACTED]
    default = [key for key in keys if key not in _EXTRACTED]
    default += sorted(moved, key=MERGE_ORDER.index)
    legacy = {
        "absent": absent,
        "null": nulls,
        "fields": fields,
        "order": {} if default == keys else {key: keys.index(key) for key in moved},
    }
    legacy = {name: entry for name, entry in legacy.items() if entry}
    if legacy:
        meta[LEGACY_KEY] = legacy
    return files


def _load(files: Mapping[str, object], path: str) -> object:
    if path not in files:
        raise LayoutError(f"{path}: missing")
    value = files[path]
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise LayoutError(f"{path}: invalid JSON: {exc}") from None
    return value


def _read_legacy(meta: dict) -> tuple[set, set, dict, dict]:
    where = f"{METADATA_FILE}: {LEGACY_KEY}"
    legacy = meta.get(LEGACY_KEY, {})
    if not isinstance(legacy, dict):
        raise LayoutError(f"{where}: expected a dict, got {_type_name(legacy)}")
    lists = []
    for name in ("absent", "null"):
        entry = legacy.get(name, [])
        if not isinstance(entry, list) or not all(isinstance(x, str) for x in entry):
            raise LayoutError(f"{where}.{name}: expected a list of str")
        lists.append(set(entry))
    fields = legacy.get("fields", {})
    if not isinstance(fields, dict):
        raise LayoutError(f"{where}.fields: expected a dict, got {_type_name(fields)}")
    order = legacy.get("order", {})
    if not isinstance(order, dict) or not all(_is_int(p) and p >= 0 for p in order.values()):
        raise LayoutError(f"{where}.order: expected a dict of non-negative ints")
    return lists[0], lists[1], fields, order


def _read_chunks(files: Mapping[str, object], kind: ArrayKind, sid: str, manifest: dict) -> list:
    where = f"{METADATA_FILE}: chunks.{kind.field}"
    prefix = kind.directory + "/"
    present = sorted(
        index0
        for path in files
        if isinstance(path, str)
        and path.startswith(prefix)
        and (index0 := parse_chunk_file_name(path[len(prefix) :])) is not None
    )
    entry = manifest.get(kind.field)
    if entry is None:
        if present:
            raise LayoutError(f"{chunk_path(kind, present[0])}: not in the manifest ({where} missing)")
        return []
    if not isinstance(entry, dict):
        raise LayoutError(f"{where}: expected a dict, got {_type_name(entry)}")
    count, size, chunk_count = (entry.get(k) for k in ("count", "chunkSize", "chunkCount"))
    if not _is_int(count) or count < 0:
        raise LayoutError(f"{where}.count: expected a non-negative int, got {count!r}")
    if not _is_int(size) or size < 1:
        raise LayoutError(f"{where}.chunkSize: expected a positive int, got {size!r}")
    if not _is_int(chunk_count) or chunk_count != -(-count // size):
        raise LayoutError(
            f"{where}.chunkCount: expected {-(-count // size)} for count {count} "
            f"and chunkSize {size}, got {chunk_count!r}"
        )
    if present and present[-1] >= chunk_count:
        raise LayoutError(f"{chunk_path(kind, present[-1])}: beyond chunkCount {chunk_count} in {where}")
    records: list = []
    for index0 in range(chunk_count):
        path = chunk_path(kind, index0)
        chunk = _load(files, path)
        if not isinstance(chunk, dict):
            raise LayoutError(f"{path}: expected a dict, got {_type_name(chunk)}")
        if chunk.get("sessionId") != sid:
            raise LayoutError(f"{path}: sessionId {chunk.get('sessionId')!r}, expected {sid!r}")
        if not _is_int(chunk.get("chunkIndex")) or chunk["chunkIndex"] != index0:
            raise LayoutError(f"{path}: chunkIndex {chunk.get('chunkIndex')!r}, expected {index0}")
        part = _check_records(chunk.get(kind.key), f"{path}: {kind.key}")
        expected = min(size, count - index0 * size)
        if len(part) != expected:
            raise LayoutError(
                f"{path}: {len(part)} records, expected {expected} "
                f"(count {count}, chunkSize {size} in {where})"
            )
        records.extend(part)
    return records


def merge_session(files: Mapping[str, object]) -> dict:
    """Rebuild the legacy monolithic session from its files (the inverse of split_session).

    Values are JSON values; bytes values are parsed as JSON first. Paths the layout does
    not know (attachments, files the app invented) are ignored.
    """
    if not isinstance(files, Mapping):
        raise LayoutError(f"files: expected a mapping, got {_type_name(files)}")
    meta = _load(files, METADATA_FILE)
    if not isinstance(meta, dict):
        raise LayoutError(f"{METADATA_FILE}: expected a dict, got {_type_name(meta)}")
    if "id" not in meta:
        raise LayoutError(f"{METADATA_FILE}: id: missing")
    sid = _check_component(meta["id"], f"{METADATA_FILE}: id")
    for key in (*_TOP_ARRAYS, *LARGE_OBJECTS):
        if key in meta:
            raise LayoutError(f"{METADATA_FILE}: {key}: must not be inline in metadata")
    video = meta.get("video")
    if isinstance(video, dict) and "chunks" in video:
        raise LayoutError(f"{METADATA_FILE}: video.chunks: must not be inline in metadata")
    absent, nulls, fields, order = _read_legacy(meta)
    manifest = meta.get("chunks", {})
    if not isinstance(manifest, dict):
        raise LayoutError(f"{METADATA_FILE}: chunks: expected a dict, got {_type_name(manifest)}")

    doc = {key: value for key, value in meta.items() if key not in RESERVED_KEYS}
    restored: dict = {}
    for kind in ARRAY_KINDS.values():
        records: list | None = _read_chunks(files, kind, sid, manifest)
        if not records and kind.field in absent:
            continue
        if not records and kind.field in nulls:
            records = None
        if kind is not _VIDEO:
            restored[kind.field] = records
        elif isinstance(video, dict):
            doc["video"] = {**video, "chunks": records}
        elif records:
            raise LayoutError(
                f"{kind.directory}: {len(records)} video chunks but {METADATA_FILE} has no video dict"
            )
    for field, name in LARGE_OBJECTS.items():
        if name in files:
            restored[field] = _load(files, name)
        elif field in nulls:
            restored[field] = None
    restored.update((key, value) for key, value in fields.items() if key in RESERVED_KEYS)

    keys = list(doc)
    for position, key in sorted((p, k) for k, p in order.items() if k in restored):
        keys.insert(min(position, len(keys)), key)
    keys += [key for key in MERGE_ORDER if key in restored and key not in order]
    doc.update(restored)
    return {key: doc[key] for key in keys}


def attachment_refs(session_or_records: dict | list) -> list[str]:
    """Every non-null ``attachmentId`` in a session, record list or chunk file, in document order,
    deduplicated. Each must be a valid name (it becomes a file name); else LayoutError."""
    if not isinstance(session_or_records, (dict, list)):
        raise LayoutError(
            f"attachment_refs: expected a session dict or a list of records, "
            f"got {_type_name(session_or_records)}"
        )
    refs: dict[str, None] = {}
    stack: list[tuple[bool, object, tuple]] = [(False, session_or_records, ())]
    while stack:
        is_ref, value, path = stack.pop()
        if is_ref:
            refs[_check_component(value, _format_path(path))] = None
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value)
        children = []
        for key, child in items:
            if key == "attachmentId" and isinstance(value, dict):
                if child is not None:
                    children.append((True, child, (*path, key)))
            elif isinstance(child, (dict, list)):
                children.append((False, child, (*path, key)))
        stack.extend(reversed(children))
    return list(refs)


def _format_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
