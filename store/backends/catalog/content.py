"""The ``content`` domain of the catalog: file chunk lists, chunks, blocks and packs.

A file is an ordered list of chunk references (offset, chunk); a chunk is a byte range of
a block; a block is a framed object in a pack. Every chunk has a reference count equal to
the number of chunk-list entries naming it; a chunk whose count reaches 0 keeps its row
and records since when it is unreferenced (gc reclaims it after a grace period).
Block, chunk and pack ids are handed out in ranges (``reserve_ids``), never twice, so any
number of writers sharing a catalog add blocks, chunks and packs without colliding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from store.core.errors import StoreError
from store.core.rewrite import Extent
from .rows import BlockRow, ChunkInBlock, ChunkLocation

_END = (1 << 63) - 1     # beyond any offset or chunk length


class ChunkGoneError(StoreError):
    """A commit names a chunk that no longer exists: another writer's gc reclaimed it after
    the batch found it by its hash. The batch must be prepared again (it then stores the bytes
    anew); the transaction is rolled back."""


class Content(ABC):
    """File contents and where their bytes live, through one catalog view."""

    # -- reads -------------------------------------------------------------------------
    @abstractmethod
    def extents(self, ino: int) -> list[Extent]:
        """The chunk list of file ``ino`` as (offset, length, chunk id), in file order."""

    @abstractmethod
    def locations(self, ino: int, start: int, end: int, max_chunk: int) -> list[ChunkLocation]:
        """The chunk references of ``ino`` overlapping [start, end), in file order (no chunk is
        longer than ``max_chunk``). A reference to a chunk the catalog does not have is an
        ``IntegrityError``, never zeros."""

    def all_locations(self, ino: int) -> list[ChunkLocation]:
        """Every chunk reference of ``ino``, in file order (``locations`` over any offset)."""
        return self.locations(ino, 0, _END, _END)

    @abstractmethod
    def chunks(self, extents: Iterable[tuple[int, int]]) -> list[ChunkLocation] | None:
        """The chunks at the (offset in a file, chunk id) pairs, in their order, or None when
        one of them no longer exists."""

    @abstractmethod
    def block(self, block_id: int) -> BlockRow | None:
        """The block ``block_id``, or None."""

    @abstractmethod
    def chunks_in_block(self, block_id: int) -> list[ChunkInBlock]:
        """The chunks stored in block ``block_id``, by offset in the block."""

    @abstractmethod
    def chunk_by_hash(self, digest: bytes) -> tuple[int, int] | None:
        """(id, length) of the chunk whose SHA-256 is ``digest``, or None."""

    @abstractmethod
    def chunks_by_hash(self, digests: list[bytes]) -> dict[bytes, tuple[int, int]]:
        """{digest: (id, length)} of the chunks whose SHA-256 is among ``digests``
        (``chunk_by_hash`` for many in one read: a commit looks up every chunk it cuts)."""

    @abstractmethod
    def data_bytes(self, inos: list[int]) -> dict[int, int]:
        """For each file of ``inos``: its bytes that hold data, not holes (0 for none)."""


    @abstractmethod
    def packs(self) -> dict[int, tuple[int, bool]]:
        """Every pack: id -> (committed size, sealed)."""

    # -- writes (inside a write transaction) ---------------------------------------------
    @abstractmethod
    def reserve_ids(self, kind: str, count: int, floor: int = 1) -> int:
        """The first of ``count`` consecutive ``kind`` ids ("block", "chunk" or "pack"), none of
        them handed out before nor used by a row, all at least ``floor``. Run it in a
        transaction of its own: a range must outlive the rollback of the batch that uses it."""

    @abstractmethod
    def seal_packs(self, pack_ids: list[int]) -> None:
        """Mark these packs sealed (complete; nothing is appended to them again)."""

    @abstractmethod
    def record_packs(self, new_packs: list[int], pack_ends: dict[int, int], open_pack: int | None,
                     now: int) -> None:
        """Add rows for ``new_packs`` (made ``now``), set the committed sizes ``pack_ends``
        (pack id -> size), and seal every pack but ``open_pack`` (the one being filled)."""

    @abstractmethod
    def add_blocks(self, rows: list[tuple]) -> None:
        """Add blocks, each (id, pack id, offset, length, raw length, codec, dictionary id,
        created ns)."""

    @abstractmethod
    def add_chunks(self, rows: list[tuple[int, bytes, int, int, int]], now: int) -> None:
        """Add chunks, each (id, hash, length, block id, offset in the block), with no
        references yet (unreferenced since ``now``)."""

    @abstractmethod
    def release_content(self, ino: int, now: int) -> None:
        """Empty the chunk list of ``ino``, dropping the counts of the chunks it named."""

    @abstractmethod
    def commit_file(self, ino: int, extents: list[tuple[int, int, int]], *, size: int, mtime_ns: int,
                    ctime_ns: int, now: int, content_seq: int | None = None) -> bool:
        """Make (offset, length, chunk id) ``extents`` the whole chunk list of file ``ino``
        (counts follow; chunks left unreferenced are so since ``now``) and set its size, mtime,
        ctime (never moved back) and, if given, ``content_seq``. False, changing nothing, when
        the inode no longer exists; ``ChunkGoneError`` when a chunk of ``extents`` does not."""
