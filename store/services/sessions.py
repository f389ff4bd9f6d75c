"""The app's storage API (MODEL.md, "Operations the app calls") over the chunked session layout.

What: ``SessionStore`` loads and saves sessions the way the desktop app thinks of them
(metadata, large objects, record arrays, whole sessions, attachments, transactions)
and stores them as ordinary files at the paths of ``store.core.layout``::

    sessions/<id>/metadata.json, summary.json, ..., screenshots/chunk-001.json, ...,
    sessions/<id>/attachments/<attachment-id>.<ext>

Why this way: every value lives in exactly one file, so what the app saves is what
``ls``/``cat``/``grep`` on the mount show, and nothing can drift out of step. There is
no second copy and no table of our own: the store keeps its ``sessions`` tables in
step with each committed metadata.json, and ``list_metadata`` queries those. Identical
bytes (an attachment shared by sessions, the unchanged head of a chunk file that got
one more record) are stored once by the store's content-defined chunking.

Writes. Each public write is one ``Store.write_files`` call: one atomic group, queued,
so the caller never waits for hashing or disk. Read-modify-writes (append a record,
keep a has* flag or the ``chunks`` manifest in step) read through ``Store.read_path``,
which already sees queued groups; a lock serialises them within this object, so two
threads appending to one session do not lose records. ``transaction()`` gathers the
writes of several calls into one group that commits entirely or not at all.

Ownership of metadata.json. The app owns every field except those the layout reserves
(``chunks`` manifest, has* flags, ``storageVersion``, ``_legacy``): the store maintains
them as files are written, and ``save_metadata`` keeps their stored values whatever the
caller passes (``hasVideo`` follows the caller's ``video``). Saving a large object or
records does not change ``version``: the version guards the app's own fields, so a
background append never makes the user's next metadata save conflict.

Errors: a bad session id, a missing ``id``, bytes that are not JSON, a chunk index
that does not exist -> ``BadInputError`` naming the thing; a stale version ->
``ConflictError``; a missing session where one is needed -> ``FsError(ENOENT)``.
Nothing is queued when a call raises.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime

from store.backends.catalog.sessions import SessionFilter
from store.core.errors import BadInputError, StoreError
from store.core.query import string_list
from store.engine.store import Store
from .session_batch import Batch
from .session_files import is_int, session_dir, time_bound
from .session_ops import SessionOps


class Transaction(SessionOps):
    """Writes of several calls that commit together (one ``write_files`` group) or not at all.

    Offers every load and save of SessionStore; loads see the transaction's own writes.
    A call that raises adds nothing; the ``with`` block raising discards everything.
    """

    def __init__(self, store: Store, batch: Batch):
        self._store = store
        self._batch: Batch | None = batch

    def _live(self) -> Batch:
        if self._batch is None:
            raise StoreError("the transaction is over; start a new one")
        return self._batch

    def _reader(self) -> Batch:
        return self._live()

    @contextlib.contextmanager
    def _group(self) -> Iterator[Batch]:
        child = Batch(self._store, self._live())
        yield child
        child.commit()

    def write(self, path: str, value: object) -> None:
        """Write a file by store path (``sessions/<id>/notes.json``): bytes as is, else JSON."""
        with self._group() as batch:
            if isinstance(value, (bytes, bytearray, memoryview)):
                batch.put(path, bytes(value))
            else:
                self._put_json(batch, path, value)

    def delete(self, path: str) -> None:
        """Delete a file or a directory tree by store path."""
        with self._group() as batch:
            batch.delete_tree(path)

    def _end(self) -> Batch:
        batch, self._batch = self._live(), None
        return batch


class SessionStore(SessionOps):
    """The app's storage API over an open ``Store`` (which the caller opens and closes)."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.RLock()

    @property
    def store(self) -> Store:
        return self._store

    def _reader(self) -> Batch:
        return Batch(self._store)

    @contextlib.contextmanager
    def _group(self) -> Iterator[Batch]:
        with self._lock:
            batch = Batch(self._store)
            yield batch
            batch.commit()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``with sessions.transaction() as tx: tx.save_summary(...); tx.append_screenshot(...)``.

        Holds this object's write lock until the block ends, so the transaction's
        read-modify-writes cannot interleave with other writers of this SessionStore.
        """
        with self._lock:
            tx = Transaction(self._store, Batch(self._store))
            try:
                yield tx
            except BaseException:
                tx._end()
                raise
            tx._end().commit()

    def list_metadata(self, status: str | Iterable[str] | None = None, start_after: str | datetime | None = None,
                      start_before: str | datetime | None = None, tags: str | Iterable[str] | None = None,
                      topic_ids: str | Iterable[str] | None = None, limit: int | None = None,
                      offset: int = 0) -> list[dict]:
        """Metadata of the sessions matching every filter given, newest ``startTime`` first, then by id.

        ``status``: one or any of several. ``start_after``/``start_before``: inclusive bounds
        on ``startTime`` (ISO 8601 strings compare as text, so use the app's UTC 'Z' form;
        a datetime is converted to it). ``tags``/``topic_ids``: sessions having at least one
        of them. None or empty: no filter. Queued writes are committed first.
        """
        where = SessionFilter(
            statuses=string_list(status, "status"), start_after=time_bound(start_after, "start_after"),
            start_before=time_bound(start_before, "start_before"), tags=string_list(tags, "tags"),
            topic_ids=string_list(topic_ids, "topic_ids"), limit=limit, offset=offset)
        if limit is not None and (not is_int(limit) or limit < 0):
            raise BadInputError(f"limit: expected a non-negative int or None, got {limit!r}")
        if not is_int(offset) or offset < 0:
            raise BadInputError(f"offset: expected a non-negative int, got {offset!r}")
        self._store.settle()
        ids = self._store.catalog.reader().sessions.matching(where)
        view = self._reader()
        return [meta for sid in ids if (meta := self._load_meta(view, sid)) is not None]

    # -- cache ----------------------------------------------------------------------------
    def clear_cache(self, session_id: str | None = None) -> None:
        """Drop cached decoded blocks: all of them, or those holding the session's files."""
        if session_id is None:
            self._store.cache.clear()
            return
        base = session_dir(session_id)
        self._store.settle()
        ino = self._store.resolve(base)
        if ino is None:
            return
        for block_id in self._store.catalog.reader().sessions.blocks_under(ino):
            self._store.cache.discard(block_id)

    def cache_statistics(self):
        """The store cache's counters (hits, misses, evictions, bytes held, ...)."""
        return self._store.cache.statistics()


__all__ = ["SessionStore", "Transaction"]
