"""A catalog of each implementation, made as ``Store.init`` makes one (a root directory and
``sessions/``), for the tests of the catalog interface: import ``catalog`` (parametrized
over SQLite and PostgreSQL) and ``pg_url``/``postgres`` from here."""

from __future__ import annotations

import os
import secrets
import stat
import time

import pytest

from pg_server import pg_url, postgres  # noqa: F401 - fixtures for the modules importing this one
from store.backends.catalog.postgres.catalog import PostgresCatalog
from store.backends.catalog.rows import ROOT_INO
from store.backends.catalog.sqlite.catalog import SqliteCatalog

SESSIONS = b"sessions"


def make_root(catalog) -> int:
    """The root and ``sessions/`` of a new store in ``catalog``; the inode of ``sessions/``."""
    now = time.time_ns()
    with catalog.write() as view:
        view.tree.create_root(os.getuid(), os.getgid(), now)
        node = view.tree.make_node(ROOT_INO, SESSIONS, stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), now)
        view.meta.put("sessions_ino", node.id)
    return node.id


def new_postgres_catalog(url: str, **kw) -> PostgresCatalog:
    PostgresCatalog.initialize(url, secrets.token_hex(16), "local")
    catalog = PostgresCatalog(url, **kw)
    make_root(catalog)
    return catalog


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request, tmp_path):
    """A new catalog holding an empty store, on each implementation."""
    if request.param == "sqlite":
        SqliteCatalog.initialize(tmp_path / "catalog.db", secrets.token_hex(16))
        made = SqliteCatalog(tmp_path / "catalog.db")
        make_root(made)
    else:
        made = new_postgres_catalog(request.getfixturevalue("pg_url"))
    yield made
    made.close()
