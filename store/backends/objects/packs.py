"""The packer: the one writer of packs, over any ``ObjectStore``.

Framed blocks are appended to ONE open pack, a local file in the store's
working area (``packing/``), never in the object store. When the pack reaches
``target_size``, or when asked (``seal``), it is sealed: nothing more is
appended, and it is put into the object store as the immutable object
``packs/<8-digit id>``; then the local copy goes. Reads of the open pack, and
of sealed packs not yet put, come from the local files; all others from the
object store.

Order, which is the durability argument: the commit path calls
``prepare_commit`` (fsyncs the local files) before the catalog transaction
that points at the new blocks, and ``committed`` after it. By default a
sealed pack is put after the commit that records it sealed (``committed``): a
crash in between leaves the local copy, which recovery puts. With
``seal_every_commit`` (needed when other mounts read the objects: every
committed block must be in the object store), ``prepare_commit`` seals the
open pack and puts it before the commit; a crash in between leaves an object
no catalog row names, which recovery deletes.

Only the store's persistence worker writes; any thread reads.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

from store.core.errors import StoreError
from .store import (FdTable, LocalObjectStore, ObjectMissingError, ObjectStore, fsync_dir, open_regular,
                    pread_exact)

log = logging.getLogger("sessionfs.packs")

PACK_TARGET_SIZE = 64 * 1024 * 1024
PACK_PREFIX = "packs/"
_LOCAL_NAME = re.compile(r"^(\d{8,})\.pack$")


def pack_name(pack_id: int) -> str:
    """The object name of a pack."""
    return f"{PACK_PREFIX}{pack_id:08d}"


def pack_id_of(name: str) -> int | None:
    tail = name[len(PACK_PREFIX):]
    return int(tail) if name.startswith(PACK_PREFIX) and tail.isdigit() else None


class Packer:
    def __init__(self, objects: ObjectStore, workdir: Path, target_size: int = PACK_TARGET_SIZE, *,
                 seal_every_commit: bool = False):
        self.objects = objects
        self.workdir = Path(workdir)
        self.target_size = target_size
        self.seal_every_commit = seal_every_commit
        self._reads = FdTable(lambda pid: open_regular(self._local_path(pid), f"pack {pid:08d}"))
        self._local = set(self._local_sizes())      # packs with a local file (open or sealed)
        self._sealed: list[int] = []                # local packs sealed, not yet put and dropped
        self._put: set[int] = set()                 # of those, already in the object store
        self._write_id: int | None = None
        self._write_fd: int | None = None
        self._write_size = 0
        self._unsynced: set[int] = set()
        self._dir_dirty = False

    def _local_path(self, pack_id: int) -> Path:
        return self.workdir / f"{pack_id:08d}.pack"

    def _local_sizes(self) -> dict[int, int]:
        """Pack id -> size of the regular files in the working area (symlinks are ignored)."""
        out = {}
        try:
            entries = list(os.scandir(self.workdir))
        except FileNotFoundError:
            return out
        for entry in entries:
            m = _LOCAL_NAME.match(entry.name)
            if m and entry.is_file(follow_symlinks=False):
                out[int(m.group(1))] = entry.stat(follow_symlinks=False).st_size
        return out

    # -- what exists ------------------------------------------------------
    def sizes(self) -> dict[int, int]:
        """Pack id -> size of every pack present: in the object store, or local (which wins)."""
        out = {pid: size for name, size in self.objects.list(PACK_PREFIX).items()
               if (pid := pack_id_of(name)) is not None}
        out.update(self._local_sizes())
        return dict(sorted(out.items()))

    def size(self, pack_id: int) -> int | None:
        local = self._local_sizes().get(pack_id)
        return local if local is not None else self.objects.size(pack_name(pack_id))

    # -- reading -------------------------------------------------------------
    def read(self, pack_id: int, offset: int, length: int) -> bytes:
        where = f"pack {pack_id:08d}"
        if pack_id in self._local:
            try:
                return pread_exact(self._reads, pack_id, offset, length, where)
            except ObjectMissingError:
                pass                        # put and dropped by the writing process meanwhile
        try:
            return self.objects.get(pack_name(pack_id), offset, length)
        except ObjectMissingError:
            pass
        # A reader beside the writing process: the pack may still be local, or just put.
        try:
            data = pread_exact(self._reads, pack_id, offset, length, where)
        except ObjectMissingError:
            try:
                return self.objects.get(pack_name(pack_id), offset, length)
            except ObjectMissingError:
                raise ObjectMissingError(f"{where} is missing") from None
        self._local.add(pack_id)
        return data

    # -- writing (persistence worker only) -------------------------------------
    @property
    def write_position(self) -> tuple[int | None, int]:
        """(open pack id or None, its size)."""
        return self._write_id, self._write_size

    def append(self, framed: bytes, next_id: int) -> tuple[int, int, bool]:
        """Append a framed block; returns (pack_id, offset, created_new_pack).

        ``next_id`` is the id to use when a new pack has to be started."""
        created = False
        if self._write_fd is not None and self._write_size > 0 and \
                self._write_size + len(framed) > self.target_size:
            self.seal()
        if self._write_fd is None:
            self.workdir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(self._local_path(next_id),
                         os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            self._write_id, self._write_fd, self._write_size = next_id, fd, 0
            self._local.add(next_id)
            self._dir_dirty = True
            created = True
        offset = self._write_size
        view = memoryview(framed)
        while view:
            n = os.pwrite(self._write_fd, view, self._write_size)
            self._write_size += n
            view = view[n:]
        self._unsynced.add(self._write_id)
        return self._write_id, offset, created

    def seal(self) -> int | None:
        """Append nothing more to the open pack; it is put at the next ``committed`` (or
        ``prepare_commit`` with ``seal_every_commit``). Returns its id, or None."""
        pid = self._write_id
        if pid is None:
            return None
        if pid in self._unsynced and not self.seal_every_commit:
            # With ``seal_every_commit`` the put, before the commit, is what makes the pack
            # durable (``put_file`` syncs it); the local copy is scratch until then.
            os.fsync(self._write_fd)
            self._unsynced.discard(pid)
        os.close(self._write_fd)
        self._write_id = self._write_fd = None
        self._write_size = 0
        self._sealed.append(pid)
        return pid

    def sync(self) -> None:
        """fsync every local pack appended to since the last sync (and the working area)."""
        for pid in sorted(self._unsynced):
            if pid == self._write_id:
                os.fsync(self._write_fd)
            self._unsynced.discard(pid)
        if self._dir_dirty:
            fsync_dir(self.workdir)
            self._dir_dirty = False

    def prepare_commit(self) -> None:
        """Before the catalog transaction that points at new blocks: make them durable."""
        if self.seal_every_commit:
            self.seal()
        self.sync()
        if self.seal_every_commit:
            self._put_sealed()

    def committed(self) -> None:
        """After a catalog commit that records the sealed packs: put them and drop the local
        copies. A failure is logged and retried at the next commit or open (the local copy
        stays, and serves reads)."""
        try:
            self._put_sealed()
        except (OSError, StoreError) as exc:
            log.error("could not put sealed packs into the object store (retried later): %s", exc)
        for pid in [p for p in self._sealed if p in self._put]:
            try:
                self._drop_local(pid)
            except OSError as exc:
                log.warning("could not remove the local copy of put pack %08d: %s", pid, exc)

    def _put_sealed(self) -> None:
        for pid in self._sealed:
            if pid not in self._put:
                self.objects.put_file(pack_name(pid), self._local_path(pid))
                self._put.add(pid)

    def _drop_local(self, pack_id: int) -> None:
        if pack_id == self._write_id:
            os.close(self._write_fd)
            self._write_id = self._write_fd = None
            self._write_size = 0
        self._unsynced.discard(pack_id)
        if pack_id in self._sealed:
            self._sealed.remove(pack_id)
        self._put.discard(pack_id)
        self._local.discard(pack_id)
        self._reads.drop(pack_id)
        try:
            os.unlink(self._local_path(pack_id))
        except FileNotFoundError:
            pass

    def undo(self, before: tuple[int | None, int], new_packs: list[int], next_id: int) -> None:
        """Forget what a failed batch wrote (the catalog never saw it): the packs it created
        (and one a failed append created, ids from ``next_id`` on), its puts, and its appends
        to the pack that was open before it (``before``: id and size)."""
        before_id, before_size = before
        for pid in [*new_packs, before_id]:
            if pid in self._put:
                self.objects.delete(pack_name(pid))
                self._put.discard(pid)
        stray = [p for p in self._local_sizes() if p >= next_id and p not in new_packs]
        for pid in [*new_packs, *stray]:
            self._drop_local(pid)
        if before_id is None:
            return
        if self._write_id != before_id:
            if self._write_id is not None:
                self.seal()
            if before_id in self._sealed:
                self._sealed.remove(before_id)
            self._write_fd = os.open(self._local_path(before_id), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            self._write_id = before_id
        os.ftruncate(self._write_fd, before_size)
        self._write_size = before_size

    def delete(self, pack_id: int) -> None:
        """Remove a pack, local or in the object store (its catalog rows are gone)."""
        self._drop_local(pack_id)
        self.objects.delete(pack_name(pack_id))

    def unnamed_objects(self, known: Callable[[], set[int]], put_before: float) -> list[int]:
        """Ids of the pack objects put before ``put_before`` (s since the epoch) that are not in
        ``known()`` (the catalog's packs, read after the listing): put by a writer that died
        before its commit, or left by a deletion that never finished. A live writer's pack is
        named by its commit moments after its put, so gc's grace period keeps those."""
        listed = {pid: when for name, when in self.objects.modified(PACK_PREFIX).items()
                  if (pid := pack_id_of(name)) is not None}
        known_now = known()
        return [pid for pid, when in sorted(listed.items()) if when < put_before and pid not in known_now]

    # -- recovery (at open, before any write) -----------------------------------
    def recover(self, catalog: dict[int, tuple[int, bool]]) -> list[int]:
        """Bring packs in line with the catalog (pack id -> (committed size, sealed)).

        Local files and objects the catalog does not name are a batch that never committed:
        deleted; with ``seal_every_commit`` (other mounts may share the objects) only those with
        a local file, which are this packer's own: an object alone may be another writer's,
        put before its commit (gc collects those of dead writers after its grace period). A local file's tail past the committed size is cut (local working state).
        The newest unsealed pack with its local file is opened again for appending; other
        local packs are sealed, and put at ``committed``. An unsealed pack that is only in
        the object store (a store written before packs were put, or put just before a
        crash) is kept as it is, sealed. Returns the ids the catalog must now record sealed."""
        local = self._local_sizes()
        objects = {pid: size for name, size in self.objects.list(PACK_PREFIX).items()
                   if (pid := pack_id_of(name)) is not None}
        for pid in sorted(set(local) | set(objects)):
            if pid not in catalog and (pid in local or not self.seal_every_commit):
                log.warning("removing pack %08d: written by a batch that never committed", pid)
                self.delete(pid)
        to_seal = []
        open_id = max((p for p, (size, sealed) in catalog.items()
                       if not sealed and p in local and size <= local[p] and size < self.target_size),
                      default=None)
        for pid in sorted(p for p in local if p in catalog):
            size, sealed = catalog[pid]
            if sealed and pid in objects:
                self._drop_local(pid)               # put, then a crash before its local copy went
                continue
            if pid in objects:
                # Put just before a crash, with a tail the commit never recorded: the local
                # copy is the pack; the object goes and is put again when the pack is sealed.
                self.objects.delete(pack_name(pid))
            if local[pid] > size:
                log.info("truncating pack %08d to its committed size %d", pid, size)
                _truncate(self._local_path(pid), size)
            if pid == open_id:
                self._write_fd = os.open(self._local_path(pid), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
                self._write_id, self._write_size = pid, size
                continue
            self._sealed.append(pid)
            if not sealed:
                to_seal.append(pid)
        for pid, (size, sealed) in sorted(catalog.items()):
            if not sealed and pid not in local and pid in objects:
                to_seal.append(pid)
            elif pid not in local and pid not in objects:
                log.error("pack %08d is missing (neither in the object store nor local); 'sessionfs verify' "
                          "lists what it held", pid)
        return sorted(to_seal)

    def close(self) -> None:
        if self._write_fd is not None:
            if self._write_id in self._unsynced:
                os.fsync(self._write_fd)
            os.close(self._write_fd)
        self._write_id = self._write_fd = None
        self._write_size = 0
        self._unsynced.clear()
        self._reads.close()
        self.objects.close()


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def local_packer(root: Path, target_size: int = PACK_TARGET_SIZE, *, seal_every_commit: bool = False) -> Packer:
    """The packer of a local store: objects are ``<root>/packs/<id>.pack`` (the layout stores
    had before the object-store interface), the working area ``<root>/packing/``."""
    root = Path(root)
    return Packer(LocalObjectStore(root, suffix=".pack"), root / "packing", target_size,
                  seal_every_commit=seal_every_commit)
