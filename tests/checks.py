"""Catalog consistency checks shared by the store, crash and mount tests.

An oracle written independently of ``store.verify``: plain SQL over the
tables whose invariants ``store.schema.create_tables`` documents.
"""

from __future__ import annotations

import os
from pathlib import Path

from store import Store
from store.backends.catalog.sqlite import counters
from store.backends.catalog.sqlite.counters import COUNTERS_FORMAT
from store.backends.catalog.sqlite.view import sql

#: The small legacy store of DESIGN.md section 5 (a copy, so that a fresh clone has it).
LEGACY_EXAMPLE = Path(__file__).resolve().parent / "fixtures" / "legacy-store"


def assert_catalog_consistent(store: Store, *, allow_unlinked: bool = False) -> None:
    """Reference counts equal references; no reference, entry or chunk points at nothing."""
    db = sql(store.catalog.reader())
    total, rows = db.execute("SELECT coalesce(sum(refcount), 0), (SELECT count(*) FROM file_chunks) "
                             "FROM chunks").fetchone()
    assert total == rows, f"sum(refcount) {total} != file_chunks rows {rows}"
    wrong = db.execute("SELECT c.id, c.refcount, count(f.chunk_id) FROM chunks c "
                       "LEFT JOIN file_chunks f ON f.chunk_id = c.id GROUP BY c.id "
                       "HAVING c.refcount != count(f.chunk_id)").fetchall()
    assert wrong == [], f"chunks whose refcount is not their number of references: {wrong[:10]}"
    dangling = db.execute("SELECT f.ino, f.off FROM file_chunks f LEFT JOIN chunks c ON c.id = f.chunk_id "
                          "WHERE c.id IS NULL").fetchall()
    assert dangling == [], f"file_chunks rows naming missing chunks: {dangling[:10]}"
    no_file = db.execute("SELECT DISTINCT f.ino FROM file_chunks f LEFT JOIN inodes i ON i.id = f.ino "
                         "WHERE i.id IS NULL").fetchall()
    assert no_file == [], f"file_chunks rows of missing inodes: {no_file[:10]}"
    orphans = db.execute("SELECT d.parent, d.name FROM dentries d LEFT JOIN inodes i ON i.id = d.ino "
                         "WHERE i.id IS NULL").fetchall()
    assert orphans == [], f"directory entries naming missing inodes: {orphans[:10]}"
    if store.catalog.format_version >= COUNTERS_FORMAT:
        wrong = counters.disagreements(db)
        assert wrong == {}, f"stored totals (counters) that differ from their recount: {wrong}"
    if not allow_unlinked:
        unlinked = db.execute("SELECT id FROM inodes WHERE nlink = 0").fetchall()
        assert unlinked == [], f"inodes without a name survived: {unlinked[:10]}"


def tree_digest(root) -> str:
    """Every entry below root: path, type, mode, size, mtime and content hash."""
    import hashlib
    import os
    import stat
    from pathlib import Path
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            h.update(f"{path.relative_to(root)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def sigkill_at(point: str | None, nth: int):
    """A step hook that SIGKILLs this process at the nth passage of ``point``."""
    import os
    import signal
    seen = {"n": 0}

    def hook(where: str) -> None:
        if where == point:
            seen["n"] += 1
            if seen["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
    return hook


def pack_files(root) -> list[Path]:
    """Files holding the packs of a local store: sealed objects (packs/) and the open or
    not yet put ones (packing/)."""
    root = Path(root)
    return sorted((p for d in ("packs", "packing") if (root / d).is_dir() for p in (root / d).iterdir()
                   if p.name.endswith(".pack")), key=lambda p: p.name)


def pack_file(root, pack_id: int) -> Path:
    """The file holding pack ``pack_id`` of a local store, wherever it is now."""
    name = f"{pack_id:08d}.pack"
    sealed = Path(root) / "packs" / name
    return sealed if os.path.lexists(sealed) else Path(root) / "packing" / name


def index_dump(store: Store) -> list[tuple]:
    """Every token of the index as (session id, path, term, column, offset), and every entry."""
    import sqlite3
    db = sqlite3.connect(f"file:{store.root}/catalog.db?mode=ro", uri=True)
    try:
        db.execute("CREATE VIRTUAL TABLE temp.inst USING fts5vocab(main, search_fts, 'instance')")
        docs = {rowid: (bytes(name).decode(), path, ino, parent, bytes(entry))
                for rowid, name, path, ino, parent, entry in db.execute(
                    "SELECT d.id, s.name, d.path, d.ino, d.parent, d.name FROM search_docs d "
                    "JOIN dentries s ON s.ino = d.dir_ino AND s.parent = ?", (store.sessions_ino,))}
        assert db.execute("SELECT count(*) FROM search_docs").fetchone()[0] == len(docs)
        tokens = sorted((*docs[doc][:2], term, col, off) if doc in docs else ("GARBAGE", doc, term, col, off)
                        for term, doc, col, off in db.execute("SELECT term, doc, col, offset FROM temp.inst"))
    finally:
        db.close()
    return sorted(docs.values()) + tokens


#: Top-level names of a mount that are computed per call (live counters, queries), not stored.
LIVE_VIEWS = (".sessionfs", "search")


def mount_manifest(root, tops: tuple[str, ...] | None = None) -> dict:
    """Every path below a mount's root (except ``LIVE_VIEWS``; only ``tops`` if given) -> what a
    reader sees there.

    Type, permission bits and, by type: a file's size, link count, sha256 and mtime; a link's
    target; a directory's or a file's xattrs (hex values). Names that are not UTF-8 are kept
    with surrogate escapes, so ``os.fsencode`` gives their bytes back."""
    import hashlib
    import stat
    root = os.fsencode(root)
    out: dict = {}

    def visit(rel: bytes) -> None:
        path = os.path.join(root, rel)
        st = os.lstat(path)
        entry = {"mode": f"{stat.S_IMODE(st.st_mode):04o}"}
        if stat.S_ISLNK(st.st_mode):
            entry.update(type="symlink", target=os.fsdecode(os.readlink(path)))
        else:
            entry["xattrs"] = {name: os.getxattr(path, name).hex() for name in sorted(os.listxattr(path))}
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            entry.update(type="file", size=st.st_size, nlink=st.st_nlink, sha256=digest,
                         mtime_ns=st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            entry["type"] = "dir"
            for name in sorted(os.listdir(path)):
                if rel or (os.fsdecode(name) in tops if tops else os.fsdecode(name) not in LIVE_VIEWS):
                    visit(os.path.join(rel, name) if rel else name)
        if rel:
            out[os.fsdecode(rel)] = entry

    visit(b"")
    return out
