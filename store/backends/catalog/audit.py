"""The catalog's audit domain: whole-catalog checks for ``verify`` and the fixes of ``--repair``.

Checks run inside one read snapshot of the catalog (the caller's), so their answers agree
with each other; the row streams they return (iterators) must be consumed inside it. Fixes
run inside the caller's write transaction and change nothing outside it.

*Lost* data: a chunk whose content is gone (missing pack, corrupt block, ...) is kept by
repair with its id and length but points at no block and has a hash no content can have,
so reading it fails and dedup never reuses it. The checks below never report such a chunk
as damaged; ``lost_references`` finds the files holding one.

Names of entries are bytes, as stored; inode numbers and ids are ints; times are ns since
the epoch.
"""

from __future__ import annotations

import abc
from typing import Iterable, Iterator, NamedTuple

from store.backends.catalog.rows import BlockRow
from store.core.session_fields import SessionFields


class ChunkWithoutBlock(NamedTuple):
    """A chunk row naming a block the catalog does not have."""
    id: int
    hash: bytes
    block_id: int
    refcount: int


class RefcountMismatch(NamedTuple):
    """A chunk whose stored reference count is not its number of file references (or is 0
    without the time it became unreferenced, so gc would never reclaim it)."""
    chunk_id: int
    hash: bytes
    refcount: int
    references: int


class FileReference(NamedTuple):
    """A file's reference to a chunk: the bytes [off, off + length) of inode ``ino``."""
    ino: int
    off: int
    length: int


class MissingChunkReference(NamedTuple):
    """A file's reference to a chunk id that has no chunk row."""
    ino: int
    off: int
    chunk_id: int


class NonFileReferences(NamedTuple):
    """Chunk references held by an inode that is missing (``mode`` None) or not a regular file."""
    ino: int
    mode: int | None
    count: int


class FileExtent(NamedTuple):
    """One chunk reference of a regular file with the file's size; ``length`` is None when
    the chunk does not exist."""
    ino: int
    off: int
    length: int | None
    size: int


class DanglingEntry(NamedTuple):
    """A directory entry naming an inode that does not exist."""
    parent: int
    name: bytes
    ino: int


class MisplacedEntry(NamedTuple):
    """A directory entry whose parent is missing (``parent_mode`` None) or not a directory."""
    parent: int
    name: bytes
    ino: int
    parent_mode: int | None


class LinkCount(NamedTuple):
    """An inode's stored link count beside what the entries say: ``entries`` names of it,
    ``subdirectories`` directories directly inside it."""
    ino: int
    mode: int
    nlink: int
    entries: int
    subdirectories: int


class IndexedSession(NamedTuple):
    """A session's row in the session index; ``fields`` holds its tags and topic ids sorted."""
    id: str
    dir_ino: int
    meta_size: int
    fields: SessionFields


class LostFoundEntry(NamedTuple):
    """A file recorded in lost+found: its path then, why, the byte ranges lost, when."""
    ino: int
    path: str | None
    reason: str
    ranges: list[list[int]]
    found_at: int


class Audit(abc.ABC):
    """Whole-catalog checks and repairs; see the module docstring."""

    # -- format and the database itself -------------------------------------------------
    @abc.abstractmethod
    def format_versions(self) -> tuple[int | None, int]:
        """(the stored format version or None when unreadable, the version this code writes)."""

    @abc.abstractmethod
    def integrity_problems(self) -> list[str]:
        """The database's own consistency check: one message per fault, empty when sound."""

    @abc.abstractmethod
    def counter_disagreements(self) -> dict[str, tuple[int, int]]:
        """{counter: (stored, recounted)} for each stored total that differs from a recount of
        the tables; empty when the catalog's format keeps no totals."""

    # -- packs and blocks -----------------------------------------------------------------
    @abc.abstractmethod
    def dictionary_ids(self) -> set[int]:
        """Ids of the compression dictionaries the catalog holds."""

    @abc.abstractmethod
    def block_totals(self) -> tuple[int, int]:
        """(number of blocks, sum of their framed lengths)."""

    @abc.abstractmethod
    def blocks(self) -> Iterator[BlockRow]:
        """Every block, streamed in (pack id, offset) order."""

    @abc.abstractmethod
    def chunks_in_blocks(self, block_ids: Iterable[int]) -> list[int]:
        """Ids of the chunks stored in any of ``block_ids``."""

    @abc.abstractmethod
    def references_to(self, chunk_ids: Iterable[int]) -> Iterator[FileReference]:
        """Every file reference to any of ``chunk_ids``, with the chunk's length."""

    # -- chunks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def chunk_count(self) -> int:
        """How many chunk rows there are (lost chunks included)."""

    @abc.abstractmethod
    def chunks_without_block(self) -> Iterator[ChunkWithoutBlock]:
        """Chunks naming a block that does not exist; lost chunks are not among them."""

    @abc.abstractmethod
    def refcount_mismatches(self) -> Iterator[RefcountMismatch]:
        """Chunks whose reference count disagrees with their file references, or is 0
        without an unreferenced-since time."""

    # -- file references ------------------------------------------------------------------
    @abc.abstractmethod
    def missing_chunk_references(self) -> Iterator[MissingChunkReference]:
        """References to chunk ids with no chunk row, in (ino, off) order."""

    @abc.abstractmethod
    def non_file_references(self) -> Iterator[NonFileReferences]:
        """Per inode that is missing or not a regular file: how many chunk references it holds."""

    @abc.abstractmethod
    def file_extents(self) -> Iterator[FileExtent]:
        """Every chunk reference of every regular file, in (ino, off) order."""

    @abc.abstractmethod
    def file_count(self) -> int:
        """How many regular files there are."""

    # -- namespace ------------------------------------------------------------------------
    @abc.abstractmethod
    def dangling_entries(self) -> list[DanglingEntry]:
        """Directory entries naming an inode that does not exist."""

    @abc.abstractmethod
    def misplaced_entries(self) -> list[MisplacedEntry]:
        """Directory entries whose parent does not exist or is not a directory."""

    @abc.abstractmethod
    def link_counts(self) -> Iterator[LinkCount]:
        """Every inode's stored link count with its entry and subdirectory counts."""

    # -- sessions -------------------------------------------------------------------------
    @abc.abstractmethod
    def indexed_sessions(self) -> dict[str, IndexedSession]:
        """The session index: session id -> its row."""

    # -- lost+found -----------------------------------------------------------------------
    @abc.abstractmethod
    def lost_references(self, ino: int | None = None) -> Iterator[FileReference]:
        """File references to lost chunks (of inode ``ino`` only, when given)."""

    @abc.abstractmethod
    def lost_found(self) -> list[LostFoundEntry]:
        """The lost+found records, oldest first (a file may have several)."""

    # -- re-checks against the current catalog -------------------------------------------
    @abc.abstractmethod
    def pack_listed(self, pack_id: int) -> bool:
        """True when the catalog lists pack ``pack_id``."""

    @abc.abstractmethod
    def pack_has_blocks(self, pack_id: int) -> bool:
        """True when at least one block lies in pack ``pack_id``."""

    # -- repairs (inside a write transaction) ---------------------------------------------
    @abc.abstractmethod
    def drop_references(self, ino: int) -> int:
        """Delete every chunk reference of inode ``ino`` (reference counts are left for
        ``recount_refcounts``); returns how many."""

    @abc.abstractmethod
    def chunk_exists(self, chunk_id: int) -> bool:
        """True when chunk ``chunk_id`` has a row (lost or not)."""

    @abc.abstractmethod
    def drop_reference(self, ino: int, off: int, chunk_id: int) -> None:
        """Delete the one reference of inode ``ino`` at ``off`` to ``chunk_id``."""

    @abc.abstractmethod
    def tombstone_chunk(self, chunk_id: int, length: int, at_ns: int) -> None:
        """Create chunk ``chunk_id`` (which has no row) as lost data of ``length`` bytes,
        unreferenced since ``at_ns`` until ``recount_refcounts``."""

    @abc.abstractmethod
    def mark_chunk_lost(self, chunk_id: int) -> list[FileReference]:
        """Make chunk ``chunk_id`` lost (no block, a hash no content has) and return the file
        references to it. An unreferenced chunk is deleted instead; a chunk that is absent
        or already lost is left as it is. Both return []."""

    @abc.abstractmethod
    def drop_block(self, block_id: int) -> bool:
        """Delete block ``block_id`` and its recompression record unless a chunk is still in
        it; True when a block was deleted."""

    @abc.abstractmethod
    def drop_pack(self, pack_id: int) -> bool:
        """Delete the catalog's row of pack ``pack_id`` unless a block is still in it; True
        when a row was deleted."""

    @abc.abstractmethod
    def shrink_pack(self, pack_id: int, size: int) -> None:
        """Lower pack ``pack_id``'s committed size to ``size`` (never raises it)."""

    @abc.abstractmethod
    def record_lost_found(self, ino: int, path: str | None, reason: str, ranges: list[tuple[int, int]],
                          at_ns: int) -> None:
        """Add a lost+found record: file ``ino`` at ``path`` lost ``ranges`` because ``reason``."""

    @abc.abstractmethod
    def drop_entry(self, parent: int, name: bytes) -> None:
        """Delete the directory entry ``name`` of ``parent`` (link counts are left for
        ``recount_nlinks``)."""

    @abc.abstractmethod
    def recount_refcounts(self, at_ns: int) -> int:
        """Set every chunk's reference count to its number of file references, and mark the
        unreferenced ones without a time unreferenced since ``at_ns``; returns how many
        chunks changed."""

    @abc.abstractmethod
    def recount_nlinks(self, inos: Iterable[int]) -> int:
        """Set the link count of each existing inode of ``inos`` to what its entries say (a
        directory: 2 + its subdirectories), unless that is 0; returns how many changed."""

    @abc.abstractmethod
    def drop_session_rows(self, session_id: str) -> None:
        """Delete the session index row of ``session_id`` with its tags and topics."""

    @abc.abstractmethod
    def prune_lost_found(self) -> int:
        """Delete the lost+found records of files that no longer refer to lost data
        (rewritten or deleted); returns how many."""

    @abc.abstractmethod
    def store_recounted_totals(self) -> None:
        """Set every stored total to its recount from the tables."""
