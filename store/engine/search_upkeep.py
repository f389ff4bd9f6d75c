"""The full-text search index kept in step with the files (``store.text_index``).

The index (the catalog's ``SearchIndex``, ``view.search``) holds one document per
indexed name of a session's file, with the text ``text_index.extract`` gives for it.
``TextIndex`` keeps it in step from inside the engine's write transactions:
``content_changed`` when files' bytes commit, ``namespace_changed`` when names are
created, renamed or removed, so a search never sees a file's new bytes without its new
documents, or the reverse. An index error (``SearchIndexError``) never fails the commit of
the files: the index is marked unusable and rebuilt (``search_rebuild``) at the next
writable open; any other catalog error (a full disk) fails the commit, which is retried.

Size. For 10,000 generated "small" sessions (270 MB of indexed text, a 490 MB store) the
SQLite index takes about 220 MB, of which the per-file bookkeeping is 7 MB; the text itself
is not stored twice. Recently extracted text is cached (``TEXT_CACHE_BYTES``) for removals
and snippets.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Callable, Iterable

import orjson

from store.backends.catalog.search import IndexedFile, IndexUnavailableError, SearchIndexStatistics
from store.backends.catalog.rows import ChunkLocation
from store.core.errors import IntegrityError, SearchIndexError, StoreError
from store.core.text_index import columns, extract, indexed_path, iter_text
from store.engine.search_rebuild import IndexRebuild
from store.engine.search_text import TextCache, content_digest

log = logging.getLogger("sessionfs.search")

#: Bytes (roughly) of extracted text kept in memory per process, for removals and snippets.
TEXT_CACHE_BYTES = 32 * 1024 * 1024
CHUNK_DIRS = ("screenshots", "audio-segments")
_CHUNK_DIR_NAMES = frozenset(d.encode() for d in CHUNK_DIRS)
_INVALID = object()

#: Reads one chunk's bytes (verified) as seen in a catalog view: ``read_chunk(location, view)``.
ChunkReader = Callable[[ChunkLocation, object], bytes]


class TextIndex(IndexRebuild):
    """The full-text index of one open store."""

    def __init__(self, catalog, sessions_ino: int, root: Path, *, readonly: bool, read_chunk: ChunkReader):
        super().__init__()
        self.catalog, self.sessions_ino, self.root, self.readonly = catalog, sessions_ino, root, readonly
        self._read_chunk = read_chunk
        self.cache = TextCache(TEXT_CACHE_BYTES)
        index = catalog.reader().search
        #: Why the index cannot be used (None: it can). Searches refuse; a writable open rebuilds.
        self.problem = index.problem()
        #: Whether the index holds orphan text rows (old versions whose removal failed): searches
        #: then skip them; a writable open rebuilds.
        self.garbage = False
        if self.problem is None:
            try:
                self.garbage = index.orphans() != 0
            except SearchIndexError as exc:
                self.problem = f"damaged: {exc}"

    def statistics(self) -> SearchIndexStatistics:
        """The index's state and a rebuild's progress (O(1))."""
        if self.problem is not None:
            return SearchIndexStatistics(self.problem)
        return self.catalog.reader().search.statistics()

    def unavailable(self, problem: str) -> IndexUnavailableError:
        """The error a search raises when the index is ``problem``."""
        return IndexUnavailableError(
            f"the search index of {self.root} is {problem}; it is rebuilt when the store is next opened "
            f"for writing (mount), or now with 'sessionfs reindex {self.root}'")

    def damaged(self, exc: BaseException) -> IndexUnavailableError:
        """An error reading the index: mark it for rebuild (when this store may write) and
        return the error to raise."""
        reason = f"damaged: {' '.join(str(exc).split())}"
        log.error("search index of %s is %s", self.root, reason)
        if not self.readonly:
            try:
                with self.catalog.write() as view:
                    view.search.mark_unusable(reason)
            except StoreError:
                pass
        self.problem = reason
        return self.unavailable(reason)

    @staticmethod
    def check(view, *, full: bool = False) -> str | None:
        """None when the index is usable and clean; else what is wrong (missing, outdated,
        damaged, holding garbage). ``full`` also checks the whole index (reads all of it,
        changes nothing)."""
        return view.search.integrity(full=full)

    # -- hooks (inside the store's write transaction) -----------------------------------
    def _guarded(self, view, step: Callable[[], object]) -> None:
        if self.problem is not None or not view.search.maintained():
            return
        failed = view.search.guarded(step)
        if failed is not None:
            log.error("search index update failed (%s); searches are refused until it is rebuilt at the "
                      "next open or by 'sessionfs reindex'", failed)

    def content_changed(self, view, inos: Iterable[int]) -> None:
        """The committed bytes of each of ``inos`` changed: one guarded update for them all
        (a failure damages the index whole either way)."""
        inos = list(dict.fromkeys(inos))
        if inos:
            dirs: dict = {}
            self._guarded(view, lambda: [self._refresh_inode(view, ino, True, dirs) for ino in inos])

    def namespace_changed(self, view, entries: Iterable[tuple[int, bytes]], moved: Iterable[int]) -> None:
        """The names ``entries`` (parent, name) were created, removed or replaced; ``moved`` are
        inodes that gained or lost a name (files, or directories whose whole subtree moved)."""
        entries, moved = set(entries), set(moved)
        if entries or moved:
            self._guarded(view, lambda: self._namespace_changed(view, entries, moved))

    def _namespace_changed(self, view, entries: set[tuple[int, bytes]], moved: set[int]) -> None:
        index = view.search
        done: set[int] = set()
        dirs: dict = {}
        for parent, name in entries:
            for ino in index.indexed_at(parent, name):
                if ino not in done and view.tree.lookup(parent, name) != ino:
                    done.add(ino)
                    self._refresh_inode(view, ino, False, dirs)
        for ino in moved - done:
            node = view.tree.inode(ino)
            if node is not None and stat.S_ISDIR(node.mode):
                for child in self._files_below(view, ino, indexed_subdirs=True):
                    if child not in done:
                        done.add(child)
                        self._refresh_inode(view, child, False, dirs)
            else:
                done.add(ino)
                self._refresh_inode(view, ino, False, dirs)

    def _files_below(self, view, ino: int, *, indexed_subdirs: bool) -> list[int]:
        """Files of directory ``ino`` and of its chunk directories (the files of a session
        directory that may be indexed); ``indexed_subdirs``: also of subdirectories holding
        documents (whose rows may change when ``ino`` moves: indexed files are at most one
        directory below a session directory)."""
        tree = view.tree
        files = []
        for name, child in tree.listing(ino):
            if stat.S_ISREG(child.mode):
                files.append(child.id)
            elif stat.S_ISDIR(child.mode) and (name in _CHUNK_DIR_NAMES or
                                               indexed_subdirs and view.search.holds_indexed(child.id)):
                files.extend(c.id for _, c in tree.listing(child.id) if stat.S_ISREG(c.mode))
        return files

    def session_dirs(self, view) -> list[int]:
        """The session directories (in ``sessions/``), oldest entry first."""
        return [row.id for _, row in view.tree.listing(self.sessions_ino) if stat.S_ISDIR(row.mode)]

    def _session_files(self, view, session_dir: int) -> list[int]:
        return self._files_below(view, session_dir, indexed_subdirs=False)

    # -- one file ---------------------------------------------------------------------
    def _session_dir_of(self, view, directory: int) -> tuple[int, tuple[str, ...]] | None:
        """(session directory, path from it to ``directory``) when ``directory`` is a session
        directory or one of its direct subdirectories (indexed files are no deeper)."""
        if directory == self.sessions_ino:
            return None
        parts: list[str] = []
        current = directory
        for _ in range(2):
            names = view.tree.names_of(current)
            if not names:
                return None
            parent, name = names[0]
            if parent == self.sessions_ino:
                return current, tuple(reversed(parts))
            try:
                parts.append(name.decode("utf-8"))
            except UnicodeDecodeError:
                return None
            current = parent
        return None

    def _locations(self, view, ino: int, dirs: dict | None = None) -> dict[tuple[int, bytes], tuple[int, str]]:
        """{(parent, name): (session dir, path inside it)} for each indexed name of ``ino``;
        ``dirs``: ``_session_dir_of`` of the directories seen so far by one update (names of
        directories do not change during it), filled as it goes."""
        out = {}
        for parent, name in view.tree.names_of(ino):
            if dirs is None:
                where = self._session_dir_of(view, parent)
            elif parent in dirs:
                where = dirs[parent]
            else:
                where = dirs[parent] = self._session_dir_of(view, parent)
            if where is None:
                continue
            try:
                path = "/".join((*where[1], name.decode("utf-8")))
            except UnicodeDecodeError:
                continue
            if indexed_path(path) and where[0] <= view.search.max_session_dir:
                out[(parent, name)] = (where[0], path)
        return out

    def _refresh_inode(self, view, ino: int, content_changed: bool, dirs: dict | None = None) -> int:
        """Make the documents of ``ino`` match its names and content; returns documents added
        (``dirs``: see ``_locations``)."""
        index = view.search
        existing = index.documents_of(ino)
        wanted = self._locations(view, ino, dirs)
        if not content_changed and {(d.parent, d.name): (d.session_dir, d.path) for d in existing} == wanted:
            return 0
        for doc in existing:
            self._remove(view, doc)
        if not wanted:
            return 0
        node = view.tree.inode(ino)
        if node is None or not stat.S_ISREG(node.mode) or node.size == 0:
            return 0
        size = node.size
        try:
            extents = view.content.all_locations(ino)
        except IntegrityError as exc:
            log.error("search index: %s cannot be read (%s); it is not indexed until rewritten",
                      self.catalog.path_of(ino, view) or ino, exc)
            return 0
        digest = content_digest(size, extents)
        pairs = [(e.off, e.chunk_id) for e in extents]
        parsed = None
        added = 0
        for (parent, name), (dir_ino, path) in wanted.items():
            rows = self.cache.rows((digest, path))
            if rows is None:
                if parsed is None:
                    parsed = self._parse(view, ino, size, extents, path)
                if parsed is _INVALID:
                    return added
                rows = extract(path, parsed)
                self.cache.put((digest, path), rows)
            if not rows:
                continue
            index.add(ino, parent, name, dir_ino, path, size, pairs, digest, *columns(rows))
            added += 1
        return added

    def _parse(self, view, ino: int, size: int, extents: list[ChunkLocation], path: str, *, indexing: bool = True):
        try:
            data = self._assemble(view, size, extents)
        except IntegrityError as exc:
            if not indexing:        # a snippet: the caller goes without
                raise
            log.error("search index: %s cannot be read (%s); it is not indexed until rewritten",
                      self.catalog.path_of(ino, view) or path, exc)
            return _INVALID
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return _INVALID      # stored as written, simply not indexed

    def _assemble(self, view, size: int, extents: list[ChunkLocation]) -> bytes:
        out = bytearray(size)
        for extent in extents:
            off = extent.off
            if off >= size:
                continue
            data = self._read_chunk(extent, view)
            end = min(size, off + extent.length)
            out[off:end] = data[:end - off]
        return bytes(out)

    def _remove(self, view, doc: IndexedFile) -> None:
        text = None
        if view.search.removal_needs_text:
            rows = self.cache.rows((doc.digest, doc.path))
            if rows is None:
                rows = self._old_rows(view, doc)
            text = columns(rows) if rows is not None else None
        view.search.remove(doc, text)

    def _old_rows(self, view, doc: IndexedFile):
        """The rows indexed for a document, re-derived from the chunks it was built from."""
        extents = view.content.chunks(doc.extents)
        if extents is not None and content_digest(doc.size, extents) == doc.digest:
            try:
                return extract(doc.path, orjson.loads(self._assemble(view, doc.size, extents)))
            except (IntegrityError, orjson.JSONDecodeError) as exc:
                reason = str(exc)
        else:
            reason = "its chunks are gone"
        # The text rows stay as orphans under an id that is never reused: searches skip them;
        # the check at the next open rebuilds the index.
        self.garbage = True
        log.warning("search index: the old text of %s (row %d) cannot be re-read (%s); its entries stay "
                    "as garbage until the index is rebuilt", doc.path, doc.id, reason)
        return None

    # -- reading ---------------------------------------------------------------------------
    def rows_of(self, view, doc_id: int, *, lazy: bool = False) -> tuple[str, Iterable[tuple[str, str]]] | None:
        """(path, extracted rows) of document ``doc_id`` as read in ``view``'s snapshot; ``lazy``:
        the rows as an iterator in document order, when the caller stops at the first hit."""
        doc = view.search.document(doc_id)
        if doc is None:
            return None
        rows = self.cache.rows((doc.digest, doc.path))
        if rows is None:
            parsed = self._parse(view, doc.ino, doc.size, view.content.all_locations(doc.ino), doc.path,
                                 indexing=False)
            if parsed is _INVALID:
                return doc.path, []
            if lazy:
                return doc.path, iter_text(doc.path, parsed, joined=True)
            rows = extract(doc.path, parsed)
            self.cache.put((doc.digest, doc.path), rows)
        return doc.path, rows

    def unindexed_files(self) -> list[str]:
        """Paths of the files the index would read (``text_index.indexed_path``) whose bytes are
        not valid JSON, so they have no documents: stored as written, for ``verify`` to report."""
        view = self.catalog.reader()
        out = []
        for dir_ino in self.session_dirs(view):
            for ino in self._session_files(view, dir_ino):
                if view.search.is_indexed(ino):
                    continue
                where = self._locations(view, ino)
                if not where:
                    continue
                try:
                    orjson.loads(self._assemble(view, view.tree.get(ino).size, view.content.all_locations(ino)))
                except orjson.JSONDecodeError:
                    out.append(self.catalog.path_of(ino, view) or next(iter(where.values()))[1])
                except IntegrityError:
                    continue            # unreadable: verify reports damaged data on its own
        return out
