"""The catalog's full-text search index: the typed operations its keeper and the query
evaluator need (``SearchIndex``), and the rows and filters they exchange.

The index holds one *document* per directory entry of an indexed file of a session (a
file, name and session directory, the content it was extracted from, and its text in
two columns: ``title`` and ``body``). Documents of one session are one id range, so the
operations answer per session without a join. The index is kept in step inside the write
transactions that commit the files (``store.engine.search_upkeep``); what to index and
when to rebuild is decided there, the query plan in ``store.services.search``: an
implementation only stores, matches and ranks (SQLite: FTS5 with bm25; PostgreSQL:
tsvector with GIN and ts_rank, giving the same sets of documents).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from store.core.errors import StoreError
from store.core.query import Clause, string_list, time_bound

#: Index state while a rebuild fills it: usable, holding what is indexed so far.
REBUILDING = "rebuilding"


class IndexUnavailableError(StoreError):
    """The search index cannot be used (missing, outdated, damaged); the message says how to fix it."""


@dataclass(frozen=True)
class SearchIndexStatistics:
    """``state``: ``ok``, ``rebuilding`` (searches answer from what is indexed so far) or why
    the index cannot be used; while rebuilding, ``sessions_done`` of ``sessions_total``
    session directories have been indexed (commits meanwhile index themselves)."""
    state: str
    sessions_done: int = 0
    sessions_total: int = 0


@dataclass(frozen=True)
class IndexedFile:
    """One document: file ``ino`` under the entry (``parent``, ``name``), at ``path`` inside
    session directory ``session_dir``; indexed from ``size`` bytes made of the chunks
    ``extents`` ((offset, chunk id) in file order), whose identity is ``digest``."""
    id: int
    ino: int
    parent: int
    name: bytes
    session_dir: int
    path: str
    size: int
    extents: tuple[tuple[int, int], ...]
    digest: bytes


@dataclass(frozen=True)
class Filters:
    """Structured filters over the sessions' metadata: every tag and topic given must be
    present, the status must be one of those given, the start time within the bounds
    (``before``: (bound, exclusive))."""

    tags: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    after: str | None = None
    before: tuple[str, bool] | None = None

    @classmethod
    def make(cls, tags=None, status=None, after=None, before=None, topic=None) -> "Filters":
        low = time_bound(after, "after", upper=False)
        return cls(tuple(string_list(tags, "tags")), tuple(string_list(status, "status")),
                   tuple(string_list(topic, "topic")), low[0] if low else None,
                   time_bound(before, "before", upper=True))

    @property
    def empty(self) -> bool:
        return not (self.tags or self.statuses or self.topics or self.after or self.before)


class SearchIndex(abc.ABC):
    """The search index as seen through one catalog view (``view.search``).

    Errors: an index that cannot be read or written raises ``SearchIndexError``; any other
    failure of the catalog ``CatalogError`` (both from ``store.core.errors``). Writing
    operations need a write transaction's view."""

    #: True when removing a document needs the text it was indexed with (contentless FTS5).
    removal_needs_text: bool = False
    #: Session directories with a larger inode number cannot hold documents.
    max_session_dir: int = (1 << 63) - 1

    # -- state --------------------------------------------------------------------------
    @abc.abstractmethod
    def problem(self) -> str | None:
        """None when the index is usable (state ``ok`` or REBUILDING, current version); else
        why not: ``missing``, ``built by another version ...``, ``damaged: ...`` or the reason
        stored by ``mark_unusable``. Never raises for a damaged index: it says so."""

    @abc.abstractmethod
    def statistics(self) -> SearchIndexStatistics:
        """The stored state and, while rebuilding, its progress (O(1))."""

    @abc.abstractmethod
    def maintained(self) -> bool:
        """Whether commits must keep the index in step (state ``ok`` or REBUILDING)."""

    @abc.abstractmethod
    def orphans(self) -> int:
        """Text rows that belong to no document (left by a removal that could not give the old
        text); also reads the index's structure, a cheap check that it can be read."""

    @abc.abstractmethod
    def integrity(self, *, full: bool) -> str | None:
        """None when the index is usable and holds no orphans, else what is wrong. ``full``
        also checks the whole index structure (reads all of it, changes nothing)."""

    @abc.abstractmethod
    def mark_unusable(self, reason: str) -> None:
        """Store ``reason`` as the state: searches refuse, commits stop indexing, the next
        writable open rebuilds."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Replace the index by an empty one in state REBUILDING with progress 0 of 0, whatever
        the old one held (even damaged). Document ids start afresh."""

    @abc.abstractmethod
    def rebuild_progress(self, done: int, total: int) -> None:
        """Record that ``done`` of ``total`` session directories are indexed."""

    @abc.abstractmethod
    def rebuild_finished(self) -> None:
        """State ``ok``; the progress is dropped."""

    @abc.abstractmethod
    def optimize(self) -> None:
        """Compact the index after a bulk load (may take a while; changes no result)."""

    def tidy_step(self, budget: int) -> bool:
        """One bounded step of compacting the index when it changed much since it was last
        compacted (``budget``: about that many pages written); True when more steps remain.
        Changes no result; what it frees the catalog gives back (``Maintenance.release_free_pages``).
        An index its server keeps compact itself keeps this answer: nothing to do."""
        return False

    @abc.abstractmethod
    def guarded(self, step: Callable[[], None]) -> str | None:
        """Run ``step`` (index upkeep) inside the current write transaction; if the index fails
        meanwhile (``SearchIndexError``), undo what ``step`` changed, mark the index unusable and
        return why (the transaction goes on: the files matter more than their index). None:
        done. Any other error (a full disk, a busy catalog) is raised: the caller's transaction
        fails as a whole, the index untouched."""

    # -- documents ------------------------------------------------------------------------
    @abc.abstractmethod
    def documents_of(self, ino: int) -> list[IndexedFile]:
        """The documents of file ``ino`` (one per indexed name)."""

    @abc.abstractmethod
    def indexed_at(self, parent: int, name: bytes) -> list[int]:
        """Files with a document derived from the entry (``parent``, ``name``)."""

    @abc.abstractmethod
    def is_indexed(self, ino: int) -> bool:
        """Whether file ``ino`` has a document."""

    @abc.abstractmethod
    def holds_indexed(self, directory: int) -> bool:
        """Whether some document was derived from an entry of ``directory``."""

    @abc.abstractmethod
    def add(self, ino: int, parent: int, name: bytes, session_dir: int, path: str, size: int,
            extents: list[tuple[int, int]], digest: bytes, title: str, body: str) -> int:
        """Add a document (see IndexedFile) with its text; returns its new id, in the id range
        of ``session_dir`` (at most ``max_session_dir``) and never used before in this index."""

    @abc.abstractmethod
    def remove(self, doc: IndexedFile, text: tuple[str, str] | None) -> None:
        """Remove a document. ``text``: (title, body) it was indexed with, when
        ``removal_needs_text``; None when it cannot be had: the text rows stay as orphans,
        which searches never return."""

    @abc.abstractmethod
    def document(self, doc_id: int) -> IndexedFile | None:
        """The document ``doc_id``, or None."""

    @abc.abstractmethod
    def paths(self, doc_ids: Iterable[int]) -> dict[int, str]:
        """{document id: its path inside its session} for those that exist."""

    # -- queries (in a snapshot) ------------------------------------------------------------
    def prepare_for_queries(self) -> None:
        """Called before a search's snapshot: tune the connection for index reads (idempotent)."""

    @abc.abstractmethod
    def count_upto(self, clause: Clause, cap: int, *, skip_orphans: bool) -> tuple[int, float]:
        """(documents matching ``clause`` counted up to ``cap`` + 1, estimated total): exact (a
        float equal to the count) when at most ``cap`` match, else an estimate never equal to
        the count. ``skip_orphans``: check matches against the documents (orphans exist)."""

    @abc.abstractmethod
    def best_per_session(self, clause: Clause, *, skip_orphans: bool) -> dict[int, tuple[float, int]]:
        """{session dir: (best rank, that document's id)} over the documents matching
        ``clause``; rank is bm25-like, lower is better (negative: the more relevant)."""

    @abc.abstractmethod
    def first_per_session(self, clause: Clause, *, skip_orphans: bool) -> dict[int, int]:
        """{session dir: its lowest document id matching ``clause``}."""

    @abc.abstractmethod
    def first_in_session(self, clause: Clause, session_dir: int, *, skip_orphans: bool) -> int | None:
        """A document id of ``session_dir`` matching ``clause``, or None."""

    @abc.abstractmethod
    def sessions_bound(self) -> int:
        """An upper bound of the number of sessions with metadata, at least 1 (O(1))."""

    @abc.abstractmethod
    def filtered(self, session_dirs: Iterable[int], filters: Filters) -> set[int]:
        """Those of ``session_dirs`` whose metadata passes ``filters``."""

    @abc.abstractmethod
    def newest_first(self, filters: Filters, sessions_ino: int, among: list[int] | None = None) -> Iterator[int]:
        """Session directories (all, or those ``among``) passing ``filters``, newest start time
        first (ties by session id); with no filter, then those without metadata (``among``:
        ascending; else oldest entry first). Lazy: a caller may stop early."""

    @abc.abstractmethod
    def session_names(self, session_dirs: Iterable[int], sessions_ino: int) -> dict[int, bytes]:
        """{session dir: its entry name in ``sessions_ino``} for those still there."""

    # -- sessions by their fields (the views tags/ and by-date/) ---------------------------
    @abc.abstractmethod
    def tags(self) -> list[str]:
        """Every tag some session has, sorted."""

    @abc.abstractmethod
    def start_days(self) -> list[str]:
        """Every day (the first 10 characters of a start time) some session started on, sorted."""

    @abc.abstractmethod
    def tagged(self, tag: str, limit: int | None = None) -> list[str]:
        """Ids of the sessions with ``tag``, newest start time first (ties by id)."""

    @abc.abstractmethod
    def started_on(self, day: str, limit: int | None = None) -> list[str]:
        """Ids of the sessions whose start time begins with ``day`` (YYYY-MM-DD), earliest first."""

    @abc.abstractmethod
    def is_tagged(self, session_id: str, tag: str) -> bool:
        """Whether session ``session_id`` has ``tag``."""

    @abc.abstractmethod
    def is_started_on(self, session_id: str, day: str) -> bool:
        """Whether session ``session_id``'s start time begins with ``day``."""
