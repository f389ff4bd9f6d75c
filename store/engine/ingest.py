"""Turning byte streams into chunk references for one persistence batch.

``BatchBuilder`` cuts streams with content-defined chunking, looks every
chunk up by hash (among the batch's own new chunks, then in the catalog, a
group of chunks per read),
and packs the new ones, in file order, into blocks of up to BLOCK_TARGET raw
bytes that are compressed as one frame and appended to the current pack.
Nothing here writes the catalog: the worker inserts ``new_blocks`` and
``new_chunks`` in the transaction that commits the batch. Ids come from the
worker's ``IdRanges`` (``store.engine.ids``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from store.core import chunker, codec
from store.backends.objects.packs import Packer
from .ids import IdRanges

BLOCK_TARGET = 1024 * 1024
#: Chunks cut before they are looked up in the catalog together (one read per group).
LOOKUP_GROUP = 64


@dataclass
class BatchBuilder:
    packs: Packer
    ids: IdRanges
    known_chunks: Callable[[list[bytes]], "dict[bytes, tuple[int, int]]"]   # hashes -> {hash: (id, length)}
    level: int = 3
    new_blocks: list[tuple] = field(default_factory=list)       # rows for ``blocks``
    new_chunks: list[tuple] = field(default_factory=list)       # rows for ``chunks`` (refcount set later)
    new_packs: list[int] = field(default_factory=list)
    pack_ends: dict = field(default_factory=dict)               # pack id -> size after this batch
    logical_bytes: int = 0
    new_raw_bytes: int = 0
    stored_bytes: int = 0
    _batch_chunks: dict = field(default_factory=dict)           # hash -> (chunk id, length)
    _buf: list = field(default_factory=list)
    _buf_len: int = 0
    _buf_block: int = 0

    def add_stream(self, pieces: Iterable[bytes], start: int) -> list[tuple[int, int, int]]:
        """Chunk the bytes of [start, ...) given as pieces; returns (off, length, chunk id).

        All-zero chunks are left out: they are holes and read back as zeros.
        """
        out = []
        pos = start
        try:
            for group in _groups(chunker.cut_stream(pieces)):
                digests = [None if chunker.is_zero(data) else chunker.chunk_hash(data) for data in group]
                known = self.known_chunks([d for d in digests if d is not None and d not in self._batch_chunks])
                for data, digest in zip(group, digests):
                    if digest is not None:
                        out.append((pos, len(data), self._chunk_id(data, digest, known)))
                    self.logical_bytes += len(data)
                    pos += len(data)
        finally:
            # Also when ``pieces`` fails part way (the caller may go on with the batch):
            # every chunk in ``new_chunks`` must have its block written.
            self._flush_block()
        return out

    def _chunk_id(self, data: bytes, digest: bytes, known: dict) -> int:
        hit = self._batch_chunks.get(digest) or known.get(digest)
        if hit is not None:
            return hit[0]
        if self._buf_len + len(data) > BLOCK_TARGET:
            self._flush_block()
        if not self._buf:
            self._buf_block = self.ids.take("block")
        chunk_id = self.ids.take("chunk")
        self.new_chunks.append((chunk_id, digest, len(data), self._buf_block, self._buf_len))
        self._batch_chunks[digest] = (chunk_id, len(data))
        self._buf.append(data)
        self._buf_len += len(data)
        return chunk_id

    def _flush_block(self) -> None:
        if not self._buf:
            return
        raw = b"".join(self._buf)
        framed, used = codec.encode_block(raw, self.level)
        pack_id, offset, created = append_frame(self.packs, self.ids, framed)
        if created:
            self.new_packs.append(pack_id)
        self.pack_ends[pack_id] = offset + len(framed)
        self.new_blocks.append((self._buf_block, pack_id, offset, len(framed), len(raw), used, 0,
                                time.time_ns()))
        self.new_raw_bytes += len(raw)
        self.stored_bytes += len(framed)
        self._buf = []
        self._buf_len = 0


def _groups(chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
    """``chunks`` in lists of up to LOOKUP_GROUP."""
    group = []
    for data in chunks:
        group.append(data)
        if len(group) == LOOKUP_GROUP:
            yield group
            group = []
    if group:
        yield group


def append_frame(packs: Packer, ids: IdRanges, framed: bytes) -> tuple[int, int, bool]:
    """Append ``framed`` to the write pack, a new one (with the next pack id) if needed:
    (pack id, offset, whether the pack was created)."""
    pack_id, offset, created = packs.append(framed, ids.peek("pack"))
    if created:
        ids.take("pack")
    return pack_id, offset, created
