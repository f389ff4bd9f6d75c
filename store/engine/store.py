"""The store: one directory holding a catalog, packs and staged writes.

Layout of a store directory (created private, 0700)::

    config.json     where a scale-out store's objects and catalog live (absent: here, the default)
    catalog.db      the SQLite catalog (schema.create_tables documents it)
    packs/          sealed packs of framed blocks: the local object store's objects
                    (store.backends.objects.store.LocalObjectStore, written whole, never changed)
    cache/          a scale-out store's local cache of object ranges (``--disk-cache``)
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
import logging
import os
import secrets
import stat
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from store.backends.catalog.rows import ROOT_INO, Changes
from store.backends.catalog.dictionaries import Dictionaries
from store.backends.objects.packs import Packer
from store.core.config import StoreConfig
from store.core.errors import FormatError, FsError
from .attr_cache import CAPACITY, LOCATED_CHUNKS, AttrCache
from .dir_cache import DirCache
from .backends import (DEFAULT_DISK_CACHE, create_catalog, install_catalog, join_or_create_shared, open_catalog,
                       open_packer, read_config, write_config)
from .cache import ByteLRU
from .commit import CommitPath
from .liveness import Liveness, mount_expiry
from .lock import StoreLock
from .memory import MemoryPlan
from .namespace import NamespaceOps
from .overlay import Overlay, boot_id
from .paths import PathFace
from .persist import Persister
from .readahead import ReadAhead
from .readpath import ReadPath
from .recovery import Recovery
from .search_upkeep import TextIndex
from .statistics import StoreStatistics, store_statistics

log = logging.getLogger("sessionfs.store")

DEFAULT_CACHE_BYTES = 100 * 1024 * 1024
MAX_FILE_SIZE = (1 << 44) - 4096  # ext4's own limit with 4 KiB blocks: (2**32 - 1) blocks
PENDING_API_BYTES = 256 * 1024 * 1024
SESSIONS_DIR = b"sessions"
STORE_DIRS = ("packs", "packing", "staging")


class Store(ReadPath, NamespaceOps, PathFace, CommitPath, Recovery):
    """An open store. ``Store.open`` for use; ``Store.init`` to create one.

    Its parts, each a module of this package: ``readpath`` (attributes and bytes as they
    are now), ``namespace`` (POSIX namespace operations), ``paths`` (the path-level face),
    ``commit`` (the persistence worker's batches), ``recovery`` (open-time repair) and
    ``lock``; this module holds the life cycle and the writes of file content."""

    # -- life cycle --------------------------------------------------------
    @staticmethod
    def init(path: str | os.PathLike, *, exist_ok: bool = False, config: StoreConfig | None = None) -> Path:
        """Create a store in ``path`` (a new or empty directory). With a scale-out ``config``
        the directory joins the store its catalog already holds, or creates one there."""
        root = Path(path)
        config = config or StoreConfig()
        if read_config(root) is not None:
            if exist_ok:
                return root
            raise FormatError(f"{root} already holds a sessionfs store")
        if root.exists() and any(root.iterdir()):
            raise FormatError(f"{root} exists and is not empty; choose an empty or new directory")
        store_id = secrets.token_hex(16)
        catalog = None
        if config.shared:
            config, catalog = join_or_create_shared(config, store_id)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        for sub in STORE_DIRS:
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        if not config.shared:
            catalog = create_catalog(root, store_id)
        if catalog is not None:
            try:
                now = time.time_ns()
                uid, gid = os.getuid(), os.getgid()
                with catalog.write() as view:
                    view.tree.create_root(uid, gid, now)
                    node = view.tree.make_node(ROOT_INO, SESSIONS_DIR, stat.S_IFDIR | 0o755, uid, gid, now)
                    view.meta.put("sessions_ino", node.id)
            finally:
                catalog.close()
        if config.shared:
            write_config(root, config)
        else:
            install_catalog(root)
        return root

    @classmethod
    def open(cls, path: str | os.PathLike, *, cache_bytes: int = DEFAULT_CACHE_BYTES, readonly: bool = False,
             create: bool = False, owner: dict | None = None, sync_interval: float = 5.0,
             compress_level: int = 3, packs: Packer | None = None, seal_every_commit: bool = False,
             maintenance: Callable[["Store"], object] | None = None,
             memory: MemoryPlan | None = None, disk_cache: int = DEFAULT_DISK_CACHE) -> "Store":
        """Open a store. ``maintenance(store)`` starts maintenance in this process (the mount
        daemon) once a writable store is open and returns an object with ``statistics()`` and
        ``stop()`` (``store.services.background.maintenance`` makes one: background gc and
        recompression). Off by default; ``sessionfs gc``/``compress`` run them offline.
        ``memory`` (the mount's ``--memory-limit``, divided by ``memory.plan``) sets the cache,
        the catalog readers' page caches and the queued-write bound instead of ``cache_bytes``
        and the defaults. ``seal_every_commit`` puts every commit's blocks into the object store
        before the commit (``store.backends.objects.packs``); ``packs`` replaces the local packer
        (tests give a small pack size or inject faults). ``disk_cache`` bounds the local cache of
        a scale-out store's objects."""
        root = Path(path)
        config = read_config(root)
        if config is None and create:
            cls.init(root)
            config = StoreConfig()
        if config is None:
            raise FormatError(f"{root} is not a sessionfs store (no catalog.db or config.json); "
                              f"create one with 'sessionfs init'")
        packs = packs or open_packer(root, config, seal_every_commit=seal_every_commit, disk_cache=disk_cache)
        return cls(root, cache_bytes=cache_bytes, readonly=readonly, owner=owner, sync_interval=sync_interval,
                   compress_level=compress_level, packs=packs, maintenance=None if readonly else maintenance,
                   memory=memory, config=config)

    def __init__(self, root: Path, *, cache_bytes: int, readonly: bool, owner: dict | None,
                 sync_interval: float, compress_level: int, packs: Packer,
                 maintenance: Callable[["Store"], object] | None = None, memory: MemoryPlan | None = None,
                 config: StoreConfig | None = None):
        self.root = root
        self.config = config or StoreConfig()
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
        self._lock = StoreLock(root)
        if not readonly:
            self._lock.take(owner)
        try:
            self.catalog = open_catalog(root, self.config, readonly=readonly,
                                        reader_cache_kib=memory.reader_cache_kib if memory else None)
            self.attrs = AttrCache(0 if readonly else CAPACITY,     # read-only: others commit unseen
                                   located_chunks=0 if self.config.shared else LOCATED_CHUNKS)
            # Names and chunk locations are not cached when other mounts commit too: their
            # commits are heard of a moment later, while a cached name could still lead to a
            # file they replaced and deleted (a read of it would find its chunks gone).
            self.dirs = DirCache(0) if readonly or self.config.shared else DirCache()
            self.catalog.add_commit_hook(self._forget_changed)
            self.packs = packs
            self.cache = ByteLRU(memory.cache_bytes if memory else cache_bytes)
            self.readahead = ReadAhead(lambda block_id: self._load_block(block_id, None), self._prefetched)
            self.staging = root / "staging"
            self.sessions_ino = int(self.catalog.meta("sessions_ino"))
            root_row = self.committed_inode(ROOT_INO)
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
            self._remote_listeners: list[Callable[[Changes | None], None]] = []
            # (parent, name) created or removed by the path-level batch being applied
            self._names_changed: list[tuple[int, bytes]] = []
            self._write_errors: dict[int, BaseException] = {}   # ino -> why a write was dropped
            # Names of extended attributes any inode may have (a superset: never shrinks while open).
            self._xattr_names = self.catalog.reader().tree.xattr_names()
            self.dictionaries = Dictionaries(self.catalog)
            # Foreground reads/writes stamp this (time.monotonic()); background work backs off.
            self.last_activity = time.monotonic()
            # Bumped by maintenance after it moved or dropped blocks, before it deletes old packs:
            # a read that fails while it changed retries on the new locations (read_committed).
            self.maintenance_epoch = 0
            self.background = None
            self.persister: Persister | None = None
            # This mount among those sharing the catalog: who may delete an unlinked inode.
            self.liveness = Liveness(self.catalog, self.config.writer_id or "local", self._holds, self.pinned_inodes,
                                     mount_expiry() if self.config.shared else 0.0)
            # The full-text index, kept in step by the hooks below.
            self.text_index = TextIndex(self.catalog, self.sessions_ino, self.root, readonly=readonly,
                                        read_chunk=lambda loc, view: self.chunk_bytes(loc, None, view))
            if not readonly:
                self._recover()
                self.text_index.rebuild_if_needed()
                self.persister = Persister(self._commit_batch, self.catalog.checkpoint, sync_interval,
                                           bursts=self.config.shared)
                self.persister.start()
                if maintenance is not None:
                    self.background = maintenance(self)
                self.catalog.listen(self._others_committed)
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Undo a failed open: stop what it started (the search rebuild, the persistence worker,
        maintenance), close the catalog and the packs, then release the lock, so nothing keeps
        writing to a store this process no longer holds."""
        for part in ("background", "text_index", "persister", "readahead", "liveness"):
            running = getattr(self, part, None)
            if running is not None:
                try:
                    running.stop()
                except Exception:  # noqa: BLE001 - the open's own error is the one to report
                    log.exception("stopping %s after a failed open", part)
        for part in ("packs", "catalog"):
            opened = getattr(self, part, None)
            if opened is not None:
                opened.close()
        self._lock.release()

    def close(self) -> None:
        """Commit everything written (files still open are sealed as they are) and release the store."""
        if self.background is not None:
            self.background.stop()
            self.background = None
        self.text_index.stop()
        self.readahead.stop()
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
        self.liveness.stop()
        self.packs.close()
        self.catalog.close()
        self._lock.release()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
            # A write's sequence number is a clock in nanoseconds that never goes back in this
            # process: versions written by mounts sharing a catalog compare by when they were
            # started, so a replayed write that a later one (of any mount) replaced stays replaced.
            self._seq = max(self._seq + 1, time.time_ns())
            base = layers[-1].size if layers else row.size
            ov = Overlay(self.staging, self._seq, ino, base)
            layers.append(ov)
            return ov

    def write(self, ino: int, offset: int, data: bytes) -> int:
        data = self._writable_part(offset, data)
        while data:
            ov = self._active_overlay(ino)
            with self._ov_lock:
                if not ov.sealed:
                    return ov.write(offset, data, time.time_ns())
        return 0

    def _writable_part(self, offset: int, data: bytes) -> bytes:
        """What of a write at ``offset`` fits in a file (a short write at the size limit, as ext4)."""
        self._check_writable()
        self.last_activity = time.monotonic()
        if offset < 0:
            raise FsError(errno.EINVAL, "negative offset")
        if offset + len(data) > MAX_FILE_SIZE:
            if offset >= MAX_FILE_SIZE:
                raise FsError(errno.EFBIG, f"files are limited to {MAX_FILE_SIZE} bytes")
            data = memoryview(data)[:MAX_FILE_SIZE - offset]
        return data

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
                ov.truncate(size, time.time_ns())
                return

    def has_unsealed(self, ino: int) -> bool:
        """Whether ``ino`` has writes ``seal`` would queue (no I/O: safe on an event loop)."""
        with self._ov_lock:
            layers = self._overlays.get(ino)
            return bool(layers) and not layers[-1].sealed

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
        (self.persister.barrier(durable=True) if ino is None else self.persister.expedite(ino)).wait()
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

    def add_remote_listener(self, fn: Callable[[Changes | None], None]) -> None:
        """``fn(changes)`` is called (in the catalog's listening thread) after another mount
        sharing the catalog committed, its attributes already dropped from this store's cache;
        ``fn(None)``: commits may have been missed, anything cached may be stale. A mount
        invalidates its kernel's caches (close-to-open consistency across mounts)."""
        self._remote_listeners.append(fn)

    def _forget_changed(self, changes: Changes) -> None:
        """What a transaction changed leaves the attribute and directory caches."""
        self.attrs.changed(changes)
        self.dirs.changed(changes)

    def _others_committed(self, changes: Changes | None) -> None:
        self._forget_changed(changes if changes is not None else Changes(everything=True))
        for fn in self._remote_listeners:
            try:
                fn(changes)
            except Exception:  # noqa: BLE001 - a failing listener must not stop the notifications
                log.exception("a listener of other mounts' commits failed")

    def pinned_inodes(self) -> list[int]:
        """The inodes the kernel holds references to (``pin``): what may be cached there."""
        with self._ov_lock:
            return list(self._pins)

    def _holds(self, ino: int) -> bool:
        """The kernel holds a reference to ``ino`` (``pin``)."""
        with self._ov_lock:
            return bool(self._pins.get(ino))

    # -- statistics --------------------------------------------------------------
    def inode_count(self) -> int:
        """How many inodes the store holds (files, directories, links), as ``df -i`` counts."""
        return self.catalog.reader().tree.count_inodes()

    def statistics(self) -> StoreStatistics:
        """A snapshot of sizes, ratios, cache and queue counters (``store.engine.statistics``: O(1))."""
        return store_statistics(self)

