"""The catalog's maintenance operations: what garbage collection, pack compaction,
background recompression and the zstd dictionaries read and change.

Times are nanoseconds since the epoch. Reads work in any view; operations that change
something run inside a write transaction (``Catalog.write``), where the caller makes them
one atomic switch-over. A catalog made before the maintenance tables existed, opened
read-only, reads as if they were empty.
"""

from __future__ import annotations

import abc
from typing import Iterable, NamedTuple


class AgedBlock(NamedTuple):
    """A block's row with its creation time (first: candidates are ordered by it)."""
    created: int
    id: int
    pack_id: int
    offset: int
    length: int         # framed bytes in the pack
    raw_length: int     # decoded bytes
    codec: int
    dict_id: int


class PackLiveness(NamedTuple):
    """A pack's committed size, the bytes of it that compaction would keep (``live``), the
    bytes it would keep if it re-encoded every block holding a dead byte (``exact``), and
    when the pack was made (ns)."""
    pack_id: int
    size: int
    live: float
    exact: float | None = None      # None: not known (taken as ``live``)
    created: int = 0


class DictionaryInfo(NamedTuple):
    """A trained dictionary's id and what it was trained on."""
    id: int
    samples: int
    sample_bytes: int
    small_blocks: int   # small blocks in the store when it was trained


class Maintenance(abc.ABC):
    """Typed maintenance operations on one view of the catalog (see the module doc)."""

    # -- garbage collection ---------------------------------------------------------------
    @abc.abstractmethod
    def stored_bytes(self) -> int:
        """Committed bytes of all packs."""

    @abc.abstractmethod
    def reclaimable(self, before: int) -> tuple[int, int]:
        """(chunks, bytes) unreferenced since before ``before``: what ``reclaim_chunks`` would delete."""

    @abc.abstractmethod
    def reclaim_chunks(self, before: int, limit: int) -> list[tuple[int, int]]:
        """Delete up to ``limit`` chunks unreferenced since before ``before``; their (id, length)."""

    @abc.abstractmethod
    def drop_blocks_without_chunks(self) -> list[int]:
        """Delete every block that no chunk lies in (and its recompression record); their ids."""

    @abc.abstractmethod
    def blocks_emptied_by_reclaim(self, before: int) -> int:
        """How many blocks would hold no chunk once the chunks unreferenced since before
        ``before`` are reclaimed (a dry run of the two operations above)."""

    @abc.abstractmethod
    def drop_unused_dictionaries(self) -> list[int]:
        """Delete every dictionary that no dictionary-coded block names, except the newest; their ids."""

    @abc.abstractmethod
    def drop_empty_packs(self, pack_ids: Iterable[int] | None = None, *, keep: int | None = None) -> list[int]:
        """Delete the rows of the packs (all, or those of ``pack_ids``) that hold no block, except
        pack ``keep`` (the one being appended to); their ids. The caller deletes their objects
        after the commit."""

    @abc.abstractmethod
    def pack_liveness(self, reencode_below: float, reclaimed_before: int | None = None) -> list[PackLiveness]:
        """Every pack, by id, with the bytes compaction would keep of it: a block whole when at
        least ``reencode_below`` of its decoded bytes lie in chunks, else that share of it;
        bytes no block covers are dead; ``exact``: each block by the share of it in chunks. With
        ``reclaimed_before``, the chunks reclaim would delete count as dead (a dry run)."""

    def release_free_pages(self) -> int:
        """Give the catalog's unused pages back to the file system (those deletions and index
        merges left); how many. A catalog whose server manages its own free space keeps this
        answer: none."""
        return 0

    @abc.abstractmethod
    def blocks_in_pack(self, pack_id: int) -> list[AgedBlock]:
        """The blocks of a pack in offset order."""

    @abc.abstractmethod
    def relocate_blocks(self, frames: Iterable[AgedBlock]) -> None:
        """Point each block (by id) at a new frame: its pack, offset, length, codec and
        dictionary. The decoded bytes stay the same, so the chunks stay where they are."""

    @abc.abstractmethod
    def replace_block(self, old_id: int, new: AgedBlock, chunk_offsets: Iterable[tuple[int, int]]) -> None:
        """Put block ``new`` in the place of ``old_id``: insert it, move the chunks of
        ``chunk_offsets`` (chunk id, offset in ``new``) into it, delete the old block; its
        recompression record follows it."""

    # -- recompression --------------------------------------------------------------------
    @abc.abstractmethod
    def pending(self, before: int | None) -> tuple[int, int]:
        """(blocks, framed bytes) created before ``before`` (None: any time) that recompression
        has not handled yet."""

    @abc.abstractmethod
    def recompress_candidates(self, before: int, limit: int,
                              after: tuple[int, int] = (-1, -1)) -> list[AgedBlock]:
        """Up to ``limit`` blocks created before ``before`` and not yet handled, oldest first
        (by creation time, then id), starting after the (created, id) ``after``."""

    @abc.abstractmethod
    def files_of_block(self, block_id: int) -> list[int]:
        """The inodes of the files whose chunks lie in a block."""

    @abc.abstractmethod
    def mergeable_blocks(self, directory: int, max_raw: int, before: int, alone: bytes) -> list[AgedBlock]:
        """The blocks a merge may combine in the tree under ``directory``: created before
        ``before``, not yet handled, of at most ``max_raw`` decoded bytes, each with every
        chunk in one file only, which is not named ``alone``; in order of that file's inode,
        then block id."""

    @abc.abstractmethod
    def merge_blocks(self, new: AgedBlock, sources: Iterable[tuple[int, int]]) -> None:
        """Insert block ``new`` holding the decoded bytes of the ``sources`` (block id, offset of
        its bytes in ``new``): their chunks move into it, the source blocks and their
        recompression records are deleted."""

    @abc.abstractmethod
    def mark_recompressed(self, blocks: Iterable[tuple[int, int]], level: int, done_at: int) -> None:
        """Record blocks (id, framed length before) as handled by recompression at ``level``
        (replacing an earlier record)."""

    @abc.abstractmethod
    def recompressed_level(self, block_id: int) -> int | None:
        """The zstd level recompression encoded a block with, or None when it did not."""

    @abc.abstractmethod
    def small_blocks(self, max_raw: int, named: bytes | None = None) -> list[AgedBlock]:
        """Blocks of 1 to ``max_raw`` decoded bytes, newest first; with ``named``, only those
        holding a chunk of a file of that name (a dictionary's training population)."""

    @abc.abstractmethod
    def count_small_blocks(self, max_raw: int, named: bytes | None = None) -> int:
        """How many blocks ``small_blocks`` would return."""

    # -- zstd dictionaries ----------------------------------------------------------------
    @abc.abstractmethod
    def dictionary(self, dict_id: int) -> bytes | None:
        """The trained data of a dictionary, or None when there is no such dictionary."""

    @abc.abstractmethod
    def latest_dictionary(self) -> DictionaryInfo | None:
        """The newest dictionary (the highest id), or None."""

    @abc.abstractmethod
    def next_dictionary_id(self) -> int:
        """The id the next trained dictionary gets (ids only grow)."""

    @abc.abstractmethod
    def add_dictionary(self, dict_id: int, data: bytes, samples: int, sample_bytes: int, small_blocks: int) -> None:
        """Store a newly trained dictionary; a dictionary is never changed afterwards."""
