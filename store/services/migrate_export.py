"""Export sessions out of a store: the legacy monolithic format (rollback) or the plain layout.

``export_sessions(store, outdir, legacy=True)`` writes, for each session::

    OUTDIR/sessions/<id>.json                  the merged document (SessionStore.load_full_session),
                                               2-space indented with a final newline, as the app wrote it
    OUTDIR/attachments/<attachment-id>.<ext>   the bytes of sessions/<id>/attachments/*

and with ``legacy=False`` copies ``sessions/<id>/`` out as plain files and directories.

Works on a store opened read-only (beside a running mount: it sees what is committed).
Files are written to a temporary name and renamed, so an interrupted export leaves
whole files only. An existing file with the same bytes is left as it is; with other
bytes it is an error for that session unless ``overwrite`` (two sessions carrying
different bytes under one attachment name are reported the same way).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from store.engine.readpath import READ_WINDOW
from store.engine.store import Store
from store.core.errors import BadInputError, FsError, StoreError
from store.core.layout import validate_name, validate_session_id
from .session_files import ATTACHMENTS_DIR, SESSIONS_DIR
from .sessions import SessionStore

LEGACY_DUMP = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


@dataclass
class ExportResult:
    sessions: list[str] = field(default_factory=list)          # exported ids
    files: int = 0
    bytes: int = 0
    unchanged: int = 0                                          # files already there with the same bytes
    errors: list[dict] = field(default_factory=list)            # {"session", "reason"}

    def as_dict(self) -> dict:
        return asdict(self)


def list_session_ids(store: Store) -> list[str]:
    """Names of the directories under sessions/, sorted."""
    ino = store.resolve(SESSIONS_DIR)
    if ino is None:
        return []
    return sorted(n.decode("utf-8", "surrogateescape") for n, row in store.iter_dir(ino) if stat.S_ISDIR(row.mode))


class _Writer:
    """Whole-file writes below ``outdir`` through a temporary name, with the same-bytes rule."""

    def __init__(self, outdir: Path, overwrite: bool, result: ExportResult):
        self.outdir = outdir
        self.overwrite = overwrite
        self.result = result

    def write(self, rel: str, pieces, size: int | None = None) -> None:
        """Write the iterable of byte ``pieces`` to ``outdir/rel``."""
        target = self.outdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.export-{os.getpid()}")
        h = hashlib.sha256()
        n = 0
        try:
            with open(tmp, "wb") as f:
                for piece in pieces:
                    f.write(piece)
                    h.update(piece)
                    n += len(piece)
            if target.exists() or target.is_symlink():
                same = target.is_file() and not target.is_symlink() and _sha256_of(target) == h.hexdigest()
                if same:
                    self.result.unchanged += 1
                    os.unlink(tmp)
                    return
                if not self.overwrite:
                    raise FsError(errno.EEXIST, f"{target} exists with other content (use --overwrite to replace it)")
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self.result.files += 1
        self.result.bytes += n


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
    return h.hexdigest()


def _file_pieces(store: Store, ino: int):
    size = store.getattr(ino).size
    for off in range(0, size, READ_WINDOW):
        yield store.read(ino, off, min(READ_WINDOW, size - off))


def _walk(store: Store, ino: int, rel: str):
    """(relative path, row) of every entry below a directory, depth first."""
    for name, row in store.iter_dir(ino):
        path = f"{rel}/{name.decode('utf-8', 'surrogateescape')}"
        yield path, row
        if stat.S_ISDIR(row.mode):
            yield from _walk(store, row.id, path)


def export_sessions(store: Store, outdir: str | os.PathLike, session_ids: list[str] | None = None, *,
                    legacy: bool = True, overwrite: bool = False) -> ExportResult:
    """Export sessions (all by default); see the module docstring. Errors are per session."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    writer = _Writer(out, overwrite, result)
    sessions = SessionStore(store)
    ids = list_session_ids(store) if session_ids is None else list(dict.fromkeys(session_ids))
    for sid in ids:
        try:
            validate_session_id(sid)
            base = f"{SESSIONS_DIR}/{sid}"
            ino = store.resolve(base)
            if ino is None or not stat.S_ISDIR(store.getattr(ino).mode):
                raise FsError(errno.ENOENT, f"no session {sid} in the store")
            if legacy:
                _export_legacy(store, sessions, writer, sid)
            else:
                for rel, row in _walk(store, ino, f"{SESSIONS_DIR}/{sid}"):
                    if stat.S_ISDIR(row.mode):
                        (out / rel).mkdir(parents=True, exist_ok=True)
                    elif stat.S_ISREG(row.mode):
                        writer.write(rel, _file_pieces(store, row.id))
                    elif stat.S_ISLNK(row.mode):
                        target = out / rel
                        if not target.is_symlink():
                            os.symlink(os.fsdecode(row.target or b""), target)
            result.sessions.append(sid)
        except (StoreError, OSError, ValueError) as exc:
            result.errors.append({"session": sid, "reason": str(exc) if not isinstance(exc, OSError)
                                  else f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")})
    return result


def _export_legacy(store: Store, sessions: SessionStore, writer: _Writer, sid: str) -> None:
    doc = sessions.load_full_session(sid)
    if doc is None:
        raise BadInputError(f"session {sid}: no metadata.json, nothing to export")
    data = orjson.dumps(doc, option=LEGACY_DUMP)
    del doc
    writer.write(f"{SESSIONS_DIR}/{sid}.json", [data])
    base = f"{SESSIONS_DIR}/{sid}/{ATTACHMENTS_DIR}"
    ino = store.resolve(base)
    if ino is None:
        return
    for name, row in store.iter_dir(ino):
        if stat.S_ISREG(row.mode):
            text = name.decode("utf-8", "surrogateescape")
            validate_name(text)
            writer.write(f"{ATTACHMENTS_DIR}/{text}", _file_pieces(store, row.id))


__all__ = ["ExportResult", "export_sessions", "list_session_ids"]
