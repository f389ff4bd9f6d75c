"""What the full-text index holds for one file of a session: pure extraction, no I/O.

``extract(path, doc)`` maps a file's path relative to its session directory and its
parsed JSON to index rows ``[(field, text), ...]``. Files the layout does not name, or
whose JSON has an unexpected shape, give no rows (the file itself is stored as written).

What is indexed (MODEL.md names the fields):

==============================  ===========================================================
``metadata.json``               ``name``, ``description``, ``category``, ``tags`` (one row
                                per tag). Nothing else: ids, config and timestamps are
                                structured data, filtered through the ``sessions`` tables.
``summary.json``                every string value, except under identifier and time keys
``audio-insights.json``         (``id``, ``*Id``, ``*Ids``, ``*At``, ``*Time``,
``context-items.json``          ``timestamp``, see ``skipped_key``); the field is the key
                                path without list indices (``keyMoments.description``).
``transcription.json``          the transcript (a JSON string; any other shape: as above).
``screenshots/chunk-NNN.json``  per record: ``analysis.summary``, ``.detectedActivity``,
                                ``.extractedText`` (OCR lines), ``.keyElements``.
``audio-segments/chunk-NNN.json``  per record: ``transcription``.
==============================  ===========================================================

``canvas-spec.json`` and video chunks are not indexed (layout and chapter data). Within
one file an identical (field, text) pair is kept once: OCR lines repeat from one
screenshot to the next (menus, window chrome), and whether a word is in the file does
not change.

Which FTS column a row goes to: ``TITLE_FIELDS`` (name, tags, category) are ranked
above the rest (``column_of``). Changing what is extracted changes what the index holds:
bump ``schema.SEARCH_INDEX_VERSION`` so existing indexes are rebuilt.
"""

from __future__ import annotations

from typing import Iterator

from .layout import ARRAY_KINDS, LARGE_OBJECTS, METADATA_FILE, parse_chunk_file_name

#: Fields that rank above the body text (the ``title`` column).
TITLE_FIELDS = frozenset({"name", "tags", "category"})

#: At most this many characters of one file are indexed (the rest is still stored).
MAX_TEXT_CHARS = 8 * 1024 * 1024

_GENERIC_FILES = {
    LARGE_OBJECTS["summary"]: "summary",
    LARGE_OBJECTS["audioInsights"]: "audioInsights",
    LARGE_OBJECTS["contextItems"]: "contextItems",
}
_TRANSCRIPTION_FILE = LARGE_OBJECTS["fullTranscription"]
_SCREENSHOTS = ARRAY_KINDS["screenshots"]
_SEGMENTS = ARRAY_KINDS["audioSegments"]
_ANALYSIS_FIELDS = ("summary", "detectedActivity", "extractedText", "keyElements")

Row = tuple[str, str]


def skipped_key(key: str) -> bool:
    """Keys whose string values are identifiers or times, not words worth indexing."""
    return key in ("id", "timestamp") or key.endswith(("Id", "Ids", "ID", "At", "Time"))


def indexed_path(path: str) -> bool:
    """True when ``extract`` may give rows for a file at ``path`` (relative to its session)."""
    if path == METADATA_FILE or path == _TRANSCRIPTION_FILE or path in _GENERIC_FILES:
        return True
    directory, _, name = path.partition("/")
    return (directory in (_SCREENSHOTS.directory, _SEGMENTS.directory) and "/" not in name
            and parse_chunk_file_name(name) is not None)


def extract(path: str, doc: object) -> list[Row]:
    """Index rows ``(field, text)`` of the file at ``path`` (inside its session) holding ``doc``."""
    return _clean(iter_text(path, doc))


def iter_text(path: str, doc: object, *, joined: bool = False) -> Iterator[tuple[str, object]]:
    """The candidate rows of ``extract`` in document order, lazily, before cleaning (values may
    be empty or not strings, and repeat); for callers that stop at the first hit. ``joined``:
    the lines of a list field (OCR text, key elements) come as one text, "\n"-separated."""
    if not indexed_path(path):
        return iter(())
    if path == METADATA_FILE:
        return iter(_metadata(doc))
    if path in _GENERIC_FILES:
        return _walk(doc, _GENERIC_FILES[path])
    if path == _TRANSCRIPTION_FILE:
        return iter([("transcription", doc)]) if isinstance(doc, str) else _walk(doc, "transcription")
    if path.startswith(_SCREENSHOTS.directory + "/"):
        return _screenshots(doc, joined)
    return _segments(doc)


def _clean(rows) -> list[Row]:
    out: dict[Row, None] = {}
    total = 0
    for field, text in rows:
        if not isinstance(text, str) or not text.strip():
            continue
        if total + len(text) > MAX_TEXT_CHARS:
            break
        if (field, text) not in out:
            out[(field, text)] = None
            total += len(text)
    return list(out)


def _metadata(doc: object) -> list[Row]:
    if not isinstance(doc, dict):
        return []
    rows = [(key, doc.get(key)) for key in ("name", "description", "category")]
    tags = doc.get("tags")
    if isinstance(tags, list):
        rows.extend(("tags", t) for t in tags)
    return rows


def _walk(value: object, field: str) -> Iterator[Row]:
    stack = [(value, field)]
    while stack:
        value, field = stack.pop()
        if isinstance(value, str):
            yield field, value
        elif isinstance(value, dict):
            stack.extend((v, f"{field}.{k}") for k, v in reversed(value.items())
                         if isinstance(k, str) and not skipped_key(k))
        elif isinstance(value, list):
            stack.extend((v, field) for v in reversed(value))


def _records(doc: object, key: str) -> list[dict]:
    records = doc.get(key) if isinstance(doc, dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _screenshots(doc: object, joined: bool = False) -> Iterator[tuple[str, object]]:
    for record in _records(doc, _SCREENSHOTS.key):
        analysis = record.get("analysis")
        if not isinstance(analysis, dict):
            continue
        for name in _ANALYSIS_FIELDS:
            value = analysis.get(name)
            if not isinstance(value, list):
                yield f"screenshot.{name}", value
            elif joined:
                yield f"screenshot.{name}", "\n".join(v for v in value if isinstance(v, str))
            else:
                for v in value:
                    yield f"screenshot.{name}", v


def _segments(doc: object) -> Iterator[tuple[str, object]]:
    for record in _records(doc, _SEGMENTS.key):
        yield "audioSegment.transcription", record.get("transcription")


def column_of(field: str) -> int:
    """0 for the title column, 1 for the body."""
    return 0 if field in TITLE_FIELDS else 1


def columns(rows: list[tuple[str, str]]) -> tuple[str, str]:
    """The (title, body) values of an FTS row holding ``rows``."""
    title = "\n".join(t for f, t in rows if column_of(f) == 0)
    body = "\n".join(t for f, t in rows if column_of(f) == 1)
    return title, body
