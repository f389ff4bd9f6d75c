"""zstd dictionaries kept in the catalog, versioned, for small blocks (``CODEC_ZSTD_DICT``).

Why: a small file compressed on its own (a 8 KB metadata.json, a 30 KB
summary) gives zstd almost nothing to refer back to, so it stores 3-5x where
the same file inside a big stream would store 15x. A dictionary trained on the
store's own small files (``store.services.dictionary_training``) supplies that
shared context (field names, the structure of a record, recurring values) up
front.

Versioning: each trained dictionary is a new catalog row with a new id, and a
block records the id it was encoded with (``blocks.dict_id``). A row is never
changed, and is deleted only when no block names it and a newer dictionary
exists (``gc``), so every block ever written still decodes. The zstd dictionary
id inside the trained data equals the row id.

The stored bytes of the dictionaries count against the store: they are reported
in ``Store.statistics()`` (``maintenance.dictionary_bytes``) and added to the
stored bytes by the compression benchmark.

Thread safety: ``Dictionaries`` is called from any reader thread (decoding) and
from the persistence worker (adding); loaded dictionaries are immutable and
cached.
"""

from __future__ import annotations

import threading

import zstandard

from store.core.errors import IntegrityError
from .maintenance import DictionaryInfo


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
        data = self.catalog.reader().maintenance.dictionary(dict_id)
        if data is None:
            raise IntegrityError(f"zstd dictionary {dict_id} is missing from the catalog")
        d = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
        with self._lock:
            self._cache[dict_id] = d
        return d

    def latest(self, view=None) -> tuple[int, zstandard.ZstdCompressionDict] | None:
        """The newest dictionary (id, dict), or None; read through ``view`` (default: this thread's reader)."""
        info = self.latest_info(view)
        return (info.id, self(info.id)) if info else None

    def latest_info(self, view=None) -> DictionaryInfo | None:
        """What the newest dictionary was trained on, or None."""
        return (view or self.catalog.reader()).maintenance.latest_dictionary()

    def forget(self, dict_id: int) -> None:
        """Drop a deleted dictionary from the cache."""
        with self._lock:
            self._cache.pop(dict_id, None)
