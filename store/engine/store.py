"""The store: one directory holding a catalog, packs and staged writes.

Layout of a store directory (created private, 0700)::

    catalog.db      the SQLite catalog (schema.create_tables documents it)
    packs/          sealed packs of framed blocks: the local object store's objects
                    (store.backends.objects.store.LocalObjectStore, written whole, never changed)
    packing/        the open pack being filled, and sealed packs not yet put
    staging/        overlays: sparse data files and sealed markers of writes
                    not yet committed (replayed after a crash)
    lock            flock'ed exclusively by the one process that writes
    owner.json      who holds the lock (pid, mountpoint), for error messages

``Store`` offers two faces over the same tree: inode-level POSIX operations
(used by the mount) and path-level whole-file operations (used by the session
API and the CLI). Both read the same catalog and the same overlays, so they
agree on every byte. It never blocks on the persistence worker except in
``fsync``/``flush``/``settle``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import orjson

from store.core import codec
from store.backends.catalog.sqlite import namespace
from store.core.session_fields import METADATA_NAME
from .cache import ByteLRU
from store.backends.catalog.sqlite.catalog import Catalog, ChunkLocation, InodeRow, now_ns
from store.core.chunker import MAX_CHUNK
from store.backends.catalog.dictionaries import Dictionaries
from store.core.errors import FormatError, FsError, IntegrityError, LockedError, BadInputError, StoreError
from .ingest import BatchBuilder, Counters
from .memory import MemoryPlan
from store.core.intervals import split_by
from .overlay import MARKER_SUFFIX, Overlay, boot_id
from store.backends.objects.packs import Packer, local_packer
from .persist import PathGroup, Persister
from .search_upkeep import TextIndex
from store.core.rewrite import plan_commit
from store.backends.catalog.sqlite.schema import LOST_BLOCK, ROOT_INO, ensure_maintenance_tables
from store.engine.statistics import StoreStatistics, store_statistics

log = logging.getLogger("sessionfs.store")

DEFAULT_CACHE_BYTES = 100 * 1024 * 1024
MAX_FILE_SIZE = (1 << 44) - 4096  # ext4's own limit with 4 KiB blocks: (2**32 - 1) blocks
READ_WINDOW = 4 * 1024 * 1024    # bytes assembled at once when rebuilding a range
PENDING_API_BYTES = 256 * 1024 * 1024
SESSIONS_DIR = b"sessions"
STORE_DIRS = ("packs", "packing", "staging")


@dataclass
class DecodedBlock:
    """A decoded block in the cache, with the chunks in it that failed their hash and why."""
    raw: bytes
    bad: frozenset
    why: str = ""

    def __len__(self) -> int:
        return len(self.raw)


class Store:
    """An open store. ``Store.open`` for use; ``Store.init`` to create one."""

    # -- life cycle --------------------------------------------------------
    @staticmethod
    def init(path: str | os.PathLike, *, exist_ok: bool = False) -> Path:
        root = Path(path)
        if (root / "catalog.db").exists():
            if exist_ok:
                return root
            raise FormatError(f"{root} already holds a sessionfs store")
        if root.exists() and any(root.iterdir()):
            raise FormatError(f"{root} exists and is not empty; choose an empty or new directory")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        for sub in STORE_DIRS:
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        tmp = root / "catalog.db.new"
        Catalog.initialize(tmp, secrets.token_hex(16))
        import sqlite3
        db = sqlite3.connect(tmp, isolation_level=None)
        now = now_ns()
        uid, gid = os.getuid(), os.getgid()
        db.execute("BEGIN")
        db.execute("INSERT INTO inodes (id, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns) "
                   "VALUES (?, ?, 2, ?, ?, ?, ?, ?)", (ROOT_INO, stat.S_IFDIR | 0o755, uid, gid, now, now, now))
        node = namespace.make_node(db, ROOT_INO, SESSIONS_DIR, stat.S_IFDIR | 0o755, uid, gid, now)
        db.execute("INSERT INTO meta (key, value) VALUES ('sessions_ino', ?)", (node.id,))
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = WAL")
        db.close()
        os.replace(tmp, root / "catalog.db")
        return root

    @classmethod
    def open(cls, path: str | os.PathLike, *, cache_bytes: int = DEFAULT_CACHE_BYTES, readonly: bool = False,
             create: bool = False, owner: dict | None = None, sync_interval: float = 5.0,
             compress_level: int = 3, packs: Packer | None = None, seal_every_commit: bool = False,
             maintenance: Callable[["Store"], object] | None = None,
             memory: MemoryPlan | None = None) -> "Store":
        """Open a store. ``maintenance(store)`` starts maintenance in this process (the mount
        daemon) once a writable store is open and returns an object with ``statistics()`` and
        ``stop()`` (``store.services.background.maintenance`` makes one: background gc and
        recompression). Off by default; ``sessionfs gc``/``compress`` run them offline.
        ``memory`` (the mount's ``--memory-limit``, divided by ``memory.plan``) sets the cache,
        the catalog readers' page caches and the queued-write bound instead of ``cache_bytes``
        and the defaults. ``seal_every_commit`` puts every commit's blocks into the object store
        before the commit (``store.backends.objects.packs``); ``packs`` replaces the local packer
        (tests give a small pack size or inject faults)."""
        root = Path(path)
        if create and not (root / "catalog.db").exists():
            cls.init(root)
        if not (root / "catalog.db").exists():
            raise FormatError(f"{root} is not a sessionfs store (no catalog.db); create one with 'sessionfs init'")
        packs = packs or local_packer(root, seal_every_commit=seal_every_commit)
        return cls(root, cache_bytes=cache_bytes, readonly=readonly, owner=owner, sync_interval=sync_interval,
                   compress_level=compress_level, packs=packs, maintenance=None if readonly else maintenance,
                   memory=memory)

    def __init__(self, root: Path, *, cache_bytes: int, readonly: bool, owner: dict | None,
                 sync_interval: float, compress_level: int, packs: Packer,
                 maintenance: Callable[["Store"], object] | None = None, memory: MemoryPlan | None = None):
        self.root = root
        self.readonly = readonly
        self.compress_level = compress_level
        self.memory = memory
        self.pending_bytes = memory.pending_bytes if memory else PENDING_API_BYTES
        for sub in STORE_DIRS:
            # Symlinks inside the store are never followed: written through, staged data or
            # pack trims would land outside the store directory.
            if (root / sub).is_symlink():
                raise FormatError(f"{root / sub} is a symbolic link; a store's {sub}/ must be a real "
                                  f"directory inside it (refusing to follow it)")
        self._lock_fd = None if readonly else self._take_lock(owner)
        try:
            self.catalog = Catalog(root / "catalog.db", readonly=readonly,
                                   **({"reader_cache_kib": memory.reader_cache_kib} if memory else {}))
            self.packs = packs
            self.cache = ByteLRU(memory.cache_bytes if memory else cache_bytes)
            self.staging = root / "staging"
            self.sessions_ino = int(self.catalog.meta("sessions_ino"))
            root_row = self.catalog.inode(ROOT_INO)
            self.owner_uid, self.owner_gid = root_row.uid, root_row.gid
            self._ov_lock = threading.Lock()
            self._overlays: dict[int, list[Overlay]] = {}
            self._pins: Counter[int] = Counter()
            self._pending_paths: dict[str, tuple[int, bytes | None]] = {}
            self._pending_trees: dict[str, int] = {}
            self._gen = 0
            self._boot = boot_id()
            self._commit_listeners: list[Callable[[list[int]], None]] = []
            self._entry_listeners: list[Callable[[list[tuple[int, bytes]]], None]] = []
            # (parent, name) created or removed by the path-level batch being applied
            self._names_changed: list[tuple[int, bytes]] = []
            self._write_errors: dict[int, BaseException] = {}   # ino -> why a write was dropped
            # Names of extended attributes any inode may have (a superset: never shrinks while open).
            self._xattr_names = {bytes(r[0]) for r in
                                 self.catalog.reader().execute("SELECT DISTINCT name FROM xattrs")}
            self.dictionaries = Dictionaries(self.catalog)
            # Foreground reads/writes stamp this (time.monotonic()); background work backs off.
            self.last_activity = time.monotonic()
            # Bumped by maintenance after it moved or dropped blocks, before it deletes old packs:
            # a read that fails while it changed retries on the new locations (read_committed).
            self.maintenance_epoch = 0
            self.background = None
            self.persister: Persister | None = None
            # The full-text index, kept in step by the hooks below.
            self.text_index = TextIndex(self.catalog, self.sessions_ino, self.root, readonly=readonly,
                                        read_chunk=lambda loc, view: self._chunk_bytes(loc, None, view))
            if not readonly:
                self._recover()
                self.text_index.rebuild_if_needed()
                self.persister = Persister(self._commit_batch, self.catalog.checkpoint, sync_interval)
                self.persister.start()
                if maintenance is not None:
                    self.background = maintenance(self)
        except BaseException:
            self._release_lock()
            raise

    def _take_lock(self, owner: dict | None) -> int:
        path = self.root / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                info = orjson.loads((self.root / "owner.json").read_bytes())
            except (OSError, orjson.JSONDecodeError):
                info = {}
            where = f" (mounted at {info['mountpoint']})" if info.get("mountpoint") else ""
            raise LockedError(f"store {self.root} is in use by process {info.get('pid', '?')}{where}; "
                              "unmount it or stop that process first") from None
        tmp = self.root / "owner.json.tmp"
        tmp.write_bytes(orjson.dumps({"pid": os.getpid(), **(owner or {})}))
        os.replace(tmp, self.root / "owner.json")
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                (self.root / "owner.json").unlink()
            except FileNotFoundError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Commit everything written (files still open are sealed as they are) and release the store."""
        if self.background is not None:
            self.background.stop()
            self.background = None
        self.text_index.stop()
        if self.persister is not None:
            with self._ov_lock:
                unsealed = [layers[-1].ino for layers in self._overlays.values() if not layers[-1].sealed]
            for ino in unsealed:
                self.seal(ino)
            self.persister.stop()
            self.persister = None
        with self._ov_lock:
            for layers in self._overlays.values():
                for ov in layers:
                    if ov.fd >= 0:
                        os.close(ov.fd)
                        ov.fd = -1
            self._overlays.clear()
        self.packs.close()
        self.catalog.close()
        self._release_lock()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- recovery ----------------------------------------------------------
    def _recover(self) -> None:
        """Bring the store to a consistent state after whatever happened before."""
        reader = self.catalog.reader()
        rows = {pid: (size, bool(sealed))
                for pid, size, sealed in reader.execute("SELECT id, size, sealed FROM packs")}
        to_seal = self.packs.recover(rows)
        with self.catalog.write() as db:
            ensure_maintenance_tables(db)
            db.executemany("UPDATE packs SET sealed = 1 WHERE id = ?", [(p,) for p in to_seal])
            now = now_ns()
            for (ino,) in db.execute("SELECT id FROM inodes WHERE nlink = 0 AND id != ?", (ROOT_INO,)).fetchall():
                namespace.delete_inode(db, ino, now)
        self.packs.committed()                  # sealed packs still local go into the object store
        self._ids = self._load_counters()
        self._seq = max(int(self.catalog.meta("last_seq") or 0), self._max_staged_seq())
        self._replay_staged()

    def _load_counters(self) -> Counters:
        r = self.catalog.reader()
        block = r.execute("SELECT coalesce(max(id), 0) FROM blocks").fetchone()[0]
        chunk = r.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]
        pack = max([r.execute("SELECT coalesce(max(id), 0) FROM packs").fetchone()[0], *self.packs.sizes()])
        return Counters(block + 1, chunk + 1, pack + 1)

    def _max_staged_seq(self) -> int:
        seqs = [int(n.split(".")[0]) for n in os.listdir(self.staging) if n.split(".")[0].isdigit()]
        return max(seqs, default=0)

    def _replay_staged(self) -> None:
        """Commit overlays sealed before a crash; drop unsealed ones (files never closed)."""
        markers = sorted(n for n in os.listdir(self.staging) if n.endswith(MARKER_SUFFIX))
        sealed = set()
        replay = []
        for name in markers:
            seq = name[: -len(MARKER_SUFFIX)]
            try:
                marker = orjson.loads((self.staging / name).read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                log.warning("ignoring unreadable staged marker %s: %s", name, exc)
                continue
            if marker.get("boot_id") != self._boot:
                log.warning("dropping staged write %s from an earlier boot (un-fsynced, may be torn)", seq)
                continue
            sealed.add(seq)
            replay.append(Overlay.load(self.staging, marker))
        for name in os.listdir(self.staging):
            if name.split(".")[0] not in sealed:
                os.unlink(self.staging / name)
        replay = [ov for ov in replay if self._replay_wanted(ov)]
        if replay:
            log.info("replaying %d closed files staged before the last stop", len(replay))
            for ov in replay:
                self._overlays.setdefault(ov.ino, []).append(ov)
            for ov in replay:
                self._commit_batch([ov], durable=True)
        for name in os.listdir(self.staging):
            os.unlink(self.staging / name)

    def _replay_wanted(self, ov: Overlay) -> bool:
        row = self.catalog.inode(ov.ino)
        if row is None or row.content_seq >= ov.seq or not stat.S_ISREG(row.mode):
            os.close(ov.fd)
            return False
        return True

    # -- reading -------------------------------------------------------------
    def _layers(self, ino: int) -> list[Overlay]:
        with self._ov_lock:
            return list(self._overlays.get(ino, ()))

    def getattr(self, ino: int) -> InodeRow:
        layers = self._layers(ino)
        row = self.catalog.inode(ino)
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        return self._overlaid(row, layers)

    def cached_getattr(self, ino: int) -> InodeRow | None:
        """``getattr`` from memory only (no I/O: safe on an event loop); None if not cached."""
        layers = self._layers(ino)
        cached = self.catalog.attrs.row(ino)
        return None if cached is None else self._overlaid(InodeRow(*cached), layers)

    @staticmethod
    def _overlaid(row: InodeRow, layers: list[Overlay]) -> InodeRow:
        """``row`` as the file's uncommitted writes make it look."""
        if layers:
            top = layers[-1]
            row.size = top.size
            if top.mtime_ns:
                row.mtime_ns, row.ctime_ns = top.mtime_ns, max(row.ctime_ns, top.ctime_ns)
        return row

    def read(self, ino: int, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of a file as it is now, overlays included."""
        self.last_activity = time.monotonic()
        while True:
            layers = self._layers(ino)
            if not layers:
                break
            # The worker may commit and discard a layer while we read it: its fd is then
            # closed (EBADF) or already reused by another file (wrong bytes). Discard sets
            # fd to -1 before closing, so check afterwards and retry on fresh layers.
            try:
                data = self._read_layer(ino, layers, len(layers) - 1, offset, length)
            except OSError as exc:
                if exc.errno != errno.EBADF or all(ov.fd >= 0 for ov in layers):
                    raise
                continue
            if all(ov.fd >= 0 for ov in layers):
                return data
        row = self.catalog.inode(ino)
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        end = min(row.size, offset + length)
        return self.read_committed(ino, offset, end - offset) if end > offset else b""

    def read_all(self, ino: int) -> bytes:
        return self.read(ino, 0, self.getattr(ino).size)

    def _read_layer(self, ino: int, layers: list[Overlay], idx: int, offset: int, length: int) -> bytes:
        if idx < 0:
            return self.read_committed(ino, offset, length)
        ov = layers[idx]
        end = min(offset + length, ov.size)
        parts = []
        for start, stop, staged in split_by(offset, end, ov.dirty):
            if staged:
                parts.append(ov.read_staged(start, stop - start))
                continue
            low_end = min(stop, ov.floor)
            if start < low_end:
                got = self._read_layer(ino, layers, idx - 1, start, low_end - start)
                parts.append(got + bytes(low_end - start - len(got)))
            if max(start, low_end) < stop:
                parts.append(bytes(stop - max(start, low_end)))
        return b"".join(parts)

    def read_committed(self, ino: int, offset: int, length: int, db=None) -> bytes:
        """Committed bytes [offset, offset+length); holes are zeros. Verifies every chunk."""
        if length <= 0:
            return b""
        while True:
            epoch = self.maintenance_epoch
            try:
                return self._read_committed(ino, offset, length, db)
            except IntegrityError:
                # Maintenance (gc, recompression) moved blocks and deleted their old pack while
                # we read: our locations were stale, not the data bad. Read them again.
                if db is not None or self.maintenance_epoch == epoch:
                    raise

    def _read_committed(self, ino: int, offset: int, length: int, db=None) -> bytes:
        end = offset + length
        out = bytearray(length)
        for loc in self.catalog.locations(ino, offset, end, MAX_CHUNK, db):
            data = self._chunk_bytes(loc, ino, db)
            lo, hi = max(offset, loc.off), min(end, loc.off + loc.length)
            out[lo - offset:hi - offset] = data[lo - loc.off:hi - loc.off]
        return bytes(out)

    def _chunk_bytes(self, loc: ChunkLocation, ino: int | None, db=None) -> bytes:
        block = self.cache.get(loc.block_id)
        if block is None:
            epoch = self.maintenance_epoch
            block = self._load_block(loc.block_id, db)
            if not block.bad or self.maintenance_epoch == epoch:   # else maybe a stale location
                self.cache.put(loc.block_id, block)
        if loc.chunk_id in block.bad or loc.block_off + loc.length > len(block.raw):
            where = self.catalog.path_of(ino, db) if ino is not None else None
            raise IntegrityError(
                f"chunk {loc.hash.hex()} (block {loc.block_id}) is corrupt"
                + (f" ({block.why})" if block.why else "")
                + (f"; file {where!r} cannot be read there" if where else ""),
                chunk=loc.hash.hex(), path=where)
        return block.raw[loc.block_off:loc.block_off + loc.length]

    def _load_block(self, block_id: int, db=None) -> DecodedBlock:
        """Read, decode and verify one block; chunks failing their hash are marked bad."""
        b = self.catalog.block(block_id, db)
        if b is None:
            if block_id == LOST_BLOCK:
                raise IntegrityError("the data here was lost (a damaged pack or chunk; 'sessionfs verify' lists "
                                     "the file under lost+found)")
            raise IntegrityError(f"block {block_id} is missing from the catalog")
        where = f"pack {b.pack_id:08d} offset {b.offset} (block {block_id})"
        from store.core.chunker import chunk_hash
        reader = db or self.catalog.reader()
        chunk_rows = reader.execute("SELECT id, hash, block_off, length FROM chunks WHERE block_id = ?",
                                    (block_id,)).fetchall()
        try:
            raw = codec.decode_block(self.packs.read(b.pack_id, b.offset, b.length), where, self.dictionaries)
        except IntegrityError as exc:
            log.error("%s", exc)
            return DecodedBlock(b"", frozenset(r[0] for r in chunk_rows), str(exc))
        if len(raw) != b.raw_length:
            why = f"{where}: decodes to {len(raw)} bytes, catalog says {b.raw_length}"
            log.error("%s", why)
            return DecodedBlock(b"", frozenset(r[0] for r in chunk_rows), why)
        bad = frozenset(cid for cid, digest, off, n in chunk_rows
                        if chunk_hash(memoryview(raw)[off:off + n]) != bytes(digest))
        why = f"{where}: {len(bad)} chunk(s) fail their SHA-256" if bad else ""
        if bad:
            log.error("%s", why)
        return DecodedBlock(raw, bad, why)

    def lookup(self, parent: int, name: bytes) -> InodeRow:
        ino = self.catalog.lookup(parent, name)
        if ino is None:
            raise FsError(errno.ENOENT, f"{name.decode(errors='replace')} does not exist")
        return self.getattr(ino)

    def readdir(self, ino: int, after: int, limit: int = 1000) -> list[tuple[int, bytes, InodeRow]]:
        entries = self.catalog.readdir(ino, after, limit)
        out = []
        for rowid, name, row in entries:
            layers = self._layers(row.id)
            if layers:             # as getattr: readdirplus hands these attributes to the kernel
                top = layers[-1]
                row.size = top.size
                if top.mtime_ns:
                    row.mtime_ns, row.ctime_ns = top.mtime_ns, max(row.ctime_ns, top.ctime_ns)
            out.append((rowid, name, row))
        return out

    def readlink(self, ino: int) -> bytes:
        row = self.getattr(ino)
        if not stat.S_ISLNK(row.mode):
            raise FsError(errno.EINVAL, "not a symbolic link")
        return bytes(row.target or b"")

    # -- namespace ------------------------------------------------------------
    def _namespace(self, op, *args, entries: Iterable[tuple[int, bytes]] = (), moved: Iterable[int] = ()):
        """Run a namespace op in a write transaction and keep the session index in step."""
        self._check_writable()
        with self.catalog.write() as db:
            now = now_ns()
            result = op(db, *args, now)
            self._refresh_sessions(db, entries, moved)
        return result

    def _refresh_sessions(self, db, entries: Iterable[tuple[int, bytes]], moved: Iterable[int]) -> None:
        """Keep the session rows and the search index in step with changed names: ``entries``
        are the (parent, name) created, removed or replaced, ``moved`` the inodes that gained or
        lost a name. A session's row depends only on its directory's name in sessions/ and on
        its metadata.json, so other names in a session leave it alone (creating a file in a
        session used to re-read and re-parse metadata.json)."""
        entries, moved = list(entries), list(moved)
        dirs = set()
        for parent, name in entries:
            if parent == self.sessions_ino:
                dirs.update(moved)
            elif name == METADATA_NAME and db.execute(
                    "SELECT 1 FROM dentries WHERE ino = ? AND parent = ?", (parent, self.sessions_ino)).fetchone():
                dirs.add(parent)
        for d in dirs:
            db.sessions.refresh(d, self.sessions_ino, lambda i: self._read_file_in(db, i))
        self.text_index.namespace_changed(db, entries, moved)

    def _read_file_in(self, db, ino: int) -> bytes:
        row = namespace.get(db, ino)
        try:
            return self.read_committed(ino, 0, row.size, db)
        except IntegrityError as exc:
            # A damaged metadata.json indexes like an invalid one; it must not make every
            # change in its session directory fail.
            log.error("%s; the session is left out of the index until it is rewritten", exc)
            return b""

    def make_node(self, parent: int, name: bytes, mode: int, uid: int, gid: int, rdev: int = 0,
                  target: bytes | None = None) -> InodeRow:
        return self._namespace(lambda db, now: namespace.make_node(db, parent, name, mode, uid, gid, now, rdev,
                                                                    target), entries=[(parent, name)])

    def link(self, ino: int, parent: int, name: bytes) -> InodeRow:
        return self._namespace(lambda db, now: namespace.link(db, ino, parent, name, now),
                               entries=[(parent, name)], moved=[ino])

    def unlink(self, parent: int, name: bytes) -> None:
        row = self._namespace(lambda db, now: namespace.unlink(db, parent, name, now), entries=[(parent, name)])
        self._maybe_delete(row)

    def rmdir(self, parent: int, name: bytes) -> None:
        ino = self.catalog.lookup(parent, name)
        row = self._namespace(lambda db, now: namespace.rmdir(db, parent, name, now),
                              entries=[(parent, name)], moved=[ino] if ino else [])
        self._maybe_delete(row)

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int = 0) -> None:
        moved = [i for i in (self.catalog.lookup(old_parent, old_name), self.catalog.lookup(new_parent, new_name))
                 if i]
        replaced = self._namespace(
            lambda db, now: namespace.rename(db, old_parent, old_name, new_parent, new_name, flags, now),
            entries=[(old_parent, old_name), (new_parent, new_name)], moved=moved)
        if replaced is not None:
            self._maybe_delete(replaced)

    def setattr(self, ino: int, *, mode=None, uid=None, gid=None, atime_ns=None, mtime_ns=None,
                size: int | None = None) -> InodeRow:
        self._check_writable()
        if size is not None:
            self.truncate(ino, size)
            self.seal(ino)
        if mtime_ns is not None:
            # Before the catalog: a queued overlay committing in between must not put back its
            # older mtime (write, close, utimes - as cp -p and rsync -t do).
            with self._ov_lock:
                for ov in self._overlays.get(ino, ()):
                    ov.mtime_ns = mtime_ns
        if any(v is not None for v in (mode, uid, gid, atime_ns, mtime_ns)) or size is not None:
            with self.catalog.write() as db:
                namespace.set_attrs(db, ino, now_ns(), mode=mode, uid=uid, gid=gid, atime_ns=atime_ns,
                                    mtime_ns=mtime_ns)
        return self.getattr(ino)

    def pin(self, ino: int, n: int = 1) -> None:
        """The kernel (or another user) holds ``n`` more references to ``ino``."""
        with self._ov_lock:
            self._pins[ino] += n

    def unpin(self, ino: int, n: int = 1) -> None:
        with self._ov_lock:
            self._pins[ino] -= n
            if self._pins[ino] > 0:
                return
            del self._pins[ino]
        row = self.catalog.inode(ino)
        if row is not None and row.nlink == 0:
            self._maybe_delete(row)

    def _maybe_delete(self, row: InodeRow) -> None:
        """Remove an inode that lost its last name once nobody holds it."""
        if row.nlink > 0 or row.id == ROOT_INO:
            return
        with self._ov_lock:
            if self._pins.get(row.id):
                return
            layers = self._overlays.pop(row.id, [])
            for ov in layers:       # under the lock: write() pwrites under it, never to a closed fd
                if not ov.sealed:
                    ov.discard()
        with self.catalog.write() as db:
            current = db.execute("SELECT nlink FROM inodes WHERE id = ?", (row.id,)).fetchone()
            if current is not None and current[0] == 0:
                namespace.delete_inode(db, row.id, now_ns())

    # -- xattrs ---------------------------------------------------------------
    def getxattr(self, ino: int, name: bytes) -> bytes:
        row = self.catalog.reader().execute("SELECT value FROM xattrs WHERE ino = ? AND name = ?",
                                            (ino, name)).fetchone()
        if row is None:
            raise FsError(errno.ENODATA, "no such attribute")
        return bytes(row[0])

    def listxattr(self, ino: int) -> list[bytes]:
        return [bytes(r[0]) for r in self.catalog.reader().execute(
            "SELECT name FROM xattrs WHERE ino = ? ORDER BY name", (ino,))]

    def may_have_xattr(self, name: bytes) -> bool:
        """False when no inode has an attribute ``name`` (from memory: safe on an event loop).
        A read-only store cannot know: the process that writes may have set it since."""
        return self.readonly or name in self._xattr_names

    def setxattr(self, ino: int, name: bytes, value: bytes, *, create: bool = False, replace: bool = False) -> None:
        self._check_writable()
        self._xattr_names.add(name)      # before the commit: a reader must never miss it
        with self.catalog.write() as db:
            namespace.get(db, ino)
            current = db.execute("SELECT value FROM xattrs WHERE ino = ? AND name = ?", (ino, name)).fetchone()
            if create and current:
                raise FsError(errno.EEXIST, "attribute exists")
            if replace and not current:
                raise FsError(errno.ENODATA, "no such attribute")
            if current and bytes(current[0]) == value:
                return          # like ext4: setting the value it has changes nothing, not even ctime
            db.execute("INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?, ?, ?)", (ino, name, value))
            db.execute("UPDATE inodes SET ctime_ns = ? WHERE id = ?", (now_ns(), ino))

    def removexattr(self, ino: int, name: bytes) -> None:
        self._check_writable()
        with self.catalog.write() as db:
            if db.execute("DELETE FROM xattrs WHERE ino = ? AND name = ?", (ino, name)).rowcount == 0:
                raise FsError(errno.ENODATA, "no such attribute")
            db.execute("UPDATE inodes SET ctime_ns = ? WHERE id = ?", (now_ns(), ino))

    def content_hash(self, ino: int) -> str:
        """SHA-256 of the file's current bytes (an identity users can compare)."""
        import hashlib
        h = hashlib.sha256()
        size = self.getattr(ino).size
        for off in range(0, size, READ_WINDOW):
            h.update(self.read(ino, off, min(READ_WINDOW, size - off)))
        return h.hexdigest()

    def stored_bytes(self, inos: Iterable[int]) -> dict[int, int]:
        """Bytes of each file that hold data, not holes (for st_blocks; pending writes counted)."""
        out = self.catalog.data_bytes(list(inos))
        for ino in out:
            out[ino] += self._pending_data(ino)
        return out

    def cached_stored_bytes(self, ino: int) -> int | None:
        """``stored_bytes`` of one file from memory only; None if not cached."""
        n = self.catalog.attrs.data_bytes(ino)
        return None if n is None else n + self._pending_data(ino)

    def _pending_data(self, ino: int) -> int:
        return sum(ov.dirty.total() for ov in self._layers(ino))

    # -- writing file content ----------------------------------------------------
    def _check_writable(self) -> None:
        if self.readonly:
            raise FsError(errno.EROFS, f"store {self.root} is open read-only")

    def _active_overlay(self, ino: int) -> Overlay:
        """The unsealed overlay of ``ino``, started on top of its current state if needed."""
        with self._ov_lock:
            layers = self._overlays.get(ino)
            if layers and not layers[-1].sealed:
                return layers[-1]
        row = self.getattr(ino)
        if not stat.S_ISREG(row.mode):
            raise FsError(errno.EISDIR if stat.S_ISDIR(row.mode) else errno.EINVAL, "not a regular file")
        with self._ov_lock:
            layers = self._overlays.setdefault(ino, [])
            if layers and not layers[-1].sealed:
                return layers[-1]
            self._seq += 1
            base = layers[-1].size if layers else row.size
            ov = Overlay(self.staging, self._seq, ino, base)
            layers.append(ov)
            return ov

    def write(self, ino: int, offset: int, data: bytes) -> int:
        self._check_writable()
        self.last_activity = time.monotonic()
        if offset < 0:
            raise FsError(errno.EINVAL, "negative offset")
        if offset + len(data) > MAX_FILE_SIZE:
            if offset >= MAX_FILE_SIZE:
                raise FsError(errno.EFBIG, f"files are limited to {MAX_FILE_SIZE} bytes")
            data = memoryview(data)[:MAX_FILE_SIZE - offset]   # like ext4: a short write up to the limit
        if not data:
            return 0
        while True:
            ov = self._active_overlay(ino)
            with self._ov_lock:
                if ov.sealed:
                    continue
                return ov.write(offset, data, now_ns())

    def truncate(self, ino: int, size: int) -> None:
        self._check_writable()
        if size < 0:
            raise FsError(errno.EINVAL, "negative size")
        if size > MAX_FILE_SIZE:
            raise FsError(errno.EFBIG, f"files are limited to {MAX_FILE_SIZE} bytes")
        while True:
            ov = self._active_overlay(ino)
            with self._ov_lock:
                if ov.sealed:
                    continue
                ov.truncate(size, now_ns())
                return

    def seal(self, ino: int) -> bool:
        """Queue the file's unsealed writes for commit (close(2)); True when there were any."""
        with self._ov_lock:
            layers = self._overlays.get(ino)
            if not layers or layers[-1].sealed:
                return False
            ov = layers[-1]
            ov.seal(self._boot)
        self.persister.submit(ov)
        return True

    def fsync(self, ino: int | None = None) -> None:
        """Return once the file (or, with None, everything) is durable."""
        if self.readonly:
            return
        if ino is not None:
            self.seal(ino)
        self.persister.barrier(durable=True).wait()
        if ino is not None:
            with self._ov_lock:
                error = self._write_errors.pop(ino, None)
            if error is not None:
                raise error

    def has_pending(self, ino: int) -> bool:
        with self._ov_lock:
            return bool(self._overlays.get(ino))

    def add_commit_listener(self, fn: Callable[[list[int]], None]) -> None:
        """``fn(inos)`` is called (in the worker thread) after a batch changed those files."""
        self._commit_listeners.append(fn)

    def add_entry_listener(self, fn: Callable[[list[tuple[int, bytes]]], None]) -> None:
        """``fn([(parent, name), ...])`` is called (in the worker thread) after a batch created or
        removed those names at path level (``write_files``, ``delete_trees``); a mount uses it to
        drop the kernel's cached directory entries, negative ones (a name looked up and not
        found) included."""
        self._entry_listeners.append(fn)

    # -- path level (session API, CLI) -------------------------------------------
    @staticmethod
    def split_path(path: str) -> list[bytes]:
        if not isinstance(path, str) or "\0" in path:
            raise BadInputError(f"invalid path {path!r}")
        parts = [p.encode("utf-8", "surrogateescape") for p in path.strip("/").split("/") if p]
        for p in parts:
            if p in (b".", b".."):
                raise BadInputError(f"path {path!r} may not contain '.' or '..'")
            if len(p) > namespace.NAME_MAX:
                raise BadInputError(f"path {path!r} has a component longer than {namespace.NAME_MAX} bytes")
        return parts

    def resolve(self, path: str, db=None) -> int | None:
        ino = ROOT_INO
        for part in self.split_path(path):
            ino = self.catalog.lookup(ino, part, db)
            if ino is None:
                return None
        return ino

    def _pending_state(self, path: str):
        """(found, bytes or None) for a path changed by a queued group."""
        norm = "/".join(p.decode("utf-8", "surrogateescape") for p in self.split_path(path))
        with self._ov_lock:
            gen_w, data = self._pending_paths.get(norm, (0, None))
            gen_t = max((g for t, g in self._pending_trees.items() if norm == t or norm.startswith(t + "/")),
                        default=0)
        if gen_w and gen_w >= gen_t:
            return True, data
        if gen_t:
            return True, None
        return False, None

    def read_path(self, path: str) -> bytes:
        found, data = self._pending_state(path)
        if found:
            if data is None:
                raise FsError(errno.ENOENT, f"{path} does not exist")
            return data
        ino = self.resolve(path)
        if ino is None:
            raise FsError(errno.ENOENT, f"{path} does not exist")
        row = self.getattr(ino)
        if stat.S_ISDIR(row.mode):
            raise FsError(errno.EISDIR, f"{path} is a directory")
        try:
            return self.read_all(ino)
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: {exc}", chunk=exc.chunk, path=path) from None

    def exists(self, path: str) -> bool:
        found, data = self._pending_state(path)
        if found:
            return data is not None
        return self.resolve(path) is not None

    def list_dir(self, path: str) -> list[str]:
        """Names in a directory, committed state after queued groups land."""
        self.settle()
        ino = self.resolve(path)
        if ino is None:
            raise FsError(errno.ENOENT, f"{path} does not exist")
        names, after = [], 0
        while True:
            batch = self.catalog.readdir(ino, after, 1000)
            if not batch:
                return names
            names.extend(n.decode("utf-8", "surrogateescape") for _, n, _ in batch)
            after = batch[-1][0]

    def write_files(self, writes: dict[str, bytes | None] | Iterable[tuple[str, bytes | None]],
                    delete_trees: Iterable[str] = (), on_commit: Callable | None = None) -> PathGroup:
        """Queue whole-file writes (None deletes) and tree deletions as one atomic group.

        ``on_commit(db)``, if given, runs in the commit's transaction just before the group's
        deletions and writes (see ``PathGroup.on_commit``): it may check the committed tree and
        add catalog rows that commit with the group or not at all."""
        self._check_writable()
        self.last_activity = time.monotonic()
        items = list(writes.items() if isinstance(writes, dict) else writes)
        norm = []
        for path, data in items:
            parts = self.split_path(path)
            if not parts:
                raise BadInputError("cannot write the root directory")
            if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
                raise BadInputError(f"{path}: content must be bytes, not {type(data).__name__}")
            norm.append(("/".join(p.decode("utf-8", "surrogateescape") for p in parts),
                         bytes(data) if data is not None else None))
        trees = []
        for t in delete_trees:
            parts = self.split_path(t)
            if not parts:
                raise BadInputError("cannot delete the root directory")
            trees.append("/".join(p.decode("utf-8", "surrogateescape") for p in parts))
        self.persister.wait_for_room(self.pending_bytes)
        with self._ov_lock:
            self._gen += 1
            gen = self._gen
            group = PathGroup(gen, norm, trees, on_commit=on_commit)
            for t in trees:
                self._pending_trees[t] = gen
            for path, data in norm:
                self._pending_paths[path] = (gen, data)
        self.persister.submit(group)
        return group

    def settle(self) -> None:
        """Wait until every write queued so far is committed (not necessarily durable)."""
        if self.persister is not None and not self.persister.idle:
            self.persister.barrier(durable=False).wait()

    def flush(self) -> None:
        """Make everything queued so far durable."""
        if self.persister is not None:
            self.persister.barrier(durable=True).wait()

    def run_in_worker(self, fn: Callable[[], object]) -> object:
        """Run ``fn()`` in the persistence worker (the only writer of packs, blocks and chunks)
        between batches and return its result; maintenance (gc, recompression) goes through here."""
        self._check_writable()
        return self.persister.call(fn).wait()

    # -- statistics --------------------------------------------------------------
    def statistics(self) -> StoreStatistics:
        """A snapshot of sizes, ratios, cache and queue counters (``store.statistics``: O(1))."""
        return store_statistics(self)

    # -- the persistence worker's commit ----------------------------------------
    def _known_chunk(self, digest: bytes):
        row = self.catalog.reader().execute("SELECT id, length FROM chunks WHERE hash = ?", (digest,)).fetchone()
        return (row[0], row[1]) if row else None

    def _commit_batch(self, items: list, durable: bool) -> None:
        """Build, write and commit one batch (runs in the persistence worker)."""
        ids_before = Counters(self._ids.block, self._ids.chunk, self._ids.pack)
        pack_before = self.packs.write_position
        builder = BatchBuilder(self.packs, self._ids, self._known_chunk, self.compress_level)
        try:
            prepared = [self._prepare_or_drop(item, builder) for item in items]
            self.packs.prepare_commit()
            changed = self._apply(items, prepared, builder, durable)
        except BaseException:
            for block_id in range(ids_before.block, self._ids.block):
                self.cache.discard(block_id)        # the retry reuses these ids for other bytes
            self._ids = ids_before
            self._undo_appends(pack_before, builder.new_packs)
            raise
        self.packs.committed()
        self._after_commit(items, changed)

    def _undo_appends(self, before: tuple[int | None, int], new_packs: list[int]) -> None:
        """Cut away what a failed batch appended to packs (the catalog never saw it)."""
        try:
            self.packs.undo(before, new_packs, self._ids.pack)
        except (OSError, StoreError) as exc:
            log.warning("could not trim packs after a failed batch (next open will): %s", exc)

    def _prepare_or_drop(self, item, builder: BatchBuilder):
        try:
            return self._prepare(item, builder)
        except IntegrityError as exc:
            if not isinstance(item, Overlay):
                raise
            # The write needs bytes of a damaged chunk that it did not overwrite, so it can
            # never commit. Drop it, like a failed writeback, rather than block the queue
            # (and, replayed, every later open); fsync of the file reports the error.
            where = self.catalog.path_of(item.ino) or f"inode {item.ino}"
            log.error("dropping a write to %s (staged as %d) that cannot be committed: %s", where, item.seq, exc)
            with self._ov_lock:
                self._write_errors[item.ino] = exc
            return None

    def _prepare(self, item, builder: BatchBuilder):
        if isinstance(item, Overlay):
            base = self.catalog.extents(item.ino)
            keep, ranges = plan_commit(base, item.size, item.floor, item.dirty)
            try:
                new = self._build_ranges(item, ranges, builder)
            except IntegrityError as exc:
                # A corrupt neighbour chunk pulled in only to resynchronise the cuts must not
                # stop the commit (and the queue behind it): keep it as it is and retry.
                log.error("rebuilding around damaged data without widening: %s", exc)
                keep, ranges = plan_commit(base, item.size, item.floor, item.dirty, widen=False)
                new = self._build_ranges(item, ranges, builder)
            return keep, new
        writes = []
        for path, data in item.writes:
            extents = builder.add_stream([data], 0) if data else []
            writes.append((path, data, extents))
        return writes

    def _build_ranges(self, ov: Overlay, ranges: list[tuple[int, int]], builder: BatchBuilder) -> list:
        new = []
        for start, end in ranges:
            new.extend(builder.add_stream(self._range_pieces(ov, start, end), start))
        return new

    def _range_pieces(self, ov: Overlay, start: int, end: int):
        """The overlay's new bytes of [start, end) in windows: staged, lower committed, or zeros."""
        for w in range(start, end, READ_WINDOW):
            w_end = min(end, w + READ_WINDOW)
            parts = []
            for s, e, staged in split_by(w, w_end, ov.dirty):
                if staged:
                    parts.append(ov.read_staged(s, e - s))
                else:
                    low_end = min(e, ov.floor)
                    if s < low_end:
                        parts.append(self.read_committed(ov.ino, s, low_end - s))
                    if max(s, low_end) < e:
                        parts.append(bytes(e - max(s, low_end)))
            yield b"".join(parts)

    def _apply(self, items: list, prepared: list, builder: BatchBuilder, durable: bool) -> list[int]:
        now = now_ns()
        changed: list[int] = []
        self._names_changed = []
        with self.catalog.write(durable=durable) as db:
            self.record_packs(db, builder.new_packs, builder.pack_ends)
            db.executemany("INSERT INTO blocks (id, pack_id, offset, length, raw_length, codec, dict_id, created) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", builder.new_blocks)
            db.executemany("INSERT INTO chunks (id, hash, length, block_id, block_off, refcount, unref_since) "
                           "VALUES (?, ?, ?, ?, ?, 0, ?)", [(*c, now) for c in builder.new_chunks])
            for item, prep in zip(items, prepared):
                if isinstance(item, Overlay):
                    if prep is None:                # dropped: readers fall back to the lower layers
                        changed.append(item.ino)
                    elif self._apply_overlay(db, item, prep, now):
                        changed.append(item.ino)
                else:
                    db.execute("SAVEPOINT grp")
                    try:
                        changed.extend(self._apply_group(db, item, prep, now))
                        db.execute("RELEASE grp")
                    except (FsError, BadInputError) as exc:
                        db.execute("ROLLBACK TO grp")
                        db.execute("RELEASE grp")
                        item.error = exc
                        log.error("write group failed and was dropped: %s", exc)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)", (self._seq,))
        return changed

    def record_packs(self, db, new_packs: list[int], pack_ends: dict[int, int]) -> None:
        """Inside a transaction that points at new blocks: the packs' rows and committed sizes;
        every pack but the open one is sealed (the packer puts it after, or before, the commit)."""
        now = now_ns()
        db.executemany("INSERT OR IGNORE INTO packs (id, size, created) VALUES (?, 0, ?)",
                       [(pid, now) for pid in new_packs])
        db.executemany("UPDATE packs SET size = ? WHERE id = ?", [(end, pid) for pid, end in pack_ends.items()])
        write_id, _ = self.packs.write_position
        db.execute("UPDATE packs SET sealed = 1 WHERE sealed = 0 AND id != ?", (-1 if write_id is None else write_id,))

    def _set_content(self, db, ino: int, extents: list[tuple[int, int, int]], now: int) -> None:
        namespace.release_content(db, ino, now)
        db.executemany("INSERT INTO file_chunks (ino, off, chunk_id) VALUES (?, ?, ?)",
                       [(ino, off, cid) for off, _, cid in extents])
        counts = Counter(cid for _, _, cid in extents)
        db.executemany("UPDATE chunks SET refcount = refcount + ?, unref_since = NULL WHERE id = ?",
                       [(n, cid) for cid, n in counts.items()])

    def _apply_overlay(self, db, ov: Overlay, prep, now: int) -> bool:
        keep, new = prep
        row = db.execute("SELECT mode FROM inodes WHERE id = ?", (ov.ino,)).fetchone()
        if row is None:
            return False
        extents = sorted([(e.off, e.length, e.chunk_id) for e in keep] + new)
        self._set_content(db, ov.ino, extents, now)
        db.execute("UPDATE inodes SET size = ?, mtime_ns = ?, ctime_ns = max(ctime_ns, ?), content_seq = ? "
                   "WHERE id = ?", (ov.size, ov.mtime_ns or now, ov.ctime_ns or now, ov.seq, ov.ino))
        self._refresh_for_file(db, ov.ino)
        return True

    def _refresh_for_file(self, db, ino: int) -> None:
        for parent, name in self.catalog.names_of(ino, db):
            if name == METADATA_NAME:
                self._refresh_sessions(db, [(parent, name)], [])
        self.text_index.content_changed(db, ino)

    def _apply_group(self, db, group: PathGroup, prep, now: int) -> list[int]:
        changed = []
        if group.on_commit is not None:
            group.on_commit(db)
        for tree in group.trees:
            ino = self.resolve(tree, db)
            if ino is not None:
                changed.extend(self._delete_tree(db, ino, now))
        for path, data, extents in prep:
            parts = self.split_path(path)
            parent = self._mkdirs(db, parts[:-1], now)
            ino = namespace.lookup(db, parent, parts[-1])
            if data is None:
                if ino is not None:
                    row = namespace.unlink(db, parent, parts[-1], now)
                    self._names_changed.append((parent, parts[-1]))
                    self._delete_if_unused(db, row, now)
                    self._refresh_sessions(db, [(parent, parts[-1])], [])
                    changed.append(ino)
                continue
            if ino is None:
                ino = namespace.make_node(db, parent, parts[-1], stat.S_IFREG | 0o644, self.owner_uid,
                                          self.owner_gid, now).id
                self._names_changed.append((parent, parts[-1]))
            elif not stat.S_ISREG(namespace.get(db, ino).mode):
                raise FsError(errno.EISDIR, f"{path} exists and is not a regular file")
            self._set_content(db, ino, extents, now)
            db.execute("UPDATE inodes SET size = ?, mtime_ns = ?, ctime_ns = ? WHERE id = ?",
                       (len(data), now, now, ino))
            changed.append(ino)
            self._refresh_for_file(db, ino)
        return changed

    def _mkdirs(self, db, parts: list[bytes], now: int) -> int:
        ino = ROOT_INO
        for part in parts:
            child = namespace.lookup(db, ino, part)
            if child is None:
                child = namespace.make_node(db, ino, part, stat.S_IFDIR | 0o755, self.owner_uid, self.owner_gid,
                                            now).id
                self._names_changed.append((ino, part))
                self._refresh_sessions(db, [(ino, part)], [child])
            elif not stat.S_ISDIR(namespace.get(db, child).mode):
                raise FsError(errno.ENOTDIR, f"{part.decode(errors='replace')} is not a directory")
            ino = child
        return ino

    def _delete_tree(self, db, ino: int, now: int) -> list[int]:
        """Remove a directory tree (or one file) inside a transaction; returns removed inodes."""
        removed = []
        names = self.catalog.names_of(ino, db)
        row = namespace.get(db, ino)
        if stat.S_ISDIR(row.mode):
            for _, name, child in self.catalog.readdir(ino, 0, 1 << 62, db):
                removed.extend(self._delete_tree(db, child.id, now))
        for parent, name in names[:1]:
            if stat.S_ISDIR(row.mode):
                row = namespace.rmdir(db, parent, name, now)
            else:
                row = namespace.unlink(db, parent, name, now)
            self._names_changed.append((parent, name))
            self._refresh_sessions(db, [(parent, name)], [ino])
        self._delete_if_unused(db, row, now)
        removed.append(ino)
        return removed

    def _delete_if_unused(self, db, row: InodeRow, now: int) -> None:
        if row.nlink > 0:
            return
        with self._ov_lock:
            pinned = bool(self._pins.get(row.id))
            if not pinned:
                for ov in self._overlays.pop(row.id, []):
                    if not ov.sealed:
                        ov.discard()
        if not pinned:
            namespace.delete_inode(db, row.id, now)

    def _after_commit(self, items: list, changed: list[int]) -> None:
        for item in items:
            if isinstance(item, Overlay):
                with self._ov_lock:
                    layers = self._overlays.get(item.ino)
                    if layers and layers[0] is item:
                        layers.pop(0)
                        if not layers:
                            del self._overlays[item.ino]
                item.discard()
            else:
                with self._ov_lock:
                    for path, _ in item.writes:
                        if self._pending_paths.get(path, (None,))[0] == item.gen:
                            del self._pending_paths[path]
                    for t in item.trees:
                        if self._pending_trees.get(t) == item.gen:
                            del self._pending_trees[t]
        if changed:
            for fn in self._commit_listeners:
                try:
                    fn(changed)
                except Exception:  # noqa: BLE001 - a listener must not break persistence
                    log.exception("commit listener failed")
        names, self._names_changed = self._names_changed, []
        if names:
            for fn in self._entry_listeners:
                try:
                    fn(names)
                except Exception:  # noqa: BLE001 - a listener must not break persistence
                    log.exception("entry listener failed")
        for item in items:
            if not isinstance(item, Overlay):
                item.done.set()         # after the listeners: a finished group shows in the mount
