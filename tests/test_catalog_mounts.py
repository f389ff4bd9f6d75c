"""The mounts register of a catalog (``store.backends.catalog.mounts``) on PostgreSQL: an unlinked
inode another live mount may hold is not deletable until that mount scanned after it was noted
without holding it, a lease keeps it, and an expired mount's lease does not. On SQLite (one
writer) every unlinked inode is deletable at once."""

from __future__ import annotations

import os
import secrets
import stat
import time

from catalogs import new_postgres_catalog, pg_url, postgres  # noqa: F401 - fixtures
from store.backends.catalog.rows import ROOT_INO
from store.backends.catalog.sqlite.catalog import SqliteCatalog


def unlinked_file(catalog, name: bytes) -> int:
    now = time.time_ns()
    with catalog.write() as view:
        ino = view.tree.make_node(ROOT_INO, name, stat.S_IFREG | 0o644, os.getuid(), os.getgid(), now).id
    with catalog.write() as view:
        view.tree.unlink(ROOT_INO, name, now)
    return ino


def beat(catalog, writer: str, held: list[int], expiry_s: float = 60) -> None:
    scanned = catalog.reader().mounts.clock()
    with catalog.write() as view:
        view.mounts.beat(writer, expiry_s, scanned, held)


def deletable(catalog, writer: str, inos=None) -> list[int]:
    with catalog.write() as view:
        return view.mounts.deletable(writer, inos)


def test_an_inode_another_live_mount_may_hold_waits_for_its_scan_and_its_lease(pg_url):  # noqa: F811
    catalog = new_postgres_catalog(pg_url)
    try:
        now = catalog.reader().mounts.clock()
        with catalog.write() as view:
            view.mounts.register("a", 60, now)
            view.mounts.register("b", 60, now)
        ino = unlinked_file(catalog, b"f")
        assert deletable(catalog, "a", [ino]) == [], "deleted while B, registered before the unlink, never scanned"
        assert deletable(catalog, "a") == [], "deleted at the sweep that first noted it"
        beat(catalog, "b", [ino])
        assert deletable(catalog, "a") == [], "deleted while B holds a lease on it"
        beat(catalog, "b", [])
        assert deletable(catalog, "a", [ino]) == [ino], "kept after B scanned and let go"
        with catalog.write() as view:
            assert view.tree.delete_if_unlinked(ino, time.time_ns())
        other = unlinked_file(catalog, b"g")
        deletable(catalog, "a")                                     # noted
        beat(catalog, "b", [other], expiry_s=0.5)
        assert deletable(catalog, "a") == []
        time.sleep(1)
        with catalog.write() as view:
            assert view.mounts.expire("a") == ["b"]
        assert deletable(catalog, "a") == [other], "an expired mount's lease kept its inode"
    finally:
        catalog.close()


def test_sqlite_has_one_writer_and_every_unlinked_inode_is_deletable(tmp_path):
    SqliteCatalog.initialize(tmp_path / "catalog.db", secrets.token_hex(16))
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    try:
        with catalog.write() as view:
            view.tree.create_root(os.getuid(), os.getgid(), time.time_ns())
        ino = unlinked_file(catalog, b"f")
        assert deletable(catalog, "local") == [ino]
        assert deletable(catalog, "local", [ino]) == [ino]
    finally:
        catalog.close()
