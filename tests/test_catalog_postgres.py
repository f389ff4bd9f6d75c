"""What only the PostgreSQL catalog has: many writers on one database (lost races retried,
ids reserved without overlap, each commit heard by the others), a bounded connection pool,
and a server restart in the middle of a commit."""

from __future__ import annotations

import errno
import os
import queue
import shutil
import stat
import subprocess
import threading
import time

import psycopg
import pytest

from catalogs import new_postgres_catalog, pg_url, postgres  # noqa: F401 - fixtures
from store.backends.catalog.postgres.catalog import PostgresCatalog
from store.backends.catalog.postgres.errors import RetryableError
from store.core.errors import CatalogError, ConflictError, FormatError

UID, GID = os.getuid(), os.getgid()
REG = stat.S_IFREG | 0o644
WAIT = 60


@pytest.fixture
def two(pg_url):
    """Two catalog objects on one database, as two mounts have."""
    a = new_postgres_catalog(pg_url)
    b = PostgresCatalog(pg_url)
    yield a, b
    b.close()
    a.close()


def sessions(catalog) -> int:
    return int(catalog.meta("sessions_ino"))


def make(catalog, name: bytes) -> int:
    with catalog.write() as view:
        return view.tree.make_node(sessions(catalog), name, REG, UID, GID, time.time_ns()).id


def test_a_database_is_created_once_and_joined_by_its_identity(pg_url):
    with pytest.raises(FormatError, match="holds no sessionfs catalog"):
        PostgresCatalog(pg_url)
    assert PostgresCatalog.identity(pg_url) is None
    PostgresCatalog.initialize(pg_url, "ab" * 16, "s3://bucket/prefix")
    assert PostgresCatalog.identity(pg_url) == {"store_id": "ab" * 16, "objects": "s3://bucket/prefix", "format": 1}
    with pytest.raises(ConflictError, match="already holds a sessionfs catalog"):
        PostgresCatalog.initialize(pg_url, "cd" * 16, "local")
    catalog = PostgresCatalog(pg_url, readonly=True)
    try:
        with pytest.raises(FormatError, match="read-only"):
            with catalog.write():
                pass
    finally:
        catalog.close()


def test_a_lost_race_is_retried_by_transact_and_refused_by_write(two):
    a, b = two
    ino = make(a, b"f")
    attempts = []

    def chmod_after_b(view):
        attempts.append(view.tree.get(ino).mode)          # the transaction's snapshot starts here
        if len(attempts) == 1:
            with b.write() as other:                       # another mount commits meanwhile
                other.tree.set_attrs(ino, time.time_ns(), mode=0o600)
        return view.tree.set_attrs(ino, time.time_ns(), uid=UID + 1)

    row = a.transact(chmod_after_b)
    assert len(attempts) == 2 and stat.S_IMODE(attempts[1]) == 0o600
    assert (stat.S_IMODE(row.mode), row.uid) == (0o600, UID + 1)
    assert stat.S_IMODE(b.inode(ino).mode) == 0o600 and b.inode(ino).uid == UID + 1

    with pytest.raises(RetryableError, match="serializ"):
        with a.write() as view:
            view.tree.get(ino)
            with b.write() as other:
                other.tree.set_attrs(ino, time.time_ns(), mode=0o640)
            view.tree.set_attrs(ino, time.time_ns(), mode=0o604)
    assert stat.S_IMODE(a.inode(ino).mode) == 0o640


def test_two_writers_creating_one_name_give_one_file_and_eexist(two):
    a, b = two
    errors = []

    def create(catalog):
        try:
            catalog.transact(lambda view: view.tree.make_node(sessions(catalog), b"same", REG, UID, GID,
                                                              time.time_ns()))
        except Exception as exc:        # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    for _ in range(5):
        threads = [threading.Thread(target=create, args=(c,)) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert len(errors) == 1 and getattr(errors[0], "errno", None) == 17, errors
        with a.write() as view:
            view.tree.unlink(sessions(a), b"same", time.time_ns())
        errors.clear()
    with a.reader().snapshot() as view:
        assert view.audit.counter_disagreements() == {}


def test_reserved_id_ranges_never_overlap_between_writers(two):
    a, b = two
    ranges = []
    lock = threading.Lock()

    def reserve(catalog):
        for n in (1, 7, 100):
            first = catalog.reader().content.reserve_ids("chunk", n)
            with lock:
                ranges.append(range(first, first + n))

    threads = [threading.Thread(target=reserve, args=(c,)) for c in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    ids = [i for r in ranges for i in r]
    assert len(ids) == len(set(ids)) == 4 * 108 and min(ids) >= 1
    with pytest.raises(ValueError):
        a.reader().content.reserve_ids("inode", 1)


def test_other_writers_commits_are_heard_and_own_ones_are_not(two):
    a, b = two
    heard = queue.Queue()
    listener = b.listen(heard.put)
    assert listener.listening.wait(WAIT)
    ino = make(a, b"new")
    changes = heard.get(timeout=WAIT)
    assert ino in changes.inodes and sessions(a) in changes.inodes
    assert changes.entries == {(sessions(a), b"new")}          # the name other kernels may cache
    make(b, b"own")                                    # b's own commit: its hooks heard it
    with a.write() as view:
        view.tree.set_attrs(ino, time.time_ns(), mode=0o600)
    assert heard.get(timeout=WAIT).inodes == {ino}
    with a.write() as view:                            # too many to name: "forget everything"
        for i in range(2500):
            view.tree.make_node(sessions(a), b"n%d" % i, REG, UID, GID, time.time_ns())
    assert heard.get(timeout=WAIT).everything
    assert heard.empty()


def test_the_pool_never_opens_more_than_its_size(pg_url):
    catalog = new_postgres_catalog(pg_url, pool_size=2)
    catalog.pool.timeout = 2
    stop = threading.Event()
    seen, failures = [], []

    def read():
        while not stop.is_set():
            try:
                catalog.reader().tree.count_inodes()
            except Exception as exc:    # noqa: BLE001 - collected for the assertion
                failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        for _ in range(50):
            seen.append(watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND application_name = 'sessionfs'").fetchone()[0])
    stop.set()
    for t in threads:
        t.join(WAIT)
    assert not failures and max(seen) <= 2 and catalog.open_connections() <= 2
    entered, release = threading.Barrier(3), threading.Event()

    def hold():
        with catalog.reader().snapshot():
            entered.wait(WAIT)
            release.wait(WAIT)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    entered.wait(WAIT)                                 # both connections pinned by snapshots
    with pytest.raises(CatalogError, match="no free catalog connection"):
        catalog.reader().tree.count_inodes()           # waits for one, never opens a third
    release.set()
    for t in holders:
        t.join(WAIT)
    assert catalog.reader().tree.count_inodes() >= 2 and catalog.open_connections() <= 2
    catalog.close()


def test_a_server_restart_mid_commit_fails_that_commit_whole_and_everything_works_after(postgres, pg_url):
    a = new_postgres_catalog(pg_url)
    b = PostgresCatalog(pg_url)
    try:
        heard = queue.Queue()
        assert b.listen(heard.put).listening.wait(WAIT)
        s = sessions(a)
        kept = make(a, b"kept")
        assert kept in heard.get(timeout=WAIT).inodes
        assert a.reader().tree.count_inodes() == 3     # leaves an idle reader connection in the pool
        with pytest.raises(CatalogError) as caught:
            with a.write() as view:
                view.tree.make_node(s, b"lost", REG, UID, GID, time.time_ns())
                postgres.restart("immediate")
                view.tree.make_node(s, b"lost too", REG, UID, GID, time.time_ns())
        assert caught.value.errno == errno.EIO and not isinstance(caught.value, RetryableError)
        assert a.lookup(s, b"lost") is None and a.lookup(s, b"kept") == kept
        after = make(a, b"after")
        assert b.reader().tree.names_of(after) == [(s, b"after")]
        while heard.get(timeout=WAIT) is not None:     # b's listener came back: it may have missed some
            pass
        again = make(a, b"again")
        while again not in heard.get(timeout=WAIT).inodes:
            pass
    finally:
        b.close()
        a.close()


@pytest.fixture
def tiny_tablespace(postgres, pg_url, tmp_path_factory):
    """A tablespace on a 1 MiB tmpfs (the server's disk filling up), dropped afterwards."""
    top = tmp_path_factory.mktemp("tiny")
    mount_point = postgres.datadir.parent / f"tiny-{top.name}"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        shutil.chown(mount_point, "postgres", "postgres")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE tiny LOCATION '{mount_point}'")
        yield "tiny"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE dictionaries SET TABLESPACE pg_default")
            conn.execute("DROP TABLESPACE tiny")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_is_enospc_names_the_operation_and_keeps_what_was_there(pg_url, tiny_tablespace):
    catalog = new_postgres_catalog(pg_url)
    try:
        with catalog.write() as view:
            view.maintenance.add_dictionary(1, b"first", 16, 5, 20)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE dictionaries SET TABLESPACE {tiny_tablespace}")
        with pytest.raises(CatalogError) as caught:
            with catalog.write() as view:
                view.maintenance.add_dictionary(2, os.urandom(4 << 20), 16, 4 << 20, 40)
        assert caught.value.errno == errno.ENOSPC and "add dictionary" in str(caught.value)
        assert isinstance(caught.value.__cause__, psycopg.Error)
        assert catalog.reader().maintenance.latest_dictionary() == (1, 16, 5, 20)
        assert catalog.lookup(sessions(catalog), b"after") is None
        make(catalog, b"after")                            # the catalog works on
    finally:
        catalog.close()


def test_a_write_inside_a_write_is_refused_and_the_outer_one_goes_on(pg_url):
    catalog = new_postgres_catalog(pg_url)
    try:
        with catalog.write() as view:
            view.tree.make_node(sessions(catalog), b"outer", REG, UID, GID, time.time_ns())
            with pytest.raises(CatalogError, match="open already"):
                with catalog.write():
                    pass
        assert catalog.lookup(sessions(catalog), b"outer") is not None
    finally:
        catalog.close()


def test_a_checkpoint_folds_the_counter_rows_and_keeps_every_total(pg_url, monkeypatch):
    from store.backends.catalog.postgres import counters
    catalog = new_postgres_catalog(pg_url)
    try:
        for i in range(20):
            make(catalog, b"f%d" % i)
        before = catalog.reader().meta.totals()

        def rows() -> int:
            with psycopg.connect(pg_url) as conn:
                return conn.execute("SELECT count(*) FROM counter_deltas").fetchone()[0]

        piled = rows()
        monkeypatch.setattr(counters, "FOLD_AFTER", piled)
        catalog.checkpoint()
        assert rows() < piled and catalog.reader().meta.totals() == before
        with catalog.reader().snapshot() as view:
            assert view.audit.counter_disagreements() == {}
    finally:
        catalog.close()


def test_a_url_password_never_appears_in_a_message(postgres, pg_url):
    url = f"postgresql://{postgres.user}:s3cret@127.0.0.1:{postgres.port}/no_such_database?password=s3cret"
    for call in (lambda: PostgresCatalog(url), lambda: PostgresCatalog.identity(url),
                 lambda: PostgresCatalog.initialize(url, "ab" * 16, "local")):
        with pytest.raises(CatalogError) as caught:
            call()
        assert "no_such_database" in str(caught.value) and "s3cret" not in str(caught.value), caught.value
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE unrelated (x int)")
    with pytest.raises(ConflictError, match="is not empty"):
        PostgresCatalog.initialize(pg_url, "ab" * 16, "local")


def test_an_exclusive_lock_is_held_by_one_catalog_at_a_time_and_freed_with_its_connection(two, pg_url):
    a, b = two
    assert a.try_exclusive("maintenance") and not b.try_exclusive("maintenance")
    assert b.try_exclusive("other"), "locks of other names are independent"
    assert a.try_exclusive("maintenance"), "a second holder in one process is counted"
    a.release_exclusive("maintenance")
    assert not b.try_exclusive("maintenance"), "released by one of two holders: still held"
    a.release_exclusive("maintenance")
    assert b.try_exclusive("maintenance") and not a.try_exclusive("maintenance")
    c = PostgresCatalog(pg_url)
    try:
        assert not c.try_exclusive("maintenance")
        b.close()                                     # as if b's process died: the server frees it
        deadline = time.monotonic() + 30              # once b's server process has ended
        while not c.try_exclusive("maintenance"):
            assert time.monotonic() < deadline, "the lock of a closed connection was never freed"
            time.sleep(0.05)
    finally:
        c.close()
