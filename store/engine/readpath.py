"""The read path: attributes, directory listings and file bytes as they are now.

Committed state comes from the catalog (through the attribute cache for inodes and data
counts) and from blocks (through the decoded-block cache, every chunk verified against its
hash); uncommitted writes (overlays) are laid on top. ``ReadPath`` is a part of ``Store``.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import stat
import time
from dataclasses import dataclass, field
from typing import Iterable

from store.backends.catalog.interface import CatalogView
from store.backends.catalog.rows import LOST_BLOCK, BlockRow, ChunkLocation, InodeRow
from store.core import codec
from store.core.chunker import MAX_CHUNK, chunk_hash
from store.core.errors import FsError, IntegrityError
from store.core.intervals import split_by
from .dir_cache import ABSENT
from .overlay import Overlay

log = logging.getLogger("sessionfs.store")

READ_WINDOW = 4 * 1024 * 1024    # bytes assembled at once when rebuilding a range
SMALL_BLOCK = 64 * 1024          # a raw block up to this size is read and cached whole, as a coded one


@dataclass
class DecodedBlock:
    """A decoded block in the cache (``where``: its place, for messages). ``broken``: it could
    not be decoded (``raw`` empty, ``why`` says why). A chunk is checked against its SHA-256 on
    its first use (``good``: the chunks checked so far), so a read needs no list of the block's
    chunks; read-ahead checks them all at once (``bad``: those that failed, ``why``)."""
    raw: bytes
    where: str
    broken: bool = False
    why: str = ""
    bad: frozenset = frozenset()
    good: set = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.raw)


class ReadPath:
    """Reads of ``Store`` (it provides catalog, attrs, cache, packs, dictionaries, overlays)."""

    def _layers(self, ino: int) -> list[Overlay]:
        with self._ov_lock:
            return list(self._overlays.get(ino, ()))

    def committed_inode(self, ino: int) -> InodeRow | None:
        """The committed inode ``ino`` (None if there is none), through the attribute cache.

        A read inside an open snapshot (``catalog.in_snapshot``) neither uses nor fills the
        cache; a read that a commit overtook does not fill it (the cache's epoch check)."""
        cacheable = not self.catalog.in_snapshot()
        cached = self.attrs.row(ino) if cacheable else None
        if cached is not None:
            return InodeRow(*cached)
        epoch = self.attrs.epoch
        row = self.catalog.reader().tree.inode(ino)
        if row is not None and cacheable:
            self.attrs.fill_row(epoch, ino, row.values())
        return row

    def committed_data_bytes(self, inos: list[int]) -> dict[int, int]:
        """Committed bytes of each file that hold data, not holes (for st_blocks), through the
        attribute cache as ``committed_inode``."""
        cacheable = not self.catalog.in_snapshot()
        out = {}
        missing = []
        for ino in inos:
            n = self.attrs.data_bytes(ino) if cacheable else None
            if n is None:
                missing.append(ino)
            else:
                out[ino] = n
        if missing:
            epoch = self.attrs.epoch
            found = self.catalog.reader().content.data_bytes(missing)
            if cacheable:
                self.attrs.fill_data_bytes(epoch, found)
            out.update(found)
        return out

    def getattr(self, ino: int) -> InodeRow:
        layers = self._layers(ino)
        row = self.committed_inode(ino)
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        return self._overlaid(row, layers)

    def cached_getattr(self, ino: int) -> InodeRow | None:
        """``getattr`` from memory only (no I/O: safe on an event loop); None if not cached."""
        layers = self._layers(ino)
        cached = self.attrs.row(ino)
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
        epoch = None if self.catalog.in_snapshot() else self.attrs.epoch
        row = self.committed_inode(ino)
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        end = min(row.size, offset + length)
        if end < row.size:
            self._read_ahead(ino, offset, end)
        if end <= offset:
            return b""
        # A whole file read at one commit: its locations serve the next reads from memory.
        whole = offset == 0 and end == row.size
        return self.read_committed(ino, offset, end - offset, located=epoch if whole else None)

    def cached_read(self, ino: int, offset: int, length: int) -> bytes | None:
        """``read`` from memory only (no I/O: safe on an event loop): a committed file without
        pending writes whose attributes, locations and decoded blocks are all cached; else None."""
        if self._layers(ino):
            return None
        row = self.attrs.row(ino)
        locations = self.attrs.locations(ino)
        if row is None or locations is None:
            return None
        end = min(InodeRow(*row).size, offset + length)
        if end <= offset:
            return b""
        chunks = {}
        for loc in locations:
            if loc.off < end and loc.off + loc.length > offset:
                block = self.cache.get(loc.block_id)
                if block is None or loc.chunk_id not in block.good:
                    return None     # checked (and a failing chunk reported) by ``read``, on a thread
                chunks[loc] = memoryview(block.raw)[loc.block_off:loc.block_off + loc.length]
        self.last_activity = time.monotonic()
        return self._assemble(locations, offset, end, chunks.__getitem__)

    def _read_ahead(self, ino: int, offset: int, end: int) -> None:
        """Start decoding the blocks a sequential reader of ``ino`` wants next (``readahead``)."""
        window = self.readahead.window(ino, offset, end)
        if window is not None:
            blocks = dict.fromkeys(loc.block_id for loc in self.catalog.locations(ino, *window, MAX_CHUNK))
            self.readahead.start(blocks, self.cache.__contains__)

    def _prefetched(self, block_id: int, block: DecodedBlock) -> None:
        """A block read ahead: cached if sound (a failing one is loaded and reported by its reader)."""
        if not block.bad and not block.broken:
            self.cache.put(block_id, block)

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

    def read_committed(self, ino: int, offset: int, length: int, view: CatalogView | None = None, *,
                       located: int | None = None) -> bytes:
        """Committed bytes [offset, offset+length); holes are zeros. Verifies every chunk.
        ``view``: read inside that transaction (else this thread's reader). ``located``: the
        range is the whole file, read since that attribute-cache epoch: keep its locations."""
        if length <= 0:
            return b""
        while True:
            epoch = self.maintenance_epoch
            try:
                return self._read_committed(ino, offset, length, view, located)
            except IntegrityError:
                # Maintenance (gc, recompression) moved blocks and deleted their old pack while
                # we read: our locations were stale, not the data bad. Read them again.
                if view is not None or self.maintenance_epoch == epoch:
                    raise

    def _read_committed(self, ino: int, offset: int, length: int, view: CatalogView | None,
                        located: int | None) -> bytes:
        locations = self.catalog.locations(ino, offset, offset + length, MAX_CHUNK, view)
        data = self._assemble(locations, offset, offset + length, lambda loc: self.chunk_view(loc, ino, view))
        if located is not None:
            self.attrs.fill_locations(located, ino, tuple(locations))
        return data

    @staticmethod
    def _assemble(locations, offset: int, end: int, chunk) -> bytes:
        """Bytes [offset, end) of a file from its chunks at ``locations`` (``chunk(loc)``: the
        chunk's bytes); what no chunk covers is a hole, zeros."""
        out = bytearray(end - offset)
        for loc in locations:
            lo, hi = max(offset, loc.off), min(end, loc.off + loc.length)
            if lo < hi:
                data = chunk(loc)
                out[lo - offset:hi - offset] = data[lo - loc.off:hi - loc.off]
        return bytes(out)

    def chunk_bytes(self, loc: ChunkLocation, ino: int | None, view: CatalogView | None = None) -> bytes:
        """The verified bytes of one chunk (through the block cache); ``IntegrityError`` naming
        the chunk and, with ``ino``, the file when they are corrupt or lost."""
        return bytes(self.chunk_view(loc, ino, view))

    def chunk_view(self, loc: ChunkLocation, ino: int | None, view: CatalogView | None = None) -> memoryview:
        """``chunk_bytes`` without the copy: a view into the cached block."""
        block = self.cache.get(loc.block_id)
        if block is None and view is None and self.readahead.claim(loc.block_id):
            block = self.cache.get(loc.block_id)
        if block is None:
            epoch = self.maintenance_epoch
            row = loc.block or self.catalog.block(loc.block_id, view)
            if row is not None and row.codec == codec.CODEC_RAW and row.raw_length > SMALL_BLOCK:
                return self._raw_chunk(row, loc, ino, view)
            block = self._load_block(loc.block_id, view, row, check=False)
            # A block that failed is cached only if its row is known fresh: one read with the
            # location may be older than a move by maintenance (the reader then reads again).
            if not block.broken or (loc.block is None and self.maintenance_epoch == epoch):
                self.cache.put(loc.block_id, block)
        return self._checked(block, loc, ino, view)

    def _checked(self, block: DecodedBlock, loc: ChunkLocation, ino: int | None,
                 view: CatalogView | None) -> memoryview:
        """The chunk ``loc`` in ``block``, checked against its SHA-256 on its first use."""
        data = memoryview(block.raw)[loc.block_off:loc.block_off + loc.length]
        if loc.chunk_id in block.good:
            return data
        if block.broken or loc.chunk_id in block.bad:
            why = block.why
        elif len(data) != loc.length:
            why = f"{block.where}: the chunk lies outside its block"
        elif chunk_hash(data) != loc.hash:
            why = f"{block.where}: the chunk fails its SHA-256"
            log.error("%s", why)
        else:
            block.good.add(loc.chunk_id)
            return data
        raise self._corrupt(loc, ino, view, why)

    def _raw_chunk(self, row: BlockRow, loc: ChunkLocation, ino: int | None, view: CatalogView | None) -> memoryview:
        """One chunk of a large block stored raw, read and verified alone: a read that misses the
        caches costs its chunk, not the whole block (the kernel asks for single pages where
        reclaim punched holes into its cache of a file; each cost a 1 MiB block and the SHA-256
        of every chunk in it). Sequential readers get whole blocks from ``readahead``."""
        if loc.block_off + loc.length > row.length - codec.HEADER.size:
            raise self._corrupt(loc, ino, view, f"pack {row.pack_id:08d}: the chunk lies outside its block")
        try:
            data = self.packs.read(row.pack_id, row.offset + codec.HEADER.size + loc.block_off, loc.length)
            if chunk_hash(data) != loc.hash:
                raise IntegrityError(f"pack {row.pack_id:08d} offset {row.offset} (block {row.id}): "
                                     "the chunk fails its SHA-256")
        except IntegrityError as exc:
            log.error("%s", exc)
            raise self._corrupt(loc, ino, view, str(exc)) from None
        return memoryview(data)

    def _corrupt(self, loc: ChunkLocation, ino: int | None, view: CatalogView | None, why: str) -> IntegrityError:
        """The error for a chunk that cannot be served, naming it and, with ``ino``, the file."""
        where = self.catalog.path_of(ino, view) if ino is not None else None
        return IntegrityError(
            f"chunk {loc.hash.hex()} (block {loc.block_id}) is corrupt"
            + (f" ({why})" if why else "")
            + (f"; file {where!r} cannot be read there" if where else ""),
            chunk=loc.hash.hex(), path=where)

    def _load_block(self, block_id: int, view: CatalogView | None, b: BlockRow | None = None, *,
                    check: bool = True) -> DecodedBlock:
        """Read and decode one block (``b``: its row, if read already); ``check``: check every
        chunk in it now (read-ahead), marking those failing their hash bad; else each reader
        checks the chunk it uses (``_checked``)."""
        b = b or self.catalog.block(block_id, view)
        if b is None:
            if block_id == LOST_BLOCK:
                raise IntegrityError("the data here was lost (a damaged pack or chunk; 'sessionfs verify' lists "
                                     "the file under lost+found)")
            raise IntegrityError(f"block {block_id} is missing from the catalog")
        where = f"pack {b.pack_id:08d} offset {b.offset} (block {block_id})"
        try:
            raw = codec.decode_block(self.packs.read(b.pack_id, b.offset, b.length), where, self.dictionaries)
        except IntegrityError as exc:
            log.error("%s", exc)
            return DecodedBlock(b"", where, broken=True, why=str(exc))
        if len(raw) != b.raw_length:
            why = f"{where}: decodes to {len(raw)} bytes, catalog says {b.raw_length}"
            log.error("%s", why)
            return DecodedBlock(b"", where, broken=True, why=why)
        block = DecodedBlock(raw, where)
        if check:
            bad = set()
            for c in (view or self.catalog.reader()).content.chunks_in_block(block_id):
                sound = chunk_hash(memoryview(raw)[c.block_off:c.block_off + c.length]) == c.hash
                (block.good if sound else bad).add(c.id)
            if bad:
                block.bad, block.why = frozenset(bad), f"{where}: {len(bad)} chunk(s) fail their SHA-256"
                log.error("%s", block.why)
        return block

    def lookup(self, parent: int, name: bytes) -> InodeRow:
        """The inode named ``name`` in ``parent``, as ``getattr`` shows it: through the directory
        cache where names are cached, else one catalog read (``Tree.entry``) that also fills the
        attribute cache with its row and data bytes."""
        if self.dirs.capacity and not self.catalog.in_snapshot():
            ino = self._lookup_ino(parent, name)
            if ino == ABSENT:
                raise FsError(errno.ENOENT, f"{name.decode(errors='replace')} does not exist")
            return self.getattr(ino)
        cacheable = not self.catalog.in_snapshot()
        epoch = self.attrs.epoch
        found = self.catalog.reader().tree.entry(parent, name)
        if found is None:
            raise FsError(errno.ENOENT, f"{name.decode(errors='replace')} does not exist")
        row, data = found
        layers = self._layers(row.id)
        if cacheable:
            self.attrs.fill_row(epoch, row.id, row.values())
            self.attrs.fill_data_bytes(epoch, {row.id: data})
        return self._overlaid(row, layers)

    def cached_entry(self, parent: int, name: bytes) -> int | None:
        """``name``'s inode in ``parent`` from memory only (no I/O: safe on an event loop):
        ``ABSENT`` if there is no such name, None if not cached."""
        return self.dirs.entry(parent, name)

    def _lookup_ino(self, parent: int, name: bytes) -> int:
        """``name``'s inode in ``parent`` (``ABSENT``: none), through the directory cache (the
        caller checks that names are cached and that no snapshot is open): a miss in a cached
        directory reads that name, a miss in another lists the directory once."""
        ino = self.dirs.entry(parent, name)
        if ino is not None:
            return ino
        epoch = self.dirs.epoch
        if not self.dirs.listed(parent) and not self.dirs.too_large(parent):
            names = self.list_directory(parent)
            if names is not None:
                return names.get(name, ABSENT)
        ino = self.catalog.lookup(parent, name) or ABSENT
        self.dirs.fill_name(epoch, parent, name, ino)
        return ino

    def list_directory(self, parent: int) -> dict[bytes, int] | None:
        """Read the names of ``parent`` into the directory cache, and the attributes they name
        into the attribute cache; the names, or None for a directory too large to cache."""
        epoch, attr_epoch = self.dirs.epoch, self.attrs.epoch
        entries = self.catalog.readdir(parent, 0, self.dirs.largest + 1)
        names = {name: row.id for _, name, row in entries}
        self.dirs.fill_dir(epoch, parent, names)
        if len(entries) > self.dirs.largest:
            return None
        for _, _, row in entries:
            self.attrs.fill_row(attr_epoch, row.id, row.values())
        files = [row.id for _, _, row in entries if stat.S_ISREG(row.mode) and row.size]
        if files:
            self.attrs.fill_data_bytes(attr_epoch, self.catalog.reader().content.data_bytes(files))
        return names

    def readdir(self, ino: int, after: int, limit: int = 1000) -> list[tuple[int, bytes, InodeRow]]:
        """(cookie, name, inode) of up to ``limit`` entries after cookie ``after``
        (``store.backends.catalog.tree``: cookies only grow for new entries)."""
        epoch = self.attrs.epoch
        entries = self.catalog.readdir(ino, after, limit)
        out = []
        for cookie, name, row in entries:
            # As getattr: readdirplus hands these attributes to the kernel. A row read before a
            # commit whose overlay is gone by now is stale: read it again (the commit bumped
            # the epoch before it dropped the overlay).
            layers = self._layers(row.id)
            if not layers and self.attrs.epoch != epoch:
                fresh = self.committed_inode(row.id)
                row = fresh if fresh is not None else row
            out.append((cookie, name, self._overlaid(row, layers)))
        return out

    def readlink(self, ino: int) -> bytes:
        row = self.getattr(ino)
        if not stat.S_ISLNK(row.mode):
            raise FsError(errno.EINVAL, "not a symbolic link")
        return bytes(row.target or b"")

    def content_hash(self, ino: int) -> str:
        """SHA-256 of the file's current bytes (an identity users can compare)."""
        h = hashlib.sha256()
        size = self.getattr(ino).size
        for off in range(0, size, READ_WINDOW):
            h.update(self.read(ino, off, min(READ_WINDOW, size - off)))
        return h.hexdigest()

    def stored_bytes(self, inos: Iterable[int]) -> dict[int, int]:
        """Bytes of each file that hold data, not holes (for st_blocks; pending writes counted)."""
        out = self.committed_data_bytes(list(inos))
        for ino in out:
            out[ino] += self._pending_data(ino)
        return out

    def cached_stored_bytes(self, ino: int) -> int | None:
        """``stored_bytes`` of one file from memory only; None if not cached."""
        n = self.attrs.data_bytes(ino)
        return None if n is None else n + self._pending_data(ino)

    def _pending_data(self, ino: int) -> int:
        return sum(ov.dirty.total() for ov in self._layers(ino))

