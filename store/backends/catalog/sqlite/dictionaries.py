"""zstd dictionaries kept in the catalog, versioned, for small blocks (``CODEC_ZSTD_DICT``).

Why: a small file compressed on its own (a 8 KB metadata.json, a 30 KB
summary) gives zstd almost nothing to refer back to, so it stores 3-5x where
the same file inside a big stream would store 15x. A dictionary trained on the
store's own small files supplies that shared context (field names, the
structure of a record, recurring values) up front.

Versioning: each trained dictionary is a new row of ``dictionaries`` with a new
id, and a block records the id it was encoded with (``blocks.dict_id``). A row
is never changed, and is deleted only when no block names it and a newer
dictionary exists (``gc``), so every block ever written still decodes. The zstd
dictionary id inside the trained data equals the row id.

The stored bytes of the dictionaries count against the store: they are reported
in ``Store.statistics()`` (``maintenance.dictionary_bytes``) and added to the
stored bytes by the compression benchmark. Their size is kept small relative
to what they were trained on (``dictionary_size``).

Thread safety: ``Dictionaries`` is called from any reader thread (decoding) and
from the persistence worker (adding); loaded dictionaries are immutable and
cached.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import zstandard

from store.core.errors import IntegrityError
from .schema import has_table

#: Largest dictionary trained (zstd's own default is 110 KiB).
MAX_DICT_SIZE = 112 * 1024
#: Smallest dictionary worth training.
MIN_DICT_SIZE = 4 * 1024
#: A dictionary is at most this share of the sample bytes it was trained on.
DICT_SHARE = 1 / 16
#: Fewer samples than this train nothing useful (zstd refuses, or overfits).
MIN_SAMPLES = 16
#: Upper bound of the bytes fed to the trainer (time and memory).
MAX_TRAINING_BYTES = 32 * 1024 * 1024


def dictionary_size(sample_bytes: int) -> int:
    """The dictionary size for ``sample_bytes`` of training data (0: too little data)."""
    size = min(MAX_DICT_SIZE, int(sample_bytes * DICT_SHARE))
    return size if size >= MIN_DICT_SIZE else 0


def train(samples: list[bytes], dict_id: int, level: int = 19) -> bytes | None:
    """Train a dictionary with zstd id ``dict_id`` on ``samples``; None when there is too little data."""
    total = sum(len(s) for s in samples)
    size = dictionary_size(total)
    if len(samples) < MIN_SAMPLES or not size:
        return None
    try:
        d = zstandard.train_dictionary(size, samples, dict_id=dict_id, level=level)
    except zstandard.ZstdError:
        return None
    return d.as_bytes()


class Dictionaries:
    """Dictionary lookup by id (a ``codec.DictLookup``), loading from the catalog on first use."""

    def __init__(self, catalog):
        self.catalog = catalog
        self._cache: dict[int, zstandard.ZstdCompressionDict] = {}
        self._lock = threading.Lock()
        # Small blocks counted when training last failed for lack of data (this process).
        self.training_failed_at = 0

    def __call__(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        with self._lock:
            d = self._cache.get(dict_id)
        if d is not None:
            return d
        data = self.data(dict_id)
        if data is None:
            raise IntegrityError(f"zstd dictionary {dict_id} is missing from the catalog")
        d = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
        with self._lock:
            self._cache[dict_id] = d
        return d

    def data(self, dict_id: int, db: sqlite3.Connection | None = None) -> bytes | None:
        db = db or self.catalog.reader()
        if not has_table(db, "dictionaries"):
            return None
        row = db.execute("SELECT data FROM dictionaries WHERE id = ?", (dict_id,)).fetchone()
        return bytes(row[0]) if row else None

    def latest(self, db: sqlite3.Connection | None = None) -> tuple[int, zstandard.ZstdCompressionDict] | None:
        """The newest dictionary (id, dict), or None."""
        db = db or self.catalog.reader()
        if not has_table(db, "dictionaries"):
            return None
        row = db.execute("SELECT id FROM dictionaries ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], self(row[0])) if row else None

    def latest_info(self, db: sqlite3.Connection | None = None) -> tuple[int, int, int, int] | None:
        """(id, samples, sample_bytes, small_blocks) of the newest dictionary, or None."""
        db = db or self.catalog.reader()
        if not has_table(db, "dictionaries"):
            return None
        return db.execute("SELECT id, samples, sample_bytes, small_blocks FROM dictionaries "
                          "ORDER BY id DESC LIMIT 1").fetchone()

    @staticmethod
    def add(db: sqlite3.Connection, dict_id: int, data: bytes, samples: int, sample_bytes: int,
            small_blocks: int = 0) -> None:
        """Insert a trained dictionary (inside the worker's write transaction)."""
        db.execute("INSERT INTO dictionaries (id, created, data, samples, sample_bytes, small_blocks) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (dict_id, time.time_ns(), data, samples, sample_bytes, small_blocks))

    def forget(self, dict_id: int) -> None:
        with self._lock:
            self._cache.pop(dict_id, None)

    @staticmethod
    def next_id(db: sqlite3.Connection) -> int:
        if not has_table(db, "dictionaries"):
            return 1
        return db.execute("SELECT coalesce(max(id), 0) + 1 FROM dictionaries").fetchone()[0]

    @staticmethod
    def total_bytes(db: sqlite3.Connection) -> int:
        if not has_table(db, "dictionaries"):
            return 0
        return db.execute("SELECT coalesce(sum(length(data)), 0) FROM dictionaries").fetchone()[0]
