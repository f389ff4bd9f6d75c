"""The SQLite maintenance operations raise store errors, never sqlite3 ones, naming the
operation; a failed operation changes nothing. (What holds for every catalog, a taken
dictionary id among it, is in test_catalog_interface.)"""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from store import Store
from store.core.errors import CatalogError, FormatError, StoreError
from store.backends.catalog.sqlite.maintenance import SqliteMaintenance


@pytest.fixture
def catalog(tmp_path):
    Store.init(tmp_path)
    db = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    yield db
    db.close()


def test_a_full_catalog_disk_is_enospc_and_keeps_what_was_there(catalog):
    m = SqliteMaintenance(catalog)
    m.add_dictionary(m.next_dictionary_id(), b"first", 16, 5, 20)
    catalog.execute(f"PRAGMA max_page_count = {catalog.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(CatalogError) as caught:
        m.add_dictionary(m.next_dictionary_id(), os.urandom(1 << 20), 16, 1 << 20, 40)
    assert caught.value.errno == errno.ENOSPC
    assert "add dictionary" in str(caught.value) and "full" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert m.latest_dictionary() == (1, 16, 5, 20) and m.dictionary(1) == b"first"


def test_a_file_that_is_no_catalog_is_a_format_error(tmp_path):
    path = tmp_path / "not-a-catalog"
    path.write_bytes(b"this is not an SQLite database file" * 100)
    db = sqlite3.connect(path)
    try:
        with pytest.raises(FormatError, match="stored bytes"):
            SqliteMaintenance(db).stored_bytes()
    finally:
        db.close()


def test_a_catalog_without_the_tables_is_a_store_error(tmp_path):
    db = sqlite3.connect(":memory:")
    with pytest.raises(StoreError, match="reclaim chunks failed: no such table") as caught:
        SqliteMaintenance(db).reclaim_chunks(0, 10)
    assert not isinstance(caught.value, sqlite3.Error)


def test_older_catalog_without_maintenance_tables_reads_as_empty(catalog):
    catalog.execute("DROP TABLE recompressed")
    catalog.execute("DROP TABLE dictionaries")
    m = SqliteMaintenance(catalog)
    assert m.latest_dictionary() is None and m.dictionary(1) is None and m.next_dictionary_id() == 1
    assert m.recompressed_level(1) is None and m.drop_unused_dictionaries() == []
    assert m.pending(None) == (0, 0)
