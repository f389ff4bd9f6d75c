"""Every load and save of the session API, shared by ``SessionStore`` and ``Transaction``:
metadata, large objects, the record arrays, whole sessions and attachments."""

from __future__ import annotations

import contextlib
import errno

from store.core.errors import BadInputError, ConflictError, FsError
from store.core.layout import (
    ARRAY_KINDS,
    HAS_FLAGS,
    LARGE_OBJECTS,
    METADATA_FILE,
    STORAGE_VERSION,
    ArrayKind,
    LayoutError,
    build_manifest_entry,
    chunk_path,
    chunk_records,
    merge_session,
    split_session,
    validate_name,
)
from store.engine.store import Store
from .session_batch import Batch
from .session_files import (
    ATTACHMENTS_DIR,
    ManifestEntry,
    check_metadata_shape,
    dump_json,
    is_int,
    manifest_entry,
    now_iso,
    parse_json,
    session_dir,
    type_name,
    with_store_fields,
)

_VIDEO = ARRAY_KINDS["videoChunks"]
_FLAG_OF = {field: flag for flag, field in HAS_FLAGS.items()}


class SessionOps:
    """Every load and save of the API. Subclasses say where reads and writes go."""

    _store: Store

    def _reader(self) -> Batch:
        """Where loads read: the store, or a transaction's pending writes over it."""
        raise NotImplementedError

    def _group(self) -> contextlib.AbstractContextManager[Batch]:
        """A batch for one call's writes, handed on (store or transaction) if the call succeeds."""
        raise NotImplementedError

    # -- files ----------------------------------------------------------------
    @staticmethod
    def _load_json(view: Batch, path: str) -> object:
        data = view.read(path)
        return None if data is None else parse_json(data, path)

    def _load_meta(self, view: Batch, session_id: str) -> dict | None:
        path = f"{session_dir(session_id)}/{METADATA_FILE}"
        meta = self._load_json(view, path)
        if meta is not None and not isinstance(meta, dict):
            raise BadInputError(f"{path}: expected a JSON object, got {type_name(meta)}")
        return meta

    def _require_meta(self, view: Batch, session_id: str) -> dict:
        meta = self._load_meta(view, session_id)
        if meta is None:
            raise FsError(errno.ENOENT, f"session {session_id}: no {METADATA_FILE}; save its metadata first")
        return meta

    @staticmethod
    def _put_json(batch: Batch, path: str, value: object) -> None:
        batch.put(path, dump_json(value, path))

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
        sid = check_metadata_shape(meta)
        with self._group() as batch:
            stored = self._load_meta(batch, sid)
            stored_version = stored.get("version") if stored is not None else None
            stored_version = stored_version if is_int(stored_version) else None
            caller_version = expected_version if expected_version is not None else meta.get("version")
            if stored_version is not None and caller_version != stored_version:
                raise ConflictError(f"session {sid}: metadata version conflict: stored version "
                                    f"{stored_version}, caller has version {caller_version!r}")
            base = stored_version if stored_version is not None else caller_version
            out = dict(meta)
            out["version"] = (base if is_int(base) else 0) + 1
            out["updatedAt"] = now_iso()
            out = with_store_fields(out, stored)
            self._put_json(batch, f"{session_dir(sid)}/{METADATA_FILE}", out)
        return out

    def is_chunked(self, session_id: str) -> bool:
        """True when the session is stored in the chunked layout (has a chunked metadata.json)."""
        meta = self._load_meta(self._reader(), session_id)
        return meta is not None and meta.get("storageVersion") == STORAGE_VERSION

    # -- large objects ---------------------------------------------------------
    def load_large_object(self, session_id: str, field: str) -> object:
        """A large object by its legacy field name ("summary", ...); None when absent."""
        name = self._large_name(field)
        return self._load_json(self._reader(), f"{session_dir(session_id)}/{name}")

    def save_large_object(self, session_id: str, field: str, value: object) -> None:
        """Write (or, with None, delete) a large object and keep its has* flag in step."""
        name = self._large_name(field)
        with self._group() as batch:
            meta = self._require_meta(batch, session_id)
            path = f"{session_dir(session_id)}/{name}"
            batch.put(path, None if value is None else dump_json(value, path))
            flag = _FLAG_OF.get(field)
            if flag is not None and meta.get(flag) is not (value is not None):
                meta[flag] = value is not None
                self._put_json(batch, f"{session_dir(session_id)}/{METADATA_FILE}", meta)

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

    def _chunk(self, view: Batch, session_id: str, kind: ArrayKind, index: int) -> dict:
        path = f"{session_dir(session_id)}/{chunk_path(kind, index)}"
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
        entry = manifest_entry(self._load_meta(view, session_id), kind, session_dir(session_id))
        if not is_int(index) or not 0 <= index < entry.chunk_count:
            raise BadInputError(f"session {session_id}: {kind.field} chunk {index!r} does not exist "
                                f"(the session has {entry.chunk_count} {kind.field} chunks)")
        return self._chunk(view, session_id, kind, index)[kind.key]

    def load_all(self, kind: ArrayKind | str, session_id: str) -> list:
        """Every record of ``kind``, in order ([] for a session without any)."""
        kind = self._kind(kind)
        view = self._reader()
        entry = manifest_entry(self._load_meta(view, session_id), kind, session_dir(session_id))
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
            old = manifest_entry(meta, kind, session_dir(session_id))
            base = session_dir(session_id)
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
                                f"got {type_name(record)}")
        with self._group() as batch:
            meta = self._require_meta(batch, session_id)
            self._check_video(kind, meta, session_id, [record])
            entry = manifest_entry(meta, kind, session_dir(session_id))
            index, used = divmod(entry.count, entry.chunk_size)
            if used:
                chunk = self._chunk(batch, session_id, kind, index)
                if len(chunk[kind.key]) != used:
                    raise BadInputError(
                        f"{session_dir(session_id)}/{chunk_path(kind, index)}: {len(chunk[kind.key])} "
                        f"records, the manifest says {used}")
            else:
                chunk = {"sessionId": session_id, "chunkIndex": index, kind.key: []}
            chunk[kind.key].append(record)
            self._put_json(batch, f"{session_dir(session_id)}/{chunk_path(kind, index)}", chunk)
            grown = ManifestEntry(entry.count + 1, entry.chunk_size)
            self._set_manifest(batch, session_id, meta, kind, grown.as_dict())

    @staticmethod
    def _check_video(kind: ArrayKind, meta: dict, session_id: str, records: list) -> None:
        if kind is _VIDEO and records and not isinstance(meta.get("video"), dict):
            raise BadInputError(f"session {session_id}: video chunks need a 'video' object in "
                                f"{METADATA_FILE}; save it with save_metadata first")

    def _set_manifest(self, batch: Batch, session_id: str, meta: dict, kind: ArrayKind, entry: dict) -> None:
        manifest = meta.get("chunks")
        meta["chunks"] = {**(manifest if isinstance(manifest, dict) else {}), kind.field: entry}
        self._put_json(batch, f"{session_dir(session_id)}/{METADATA_FILE}", meta)

    @staticmethod
    def _drop_chunks_from(batch: Batch, session_id: str, kind: ArrayKind, first: int, listed: int) -> None:
        """Delete chunk files ``first``.. of ``kind``: those the manifest listed, then any stray
        ones that follow (the chunk files nobody listed would break the merge)."""
        base = session_dir(session_id)
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
        base = session_dir(sid)
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

    def _old_meta(self, batch: Batch, session_id: str) -> dict | None:
        """The stored metadata, or None when absent or unreadable (it is being replaced)."""
        try:
            return self._load_meta(batch, session_id)
        except BadInputError:
            return None

    @staticmethod
    def _listed_chunks(meta: dict | None, kind: ArrayKind) -> int:
        try:
            return manifest_entry(meta, kind, METADATA_FILE).chunk_count
        except BadInputError:
            return 0

    def load_full_session(self, session_id: str) -> dict | None:
        """The legacy monolithic document merged from the files; None when there is no session."""
        view = self._reader()
        meta = self._load_meta(view, session_id)
        if meta is None:
            return None
        base = session_dir(session_id)
        files: dict[str, object] = {METADATA_FILE: meta}
        for name in LARGE_OBJECTS.values():
            if (data := view.read(f"{base}/{name}")) is not None:
                files[name] = parse_json(data, f"{base}/{name}")
        for kind in ARRAY_KINDS.values():
            for index in range(manifest_entry(meta, kind, base).chunk_count):
                path = chunk_path(kind, index)
                if (chunk := self._load_json(view, f"{base}/{path}")) is not None:
                    files[path] = chunk
        try:
            return merge_session(files)
        except LayoutError as exc:
            raise BadInputError(f"session {session_id}: {exc}") from None

    def delete_session(self, session_id: str) -> None:
        """Remove the session directory and everything in it; the store releases the references."""
        base = session_dir(session_id)
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
            raise BadInputError(f"{path}: attachment data must be bytes, not {type_name(data)}")
        with self._group() as batch:
            batch.put(path, bytes(data))
        return path

    @staticmethod
    def _attachment_path(session_id: str, attachment_id: str, ext: str) -> str:
        validate_name(attachment_id)
        ext = validate_name(ext[1:] if isinstance(ext, str) and ext.startswith(".") else ext)
        if "." in ext:
            raise BadInputError(f"attachment extension {ext!r}: must not contain '.'")
        return f"{session_dir(session_id)}/{ATTACHMENTS_DIR}/{attachment_id}.{ext}"

    def list_attachments(self, session_id: str) -> list[str]:
        """File names in the session's attachments directory, sorted."""
        return sorted(self._reader().names(f"{session_dir(session_id)}/{ATTACHMENTS_DIR}"))

    def load_attachment(self, session_id: str, attachment_id: str) -> bytes | None:
        """The bytes of the attachment ``<attachment-id>.<any ext>``; None when there is none."""
        validate_name(attachment_id)
        names = [n for n in self.list_attachments(session_id) if n.rpartition(".")[0] == attachment_id]
        if len(names) > 1:
            raise BadInputError(f"session {session_id}: attachment {attachment_id!r} is ambiguous: {names}")
        if not names:
            return None
        return self._reader().read(f"{session_dir(session_id)}/{ATTACHMENTS_DIR}/{names[0]}")
