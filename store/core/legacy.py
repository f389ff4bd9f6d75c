"""The legacy (monolithic) session format: checking and preparing one file for import.

A legacy store is ``sessions/<id>.json`` (one whole session per file) plus
``attachments/<attachment-id>.<ext>``. This module turns one legacy file into what
the importer writes, without touching a store:

``prepare_bytes(data, source=...)`` (``services.legacy_files.prepare_file`` reads the
    file first, read-only)
    parses it, checks it (``check_session``), computes the canonical digest of its values and
    splits it into the chunked layout as the bytes of each file. Returns a
    ``Prepared`` (picklable: it runs in worker processes for ``--jobs``), or raises
    ``LegacyError`` with a ``stage`` and a reason naming the culprit.

Everything here is a pure function over bytes and dicts; reading files is
``store.services.legacy_files``.

What is accepted (``Limits``; each bound is a reason in the report, never a crash):

- a regular file of 1 byte .. ``max_file_bytes`` (default 1 GiB);
- one JSON object (UTF-8; nesting up to orjson's 1024 levels; integers within
  64 bits, as the store writes JSON with orjson);
- no string longer than ``max_string_chars`` characters (default 16 Mi), anywhere;
- ``id`` a safe single path component (``layout.validate_session_id``) and, when
  the file name is checked, equal to the file name without ``.json``;
- the model's known fields of the right JSON type, or null (``FIELD_TYPES``;
  unknown fields are kept as they are);
- record arrays of objects; ``attachmentId`` null or a safe name.

The canonical digest (``canonical_digest``) is the SHA-256 of the value serialised
with sorted keys: two documents have the same digest exactly when they hold the same
JSON values (key order aside; ``1`` and ``1.0`` count as different, which is stricter).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from .layout import LayoutError, attachment_refs, split_session, validate_name

MiB = 1024 * 1024

#: The bytes of each layout file, as SessionStore writes them (stable, 2-space indent, final newline).
DUMP_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE

_NUMBER = (int, float)

#: Known top-level fields -> the JSON types allowed besides null ("list[str]": a list of strings).
FIELD_TYPES: dict[str, str] = {
    "name": "str", "description": "str", "status": "str",
    "startTime": "str", "endTime": "str", "lastScreenshotTime": "str", "pausedAt": "str",
    "createdAt": "str", "updatedAt": "str",
    "totalPausedTime": "number", "totalDuration": "number", "screenshotInterval": "number",
    "autoAnalysis": "bool", "enableScreenshots": "bool", "audioRecording": "bool", "videoRecording": "bool",
    "audioMode": "str", "audioConfig": "object", "videoConfig": "object",
    "trackingNoteId": "str", "extractedTaskIds": "list[str]", "extractedNoteIds": "list[str]",
    "relationships": "list[object]", "topicIds": "list[str]", "tags": "list[str]",
    "category": "str", "subCategory": "str", "activityType": "str",
    "enrichmentStatus": "object", "enrichmentConfig": "object", "enrichmentLock": "object",
    "version": "int",
    "summary": "object", "audioInsights": "object", "canvasSpec": "object",
    "fullTranscription": "str", "contextItems": "list",
    "screenshots": "list[object]", "audioSegments": "list[object]", "video": "object",
}

#: Fields of records inside the arrays that the store or the app rely on.
RECORD_FIELD_TYPES: dict[str, dict[str, str]] = {
    "screenshots": {"attachmentId": "str", "timestamp": "str", "sequenceNumber": "int"},
    "audioSegments": {"attachmentId": "str", "timestamp": "str", "duration": "number"},
    "video.chunks": {},
}


class LegacyError(ValueError):
    """One legacy file cannot be imported. ``stage``: read | parse | validate | attachments."""

    def __init__(self, stage: str, reason: str, *, session_id: str | None = None,
                 sha256: str | None = None, size: int | None = None):
        super().__init__(stage, reason)      # both in args: the error pickles (worker processes)
        self.stage = stage
        self.reason = reason
        self.session_id = session_id
        self.sha256 = sha256
        self.size = size

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Limits:
    """Bounds on what the importer accepts (see the module docstring)."""

    max_file_bytes: int = 1024 * MiB
    max_string_chars: int = 16 * MiB
    max_attachment_bytes: int = 4096 * MiB


@dataclass
class Prepared:
    """One legacy file, ready to write: ``files`` maps layout paths (relative to the session
    directory) to their bytes."""

    source: str
    session_id: str
    sha256: str
    size: int
    mtime_ns: int
    digest: str
    files: dict[str, bytes]
    attachment_ids: list[str]
    nbytes: int = field(default=0)


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number"}.get(type(value), type(value).__name__)


def _matches(value: object, kind: str) -> bool:
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return type(value) is int
    if kind == "number":
        return isinstance(value, _NUMBER) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind.startswith("list["):
        inner = kind[5:-1]
        return isinstance(value, list) and all(x is not None and _matches(x, inner) for x in value)
    raise AssertionError(kind)


_SHOWN = {"str": "a string", "bool": "a boolean", "int": "an integer", "number": "a number",
          "object": "an object", "list": "an array", "list[str]": "an array of strings",
          "list[object]": "an array of objects"}


def _check_fields(obj: dict, types: dict[str, str], where: str) -> None:
    for key, kind in types.items():
        if key in obj and not _matches(obj[key], kind):
            value = obj[key]
            got = type_name(value)
            if isinstance(value, list) and kind.startswith("list["):
                bad = next(i for i, x in enumerate(value) if x is None or not _matches(x, kind[5:-1]))
                got = f"an array with {type_name(value[bad])} at [{bad}]"
            raise LegacyError("validate", f"{where}{key}: expected {_SHOWN[kind]} or null, got {got}")


def check_types(doc: dict) -> None:
    """Known fields of the model have their JSON types (or are null); else LegacyError."""
    _check_fields(doc, FIELD_TYPES, "")
    for array in ("screenshots", "audioSegments"):
        for i, record in enumerate(doc.get(array) or ()):
            _check_fields(record, RECORD_FIELD_TYPES[array], f"{array}[{i}].")
    video = doc.get("video")
    if isinstance(video, dict) and "chunks" in video:
        chunks = video["chunks"]
        if chunks is not None and not _matches(chunks, "list[object]"):
            raise LegacyError("validate", f"video.chunks: expected an array of objects or null, "
                                          f"got {type_name(chunks)}")


def longest_string(value: object, limit: int) -> tuple[str, int] | None:
    """The path and length of the first string longer than ``limit`` characters (keys too), or None."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if len(node) > limit:
                return where or "(document)", len(node)
        elif isinstance(node, dict):
            for key, child in node.items():
                if len(key) > limit:
                    return f"{where}.(key)" if where else "(key)", len(key)
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(node))
    return None


def check_session(doc: object, *, expected_id: str | None = None, limits: Limits = Limits(),
                  size_hint: int | None = None) -> str:
    """Check a parsed legacy document; return its session id. LegacyError names the culprit.

    ``size_hint`` (the file's byte size) lets the string bound skip walking documents too
    small to hold a string over the limit.
    """
    if not isinstance(doc, dict):
        raise LegacyError("validate", f"expected a JSON object, got {type_name(doc)}")
    if "id" not in doc:
        raise LegacyError("validate", "id: missing")
    sid = doc["id"]
    if not isinstance(sid, str):
        raise LegacyError("validate", f"id: expected a string, got {type_name(sid)}")
    try:
        validate_name(sid)
    except LayoutError as exc:
        raise LegacyError("validate", f"id {sid[:80]!r} is not a safe name: {exc}") from None
    if expected_id is not None and sid != expected_id:
        raise LegacyError("validate", f"file name says session {expected_id!r} but its id is {sid!r}",
                          session_id=sid)
    try:
        check_types(doc)
        if size_hint is None or size_hint > limits.max_string_chars:
            found = longest_string(doc, limits.max_string_chars)
            if found is not None:
                where, n = found
                raise LegacyError("validate", f"{where}: a string of {n:,} characters exceeds the bound of "
                                              f"{limits.max_string_chars:,} characters")
    except LegacyError as exc:
        exc.session_id = sid
        raise
    return sid


def canonical_digest(doc: object) -> str:
    """SHA-256 (hex) of the value with sorted keys: equal iff the JSON values are equal."""
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def split_to_bytes(doc: dict) -> dict[str, bytes]:
    """The session's layout files (relative paths) as the bytes SessionStore writes."""
    try:
        files = split_session(doc)
    except LayoutError as exc:
        raise LegacyError("validate", str(exc)) from None
    out = {}
    for path, value in files.items():
        try:
            out[path] = orjson.dumps(value, option=DUMP_OPTIONS)
        except orjson.JSONEncodeError as exc:
            raise LegacyError("validate", f"{path}: cannot be written as JSON: {exc}") from None
    return out


_RECORD_ARRAYS = ("screenshots", "audioSegments")


def _fast_attachment_ids(doc: dict, data: bytes) -> list[str] | None:
    """The attachmentIds of the record arrays, when the raw bytes prove there are no others.

    Every ``attachmentId`` key in the document appears in ``data`` as the bytes
    ``"attachmentId"`` unless written with \\u escapes; so when ``data`` has no \\u escape
    and exactly as many such byte strings as there are record-level keys, the records
    hold them all. Otherwise (or on an unsafe id, for its precise message) None: walk.
    """
    if b"\\u" in data:
        return None
    refs: dict[str, None] = {}
    keys = 0
    for key, value in doc.items():
        if key in _RECORD_ARRAYS:
            records = value
        elif key == "video" and isinstance(value, dict):
            records = value.get("chunks")
        else:
            continue
        if not isinstance(records, list):
            continue
        for record in records:
            if isinstance(record, dict) and "attachmentId" in record:
                keys += 1
                ref = record["attachmentId"]
                if ref is None:
                    continue
                try:
                    refs[validate_name(ref)] = None
                except LayoutError:
                    return None
    return list(refs) if keys == data.count(b'"attachmentId"') else None


def session_attachment_ids(doc: dict, data: bytes | None = None) -> list[str]:
    """Every attachmentId the session refers to (document order, unique); LegacyError if unsafe.

    ``data``, the raw bytes ``doc`` was parsed from, allows a fast path (``_fast_attachment_ids``)."""
    if data is not None and (fast := _fast_attachment_ids(doc, data)) is not None:
        return fast
    try:
        return attachment_refs(doc)
    except LayoutError as exc:
        raise LegacyError("validate", f"attachmentId {exc}") from None


def parse(data: bytes) -> object:
    """Parse legacy JSON bytes; LegacyError("parse") with orjson's position on failure."""
    if not data:
        raise LegacyError("parse", "empty file (0 bytes)")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "unexpected end of data" in text or "EOF while parsing" in text:
            text = f"truncated JSON: {text}"
        raise LegacyError("parse", f"invalid JSON: {text}") from None


def prepare_bytes(data: bytes, *, source: str, mtime_ns: int = 0, expected_id: str | None = None,
                  limits: Limits = Limits()) -> Prepared:
    """Everything ``prepare_file`` does after reading. Frees the parsed tree before returning."""
    sha = hashlib.sha256(data).hexdigest()
    size = len(data)
    try:
        doc = parse(data)
        sid = check_session(doc, expected_id=expected_id, limits=limits, size_hint=size)
        try:
            digest = canonical_digest(doc)
            attachment_ids = session_attachment_ids(doc, data)
            files = split_to_bytes(doc)
        except LegacyError as exc:
            exc.session_id = sid
            raise
    except LegacyError as exc:
        exc.sha256, exc.size = sha, size
        raise
    del doc
    return Prepared(source=source, session_id=sid, sha256=sha, size=size, mtime_ns=mtime_ns, digest=digest,
                    files=files, attachment_ids=attachment_ids, nbytes=sum(map(len, files.values())))


# -- attachments -------------------------------------------------------------------------------

def attachment_index(names: Iterable[str]) -> dict[str, list[str]]:
    """attachment id -> file names ``<attachment-id>.<ext>`` among ``names`` (hidden files skipped)."""
    index: dict[str, list[str]] = {}
    for name in names:
        if name.startswith("."):
            continue
        stem, dot, ext = name.rpartition(".")
        if dot and stem and ext:
            index.setdefault(stem, []).append(name)
    for names_ in index.values():
        names_.sort()
    return index


def pick_attachment(attachment_id: str, index: dict[str, list[str]], where: str) -> str:
    """The one file name of ``attachment_id``; LegacyError("attachments") when missing or ambiguous."""
    names = index.get(attachment_id)
    if not names:
        raise LegacyError("attachments", f"missing attachment {attachment_id!r}: no {where}/{attachment_id}.<ext>")
    if len(names) > 1:
        raise LegacyError("attachments", f"attachment {attachment_id!r} is ambiguous in {where}: {names}")
    return names[0]


__all__ = ["FIELD_TYPES", "LegacyError", "Limits", "Prepared", "attachment_index", "canonical_digest",
           "check_session", "check_types", "longest_string", "parse", "pick_attachment", "prepare_bytes",
           "session_attachment_ids", "split_to_bytes"]
