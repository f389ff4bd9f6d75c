"""The indexed fields of a session: what the catalog keeps of each metadata.json.

Pure (bytes or a metadata dict in, a ``SessionFields`` out) so that every catalog
implementation, and verify comparing one against the files, derive the same row.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

METADATA_NAME = b"metadata.json"


@dataclass(frozen=True)
class SessionFields:
    name: str | None
    status: str | None
    start_time: str | None
    end_time: str | None
    category: str | None
    version: int | None
    updated_at: str | None
    tags: tuple[str, ...]
    topic_ids: tuple[str, ...]


def _str(value) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(v for v in value if isinstance(v, str)))


def session_fields(meta: dict) -> SessionFields:
    """The indexed fields of a metadata dict; fields of the wrong type index as absent."""
    version = meta.get("version")
    return SessionFields(
        name=_str(meta.get("name")), status=_str(meta.get("status")),
        start_time=_str(meta.get("startTime")), end_time=_str(meta.get("endTime")),
        category=_str(meta.get("category")),
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        updated_at=_str(meta.get("updatedAt")),
        tags=_strings(meta.get("tags")), topic_ids=_strings(meta.get("topicIds")))


def parse_metadata(data: bytes) -> dict | None:
    """The metadata dict of a metadata.json's bytes; None when they are not a JSON object."""
    try:
        meta = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None
