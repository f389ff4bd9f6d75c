"""The commit path: what the persistence worker does with one batch of sealed overlays and
path-level groups.

For each batch: build the new bytes into blocks (``ingest.BatchBuilder``), append them to
the pack and make them durable (``Packer.prepare_commit``), then one catalog transaction
records the packs, blocks and chunks and applies every item (a group inside its own
savepoint, so a refused group leaves the others). A failed batch gives back its ids and
cuts its appends away; it is retried by the worker. ``CommitPath`` is a part of ``Store``.
"""

from __future__ import annotations

import errno
import logging
import stat
import time

from store.backends.catalog.content import ChunkGoneError
from store.backends.catalog.interface import CatalogView
from store.backends.catalog.rows import ROOT_INO, InodeRow
from store.core.session_fields import METADATA_NAME
from store.core.errors import BadInputError, FsError, IntegrityError, StoreError
from store.core.intervals import split_by
from store.core.rewrite import plan_commit
from .ids import Mark
from .ingest import BatchBuilder
from .overlay import Overlay
from .persist import PathGroup
from .readpath import READ_WINDOW

log = logging.getLogger("sessionfs.store")


class CommitPath:
    """The persistence worker's side of ``Store``. ``ids`` (``ids.IdRanges``): the next
    free block, chunk and pack ids; only the worker (and work run in it, ``run_in_worker``)
    uses them."""

    # -- the persistence worker's commit ----------------------------------------
    def _known_chunks(self, digests: list[bytes]) -> dict[bytes, tuple[int, int]]:
        return self.catalog.reader().content.chunks_by_hash(digests)

    def _commit_batch(self, items: list, durable: bool) -> None:
        """Build, write and commit one batch (runs in the persistence worker). A batch that
        reused a chunk another mount's gc reclaimed meanwhile is built again, once, at once."""
        for again in (True, False):
            before = self.mark_appends()
            builder = BatchBuilder(self.packs, self.ids, self._known_chunks, self.compress_level)
            try:
                prepared = [self._prepare_or_drop(item, builder) for item in items]
                self.packs.prepare_commit()
                changed = self._apply(items, prepared, builder, durable)
            except ChunkGoneError as exc:
                self.rollback_appends(before, builder.new_packs)
                if not again:
                    raise
                log.info("building a batch again: %s", exc)
                continue
            except BaseException:
                self.rollback_appends(before, builder.new_packs)
                raise
            break
        self.packs.committed()
        self._after_commit(items, changed)

    def mark_appends(self) -> tuple[Mark, tuple[int | None, int]]:
        """Where ids and the write pack stand before a batch appends blocks to packs."""
        return self.ids.mark(), self.packs.write_position

    def rollback_appends(self, before: tuple[Mark, tuple[int | None, int]], new_packs: list[int]) -> None:
        """Undo what a failed batch did since ``mark_appends`` gave ``before``: its block ids
        (dropped from the cache: the retry reuses them for other bytes) and ids go back, and
        what it appended to packs, ``new_packs`` included, is cut away: the catalog never saw it."""
        ids_before, pack_before = before
        next_pack = self.ids.pending("pack")
        for block_id in self.ids.taken_since(ids_before, "block"):
            self.cache.discard(block_id)
        self.ids.restore(ids_before)
        try:
            self.packs.undo(pack_before, new_packs, next_pack)
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
        return self.catalog.transact(lambda view: self._apply_in(view, items, prepared, builder), durable=durable)

    def _apply_in(self, view: CatalogView, items: list, prepared: list, builder: BatchBuilder) -> list[int]:
        """The batch's catalog changes in transaction ``view``; returns the inodes changed (run
        again whole if a shared catalog's transaction lost a race)."""
        now = time.time_ns()
        changed: list[int] = []
        self._names_changed = []
        self._texts_changed: list[int] = []
        self.record_packs(view, builder.new_packs, builder.pack_ends)
        view.content.add_blocks(builder.new_blocks)
        view.content.add_chunks(builder.new_chunks, now)
        for item, prep in zip(items, prepared):
            if isinstance(item, Overlay):
                # Only a dropped overlay changes what the kernel shows (readers fall back to the
                # lower layers); a committed one is what the kernel saw written. Invalidating its
                # pages would wait on their locks, held by a writer waiting for this daemon: a
                # daemon SIGKILLed then could not exit, and the writer hung for good.
                if prep is None:
                    changed.append(item.ino)
                else:
                    self._apply_overlay(view, item, prep, now)
                continue
            item.error = None                   # a rerun of the transaction starts afresh
            try:
                with view.savepoint():
                    changed.extend(self._apply_group(view, item, prep, now))
            except (FsError, BadInputError) as exc:
                item.error = exc
                log.error("write group failed and was dropped: %s", exc)
        self.text_index.content_changed(view, self._texts_changed)
        view.meta.put(self.config.seq_key, self._seq)
        return changed

    def record_packs(self, view: CatalogView, new_packs: list[int], pack_ends: dict[int, int]) -> None:
        """Inside a transaction that points at new blocks: the packs' rows and committed sizes;
        every pack but the open one is sealed (the packer puts it after, or before, the commit)."""
        write_id, _ = self.packs.write_position
        view.content.record_packs(new_packs, pack_ends, write_id, time.time_ns())

    def _set_content(self, view: CatalogView, ino: int, extents: list[tuple[int, int, int]], *, size: int,
                     mtime_ns: int, ctime_ns: int, now: int, content_seq: int | None = None) -> bool:
        return view.content.commit_file(ino, extents, size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns, now=now,
                                        content_seq=content_seq)

    def _apply_overlay(self, view: CatalogView, ov: Overlay, prep, now: int) -> None:
        keep, new = prep
        extents = sorted([(e.off, e.length, e.chunk_id) for e in keep] + new)
        if self._set_content(view, ov.ino, extents, size=ov.size, mtime_ns=ov.mtime_ns or now,
                             ctime_ns=ov.ctime_ns or now, now=now, content_seq=ov.seq):
            self._refresh_for_file(view, ov.ino)

    def _refresh_for_file(self, view: CatalogView, ino: int) -> None:
        """The session row of a committed metadata.json now; its search documents at the end
        of the batch (``_apply_in``: one guarded index update for all the batch's files)."""
        for parent, name in view.tree.names_of(ino):
            if name == METADATA_NAME:
                self._refresh_sessions(view, [(parent, name)], [])
        self._texts_changed.append(ino)

    def _apply_group(self, view: CatalogView, group: PathGroup, prep, now: int) -> list[int]:
        changed = []
        tree = view.tree
        if group.on_commit is not None:
            group.on_commit(view)
        for path in group.trees:
            ino = self.resolve(path, view)
            if ino is not None:
                changed.extend(self._delete_tree(view, ino, now))
        for path, data, extents in prep:
            parts = self.split_path(path)
            parent = self._mkdirs(view, parts[:-1], now)
            ino = tree.lookup(parent, parts[-1])
            if data is None:
                if ino is not None:
                    row = tree.unlink(parent, parts[-1], now)
                    self._names_changed.append((parent, parts[-1]))
                    self._delete_if_unused(view, row, now)
                    self._refresh_sessions(view, [(parent, parts[-1])], [])
                    changed.append(ino)
                continue
            if ino is None:
                ino = tree.make_node(parent, parts[-1], stat.S_IFREG | 0o644, self.owner_uid, self.owner_gid, now).id
                self._names_changed.append((parent, parts[-1]))
            elif not stat.S_ISREG(tree.get(ino).mode):
                raise FsError(errno.EISDIR, f"{path} exists and is not a regular file")
            self._set_content(view, ino, extents, size=len(data), mtime_ns=now, ctime_ns=now, now=now)
            changed.append(ino)
            self._refresh_for_file(view, ino)
        return changed

    def _mkdirs(self, view: CatalogView, parts: list[bytes], now: int) -> int:
        ino = ROOT_INO
        for part in parts:
            child = view.tree.lookup(ino, part)
            if child is None:
                child = view.tree.make_node(ino, part, stat.S_IFDIR | 0o755, self.owner_uid, self.owner_gid, now).id
                self._names_changed.append((ino, part))
                self._refresh_sessions(view, [(ino, part)], [child])
            elif not stat.S_ISDIR(view.tree.get(child).mode):
                raise FsError(errno.ENOTDIR, f"{part.decode(errors='replace')} is not a directory")
            ino = child
        return ino

    def _delete_tree(self, view: CatalogView, ino: int, now: int) -> list[int]:
        """Remove a directory tree (or one file) inside a transaction; returns removed inodes."""
        removed = []
        names = view.tree.names_of(ino)
        row = view.tree.get(ino)
        if stat.S_ISDIR(row.mode):
            for _, name, child in view.tree.readdir(ino, 0, 1 << 62):
                removed.extend(self._delete_tree(view, child.id, now))
        for parent, name in names[:1]:
            if stat.S_ISDIR(row.mode):
                row = view.tree.rmdir(parent, name, now)
            else:
                row = view.tree.unlink(parent, name, now)
            self._names_changed.append((parent, name))
            self._refresh_sessions(view, [(parent, name)], [ino])
        self._delete_if_unused(view, row, now)
        removed.append(ino)
        return removed

    def _delete_if_unused(self, view: CatalogView, row: InodeRow, now: int) -> None:
        if row.nlink > 0:
            return
        with self._ov_lock:
            pinned = bool(self._pins.get(row.id))
            if not pinned:
                for ov in self._overlays.pop(row.id, []):
                    if not ov.sealed:
                        ov.discard()
        if not pinned:
            self.liveness.delete_unheld(view, [row.id], now)

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
        _notify(self._commit_listeners, changed, "commit")
        names, self._names_changed = self._names_changed, []
        _notify(self._entry_listeners, names, "entry")
        for item in items:
            if not isinstance(item, Overlay):
                item.done.set()         # after the listeners: a finished group shows in the mount


def _notify(listeners: list, arg: list, kind: str) -> None:
    """Call every listener with ``arg`` (if not empty); a failing one is logged, never raised."""
    if not arg:
        return
    for fn in listeners:
        try:
            fn(arg)
        except Exception:  # noqa: BLE001 - a listener must not break persistence
            log.exception("%s listener failed", kind)
