"""Deterministic generator of realistic legacy (monolithic) session stores.

A session is one JSON document with everything inline (see MODEL.md) plus
PNG screenshots and WAV audio segments referred to by ``attachmentId``.
The same seed and index always give byte-identical output (for a given
Python version, whose stdlib sources provide the text).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import orjson

from .session import PROFILES, Profile, build_session, render_attachments, resolve_profile

__all__ = ["PROFILES", "Profile", "dumps_session", "generate_session", "write_legacy_store"]


def generate_session(seed: int, index: int, *, profile: str | Profile = "full",
                     attachments: bool = True, **overrides) -> tuple[dict, dict[str, bytes]]:
    """Return (legacy session dict, {"<attachment-id>.<ext>": bytes}).

    ``overrides`` replace Profile fields (e.g. ``screenshots=30, png_width=320``).
    The JSON does not depend on ``attachments``: "json-only" equals "full"
    without files.
    """
    prof = resolve_profile(profile, **overrides)
    session, renders, segs = build_session(seed, index, prof)
    if not (attachments and prof.attachments):
        return session, {}
    return session, render_attachments(session, renders, segs, prof)


def dumps_session(session: dict) -> bytes:
    """Serialize like the legacy app: 2-space indented JSON and a final newline.

    Equal to ``json.dumps(session, indent=2) + "\\n"`` for generated sessions.
    """
    return orjson.dumps(session, option=orjson.OPT_INDENT_2) + b"\n"


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def write_legacy_store(out_dir: str | os.PathLike, count: int, *, seed: int = 1,
                       profile: str | Profile = "full", attachments: bool = True,
                       progress: Callable[[int, int], None] | None = None,
                       **overrides) -> dict:
    """Write ``count`` sessions as ``sessions/<id>.json`` and ``attachments/<id>.<ext>``.

    Calls ``progress(done, count)`` after each session. Returns totals:
    sessions, json_bytes, attachments, attachment_bytes, unique_attachment_bytes.
    """
    out = Path(out_dir)
    (out / "sessions").mkdir(parents=True, exist_ok=True)
    (out / "attachments").mkdir(exist_ok=True)
    totals = dict(sessions=0, json_bytes=0, attachments=0, attachment_bytes=0,
                  unique_attachment_bytes=0)
    seen: set[bytes] = set()
    for index in range(count):
        session, files = generate_session(seed, index, profile=profile,
                                          attachments=attachments, **overrides)
        data = dumps_session(session)
        _write(out / "sessions" / f"{session['id']}.json", data)
        totals["sessions"] += 1
        totals["json_bytes"] += len(data)
        for name, blob in files.items():
            _write(out / "attachments" / name, blob)
            totals["attachments"] += 1
            totals["attachment_bytes"] += len(blob)
            digest = hashlib.sha256(blob).digest()
            if digest not in seen:
                seen.add(digest)
                totals["unique_attachment_bytes"] += len(blob)
        if progress is not None:
            progress(index + 1, count)
    return totals
