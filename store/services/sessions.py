"""The app's storage API (MODEL.md, "Operations the app calls") over the chunked session layout.

What: ``SessionStore`` loads and saves sessions the way the desktop app thinks of them
(metadata, large objects, record arrays, whole sessions, attachments, transactions)
and stores them as ordinary files at the paths of ``store.core.layout``::

    sessions/<id>/metadata.json, summary.json, ..., screenshots/chunk-001.json, ...,
    sessions/<id>/attachments/<attachment-id>.<ext>

Why this way: every value lives in exactly one file, so what the app saves is what
``ls``/``cat``/``grep`` on the mount show, and nothing can drift out of step. There is
no second copy and no table of our own: the store keeps its ``sessions`` tables in
step with each committed metadata.json, and ``list_metadata`` queries those. Identical
bytes (an attachment shared by sessions, the unchanged head of a chunk file that got
one more record) are stored once by the store's content-defined chunking.

Writes. Each public write is one ``Store.write_files`` call: one atomic group, queued,
so the caller never waits for hashing or disk. Read-modify-writes (append a record,
keep a has* flag or the ``chunks`` manifest in step) read through ``Store.read_path``,
which already sees queued groups; a lock serialises them within this object, so two
threads appending to one session do not lose records. ``transaction()`` gathers the
writes of several calls into one group that commits entirely or not at all.

Ownership of metadata.json. The app owns every field except those the layout reserves
(``chunks`` manifest, has* flags, ``storageVersion``, ``_legacy``): the store maintains
them as files are written, and ``save_metadata`` keeps their stored values whatever the
caller passes (``hasVideo`` follows the caller's ``video``). Saving a large object or
records does not change ``version``: the version guards the app's own fields, so a
background append never makes the user's next metadata save conflict.

Errors: a bad session id, a missing ``id``, bytes that are not JSON, a chunk index
that does not exist -> ``BadInputError`` naming the thing; a stale version ->
``ConflictError``; a missing session where one is needed -> ``FsError(ENOENT)``.
Nothing is queued when a call raises.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from store.engine.store import Store
from store.core.errors import BadInputError, ConflictError, FsError, StoreError
from store.core.layout import (
    ARRAY_KINDS,
    HAS_FLAGS,
    LARGE_OBJECTS,
    METADATA_FILE,
    RESERVED_KEYS,
    STORAGE_VERSION,
    ArrayKind,
    LayoutError,
    build_manifest_entry,
    chunk_path,
    chunk_records,
    merge_session,
    split_session,
    validate_name,
    validate_session_id,
)

SESSIONS_DIR = "sessions"
ATTACHMENTS_DIR = "attachments"
_VIDEO = ARRAY_KINDS["videoChunks"]
_FLAG_OF = {field: flag for flag, field in HAS_FLAGS.items()}
_STORE_FLAGS = tuple(flag for flag, field in HAS_FLAGS.items() if field != "video")
_INLINE_FORBIDDEN = ("screenshots", "audioSegments", *LARGE_OBJECTS)

# Blocks holding the files under one directory (per-session cache eviction).
_SESSION_BLOCKS_SQL = """
WITH RECURSIVE tree(ino) AS (
    SELECT ? UNION SELECT d.ino FROM dentries d JOIN tree ON d.parent = tree.ino
)
SELECT DISTINCT c.block_id FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id
WHERE f.ino IN (SELECT ino FROM tree)
"""


# -- pure helpers ---------------------------------------------------------------------------


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: object) -> bool:
    return type(value) is int


def _now_iso() -> str:
    """Now as the app writes timestamps: ISO 8601, UTC, milliseconds, 'Z'."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dump(value: object, path: str) -> bytes:
    """Stable JSON bytes of a file (2-space indent, trailing newline)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as exc:
        raise BadInputError(f"{path}: cannot be written as JSON: {exc}") from None


def _parse(data: bytes, path: str) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON: {exc}") from None


def _session_dir(session_id: object) -> str:
    return f"{SESSIONS_DIR}/{validate_session_id(session_id)}"


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + "/")


@dataclass(frozen=True)
class _Entry:
    """One kind's manifest entry in metadata.json."""

    count: int
    chunk_size: int

    @property
    def chunk_count(self) -> int:
        return -(-self.count // self.chunk_size)

    def as_dict(self) -> dict:
        return {"count": self.count, "chunkCount": self.chunk_count, "chunkSize": self.chunk_size}


def _manifest_entry(meta: dict | None, kind: ArrayKind, where: str) -> _Entry:
    """The manifest entry of ``kind`` (count 0 when absent); malformed -> BadInputError."""
    manifest = (meta or {}).get("chunks") or {}
    entry = manifest.get(kind.field) if isinstance(manifest, dict) else None
    if entry is None:
        return _Entry(0, kind.per_chunk)
    count = entry.get("count") if isinstance(entry, dict) else None
    size = entry.get("chunkSize") if isinstance(entry, dict) else None
    if not _is_int(count) or count < 0 or not _is_int(size) or size < 1:
        raise BadInputError(f"{where}: chunks.{kind.field}: expected non-negative count and positive "
                            f"chunkSize, got {entry!r}")
    return _Entry(count, size)


def _with_store_fields(meta: dict, stored: dict | None) -> dict:
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


def _check_metadata_shape(meta: object) -> str:
    """The session id of an app metadata dict; BadInputError if it is unusable."""
    if not isinstance(meta, dict):
        raise BadInputError(f"metadata: expected a dict, got {_type_name(meta)}")
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


def _strings(value: object, what: str) -> list[str]:
    """None -> []; a str -> [it]; an iterable of str -> list; else BadInputError."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return items
    raise BadInputError(f"{what}: expected a str or a list of str, got {value!r}")


def _time_bound(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc) if value.tzinfo else value
        return utc.isoformat(timespec="milliseconds").split("+")[0] + "Z"
    raise BadInputError(f"{what}: expected an ISO 8601 str or a datetime, got {value!r}")


# -- pending writes -------------------------------------------------------------------------


class _Batch:
    """Writes and tree deletions not yet handed to the store, readable through to it.

    Semantics are those of one ``write_files`` group: deleting a tree drops the batch's
    earlier writes under it; later writes under it stand. A child batch (one call inside
    a transaction) merges into its parent only when the call succeeds.
    """

    def __init__(self, store: Store, parent: "_Batch | None" = None):
        self.store = store
        self.parent = parent
        self.writes: dict[str, bytes | None] = {}
        self.trees: list[str] = []

    def _norm(self, path: str) -> str:
        return "/".join(p.decode("utf-8", "surrogateescape") for p in self.store.split_path(path))

    def _deleted(self, path: str) -> bool:
        return any(_under(path, tree) for tree in self.trees)

    def read(self, path: str) -> bytes | None:
        """Current bytes of a file, None when it does not exist."""
        if path in self.writes:
            return self.writes[path]
        if self._deleted(path):
            return None
        if self.parent is not None:
            return self.parent.read(path)
        try:
            return self.store.read_path(path)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def exists(self, path: str) -> bool:
        if path in self.writes:
            return self.writes[path] is not None
        if self._deleted(path):
            return False
        return self.parent.exists(path) if self.parent is not None else self.store.exists(path)

    def names(self, directory: str) -> set[str]:
        """Names of the entries of ``directory`` as they will be after this batch."""
        if self._deleted(directory):
            names: set[str] = set()
        elif self.parent is not None:
            names = self.parent.names(directory)
        else:
            try:
                names = set(self.store.list_dir(directory))
            except FsError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                names = set()
        for path, data in self.writes.items():
            head, _, name = path.rpartition("/")
            if head == directory:
                (names.add if data is not None else names.discard)(name)
        return names

    def put(self, path: str, data: bytes | None) -> None:
        self.writes[self._norm(path)] = data

    def delete_tree(self, path: str) -> None:
        tree = self._norm(path)
        if not tree:
            raise BadInputError("cannot delete the root directory")
        self.writes = {p: d for p, d in self.writes.items() if not _under(p, tree)}
        self.trees.append(tree)

    def commit(self) -> None:
        """Into the parent batch, or to the store as one atomic group."""
        if self.parent is not None:
            for tree in self.trees:
                self.parent.delete_tree(tree)
            for path, data in self.writes.items():
                self.parent.put(path, data)
        elif self.writes or self.trees:
            self.store.write_files(self.writes, delete_trees=self.trees)
        self.writes, self.trees = {}, []


# -- the operations, shared by SessionStore and Transaction ---------------------------------


class _SessionOps:
    """Every load and save of the API. Subclasses say where reads and writes go."""

    _store: Store

    def _reader(self) -> _Batch:
        """Where loads read: the store, or a transaction's pending writes over it."""
        raise NotImplementedError

    def _group(self) -> contextlib.AbstractContextManager[_Batch]:
        """A batch for one call's writes, handed on (store or transaction) if the call succeeds."""
        raise NotImplementedError

    # -- files ----------------------------------------------------------------
    @staticmethod
    def _load_json(view: _Batch, path: str) -> object:
        data = view.read(path)
        return None if data is None else _parse(data, path)

    def _load_meta(self, view: _Batch, session_id: str) -> dict | None:
        path = f"{_session_dir(session_id)}/{METADATA_FILE}"
        meta = self._load_json(view, path)
        if meta is not None and not isinstance(meta, dict):
            raise BadInputError(f"{path}: expected a JSON object, got {_type_name(meta)}")
        return meta

    def _require_meta(self, view: _Batch, session_id: str) -> dict:
        meta = self._load_meta(view, session_id)
        if meta is None:
            raise FsError(errno.ENOENT, f"session {session_id}: no {METADATA_FILE}; save its metadata first")
        return meta

    @staticmethod
    def _put_json(batch: _Batch, path: str, value: object) -> None:
        batch.put(path, _dump(value, path))

    # -- metadata -------------------------------------------------------------
    def load_metadata(self, session_id: str) -> dict | None:
        """The session's metadata.json, or None when the session has none."""
        return self._load_meta(self._reader(), session_id)

    def save_metadata(self, meta: dict, expected_version: int | None = None) -> dict:
        """Save the app's metadata with optimistic locking; returns what was stored.

        Rule: let S be the stored ``version`` (an int in the stored metadata.json) and
        C the caller's (``expected_version`` if given, else ``meta["version"]``). If S
        exists and C != S, ConflictError naming the session, S and C; nothing is written.
        Otherwise the stored version becomes (S if it exists, else C if an int, else 0) + 1
        and ``updatedAt`` becomes now (UTC). The reserved keys keep their stored values
        (see the module docstring); ``meta`` itself is not modified.
        """
        sid = _check_metadata_shape(meta)
        with self._group() as batch:
            stored = self._load_meta(batch, sid)
            stored_version = stored.get("version") if stored is not None else None
            stored_version = stored_version if _is_int(stored_version) else None
            caller_version = expected_version if expected_version is not None else meta.get("version")
            if stored_version is not None and caller_version != stored_version:
                raise ConflictError(f"session {sid}: metadata version conflict: stored version "
                                    f"{stored_version}, caller has version {caller_version!r}")
            base = stored_version if stored_version is not None else caller_version
            out = dict(meta)
            out["version"] = (base if _is_int(base) else 0) + 1
            out["updatedAt"] = _now_iso()
            out = _with_store_fields(out, stored)
            self._put_json(batch, f"{_session_dir(sid)}/{METADATA_FILE}", out)
        return out

    def is_chunked(self, session_id: str) -> bool:
        """True when the session is stored in the chunked layout (has a chunked metadata.json)."""
        meta = self._load_meta(self._reader(), session_id)
        return meta is not None and meta.get("storageVersion") == STORAGE_VERSION

    # -- large objects ---------------------------------------------------------
    def load_large_object(self, session_id: str, field: str) -> object:
        """A large object by its legacy field name ("summary", ...); None when absent."""
        name = self._large_name(field)
        return self._load_json(self._reader(), f"{_session_dir(session_id)}/{name}")

    def save_large_object(self, session_id: str, field: str, value: object) -> None:
        """Write (or, with None, delete) a large object and keep its has* flag in step."""
        name = self._large_name(field)
        with self._group() as batch:
            meta = self._require_meta(batch, session_id)
            path = f"{_session_dir(session_id)}/{name}"
            batch.put(path, None if value is None else _dump(value, path))
            flag = _FLAG_OF.get(field)
            if flag is not None and meta.get(flag) is not (value is not None):
                meta[flag] = value is not None
                self._put_json(batch, f"{_session_dir(session_id)}/{METADATA_FILE}", meta)

    @staticmethod
    def _large_name(field: str) -> str:
        if field not in LARGE_OBJECTS:
            raise BadInputError(f"large object: unknown field {field!r}; one of {sorted(LARGE_OBJECTS)}")
        return LARGE_OBJECTS[field]

    def load_summary(self, session_id: str) -> object:
        return self.load_large_object(session_id, "summary")

    def save_summary(self, session_id: str, summary: object) -> None:
        self.save_large_object(session_id, "summary", summary)

    def load_audio_insights(self, session_id: str) -> object:
        return self.load_large_object(session_id, "audioInsights")

    def save_audio_insights(self, session_id: str, insights: object) -> None:
        self.save_large_object(session_id, "audioInsights", insights)

    def load_canvas_spec(self, session_id: str) -> object:
        return self.load_large_object(session_id, "canvasSpec")

    def save_canvas_spec(self, session_id: str, spec: object) -> None:
        self.save_large_object(session_id, "canvasSpec", spec)

    def load_transcription(self, session_id: str) -> str | None:
        return self.load_large_object(session_id, "fullTranscription")

    def save_transcription(self, session_id: str, text: str | None) -> None:
        self.save_large_object(session_id, "fullTranscription", text)

    def load_context_items(self, session_id: str) -> list | None:
        return self.load_large_object(session_id, "contextItems")

    def save_context_items(self, session_id: str, items: list | None) -> None:
        self.save_large_object(session_id, "contextItems", items)

    # -- record arrays (one implementation for the three kinds) ------------------
    @staticmethod
    def _kind(kind: ArrayKind | str) -> ArrayKind:
        if isinstance(kind, ArrayKind):
            return kind
        if kind in ARRAY_KINDS:
            return ARRAY_KINDS[kind]
        raise BadInputError(f"array kind: unknown {kind!r}; one of {sorted(ARRAY_KINDS)}")

    def _chunk(self, view: _Batch, session_id: str, kind: ArrayKind, index: int) -> dict:
        path = f"{_session_dir(session_id)}/{chunk_path(kind, index)}"
        chunk = self._load_json(view, path)
        if chunk is None:
            raise FsError(errno.ENOENT, f"{path}: missing, but listed in the {kind.field} manifest")
        if not isinstance(chunk, dict) or not isinstance(chunk.get(kind.key), list):
            raise BadInputError(f"{path}: expected an object with a {kind.key!r} list")
        return chunk

    def load_chunk(self, kind: ArrayKind | str, session_id: str, index: int) -> list:
        """The records of chunk ``index`` (0-based) of ``kind``."""
        kind = self._kind(kind)
        view = self._reader()
        entry = _manifest_entry(self._load_meta(view, session_id), kind, _session_dir(session_id))
        if not _is_int(index) or not 0 <= index < entry.chunk_count:
            raise BadInputError(f"session {session_id}: {kind.field} chunk {index!r} does not exist "
                                f"(the session has {entry.chunk_count} {kind.field} chunks)")
        return self._chunk(view, session_id, kind, index)[kind.key]

    def load_all(self, kind: ArrayKind | str, session_id: str) -> list:
        """Every record of ``kind``, in order ([] for a session without any)."""
        kind = self._kind(kind)
        view = self._reader()
        entry = _manifest_entry(self._load_meta(view, session_id), kind, _session_dir(session_id))
        records: list = []
        for index in range(entry.chunk_count):
            records.extend(self._chunk(view, session_id, kind, index)[kind.key])
        return records

    def save_all(self, kind: ArrayKind | str, session_id: str, records: list) -> None:
        """Replace every record of ``kind``: re-chunk, drop stale chunk files, update the manifest."""
        kind = self._kind(kind)
        with self._group() as batch:
            meta = self._require_meta(batch, session_id)
            self._check_video(kind, meta, session_id, records)
            old = _manifest_entry(meta, kind, _session_dir(session_id))
            base = _session_dir(session_id)
            files = chunk_records(kind, session_id, records)
            for path, chunk in files.items():
                self._put_json(batch, f"{base}/{path}", chunk)
            self._drop_chunks_from(batch, session_id, kind, len(files), old.chunk_count)
            self._set_manifest(batch, session_id, meta, kind, build_manifest_entry(kind, len(records)))

    def append(self, kind: ArrayKind | str, session_id: str, record: dict) -> None:
        """Add one record: rewrites only the last chunk file (or starts one) and metadata.json."""
        kind = self._kind(kind)
        if not isinstance(record, dict):
            raise BadInputError(f"session {session_id}: {kind.field} record: expected a dict, "
                                f"got {_type_name(record)}")
        with self._group() as batch:
            meta = self._require_meta(batch, session_id)
            self._check_video(kind, meta, session_id, [record])
            entry = _manifest_entry(meta, kind, _session_dir(session_id))
            index, used = divmod(entry.count, entry.chunk_size)
            if used:
                chunk = self._chunk(batch, session_id, kind, index)
                if len(chunk[kind.key]) != used:
                    raise BadInputError(
                        f"{_session_dir(session_id)}/{chunk_path(kind, index)}: {len(chunk[kind.key])} "
                        f"records, the manifest says {used}")
            else:
                chunk = {"sessionId": session_id, "chunkIndex": index, kind.key: []}
            chunk[kind.key].append(record)
            self._put_json(batch, f"{_session_dir(session_id)}/{chunk_path(kind, index)}", chunk)
            grown = _Entry(entry.count + 1, entry.chunk_size)
            self._set_manifest(batch, session_id, meta, kind, grown.as_dict())

    @staticmethod
    def _check_video(kind: ArrayKind, meta: dict, session_id: str, records: list) -> None:
        if kind is _VIDEO and records and not isinstance(meta.get("video"), dict):
            raise BadInputError(f"session {session_id}: video chunks need a 'video' object in "
                                f"{METADATA_FILE}; save it with save_metadata first")

    def _set_manifest(self, batch: _Batch, session_id: str, meta: dict, kind: ArrayKind, entry: dict) -> None:
        manifest = meta.get("chunks")
        meta["chunks"] = {**(manifest if isinstance(manifest, dict) else {}), kind.field: entry}
        self._put_json(batch, f"{_session_dir(session_id)}/{METADATA_FILE}", meta)

    @staticmethod
    def _drop_chunks_from(batch: _Batch, session_id: str, kind: ArrayKind, first: int, listed: int) -> None:
        """Delete chunk files ``first``.. of ``kind``: those the manifest listed, then any stray
        ones that follow (the chunk files nobody listed would break the merge)."""
        base = _session_dir(session_id)
        index = first
        while index < listed or batch.exists(f"{base}/{chunk_path(kind, index)}"):
            batch.put(f"{base}/{chunk_path(kind, index)}", None)
            index += 1

    def load_screenshots_chunk(self, session_id: str, index: int) -> list:
        return self.load_chunk("screenshots", session_id, index)

    def load_all_screenshots(self, session_id: str) -> list:
        return self.load_all("screenshots", session_id)

    def save_screenshots(self, session_id: str, records: list) -> None:
        self.save_all("screenshots", session_id, records)

    def append_screenshot(self, session_id: str, record: dict) -> None:
        self.append("screenshots", session_id, record)

    def load_audio_segments_chunk(self, session_id: str, index: int) -> list:
        return self.load_chunk("audioSegments", session_id, index)

    def load_all_audio_segments(self, session_id: str) -> list:
        return self.load_all("audioSegments", session_id)

    def save_audio_segments(self, session_id: str, records: list) -> None:
        self.save_all("audioSegments", session_id, records)

    def append_audio_segment(self, session_id: str, record: dict) -> None:
        self.append("audioSegments", session_id, record)

    def load_video_chunks_chunk(self, session_id: str, index: int) -> list:
        return self.load_chunk("videoChunks", session_id, index)

    def load_all_video_chunks(self, session_id: str) -> list:
        return self.load_all("videoChunks", session_id)

    def save_video_chunks(self, session_id: str, records: list) -> None:
        self.save_all("videoChunks", session_id, records)

    def append_video_chunk(self, session_id: str, record: dict) -> None:
        self.append("videoChunks", session_id, record)

    # -- whole sessions -----------------------------------------------------------
    def save_full_session(self, session: dict) -> None:
        """Store a legacy monolithic session as its files, exactly as given (no version bump).

        Layout files of an earlier version of the session that the new split does not
        produce (large objects, chunk files) are deleted in the same group; attachments
        and files the app invented are kept.
        """
        files = split_session(session)
        sid = session["id"]
        base = _session_dir(sid)
        with self._group() as batch:
            old = self._old_meta(batch, sid)
            for path, value in files.items():
                self._put_json(batch, f"{base}/{path}", value)
            for name in LARGE_OBJECTS.values():
                if name not in files:
                    batch.put(f"{base}/{name}", None)
            manifest = files[METADATA_FILE]["chunks"]
            for kind in ARRAY_KINDS.values():
                listed = self._listed_chunks(old, kind)
                self._drop_chunks_from(batch, sid, kind, manifest[kind.field]["chunkCount"], listed)

    def _old_meta(self, batch: _Batch, session_id: str) -> dict | None:
        """The stored metadata, or None when absent or unreadable (it is being replaced)."""
        try:
            return self._load_meta(batch, session_id)
        except BadInputError:
            return None

    @staticmethod
    def _listed_chunks(meta: dict | None, kind: ArrayKind) -> int:
        try:
            return _manifest_entry(meta, kind, METADATA_FILE).chunk_count
        except BadInputError:
            return 0

    def load_full_session(self, session_id: str) -> dict | None:
        """The legacy monolithic document merged from the files; None when there is no session."""
        view = self._reader()
        meta = self._load_meta(view, session_id)
        if meta is None:
            return None
        base = _session_dir(session_id)
        files: dict[str, object] = {METADATA_FILE: meta}
        for name in LARGE_OBJECTS.values():
            if (data := view.read(f"{base}/{name}")) is not None:
                files[name] = _parse(data, f"{base}/{name}")
        for kind in ARRAY_KINDS.values():
            for index in range(_manifest_entry(meta, kind, base).chunk_count):
                path = chunk_path(kind, index)
                if (chunk := self._load_json(view, f"{base}/{path}")) is not None:
                    files[path] = chunk
        try:
            return merge_session(files)
        except LayoutError as exc:
            raise BadInputError(f"session {session_id}: {exc}") from None

    def delete_session(self, session_id: str) -> None:
        """Remove the session directory and everything in it; the store releases the references."""
        base = _session_dir(session_id)
        with self._group() as batch:
            batch.delete_tree(base)

    # -- attachments --------------------------------------------------------------------
    def save_attachment(self, session_id: str, attachment_id: str, ext: str, data: bytes) -> str:
        """Store an attachment's bytes at ``sessions/<id>/attachments/<attachment-id>.<ext>``.

        The store deduplicates by content: the same bytes in any number of sessions are
        kept once. Returns the path written.
        """
        path = self._attachment_path(session_id, attachment_id, ext)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BadInputError(f"{path}: attachment data must be bytes, not {_type_name(data)}")
        with self._group() as batch:
            batch.put(path, bytes(data))
        return path

    @staticmethod
    def _attachment_path(session_id: str, attachment_id: str, ext: str) -> str:
        validate_name(attachment_id)
        ext = validate_name(ext[1:] if isinstance(ext, str) and ext.startswith(".") else ext)
        if "." in ext:
            raise BadInputError(f"attachment extension {ext!r}: must not contain '.'")
        return f"{_session_dir(session_id)}/{ATTACHMENTS_DIR}/{attachment_id}.{ext}"

    def list_attachments(self, session_id: str) -> list[str]:
        """File names in the session's attachments directory, sorted."""
        return sorted(self._reader().names(f"{_session_dir(session_id)}/{ATTACHMENTS_DIR}"))

    def load_attachment(self, session_id: str, attachment_id: str) -> bytes | None:
        """The bytes of the attachment ``<attachment-id>.<any ext>``; None when there is none."""
        validate_name(attachment_id)
        names = [n for n in self.list_attachments(session_id) if n.rpartition(".")[0] == attachment_id]
        if len(names) > 1:
            raise BadInputError(f"session {session_id}: attachment {attachment_id!r} is ambiguous: {names}")
        if not names:
            return None
        return self._reader().read(f"{_session_dir(session_id)}/{ATTACHMENTS_DIR}/{names[0]}")


# -- the public classes ------------------------------------------------------------------


class Transaction(_SessionOps):
    """Writes of several calls that commit together (one ``write_files`` group) or not at all.

    Offers every load and save of SessionStore; loads see the transaction's own writes.
    A call that raises adds nothing; the ``with`` block raising discards everything.
    """

    def __init__(self, store: Store, batch: _Batch):
        self._store = store
        self._batch: _Batch | None = batch

    def _live(self) -> _Batch:
        if self._batch is None:
            raise StoreError("the transaction is over; start a new one")
        return self._batch

    def _reader(self) -> _Batch:
        return self._live()

    @contextlib.contextmanager
    def _group(self) -> Iterator[_Batch]:
        child = _Batch(self._store, self._live())
        yield child
        child.commit()

    def write(self, path: str, value: object) -> None:
        """Write a file by store path (``sessions/<id>/notes.json``): bytes as is, else JSON."""
        with self._group() as batch:
            if isinstance(value, (bytes, bytearray, memoryview)):
                batch.put(path, bytes(value))
            else:
                self._put_json(batch, path, value)

    def delete(self, path: str) -> None:
        """Delete a file or a directory tree by store path."""
        with self._group() as batch:
            batch.delete_tree(path)

    def _end(self) -> _Batch:
        batch, self._batch = self._live(), None
        return batch


class SessionStore(_SessionOps):
    """The app's storage API over an open ``Store`` (which the caller opens and closes)."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.RLock()

    @property
    def store(self) -> Store:
        return self._store

    def _reader(self) -> _Batch:
        return _Batch(self._store)

    @contextlib.contextmanager
    def _group(self) -> Iterator[_Batch]:
        with self._lock:
            batch = _Batch(self._store)
            yield batch
            batch.commit()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``with sessions.transaction() as tx: tx.save_summary(...); tx.append_screenshot(...)``.

        Holds this object's write lock until the block ends, so the transaction's
        read-modify-writes cannot interleave with other writers of this SessionStore.
        """
        with self._lock:
            tx = Transaction(self._store, _Batch(self._store))
            try:
                yield tx
            except BaseException:
                tx._end()
                raise
            tx._end().commit()

    def list_metadata(self, status: str | Iterable[str] | None = None, start_after: str | datetime | None = None,
                      start_before: str | datetime | None = None, tags: str | Iterable[str] | None = None,
                      topic_ids: str | Iterable[str] | None = None, limit: int | None = None,
                      offset: int = 0) -> list[dict]:
        """Metadata of the sessions matching every filter given, newest ``startTime`` first, then by id.

        ``status``: one or any of several. ``start_after``/``start_before``: inclusive bounds
        on ``startTime`` (ISO 8601 strings compare as text, so use the app's UTC 'Z' form;
        a datetime is converted to it). ``tags``/``topic_ids``: sessions having at least one
        of them. None or empty: no filter. Queued writes are committed first.
        """
        sql, args = self._list_query(status, start_after, start_before, tags, topic_ids, limit, offset)
        self._store.settle()
        ids = [row[0] for row in self._store.catalog.reader().execute(sql, args).fetchall()]
        view = self._reader()
        return [meta for sid in ids if (meta := self._load_meta(view, sid)) is not None]

    @staticmethod
    def _list_query(status, start_after, start_before, tags, topic_ids, limit, offset) -> tuple[str, list]:
        where, args = [], []

        def any_of(sql: str, values: list[str]) -> None:
            if values:
                where.append(sql.format(", ".join("?" * len(values))))
                args.extend(values)

        any_of("s.status IN ({})", _strings(status, "status"))
        for op, bound, what in ((">=", start_after, "start_after"), ("<=", start_before, "start_before")):
            if (value := _time_bound(bound, what)) is not None:
                where.append(f"s.start_time {op} ?")
                args.append(value)
        any_of("EXISTS (SELECT 1 FROM session_tags t WHERE t.session_id = s.id AND t.tag IN ({}))",
               _strings(tags, "tags"))
        any_of("EXISTS (SELECT 1 FROM session_topics t WHERE t.session_id = s.id AND t.topic_id IN ({}))",
               _strings(topic_ids, "topic_ids"))
        if limit is not None and (not _is_int(limit) or limit < 0):
            raise BadInputError(f"limit: expected a non-negative int or None, got {limit!r}")
        if not _is_int(offset) or offset < 0:
            raise BadInputError(f"offset: expected a non-negative int, got {offset!r}")
        sql = ("SELECT s.id FROM sessions s" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY s.start_time DESC, s.id LIMIT ? OFFSET ?")
        return sql, [*args, -1 if limit is None else limit, offset]

    # -- cache ----------------------------------------------------------------------------
    def clear_cache(self, session_id: str | None = None) -> None:
        """Drop cached decoded blocks: all of them, or those holding the session's files."""
        if session_id is None:
            self._store.cache.clear()
            return
        base = _session_dir(session_id)
        self._store.settle()
        ino = self._store.resolve(base)
        if ino is None:
            return
        for (block_id,) in self._store.catalog.reader().execute(_SESSION_BLOCKS_SQL, (ino,)).fetchall():
            self._store.cache.discard(block_id)

    def cache_statistics(self):
        """The store cache's counters (hits, misses, evictions, bytes held, ...)."""
        return self._store.cache.statistics()


__all__ = ["SessionStore", "Transaction"]
