"""Pure helpers of the session API: where a session's files are, their JSON bytes, the
``chunks`` manifest, the metadata keys the store reserves, and argument checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from store.core.errors import BadInputError
from store.core.layout import (
    ARRAY_KINDS,
    HAS_FLAGS,
    LARGE_OBJECTS,
    RESERVED_KEYS,
    STORAGE_VERSION,
    ArrayKind,
    build_manifest_entry,
    validate_session_id,
)

SESSIONS_DIR = "sessions"
ATTACHMENTS_DIR = "attachments"
_STORE_FLAGS = tuple(flag for flag, field in HAS_FLAGS.items() if field != "video")
_INLINE_FORBIDDEN = ("screenshots", "audioSegments", *LARGE_OBJECTS)




def type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def is_int(value: object) -> bool:
    return type(value) is int


def now_iso() -> str:
    """Now as the app writes timestamps: ISO 8601, UTC, milliseconds, 'Z'."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dump_json(value: object, path: str) -> bytes:
    """Stable JSON bytes of a file (2-space indent, trailing newline)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as exc:
        raise BadInputError(f"{path}: cannot be written as JSON: {exc}") from None


def parse_json(data: bytes, path: str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON: {exc}") from None


def session_dir(session_id: object) -> str:
    return f"{SESSIONS_DIR}/{validate_session_id(session_id)}"


def under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + "/")


@dataclass(frozen=True)
class ManifestEntry:
    """One kind's manifest entry in metadata.json."""

    count: int
    chunk_size: int

    @property
    def chunk_count(self) -> int:
        return -(-self.count // self.chunk_size)

    def as_dict(self) -> dict:
        return {"count": self.count, "chunkCount": self.chunk_count, "chunkSize": self.chunk_size}


def manifest_entry(meta: dict | None, kind: ArrayKind, where: str) -> ManifestEntry:
    """The manifest entry of ``kind`` (count 0 when absent); malformed -> BadInputError."""
    manifest = (meta or {}).get("chunks") or {}
    entry = manifest.get(kind.field) if isinstance(manifest, dict) else None
    if entry is None:
        return ManifestEntry(0, kind.per_chunk)
    count = entry.get("count") if isinstance(entry, dict) else None
    size = entry.get("chunkSize") if isinstance(entry, dict) else None
    if not is_int(count) or count < 0 or not is_int(size) or size < 1:
        raise BadInputError(f"{where}: chunks.{kind.field}: expected non-negative count and positive "
                            f"chunkSize, got {entry!r}")
    return ManifestEntry(count, size)


def with_store_fields(meta: dict, stored: dict | None) -> dict:
    """``meta`` with the reserved keys taken from ``stored`` (defaults for a new session), last."""
    out = {key: value for key, value in meta.items() if key not in RESERVED_KEYS}
    out["chunks"] = {kind.field: build_manifest_entry(kind, 0) for kind in ARRAY_KINDS.values()}
    out.update({flag: False for flag in _STORE_FLAGS})
    out["hasVideo"] = isinstance(meta.get("video"), dict)
    out["storageVersion"] = STORAGE_VERSION
    for key in RESERVED_KEYS:
        if key != "hasVideo" and stored is not None and key in stored:
            out[key] = stored[key]
    return out


def check_metadata_shape(meta: object) -> str:
    """The session id of an app metadata dict; BadInputError if it is unusable."""
    if not isinstance(meta, dict):
        raise BadInputError(f"metadata: expected a dict, got {type_name(meta)}")
    if "id" not in meta:
        raise BadInputError("metadata: id: missing")
    sid = validate_session_id(meta["id"])
    for key in _INLINE_FORBIDDEN:
        if key in meta:
            raise BadInputError(f"session {sid}: metadata: {key!r} must be saved with its own call, "
                                "not inline in metadata")
    video = meta.get("video")
    if isinstance(video, dict) and "chunks" in video:
        raise BadInputError(f"session {sid}: metadata: video.chunks must be saved with save_video_chunks")
    return sid


def time_bound(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc) if value.tzinfo else value
        return utc.isoformat(timespec="milliseconds").split("+")[0] + "Z"
    raise BadInputError(f"{what}: expected an ISO 8601 str or a datetime, got {value!r}")
