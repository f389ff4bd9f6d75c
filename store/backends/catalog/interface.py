"""The catalog interface: transactions and views over typed domains.

A catalog is reached through views. ``reader()`` gives this thread's read view;
``with catalog.write(durable=...) as view:`` a write transaction's view (committed when the
block ends, rolled back when it raises). A view carries one attribute per domain, each an
object implementing that domain's interface (a module of this package):

``tree``         inodes, directory entries, xattrs, POSIX namespace operations (``tree``)
``content``      chunk lists, chunks, blocks, packs, reference counts (``content``)
``meta``         store-wide values and running totals (``meta``)
``sessions``     the session index;  ``search``: the full-text index
``maintenance``  gc, recompression and dictionary state;  ``audit``: verify and repair
``migration``    the record of imported legacy sessions
``mounts``       the mounts sharing the catalog, their heartbeats and leases (``mounts``)

Readers never block on a writer and see one committed state inside ``snapshot()``.
After every write transaction, committed or not, the catalog calls its commit hooks with
the ``Changes`` it made (the engine's attribute cache drops those entries): in the writer's
thread, after the commit and before ``write`` returns, so a reader that starts after
``write`` returned never sees the old state through the cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ContextManager, TypeVar

from store.core.rewrite import Extent
from .audit import Audit
from .content import Content
from .maintenance import Maintenance
from .meta import Meta
from .migration import Migration
from .mounts import Mounts
from .rows import BlockRow, Changes, ChunkLocation, InodeRow
from .search import SearchIndex
from .sessions import Sessions
from .tree import Tree

T = TypeVar("T")


class CatalogView(ABC):
    """The catalog through one connection (read or write); see the module docstring."""

    writable: bool
    tree: Tree
    content: Content
    meta: Meta
    sessions: Sessions
    search: SearchIndex
    maintenance: Maintenance
    audit: Audit
    migration: Migration
    mounts: Mounts

    @property
    @abstractmethod
    def in_transaction(self) -> bool:
        """True inside ``snapshot()`` or a write transaction."""

    @abstractmethod
    def snapshot(self) -> ContextManager["CatalogView"]:
        """Reads inside see one committed state of the catalog."""

    @abstractmethod
    def savepoint(self) -> ContextManager["CatalogView"]:
        """Inside a write transaction: changes made in the block are undone, alone, when it
        raises (the exception goes on); the rest of the transaction stays."""


class Catalog(ABC):
    """An open catalog; see the module docstring."""

    readonly: bool
    #: The format as read: older than the current one only when opened read-only.
    format_version: int
    #: The format a writable open found (before its upgrade, if any); None for a read-only open.
    upgraded_from: int | None

    @abstractmethod
    def reader(self) -> CatalogView:
        """This thread's read view."""

    @abstractmethod
    def write(self, durable: bool = False) -> ContextManager[CatalogView]:
        """A write transaction (one at a time); ``durable``: on stable storage when it ends."""

    def transact(self, fn: Callable[[CatalogView], T], durable: bool = False) -> T:
        """``fn(view)`` inside ``write(durable)``; a catalog shared by many writers runs it again
        (bounded) when it lost a race with another writer's transaction, so ``fn`` must have no
        effect outside the transaction. A catalog with one writer never loses one."""
        with self.write(durable) as view:
            return fn(view)

    @abstractmethod
    def in_snapshot(self) -> bool:
        """True while this thread's read view is inside ``snapshot()`` (it may see an older
        state than the last commit)."""

    @abstractmethod
    def add_commit_hook(self, fn: Callable[[Changes], None]) -> None:
        """Call ``fn(changes)`` after each write transaction (see the module docstring)."""

    def listen(self, fn: Callable[[Changes | None], None]) -> None:
        """Call ``fn(changes)`` (from a thread of the catalog's) after each commit of another
        writer sharing this catalog, and ``fn(None)`` when some may have been missed (a
        connection was lost): then everything cached may be stale. A catalog that only this
        process writes (SQLite: the store's lock file) has no other writers and never calls it."""

    def try_exclusive(self, name: str) -> bool:
        """Take the lock ``name``, shared by every process using this catalog, if it is free:
        True when this process holds it now (until ``release_exclusive``, or its end). Work that
        moves blocks (gc, compaction, recompression) runs on one mount at a time. A catalog
        that only this process writes (SQLite: the store's lock file) grants it always."""
        return True

    def release_exclusive(self, name: str) -> None:
        """Release ``name`` taken by ``try_exclusive``."""

    @abstractmethod
    def checkpoint(self) -> None:
        """Make what is committed durable (bounds what a power loss can take)."""

    @abstractmethod
    def close(self) -> None:
        """Close every view and release the catalog."""

    # -- reads through this thread's view, or through ``view`` inside a transaction ------
    def _view(self, view: CatalogView | None) -> CatalogView:
        return view if view is not None else self.reader()

    def inode(self, ino: int, view: CatalogView | None = None) -> InodeRow | None:
        return self._view(view).tree.inode(ino)

    def lookup(self, parent: int, name: bytes, view: CatalogView | None = None) -> int | None:
        return self._view(view).tree.lookup(parent, name)

    def readdir(self, parent: int, after: int, limit: int,
                view: CatalogView | None = None) -> list[tuple[int, bytes, InodeRow]]:
        return self._view(view).tree.readdir(parent, after, limit)

    def names_of(self, ino: int, view: CatalogView | None = None) -> list[tuple[int, bytes]]:
        return self._view(view).tree.names_of(ino)

    def path_of(self, ino: int, view: CatalogView | None = None) -> str | None:
        return self._view(view).tree.path_of(ino)

    def extents(self, ino: int, view: CatalogView | None = None) -> list[Extent]:
        return self._view(view).content.extents(ino)

    def locations(self, ino: int, start: int, end: int, max_chunk: int,
                  view: CatalogView | None = None) -> list[ChunkLocation]:
        return self._view(view).content.locations(ino, start, end, max_chunk)

    def block(self, block_id: int, view: CatalogView | None = None) -> BlockRow | None:
        return self._view(view).content.block(block_id)

    def meta(self, key: str, view: CatalogView | None = None):
        return self._view(view).meta.get(key)


__all__ = ["Catalog", "CatalogView", "Changes"]
