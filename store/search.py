"""Full-text search over sessions: the index kept in step with the files, queries, CLI.

The index (tables ``search_docs`` and ``search_fts``, documented in
``schema.create_tables``) holds one FTS5 row per indexed file of a session, with
the text ``text_index.extract`` gives for it. ``TextIndex`` keeps it in step with
the tree from inside the store's write transactions: ``content_changed`` when a
file's bytes commit, ``namespace_changed`` when names are created, renamed or
removed, so a search never sees a file's new bytes without its new rows, or the
reverse. It also checks the index at a writable open and, when it is missing,
outdated or damaged, rebuilds it from the files in a background thread while the
store serves (``sessionfs reindex`` rebuilds it on demand, in the foreground):
the tables are recreated empty in state ``rebuilding``, from then on every commit
indexes what it changes, and the thread indexes the session directories in short
write transactions, skipping files a commit has indexed meanwhile. Searches answer
from what is indexed so far; ``statistics()`` and the CLI say that it is rebuilding.

Queries (``parse_query``) use the syntax people know, translated to FTS5 syntax
here, never passed through:

=================  ==============================================================
``auth bug``       sessions containing both words (in any of their files)
``"auth bug"``     the phrase, within one file
``auth*``          a word starting with ``auth``
``auth OR login``  either word; OR binds tighter than the implicit AND:
                   ``bug auth OR login`` is bug AND (auth OR login)
``-flaky``         sessions that do not contain the word (also ``NOT flaky``)
=================  ==============================================================

Words are matched like ``grep -iw``: case- and accent-insensitive, ``_`` is part
of a word (``add_argument`` is one word). A word with punctuation inside
(``e-mail``, ``auth.py``) is searched as the phrase of its parts. Parentheses are
refused with a message (there is no grouping beyond OR).

Ranking. ``search`` ranks sessions by BM25 (a session scores by its best file;
several terms add up) when its rarest term occurs in at most ``RANK_CAP`` files.
When every term is common, ranking all matches would cost time proportional to
the whole collection and tells little (a common word's BM25 weight is near zero),
so the newest matching sessions come first, with score 0; so do phrases made only
of common words (FTS5 evaluates a phrase once to count it and twice more to rank it,
each time over every row holding all of its words). ``_Plan`` documents the
evaluation.

Reads. A search runs in one read transaction of the catalog (one snapshot: no
half-applied commit is ever seen), memory-mapped, on the calling thread's reader
connection; a writable store first commits what is queued (read your writes).

Size. One FTS row per file, rowids ``dir_ino << 32 | seq`` (one session = one rowid
range: session-level AND/NOT and probes need no join). For 10,000 generated
"small" sessions (270 MB of indexed text, a 490 MB store) the index takes about
220 MB, of which the per-file bookkeeping (``search_docs``) is 7 MB; the text
itself is not stored twice (the FTS table is contentless).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import re
import sqlite3
import struct
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable

import orjson

from .catalog import ChunkLocation
from .errors import BadInputError, StoreError
from .schema import (SEARCH_INDEX_VERSION, SEARCH_SESSION_SHIFT, create_search_tables, has_table)
from .statistics import SearchIndexStatistics
from .text_index import column_of, extract, indexed_path, iter_text

if TYPE_CHECKING:
    from .engine import Store

log = logging.getLogger("sessionfs.search")

#: A clause matching at most this many files is ranked by BM25; above, newest first.
RANK_CAP = 1500
#: Sessions a search directory of the mount lists at most (best first).
LISTING_LIMIT = 1000
MAX_LIMIT = 100_000
MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
#: Searches read the catalog memory-mapped (address space, not memory: pages are the OS's cache).
MMAP_BYTES = 1 << 30
#: Bytes (roughly) of extracted text kept in memory per process, for deletes and snippets.
TEXT_CACHE_BYTES = 32 * 1024 * 1024
#: Rough costs (s) that choose between a pass over a clause's rows and probes of sessions.
ROW_COST, PHRASE_ROW_COST, PROBE_COST = 0.4e-6, 4e-6, 100e-6
#: Matches looked at first to tell a common clause from a rare one.
SAMPLE = 100
#: A clause matching at most this many files is checked with its set of sessions, else by probes.
SET_CAP = 20_000
#: Sessions visited newest first before a query of common terms is evaluated as sets.
SCAN_BUDGET = 400
#: Sessions per transaction when rebuilding, at most.
REBUILD_BATCH = 100
#: A background rebuild ends its write transaction after about this long (commits wait no longer).
REBUILD_BATCH_SECONDS = 0.05
#: ... and pauses this long between transactions, so waiting writers take the lock first.
REBUILD_PAUSE = 0.005
#: meta ``search_state`` while the index is being rebuilt: usable, holding what is indexed so far.
REBUILDING = "rebuilding"
CHUNK_DIRS = ("screenshots", "audio-segments")
_CHUNK_DIR_NAMES = frozenset(d.encode() for d in CHUNK_DIRS)

_SEQ_MASK = (1 << SEARCH_SESSION_SHIFT) - 1
_MAX_DIR_INO = (1 << (63 - SEARCH_SESSION_SHIFT)) - 1
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000


class IndexUnavailableError(StoreError):
    """The search index cannot be used (missing, outdated, damaged); the message says how to fix it."""


# =====================================================================================
# The query language
# =====================================================================================


@dataclass(frozen=True)
class Atom:
    """One searchable unit: a word or a phrase (both may end in a prefix)."""

    text: str
    prefix: bool = False
    phrase: bool = False

    def fts(self) -> str:
        return '"' + self.text.replace('"', '""') + '"' + ("*" if self.prefix else "")

    def __str__(self) -> str:
        body = f'"{self.text}"' if self.phrase else self.text
        return body + ("*" if self.prefix else "")


@dataclass(frozen=True)
class Clause:
    """Alternatives joined by OR; a negated clause excludes sessions matching any of them."""

    atoms: tuple[Atom, ...]
    negated: bool = False

    def fts(self) -> str:
        parts = [a.fts() for a in self.atoms]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def __str__(self) -> str:
        return ("-" if self.negated else "") + " OR ".join(map(str, self.atoms))


@dataclass(frozen=True)
class Query:
    """Clauses that must all hold (AND): positive ones present, negated ones absent."""

    clauses: tuple[Clause, ...]

    @property
    def positive(self) -> list[Clause]:
        return [c for c in self.clauses if not c.negated]

    @property
    def negative(self) -> list[Clause]:
        return [c for c in self.clauses if c.negated]

    def __str__(self) -> str:
        return " ".join(map(str, self.clauses))


def _has_word(text: str) -> bool:
    return any(ch.isalnum() or ch == "_" for ch in text)


def _lex(text: str) -> list[tuple]:
    """Tokens: ("op", "OR"|"AND"|"NOT", pos) or ("term", Atom | None, negated, pos)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        negated = False
        if ch == "-":
            negated = True
            i += 1
            if i >= n or text[i].isspace():
                raise BadInputError(f"'-' at column {start + 1} must be followed directly by a word or "
                                    "\"phrase\" to exclude (-word)")
            ch = text[i]
        if ch in "()":
            raise BadInputError(f"parentheses are not supported (column {i + 1}): OR applies to the terms on "
                                "either side (a b OR c means a AND (b OR c)); quote text to search for "
                                "it literally")
        if ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise BadInputError(f'unterminated quote at column {i + 1}: close the phrase with "')
            inner = text[i + 1:end]
            i = end + 1
            prefix = i < n and text[i] == "*"
            if prefix:
                i += 1
            atom = Atom(" ".join(inner.split()), prefix, phrase=True) if _has_word(inner) else None
            out.append(("term", atom, negated, start))
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in '"()':
            j += 1
        word = text[i:j]
        i = j
        if not negated and word in ("OR", "AND", "NOT"):
            out.append(("op", word, start))
            continue
        prefix = word.endswith("*")
        core = word.rstrip("*") if prefix else word
        if prefix and len(word) - len(core) > 1 or "*" in core:
            raise BadInputError(f"'*' at column {start + 1}: it marks a prefix and goes once at the end of "
                                f"a word (auth*), not in {word!r}")
        if prefix and not _has_word(core):
            raise BadInputError(f"'*' at column {start + 1} needs the start of a word before it (auth*)")
        out.append(("term", Atom(core, prefix, phrase=False) if _has_word(core) else None, negated, start))
    return out


def parse_query(text: str) -> Query:
    """Parse the user's query; BadInputError with a clear message when it is malformed."""
    if not isinstance(text, str):
        raise BadInputError(f"query: expected a str, got {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise BadInputError(f"query too long: {len(text)} characters (at most {MAX_QUERY_CHARS})")
    if "\0" in text:
        raise BadInputError("query: must not contain NUL characters")
    tokens = _lex(text)
    clauses: list[list] = []          # [atoms, negated]
    pending_not = False
    joined = False                    # the previous token was OR
    prev_kind = None
    for tok in tokens:
        if tok[0] == "op":
            op, pos = tok[1], tok[2]
            if op == "OR":
                if prev_kind != "term" or not clauses:
                    raise BadInputError(f"OR at column {pos + 1} needs a word or phrase on its left")
                if clauses[-1][1]:
                    raise BadInputError(f"OR at column {pos + 1}: an excluded term cannot be part of OR")
                joined = True
            elif op == "AND":
                if prev_kind != "term":
                    raise BadInputError(f"AND at column {pos + 1} needs a word or phrase on its left")
            else:   # NOT
                if pending_not or joined:
                    raise BadInputError(f"NOT at column {pos + 1} must be followed by a word or phrase "
                                        "(and cannot follow OR)")
                pending_not = True
            prev_kind = op
            continue
        _, atom, negated, pos = tok
        if pending_not:
            if negated:
                raise BadInputError(f"column {pos + 1}: NOT followed by '-' excludes twice")
            negated, pending_not = True, False
        if joined:
            joined = False
            if negated:
                raise BadInputError(f"column {pos + 1}: an excluded term cannot be part of OR")
            if atom is not None:
                clauses[-1][0].append(atom)
        elif atom is not None:
            clauses.append([[atom], negated])
        prev_kind = "term"
    if joined or prev_kind in ("AND", "OR"):
        raise BadInputError(f"the query ends with {prev_kind}: it needs a word or phrase after it")
    if pending_not:
        raise BadInputError("the query ends with NOT: it needs a word or phrase after it")
    result = []
    for atoms, negated in clauses:
        unique = tuple(dict.fromkeys(atoms))
        clause = Clause(unique, negated)
        if clause not in result:
            result.append(clause)
    if sum(len(c.atoms) for c in result) > MAX_TERMS:
        raise BadInputError(f"query has more than {MAX_TERMS} terms")
    if not result:
        raise BadInputError("the query has no words to search for")
    if not any(not c.negated for c in result):
        raise BadInputError("the query only excludes: give at least one word or phrase to search for")
    return Query(tuple(result))


# =====================================================================================
# Filters
# =====================================================================================


def _strings(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return list(dict.fromkeys(items))
    raise BadInputError(f"{what}: expected a str or a list of str, got {value!r}")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def time_bound(value, what: str, *, upper: bool) -> tuple[str, bool] | None:
    """(ISO 8601 UTC bound as the app writes start times, exclusive?) for --after/--before.

    A date (``2025-01-31`` or a ``date``) covers its whole day: as an upper bound it means
    before the next day starts. A time without an offset is UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _iso(value), False
    if isinstance(value, date):
        day = value
    elif isinstance(value, str):
        text = value.strip()
        if _DATE.fullmatch(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise BadInputError(f"{what}: {value!r} is not a valid date") from None
        else:
            try:
                return _iso(datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))), False
            except ValueError:
                raise BadInputError(f"{what}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                                    "time (2025-01-31T09:30:00Z)") from None
    else:
        raise BadInputError(f"{what}: expected a date, a datetime or an ISO 8601 str, got {value!r}")
    if upper:
        return _iso(datetime.combine(day + timedelta(days=1), datetime.min.time())), True
    return _iso(datetime.combine(day, datetime.min.time())), False


@dataclass(frozen=True)
class Filters:
    """Structured filters over the ``sessions`` tables: every tag and topic given must be
    present, the status must be one of those given, the start time within the bounds."""

    tags: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    after: str | None = None
    before: tuple[str, bool] | None = None

    @classmethod
    def make(cls, tags=None, status=None, after=None, before=None, topic=None) -> "Filters":
        low = time_bound(after, "after", upper=False)
        return cls(tuple(_strings(tags, "tags")), tuple(_strings(status, "status")),
                   tuple(_strings(topic, "topic")), low[0] if low else None,
                   time_bound(before, "before", upper=True))

    @property
    def empty(self) -> bool:
        return not (self.tags or self.statuses or self.topics or self.after or self.before)

    def where(self) -> tuple[list[str], list]:
        where, args = [], []
        if self.statuses:
            where.append(f"s.status IN ({', '.join('?' * len(self.statuses))})")
            args.extend(self.statuses)
        if self.after is not None:
            where.append("s.start_time >= ?")
            args.append(self.after)
        if self.before is not None:
            where.append("s.start_time < ?" if self.before[1] else "s.start_time <= ?")
            args.append(self.before[0])
        for tag in self.tags:
            where.append("EXISTS (SELECT 1 FROM session_tags t WHERE t.tag = ? AND t.session_id = s.id)")
            args.append(tag)
        for topic in self.topics:
            where.append("EXISTS (SELECT 1 FROM session_topics t WHERE t.topic_id = ? AND t.session_id = s.id)")
            args.append(topic)
        return where, args


# =====================================================================================
# Text of index rows
# =====================================================================================


def columns(rows: list[tuple[str, str]]) -> tuple[str, str]:
    """The (title, body) values of an FTS row holding ``rows``."""
    title = "\n".join(t for f, t in rows if column_of(f) == 0)
    body = "\n".join(t for f, t in rows if column_of(f) == 1)
    return title, body


class _TextCache:
    """(content digest, path) -> extracted rows; content-addressed, so never stale."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, rows) -> None:
        size = sum(len(t) for _, t in rows) + 100 * len(rows) + 100      # roughly bytes of Python objects
        if size > self.capacity // 8:
            return
        with self._lock:
            if key in self._data:
                return
            self._data[key] = (rows, size)
            self._held += size
            while self._held > self.capacity and self._data:
                _, (_, old) = self._data.popitem(last=False)
                self._held -= old

    def rows(self, key):
        value = self.get(key)
        return value[0] if value is not None else None


def _pack_extents(extents: list[tuple]) -> bytes:
    flat = [v for e in extents for v in (e[0], e[2])]
    return struct.pack(f"<{len(flat)}q", *flat)


def _unpack_extents(blob: bytes) -> list[tuple[int, int]]:
    flat = struct.unpack(f"<{len(blob) // 8}q", blob)
    return list(zip(flat[0::2], flat[1::2]))


def _digest(size: int, extents: list[tuple]) -> bytes:
    """Identity of a file's content: its size, chunk offsets and chunk hashes."""
    h = hashlib.sha256(size.to_bytes(8, "little"))
    for e in extents:
        h.update(e[0].to_bytes(8, "little"))
        h.update(bytes(e[3]))
    return h.digest()[:16]


# extents: (off, length, chunk_id, hash, block_id, block_off), in file order
_EXTENTS_SQL = ("SELECT f.off, c.length, c.id, c.hash, c.block_id, c.block_off FROM file_chunks f "
                "JOIN chunks c ON c.id = f.chunk_id WHERE f.ino = ? ORDER BY f.off")


@dataclass
class RebuildReport:
    sessions: int
    files: int
    seconds: float
    reason: str | None = None


# =====================================================================================
# The index kept in step with the tree
# =====================================================================================


def _hook(point: str) -> None:
    """Test hook (tests replace it): the background rebuild calls it after each transaction."""


class TextIndex:
    """The full-text index of one open store (``store.text_index``)."""

    def __init__(self, store: "Store"):
        self.store = store
        self.sessions_ino = store.sessions_ino
        self.cache = _TextCache(TEXT_CACHE_BYTES)
        #: The report of the background rebuild started at open, once it has finished.
        self.rebuilt_at_open: RebuildReport | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        reader = store.catalog.reader()
        #: Why the index cannot be used (None: it can). Searches refuse; a writable open rebuilds.
        self.problem = self._state(reader)
        #: Whether search_fts holds rows without a search_docs row (old versions whose delete
        #: failed): searches then join search_docs to skip them; a writable open rebuilds.
        self.garbage = False
        if self.problem is None:
            try:
                self.garbage = self._garbage_rows(reader) != 0
            except sqlite3.DatabaseError as exc:
                self.problem = f"damaged: {exc}"

    def statistics(self) -> SearchIndexStatistics:
        """The index's state and a rebuild's progress (two rows of meta: O(1))."""
        if self.problem is not None:
            return SearchIndexStatistics(self.problem)
        meta = dict(self.store.catalog.reader().execute(
            "SELECT key, value FROM meta WHERE key IN ('search_state', 'search_rebuild')").fetchall())
        state = str(meta.get("search_state") or "missing")
        if state != REBUILDING:
            return SearchIndexStatistics(state)
        progress = json.loads(meta.get("search_rebuild") or "{}")
        return SearchIndexStatistics(state, progress.get("done", 0), progress.get("total", 0))

    # -- state ------------------------------------------------------------------------
    @staticmethod
    def _state(db) -> str | None:
        try:
            if not (has_table(db, "search_docs") and has_table(db, "search_fts")):
                return "missing"
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                                   "('search_version', 'search_state')").fetchall())
        except sqlite3.DatabaseError as exc:
            return f"damaged: {exc}"
        version = meta.get("search_version")
        if str(version) != str(SEARCH_INDEX_VERSION):
            return f"built by another version of sessionfs (index version {version}, expected " \
                   f"{SEARCH_INDEX_VERSION})"
        state = meta.get("search_state")
        return None if state in ("ok", REBUILDING) else str(state or "in an unknown state")

    @staticmethod
    def _garbage_rows(db) -> int:
        """FTS rows without a search_docs row; also makes FTS5 load its configuration and
        segment structure and look a term up (a cheap check that the index can be read)."""
        db.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH '\"e\"' LIMIT 1").fetchall()
        docs = db.execute("SELECT count(*) FROM search_docs").fetchone()[0]
        return db.execute("SELECT count(*) FROM search_fts_docsize").fetchone()[0] - docs

    def damaged(self, exc: BaseException) -> IndexUnavailableError:
        """An error reading the index: mark it for rebuild (when this store may write) and
        return the error to raise."""
        reason = f"damaged: {' '.join(str(exc).split())}"
        log.error("search index of %s is %s", self.store.root, reason)
        if not self.store.readonly:
            try:
                with self.store.catalog.write() as db:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', ?)", (reason,))
            except sqlite3.DatabaseError:
                pass
        self.problem = reason
        return IndexUnavailableError(
            f"the search index of {self.store.root} is {reason}; it is rebuilt when the store is next opened "
            f"for writing (mount), or now with 'sessionfs reindex {self.store.root}'")

    def check(self, db: sqlite3.Connection, *, full: bool = False) -> str | None:
        """None when the index is usable and clean; else what is wrong (missing, outdated,
        damaged, holding garbage). ``full`` also runs FTS5's integrity-check over the whole
        index (reads all of it); ``db`` must then be a connection that may write (nothing is
        changed: the check runs in a savepoint that is rolled back)."""
        problem = self._state(db)
        if problem is not None:
            return problem
        try:
            garbage = self._garbage_rows(db)
            if garbage:
                return f"damaged: {garbage} rows in search_fts belong to no indexed file"
            if full:
                db.execute("SAVEPOINT search_check")
                try:
                    db.execute("INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 0)")
                finally:
                    db.execute("ROLLBACK TO search_check")
                    db.execute("RELEASE search_check")
        except sqlite3.DatabaseError as exc:
            return f"damaged: {exc}"
        return None

    def rebuild_if_needed(self) -> None:
        """At a writable open: rebuild a missing, outdated or damaged index in the background
        (searches answer from what is indexed so far and say so), or finish a rebuild that an
        earlier process left unfinished."""
        reason = self.problem or ("holding rows of old file versions" if self.garbage else None)
        if reason is None:
            if self.statistics().state == REBUILDING:
                log.warning("search index of %s: resuming an interrupted rebuild", self.store.root)
                self._start_worker("interrupted")
            return
        log.warning("search index of %s is %s: rebuilding it from the files in the background",
                    self.store.root, reason)
        try:
            self._begin_rebuild()
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._failed(reason, exc)
            return
        self._start_worker(reason)

    def _failed(self, reason: str, exc: BaseException) -> None:
        # The store stays usable; only searching is refused until a rebuild succeeds.
        self.problem = f"{reason}, and rebuilding it failed: {exc}"
        log.error("search index of %s could not be rebuilt (%s); searches are refused until "
                  "'sessionfs reindex' succeeds", self.store.root, exc)

    def _start_worker(self, reason: str) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._background, args=(reason,), name="search-rebuild",
                                        daemon=True)
        self._worker.start()

    def _background(self, reason: str) -> None:
        total = [0]

        def progress(n: int) -> None:
            before = total[0]
            total[0] += n
            if total[0] // 1000 > before // 1000:
                log.info("search index rebuild: %d sessions done", total[0])
        try:
            report = self._fill(progress, reason=reason, background=True)
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._failed(reason, exc)
            return
        if report is not None:
            log.warning("search index rebuilt: %d files of %d sessions in %.1f s", report.files, report.sessions,
                        report.seconds)
            self.rebuilt_at_open = report

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to end; False if it still runs after ``timeout`` s."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def stop(self) -> None:
        """Stop a background rebuild between two transactions (the next writable open resumes it)."""
        self._stop.set()
        self.wait()
        self._worker = None
        self._stop.clear()

    def _active(self, db) -> bool:
        if self.problem is not None:
            return False
        row = db.execute("SELECT value FROM meta WHERE key = 'search_state'").fetchone()
        return row is not None and row[0] in ("ok", REBUILDING)

    def _guarded(self, db, fn, *args) -> None:
        """Run a maintenance step; an index error marks the index for rebuild instead of
        failing the commit of the files (which matter more than their index)."""
        if not self._active(db):
            return
        db.execute("SAVEPOINT search_index")
        try:
            fn(db, *args)
        except sqlite3.DatabaseError as exc:
            db.execute("ROLLBACK TO search_index")
            db.execute("RELEASE search_index")
            log.error("search index update failed (%s); searches are refused until it is rebuilt at the "
                      "next open or by 'sessionfs reindex'", exc)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', ?)",
                       (f"damaged: an update failed: {exc}",))
            return
        db.execute("RELEASE search_index")

    # -- hooks (inside the store's write transaction) -----------------------------------
    def content_changed(self, db, ino: int) -> None:
        """The committed bytes of ``ino`` changed."""
        self._guarded(db, self._refresh_inode, ino, True)

    def namespace_changed(self, db, entries: Iterable[tuple[int, bytes]], moved: Iterable[int]) -> None:
        """The names ``entries`` (parent, name) were created, removed or replaced; ``moved`` are
        inodes that gained or lost a name (files, or directories whose whole subtree moved)."""
        entries, moved = set(entries), set(moved)
        if entries or moved:
            self._guarded(db, self._namespace_changed, entries, moved)

    def _namespace_changed(self, db, entries: set[tuple[int, bytes]], moved: set[int]) -> None:
        done: set[int] = set()
        for parent, name in entries:
            for (ino,) in db.execute("SELECT ino FROM search_docs WHERE parent = ? AND name = ?",
                                     (parent, name)).fetchall():
                if ino in done:
                    continue
                now = db.execute("SELECT ino FROM dentries WHERE parent = ? AND name = ?", (parent, name)).fetchone()
                if now is None or now[0] != ino:
                    done.add(ino)
                    self._refresh_inode(db, ino, False)
        for ino in moved - done:
            row = db.execute("SELECT mode FROM inodes WHERE id = ?", (ino,)).fetchone()
            if row is not None and row[0] & _S_IFMT == _S_IFDIR:
                for child in self._files_below(db, ino):
                    if child not in done:
                        done.add(child)
                        self._refresh_inode(db, child, False)
            else:
                done.add(ino)
                self._refresh_inode(db, ino, False)

    def _files_below(self, db, ino: int) -> list[int]:
        """Files whose index rows may change when directory ``ino`` moves: indexed files are at
        most one directory below a session directory, so its files, and those of its
        subdirectories that are chunk directories or hold indexed files."""
        files = []
        for name, child, mode in self._children(db, ino):
            if mode & _S_IFMT == _S_IFREG:
                files.append(child)
            elif mode & _S_IFMT == _S_IFDIR and (
                    bytes(name) in _CHUNK_DIR_NAMES
                    or db.execute("SELECT 1 FROM search_docs WHERE parent = ? LIMIT 1", (child,)).fetchone()):
                files.extend(c for _, c, m in self._children(db, child) if m & _S_IFMT == _S_IFREG)
        return files

    @staticmethod
    def _children(db, ino: int) -> list[tuple[bytes, int, int]]:
        return db.execute("SELECT d.name, d.ino, i.mode FROM dentries d JOIN inodes i ON i.id = d.ino "
                          "WHERE d.parent = ?", (ino,)).fetchall()

    # -- one file ---------------------------------------------------------------------
    def _session_dir_of(self, db, directory: int) -> tuple[int, tuple[str, ...]] | None:
        """(session directory, path from it to ``directory``) when ``directory`` is a session
        directory or one of its direct subdirectories (indexed files are no deeper)."""
        if directory == self.sessions_ino:
            return None
        parts: list[str] = []
        current = directory
        for _ in range(2):
            row = db.execute("SELECT parent, name FROM dentries WHERE ino = ? LIMIT 1", (current,)).fetchone()
            if row is None:
                return None
            if row[0] == self.sessions_ino:
                return current, tuple(reversed(parts))
            try:
                parts.append(bytes(row[1]).decode("utf-8"))
            except UnicodeDecodeError:
                return None
            current = row[0]
        return None

    def _locations(self, db, ino: int) -> dict[tuple[int, bytes], tuple[int, str]]:
        """{(parent, name): (session dir, path inside it)} for each indexed name of ``ino``."""
        out = {}
        for parent, name in db.execute("SELECT parent, name FROM dentries WHERE ino = ?", (ino,)).fetchall():
            where = self._session_dir_of(db, parent)
            if where is None:
                continue
            try:
                path = "/".join((*where[1], bytes(name).decode("utf-8")))
            except UnicodeDecodeError:
                continue
            if indexed_path(path) and where[0] <= _MAX_DIR_INO:
                out[(parent, bytes(name))] = (where[0], path)
        return out

    def _refresh_inode(self, db, ino: int, content_changed: bool) -> int:
        """Make the rows of ``ino`` match its names and content; returns rows inserted."""
        existing = db.execute("SELECT id, parent, name, dir_ino, path, size, extents, digest FROM search_docs "
                              "WHERE ino = ?", (ino,)).fetchall()
        wanted = self._locations(db, ino)
        if not content_changed and {(r[1], bytes(r[2])): (r[3], r[4]) for r in existing} == wanted:
            return 0
        for row in existing:
            self._delete_row(db, row)
        if not wanted:
            return 0
        node = db.execute("SELECT mode, size FROM inodes WHERE id = ?", (ino,)).fetchone()
        if node is None or node[0] & _S_IFMT != _S_IFREG or node[1] == 0:
            return 0
        size = node[1]
        extents = db.execute(_EXTENTS_SQL, (ino,)).fetchall()
        digest = _digest(size, extents)
        parsed = None
        inserted = 0
        for (parent, name), (dir_ino, path) in wanted.items():
            rows = self.cache.rows((digest, path))
            if rows is None:
                if parsed is None:
                    parsed = self._parse(db, ino, size, extents, path)
                if parsed is _INVALID:
                    return inserted
                rows = extract(path, parsed)
                self.cache.put((digest, path), rows)
            if not rows:
                continue
            seq = db.execute("UPDATE meta SET value = value + 1 WHERE key = 'search_seq' RETURNING value").fetchone()
            rowid = (dir_ino << SEARCH_SESSION_SHIFT) | (int(seq[0]) & _SEQ_MASK)
            db.execute("INSERT INTO search_docs (id, ino, parent, name, dir_ino, path, size, extents, digest) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (rowid, ino, parent, name, dir_ino, path, size, _pack_extents(extents), digest))
            title, body = columns(rows)
            db.execute("INSERT INTO search_fts (rowid, title, body) VALUES (?, ?, ?)", (rowid, title, body))
            inserted += 1
        return inserted

    def _parse(self, db, ino: int, size: int, extents: list, path: str, *, indexing: bool = True):
        try:
            data = self._assemble(db, size, extents)
        except StoreError as exc:
            if not indexing:        # a snippet: the caller goes without
                raise
            log.error("search index: %s cannot be read (%s); it is not indexed until rewritten",
                      self.store.catalog.path_of(ino, db) or path, exc)
            return _INVALID
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return _INVALID      # stored as written, simply not indexed

    def _assemble(self, db, size: int, extents: list) -> bytes:
        out = bytearray(size)
        for off, length, chunk_id, digest, block_id, block_off in extents:
            if off >= size:
                continue
            data = self.store._chunk_bytes(ChunkLocation(off, length, chunk_id, bytes(digest), block_id, block_off),
                                           None, db)
            end = min(size, off + length)
            out[off:end] = data[:end - off]
        return bytes(out)

    def _delete_row(self, db, row) -> None:
        rowid, _, _, _, path, size, blob, digest = row
        digest = bytes(digest)
        rows = self.cache.rows((digest, path))
        if rows is None:
            rows = self._old_rows(db, rowid, path, size, blob, digest)
        if rows is not None:
            title, body = columns(rows)
            db.execute("INSERT INTO search_fts (search_fts, rowid, title, body) VALUES ('delete', ?, ?, ?)",
                       (rowid, title, body))
        db.execute("DELETE FROM search_docs WHERE id = ?", (rowid,))

    def _old_rows(self, db, rowid: int, path: str, size: int, blob: bytes, digest: bytes):
        """The rows indexed for an entry, re-derived from the chunks it was built from."""
        pairs = _unpack_extents(bytes(blob))
        found = {r[0]: r for r in db.execute(
            "SELECT id, length, hash, block_id, block_off FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([cid for _, cid in pairs]),))}
        try:
            extents = [(off, found[cid][1], cid, bytes(found[cid][2]), found[cid][3], found[cid][4])
                       for off, cid in pairs]
        except KeyError:
            extents = None
        if extents is not None and _digest(size, extents) == digest:
            try:
                rows = extract(path, orjson.loads(self._assemble(db, size, extents)))
                return rows
            except (StoreError, orjson.JSONDecodeError) as exc:
                reason = str(exc)
        else:
            reason = "its chunks are gone"
        # The FTS row stays as garbage under a rowid that is never reused: searches join
        # search_docs and never see it; the count check at the next open rebuilds the index.
        self.garbage = True
        log.warning("search index: the old text of %s (row %d) cannot be re-read (%s); its entries stay "
                    "as garbage until the index is rebuilt", path, rowid, reason)
        return None

    # -- rebuild --------------------------------------------------------------------------
    def rebuild(self, progress: Callable[[int], None] | None = None, *, reason: str | None = None) -> RebuildReport:
        """Drop the index and rebuild it from the files now (``sessionfs reindex``).
        ``progress(n)`` after each n sessions."""
        self.stop()
        self._begin_rebuild()
        report = self._fill(progress, reason=reason)
        with self.store.catalog.write() as db:
            db.execute("INSERT INTO search_fts (search_fts) VALUES ('optimize')")
        return report

    def _begin_rebuild(self) -> None:
        """Replace the index by empty tables in state REBUILDING: from this commit on, every
        commit indexes what it changes (the hooks run), and ``_fill`` indexes the rest."""
        with self.store.catalog.write() as db:
            _drop_search_tables(db)
            create_search_tables(db)
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [("search_state", REBUILDING), ("search_rebuild", json.dumps({"done": 0, "total": 0}))])
        self.problem, self.garbage = None, False

    def _fill(self, progress: Callable[[int], None] | None, *, reason: str | None,
              background: bool = False) -> RebuildReport | None:
        """Index every session directory (a list taken now) in short write transactions, then
        set the state ``ok``. A file that already has rows was indexed by a commit since the
        rebuild began (the rows are current) and is skipped; a session made after the list
        was taken is indexed by its own commits. Returns None when stopped, or when the state
        stopped being REBUILDING (an index update failed meanwhile: the next open rebuilds)."""
        started = time.monotonic()
        catalog = self.store.catalog
        sessions = [r[0] for r in catalog.reader().execute(
            "SELECT ino FROM dentries WHERE parent = ? ORDER BY rowid", (self.sessions_ino,))]
        files, done = 0, 0
        while True:
            if self._stop.is_set():
                return None
            with catalog.write() as db:
                if db.execute("SELECT value FROM meta WHERE key = 'search_state'").fetchone()[0] != REBUILDING:
                    log.error("search index of %s: the rebuild stops, the index is no longer being rebuilt",
                              self.store.root)
                    return None
                start, deadline = done, time.monotonic() + REBUILD_BATCH_SECONDS
                while done < len(sessions) and done - start < REBUILD_BATCH and (
                        not background or done == start or time.monotonic() < deadline):
                    for ino in self._session_files(db, sessions[done]):
                        if not db.execute("SELECT 1 FROM search_docs WHERE ino = ? LIMIT 1", (ino,)).fetchone():
                            files += self._refresh_inode(db, ino, True)
                    done += 1
                finished = done == len(sessions)
                if finished:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_state', 'ok')")
                    db.execute("DELETE FROM meta WHERE key = 'search_rebuild'")
                else:
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_rebuild', ?)",
                               (json.dumps({"done": done, "total": len(sessions)}),))
            if progress is not None and done > start:
                progress(done - start)
            if finished:
                return RebuildReport(len(sessions), files, time.monotonic() - started, reason)
            _hook("batch")
            if background:
                time.sleep(REBUILD_PAUSE)

    def _session_files(self, db, dir_ino: int) -> list[int]:
        out = []
        for name, ino, mode in self._children(db, dir_ino):
            if mode & _S_IFMT == _S_IFREG:
                out.append(ino)
            elif mode & _S_IFMT == _S_IFDIR and bytes(name) in _CHUNK_DIR_NAMES:
                out.extend(c for _, c, m in self._children(db, ino) if m & _S_IFMT == _S_IFREG)
        return out

    # -- text of an indexed row (snippets) ---------------------------------------------------
    def rows_of(self, db, rowid: int, *, lazy: bool = False) -> tuple[str, Iterable[tuple[str, str]]] | None:
        """(path, extracted rows) of index row ``rowid`` as read in ``db``'s snapshot; ``lazy``:
        the rows as an iterator in document order, when the caller stops at the first hit."""
        row = db.execute("SELECT ino, path, size, extents, digest FROM search_docs WHERE id = ?",
                         (rowid,)).fetchone()
        if row is None:
            return None
        ino, path, size, blob, digest = row
        rows = self.cache.rows((bytes(digest), path))
        if rows is None:
            extents = db.execute(_EXTENTS_SQL, (ino,)).fetchall()
            parsed = self._parse(db, ino, size, extents, path, indexing=False)
            if parsed is _INVALID:
                return path, []
            if lazy:
                return path, iter_text(path, parsed, joined=True)
            rows = extract(path, parsed)
            self.cache.put((bytes(digest), path), rows)
        return path, rows


_INVALID = object()


def unindexed_files(store: "Store") -> list[str]:
    """Paths of the files the index would read (``text_index.indexed_path``) whose bytes are
    not valid JSON, so they hold no index rows: stored as written, for ``verify`` to report."""
    db = store.catalog.reader()
    index = store.text_index
    out = []
    for (dir_ino,) in db.execute("SELECT ino FROM dentries WHERE parent = ? ORDER BY rowid",
                                 (store.sessions_ino,)).fetchall():
        for ino in index._session_files(db, dir_ino):
            if db.execute("SELECT 1 FROM search_docs WHERE ino = ? LIMIT 1", (ino,)).fetchone():
                continue
            where = index._locations(db, ino)
            if not where:
                continue
            size = db.execute("SELECT size FROM inodes WHERE id = ?", (ino,)).fetchone()[0]
            extents = db.execute(_EXTENTS_SQL, (ino,)).fetchall()
            try:
                orjson.loads(index._assemble(db, size, extents))
            except orjson.JSONDecodeError:
                out.append(store.catalog.path_of(ino, db) or next(iter(where.values()))[1])
            except StoreError:
                continue            # unreadable: verify reports damaged data on its own
    return out


def _drop_search_tables(db) -> None:
    try:
        db.execute("DROP TABLE IF EXISTS search_fts")
    except sqlite3.DatabaseError as exc:
        # FTS5 must load a table to drop it; give a damaged one back the configuration row it
        # checks first, then drop it (xDestroy drops its shadow tables whatever they hold).
        log.warning("dropping the damaged search_fts table: %s", exc)
        db.execute("CREATE TABLE IF NOT EXISTS search_fts_config (k PRIMARY KEY, v) WITHOUT ROWID")
        db.execute("INSERT OR REPLACE INTO search_fts_config (k, v) VALUES ('version', 4)")
        db.execute("DROP TABLE IF EXISTS search_fts")
    db.execute("DROP TABLE IF EXISTS search_docs")


# =====================================================================================
# Searching
# =====================================================================================


@dataclass(frozen=True)
class Result:
    """One session found. ``score``: higher is better (0 when results are newest first).
    ``file``: the file inside the session the snippet comes from; ``snippet``: its field and
    the text around the hit, the hit in [brackets]."""

    session_id: str
    score: float
    snippet: str
    file: str

    def as_dict(self) -> dict:
        return asdict(self)


def require_index(store: "Store", db: sqlite3.Connection) -> None:
    index = getattr(store, "text_index", None)
    problem = index.problem if index is not None else "missing"
    if problem is None:
        row = db.execute("SELECT value FROM meta WHERE key = 'search_state'").fetchone()
        problem = None if row is not None and row[0] in ("ok", REBUILDING) else (row[0] if row else "missing")
    if problem is not None:
        raise IndexUnavailableError(
            f"the search index of {store.root} is {problem}; it is rebuilt when the store is next opened for "
            f"writing (mount), or now with 'sessionfs reindex {store.root}'")


def search(store: "Store", query: str | None, *, tags=None, status=None, after=None, before=None, topic=None,
           limit: int | None = 20, snippets: bool = True) -> list[Result]:
    """Sessions matching ``query`` and every filter, best first (see the module docstring).

    ``query`` may be empty when a filter is given: the filtered sessions, newest first.
    ``tags``/``topic``: a str or a list, all required; ``status``: one or any of a list;
    ``after``/``before``: inclusive bounds on the start time (a date covers its whole day,
    UTC). Queued writes of ``store`` are committed first (a store opened read-only beside a
    mount sees what the mount has committed, a few ms behind its closes).
    Malformed input raises BadInputError; an unusable index IndexUnavailableError."""
    q = parse_query(query) if query is not None and query.strip() else None
    filters = Filters.make(tags, status, after, before, topic)
    if q is None and filters.empty:
        raise BadInputError("empty query: give words to search for, or at least one filter")
    if limit is None:
        limit = MAX_LIMIT
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise BadInputError(f"limit: expected an int from 1 to {MAX_LIMIT}, got {limit!r}")
    if not store.readonly:
        store.settle()          # read your writes: what was closed or saved before is found
    db = store.catalog.reader()
    db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")     # index pages straight from the page cache
    db.execute("BEGIN")
    try:
        require_index(store, db)
        found = _Plan(store, db, q, filters, limit).run()
        return _results(store, db, q, found, snippets)
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError) and not any(
                w in text for w in ("fts5", "malformed", "corrupt", "no such table: search")):
            raise               # busy, interrupted, out of memory ...: not the index's fault
        raise store.text_index.damaged(exc) from None
    finally:
        db.execute("COMMIT")


class _Plan:
    """Evaluates a query at the session level: a session matches a positive clause when one
    of its files does, and a negated clause when none does.

    Per clause, the rows matching it are counted (up to RANK_CAP + 1, then estimated). The rarest positive
    clause with at most RANK_CAP rows drives: its rows are ranked (bm25, best row per
    session), other such clauses add their scores, and the candidates are then checked,
    best first, against the remaining clauses until ``limit`` pass. Without such a clause,
    sessions are visited newest first and checked. A check uses the clause's set of
    sessions when it has at most SET_CAP rows, else a probe of the session's rowid range
    (cheap for the common words that take that path: the first rows match)."""

    def __init__(self, store, db, query: Query | None, filters: Filters, limit: int):
        self.store, self.db, self.query, self.filters, self.limit = store, db, query, filters, limit
        self.sessions_ino = store.sessions_ino
        # Garbage rows (left by a delete that failed) have no search_docs row: join only then.
        self.live = " JOIN search_docs d ON d.id = f.rowid" if store.text_index.garbage else ""
        self.sets: dict[Clause, dict[int, int]] = {}
        self.span: tuple[int, int] | None = None
        self.total: int | None = None           # sessions, roughly
        self.rankable: dict[Clause, bool] = {}

    # -- primitives -------------------------------------------------------------------
    def _count(self, clause: Clause) -> tuple[int, float]:
        """(rows matching ``clause`` counted up to RANK_CAP + 1, estimated total). Beyond what
        was counted, the total is extrapolated from how far into the rowid space (sessions in
        creation order) the matches reach: free, and close enough to choose a plan. A first
        look at SAMPLE rows skips the exact count of clauses that are clearly common
        (phrases of common words are slow to count)."""
        n, est = self._count_upto(clause, SAMPLE)
        if n <= SAMPLE or est > 2 * RANK_CAP or clause.negated or not self._rankable(clause):
            return n, est
        return self._count_upto(clause, RANK_CAP)

    def _count_upto(self, clause: Clause, cap: int) -> tuple[int, float]:
        n, last = self.db.execute(f"SELECT count(*), max(rowid) FROM (SELECT f.rowid FROM search_fts f{self.live} "
                                  "WHERE search_fts MATCH ? LIMIT ?)", (clause.fts(), cap + 1)).fetchone()
        if n <= cap:
            return n, float(n)          # exact
        if self.span is None:
            self.span = self.db.execute("SELECT (SELECT min(id) FROM search_docs), "      # each one O(log n)
                                        "(SELECT max(id) FROM search_docs)").fetchone()
        low, high = self.span
        covered = (last - low) / (high - low) if high is not None and high > low else 1.0
        return n, max(n / max(covered, 1e-9), n + 0.5)     # never equal to n: not exact

    def _ranked(self, clause: Clause) -> dict[int, tuple[float, int]]:
        """{session dir: (best bm25, its rowid)} over every row matching ``clause``."""
        return {s: (r, rowid) for s, r, rowid in self.db.execute(
            f"SELECT f.rowid >> {SEARCH_SESSION_SHIFT} AS s, min(f.rank), f.rowid FROM search_fts f{self.live} "
            "WHERE search_fts MATCH ? GROUP BY s", (clause.fts(),))}

    def _session_rows(self, clause: Clause) -> dict[int, int]:
        """{session dir: its first row matching ``clause``}."""
        return dict(self.db.execute(
            f"SELECT f.rowid >> {SEARCH_SESSION_SHIFT} AS s, min(f.rowid) FROM search_fts f{self.live} "
            "WHERE search_fts MATCH ? GROUP BY s", (clause.fts(),)))

    def _in_session(self, clause: Clause, dir_ino: int) -> int | None:
        """A rowid of the session's rows matching ``clause``, or None."""
        rows = self.sets.get(clause)
        if rows is not None:
            return rows.get(dir_ino)
        low = dir_ino << SEARCH_SESSION_SHIFT
        row = self.db.execute(
            f"SELECT f.rowid FROM search_fts f{self.live} WHERE search_fts MATCH ? AND f.rowid BETWEEN ? AND ? "
            "LIMIT 1", (clause.fts(), low, low | _SEQ_MASK)).fetchone()
        return row[0] if row else None

    def _use_sets(self, clauses, counts, checks: float | None = None) -> None:
        """Evaluate as sets the clauses for which one pass over their rows is cheaper than
        probing sessions one by one. ``checks``: sessions that will be checked, when known;
        else those visited newest first until ``limit`` match a clause of that density."""
        if self.total is None:
            self.total = max(1, self.db.execute("SELECT max(rowid) FROM sessions").fetchone()[0] or 1)
        for clause in clauses:
            est = counts[clause][1]
            if clause in self.sets or est > SET_CAP:
                continue
            phrase = any(len(re.findall(r"\w+", a.text)) > 1 for a in clause.atoms)
            set_cost = est * (PHRASE_ROW_COST if phrase else ROW_COST)
            visits = checks if checks is not None else self.limit * self.total / max(1.0, est / 1.5)
            if set_cost < min(visits, self.total) * PROBE_COST:
                self.sets[clause] = self._session_rows(clause)

    def _passes(self, dir_ino: int, clauses: list[Clause]) -> int | None:
        """When the session passes every clause (sets first, then probes): the row matching the
        first positive clause (0 when there is none), else None."""
        first = 0
        for clause in sorted(clauses, key=lambda c: c not in self.sets):
            rowid = self._in_session(clause, dir_ino)
            if (rowid is None) != clause.negated:
                return None
            if first == 0 and rowid is not None and clause is clauses[0]:
                first = rowid
        return first

    def _filtered(self, dirs: Iterable[int]) -> set[int]:
        where, args = self.filters.where()
        sql = "SELECT s.dir_ino FROM sessions s WHERE s.dir_ino IN (SELECT value FROM json_each(?))"
        return {r[0] for r in self.db.execute(" AND ".join([sql, *where]), [json.dumps(list(dirs)), *args])}

    def _newest_first(self, among: Iterable[int] | None = None):
        """Session directories (all, or those ``among``), filtered, newest start time first;
        those without metadata last (only without filters: filters need the metadata)."""
        where, args = self.filters.where()
        if among is not None:
            among = list(among)
            where = ["s.dir_ino IN (SELECT value FROM json_each(?))", *where]
            args = [json.dumps(among), *args]
        sql = "SELECT s.dir_ino FROM sessions s" + (" WHERE " + " AND ".join(where) if where else "") + \
              " ORDER BY s.start_time DESC, s.id"
        cursor = self.db.execute(sql, args)
        seen = set()
        while batch := cursor.fetchmany(64):
            for (ino,) in batch:
                seen.add(ino)
                yield ino
        if not self.filters.empty:
            return
        if among is not None:
            yield from sorted(set(among) - seen)
            return
        for (ino,) in self.db.execute("SELECT d.ino FROM dentries d WHERE d.parent = ? AND NOT EXISTS "
                                      "(SELECT 1 FROM sessions s WHERE s.dir_ino = d.ino) ORDER BY d.rowid",
                                      (self.sessions_ino,)).fetchall():
            yield ino

    def _rankable(self, clause: Clause) -> bool:
        """Whether ranking ``clause`` by bm25 is cheap: every phrase in it has a word that is
        not common. (A phrase of common words costs a pass over all of their rows for each
        evaluation, and bm25 evaluates it twice; such phrases list newest first.)"""
        if clause not in self.rankable:
            self.rankable[clause] = all(
                len(words := re.findall(r"\w+", atom.text)) < 2
                or min(self._count_upto(Clause((Atom(w),)), RANK_CAP)[1] for w in words) <= RANK_CAP
                for atom in clause.atoms)
        return self.rankable[clause]

    # -- plans ----------------------------------------------------------------------------
    def run(self) -> list[tuple[int, float, int | None]]:
        """[(session dir, score, rowid of the best row or None)], best first."""
        if self.query is None:
            return [(d, 0.0, None) for d, _ in zip(self._newest_first(), range(self.limit))]
        positive, negative = self.query.positive, self.query.negative
        counts = {c: self._count(c) for c in self.query.clauses}
        if any(not counts[c][0] for c in positive):
            return []
        negative = [c for c in negative if counts[c][0]]
        selective = sorted((c for c in positive if counts[c][1] <= RANK_CAP and self._rankable(c)),
                           key=lambda c: counts[c][1])      # (_rankable is cached)
        if selective:
            return self._ranked_plan(selective, [c for c in positive if c not in selective], negative, counts)
        return self._recency_plan(sorted(positive, key=lambda c: counts[c][1]), negative, counts)

    def _ranked_plan(self, selective, common, negative, counts):
        scored: dict[int, tuple[float, int]] | None = None
        for clause in selective:
            ranked = self._ranked(clause)
            if scored is None:
                scored = ranked
            else:
                scored = {s: (v[0] + ranked[s][0], v[1]) for s, v in scored.items() if s in ranked}
            if not scored:
                return []
        if not self.filters.empty:
            keep = self._filtered(scored)
            scored = {s: v for s, v in scored.items() if s in keep}
        self._use_sets(common + negative, counts, checks=len(scored))
        out = []
        for dir_ino, (score, rowid) in sorted(scored.items(), key=lambda kv: (kv[1][0], kv[0])):
            if self._passes(dir_ino, common + negative) is not None:
                out.append((dir_ino, -score, rowid))
                if len(out) >= self.limit:
                    break
        return out

    def _recency_plan(self, positive, negative, counts):
        self._use_sets(positive + negative, counts)
        if self.limit > SCAN_BUDGET // 2:       # long listings: one pass over each clause beats many probes
            self.sets.update((c, self._session_rows(c)) for c in positive + negative if c not in self.sets)
        out = []
        known = [c for c in positive if c in self.sets]
        among = min((self.sets[c] for c in known), key=len) if known else None
        for visited, dir_ino in enumerate(self._newest_first(among), 1):
            if visited == SCAN_BUDGET and among is None:
                # Common terms that are rare together: evaluate every clause as a set.
                self.sets.update((c, self._session_rows(c)) for c in positive + negative if c not in self.sets)
            first = self._passes(dir_ino, positive + negative)
            if first is not None:
                out.append((dir_ino, 0.0, first))
                if len(out) >= self.limit:
                    break
        return out


def _results(store, db, query: Query | None, found, snippets: bool) -> list[Result]:
    if not found:
        return []
    names = {ino: bytes(name).decode("utf-8", "surrogateescape") for ino, name in db.execute(
        "SELECT ino, name FROM dentries WHERE +parent = ? AND ino IN (SELECT value FROM json_each(?))",
        (store.sessions_ino, json.dumps([f[0] for f in found])))}
    paths = {}
    rowids = [f[2] for f in found if f[2] is not None]
    if rowids:
        paths = dict(db.execute("SELECT id, path FROM search_docs WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps(rowids),)))
    atoms = [a for c in query.positive for a in c.atoms] if query is not None else []
    out = []
    for dir_ino, score, rowid in found:
        if dir_ino not in names:
            continue
        snippet = ""
        if snippets and rowid is not None and atoms:
            try:
                got = store.text_index.rows_of(db, rowid, lazy=True)
            except (StoreError, sqlite3.DatabaseError) as exc:
                log.debug("no snippet for row %d: %s", rowid, exc)
                got = None
            if got is not None:
                snippet = make_snippet(got[1], atoms)
        out.append(Result(names[dir_ino], round(score, 4), snippet, paths.get(rowid, "")))
    return out


# =====================================================================================
# Snippets
# =====================================================================================

SNIPPET_BEFORE = 60
SNIPPET_AFTER = 100


def _fold(text: str) -> str:
    """Lower case without diacritics, like the tokenizer's ``remove_diacritics 2``."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _atom_pattern(atom: Atom) -> re.Pattern:
    """Matches the atom in lower-cased text; it starts with a literal (fast to search), so the
    word boundary on its left is checked by ``_first_hit``."""
    words = re.findall(r"\w+", _fold(atom.text))
    body = r"\W+".join(re.escape(w) for w in words)
    return re.compile(body + (r"\w*" if atom.prefix else r"(?!\w)"))


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _first_hit(text: str, patterns: list[re.Pattern], folded: bool = False) -> tuple[int, int] | None:
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text.casefold() if len(text.casefold()) == len(text) else text
    best = None
    for pattern in patterns:
        for m in pattern.finditer(lowered, 0, best[0] if best else len(lowered)):
            if m.start() == 0 or not _is_word(lowered[m.start() - 1]):
                best = m.span()
                break
    if best is None and not folded and not text.isascii():
        decomposed = _fold(text)        # accents: café matches cafe, as in the index
        if len(decomposed) == len(text):
            return _first_hit(decomposed, patterns, True)
    return best


def make_snippet(rows: Iterable[tuple[str, str]], atoms: list[Atom]) -> str:
    """``field: …text around the first hit…`` with the hit in [brackets]; "" when none is found."""
    patterns = [_atom_pattern(a) for a in atoms]
    rows = [(f, t) for f, t in rows if isinstance(t, str)]
    starts, pos = [], 0
    for _, text in rows:
        starts.append(pos)
        pos += len(text) + 1
    joined = "\n".join(t for _, t in rows)      # one scan of the whole file's text (rows never hold \n
    hit = _first_hit(joined, patterns)          # where it would matter: a hit across rows is dropped)
    while hit is not None:
        i = bisect.bisect_right(starts, hit[0]) - 1
        field, source = rows[i]
        start, end = hit[0] - starts[i], hit[1] - starts[i]
        if end <= len(source):
            return _excerpt(field, source, start, end)
        nxt = _first_hit(joined[hit[1]:], patterns)
        hit = None if nxt is None else (nxt[0] + hit[1], nxt[1] + hit[1])
    return ""


def _excerpt(field: str, source: str, start: int, end: int) -> str:
    lo = max(0, start - SNIPPET_BEFORE)
    hi = min(len(source), end + SNIPPET_AFTER)
    if lo > 0:
        space = source.find(" ", lo, start)
        lo = space + 1 if space >= 0 else lo
    if hi < len(source):
        space = source.rfind(" ", end, hi)
        hi = space if space >= 0 else hi
    excerpt = (("…" if lo > 0 else "") + source[lo:start] + "[" + source[start:end] + "]"
               + source[end:hi] + ("…" if hi < len(source) else ""))
    return f"{field}: " + " ".join(excerpt.split())


# =====================================================================================
# Command line
# =====================================================================================


def store_of(arg: str) -> str:
    """The store directory for a STORE or MOUNTPOINT argument."""
    from pathlib import Path
    stats = Path(arg) / ".sessionfs" / "stats.json"
    try:
        info = orjson.loads(stats.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return arg
    return info.get("store") or arg if isinstance(info, dict) else arg


def cmd_search(args) -> int:
    from .cli import open_store, write_out
    with open_store(store_of(args.store)) as store:
        index = store.text_index.statistics()       # before searching: "ok" means complete
        results = search(store, args.query, tags=args.tag, status=args.status, after=args.after,
                         before=args.before, topic=args.topic, limit=args.limit)
        names = {}
        if results:
            names = dict(store.catalog.reader().execute(
                "SELECT id, name FROM sessions WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps([r.session_id for r in results]),)))
    import sys
    rebuilding = None
    if index.state == REBUILDING:
        rebuilding = {"sessions_done": index.sessions_done, "sessions_total": index.sessions_total}
        print(f"note: the search index is being rebuilt ({index.sessions_done:,} of {index.sessions_total:,} "
              "sessions done); results may be incomplete until it finishes", file=sys.stderr)
    if args.json:
        write_out(json.dumps([{**r.as_dict(), "name": names.get(r.session_id), "index_rebuilding": rebuilding}
                              for r in results], indent=2, ensure_ascii=False) + "\n")
        return 0
    if not results:
        print("no matching sessions", file=sys.stderr)
        return 0
    lines = []
    for r in results:
        lines.append(f"{r.score:8.3f}  {r.session_id}  {names.get(r.session_id) or ''}".rstrip())
        if r.file or r.snippet:
            lines.append(f"          {r.file}  {r.snippet}".rstrip())
    write_out("\n".join(lines) + "\n")
    return 0


def cmd_reindex(args) -> int:
    import sys
    from .cli import open_store, write_out
    if args.check:
        with open_store(args.store) as store:
            # FTS5's integrity-check is an INSERT in form: run it on a connection of our own, in
            # a transaction that is rolled back (it works beside a mount and changes nothing).
            db = sqlite3.connect(store.catalog.path, isolation_level=None, timeout=60)
            try:
                db.execute("BEGIN")
                problem = store.text_index.check(db, full=True)
                db.execute("ROLLBACK")
            finally:
                db.close()
        write_out(f"search index: {problem or 'ok'}\n")
        return 1 if problem else 0
    from tqdm import tqdm
    with open_store(args.store, readonly=False) as store:
        sessions = store.catalog.reader().execute("SELECT count(*) FROM dentries WHERE parent = ?",
                                                  (store.sessions_ino,)).fetchone()[0]
        with tqdm(total=sessions, unit="session", desc="reindex", file=sys.stderr) as bar:
            report = store.text_index.rebuild(bar.update)
    write_out(f"search index rebuilt: {report.files} files of {report.sessions} sessions in "
              f"{report.seconds:.1f} s\n")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="find sessions by words, phrases, tags, status and dates",
        description="Search the sessions of STORE (or of the store mounted at MOUNTPOINT) read-only. "
                    "QUERY: words (all must occur), \"phrases\", prefix*, a OR b, -excluded; "
                    "matched case-insensitively as whole words.")
    p.add_argument("store", metavar="STORE|MOUNTPOINT")
    p.add_argument("query", metavar="QUERY", nargs="?", default="",
                   help="what to search for (may be empty when a filter is given); a query that "
                        "starts with '-' goes after --")
    p.add_argument("--tag", action="append", help="only sessions with this tag (repeat: all of them)")
    p.add_argument("--status", action="append", help="only sessions with this status (repeat: any of them)")
    p.add_argument("--after", help="only sessions started on or after this date (YYYY-MM-DD) or time")
    p.add_argument("--before", help="only sessions started on or before this date (YYYY-MM-DD) or time")
    p.add_argument("--topic", action="append", help="only sessions with this topic id (repeat: all of them)")
    p.add_argument("--limit", type=int, default=20, help="at most this many results (default 20)")
    p.add_argument("--json", action="store_true", help="print a JSON array of results")
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser(
        "reindex", help="rebuild the search index from the files",
        description="Rebuild the full-text search index of STORE from its files, with a progress bar. "
                    "Needs the store unmounted (it takes the write lock).")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--check", action="store_true",
                   help="only check the index (read-only, FTS5 integrity-check); exit status 1 if unusable")
    p.set_defaults(func=cmd_reindex)
