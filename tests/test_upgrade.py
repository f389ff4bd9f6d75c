"""Catalog format upgrades: a store written by format-1 code (``tests/fixtures/format1-mini``,
made by ``make_format1_mini.py`` with e739bba) opens read-only as it is, upgrades at a
writable open, reads byte-identically, and an upgrade killed half-way leaves format 1."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixtures.make_format1_mini import tree_of
from store import FormatError, Store
from store.backends.catalog.sqlite import upgrade
from store.backends.catalog.sqlite.schema import FORMAT_VERSION
from store.services.search import search
from store.services.verify import verify

FIXTURE = Path(__file__).parent / "fixtures" / "format1-mini"
MANIFEST = json.loads((FIXTURE.parent / "format1-mini.json").read_text())
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def old_store(tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    (root / "staging").mkdir(exist_ok=True)     # git keeps no empty directory
    return root


def stored_format(root: Path) -> tuple[int, bool]:
    db = sqlite3.connect(f"file:{root}/catalog.db?mode=ro", uri=True)
    try:
        version = int(db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0])
        has = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'counters'").fetchone() is not None
        return version, has
    finally:
        db.close()


def assert_as_written(store: Store) -> None:
    assert tree_of(store, "") == MANIFEST["files"]
    stats = store.statistics()
    for key, value in MANIFEST["statistics"].items():
        assert getattr(stats, key) == value, key
    for key, value in MANIFEST["maintenance"].items():
        assert getattr(stats.maintenance, key) == value, key


def test_steps_lead_from_format_1_to_the_current_one():
    assert [s.to_version for s in upgrade.STEPS] == list(range(2, FORMAT_VERSION + 1))


def test_a_read_only_open_reads_format_1_as_it_is(old_store):
    before = (old_store / "catalog.db").read_bytes()
    with Store.open(old_store, readonly=True) as store:
        assert store.catalog.format_version == 1
        assert store.statistics().counted_by == "scan"
        assert_as_written(store)
        report = verify(store)
        assert [p.kind for p in report.problems] == ["format"] and report.ok, report.problems
    assert (old_store / "catalog.db").read_bytes() == before
    assert stored_format(old_store) == (1, False)


def test_a_writable_open_upgrades_format_1_and_reads_byte_identically(old_store):
    with Store.open(old_store) as store:
        assert store.catalog.upgraded_from == 1 and store.catalog.format_version == FORMAT_VERSION
        assert store.statistics().counted_by == "counters"
        assert_as_written(store)
        assert [r.session_id for r in search(store, "kangaroo1")] == ["s1"]
    assert stored_format(old_store) == (FORMAT_VERSION, True)
    with Store.open(old_store, readonly=True) as store:
        assert store.catalog.format_version == FORMAT_VERSION
        assert_as_written(store)
        report = verify(store, data=True)
        assert report.ok and not report.problems, report.problems
    with Store.open(old_store) as store:      # a second open has nothing to upgrade
        assert store.catalog.upgraded_from == FORMAT_VERSION


KILLER = textwrap.dedent("""
    import os, signal, sys
    from store import Store
    from store.backends.catalog.sqlite import catalog, upgrade
    catalog.WRITER_CACHE_KIB = 1        # tiny page cache: the transaction spills into the WAL
    point = sys.argv[2]
    def hook(where):
        if where == point:
            os.kill(os.getpid(), signal.SIGKILL)
    upgrade._hook = hook
    Store.open(sys.argv[1])
    print("not killed")
""")


@pytest.mark.parametrize("point", ["step-2", "version-set"])
def test_an_upgrade_killed_half_way_leaves_format_1_and_runs_again(old_store, point):
    proc = subprocess.run([sys.executable, "-c", KILLER, str(old_store), point], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    assert (old_store / "catalog.db-wal").stat().st_size > 0      # uncommitted frames were on disk
    assert stored_format(old_store) == (1, False)
    with Store.open(old_store, readonly=True) as store:
        assert_as_written(store)
    with Store.open(old_store) as store:
        assert store.catalog.upgraded_from == 1
        assert_as_written(store)
        assert store.catalog.reader().audit.counter_disagreements() == {}


def test_a_newer_format_is_refused_with_its_number(old_store):
    db = sqlite3.connect(old_store / "catalog.db", isolation_level=None)
    db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION + 1,))
    db.close()
    for readonly in (True, False):
        with pytest.raises(FormatError, match=f"format {FORMAT_VERSION + 1}, made by a newer sessionfs; "
                                              f"this sessionfs reads format {FORMAT_VERSION}"):
            Store.open(old_store, readonly=readonly)
