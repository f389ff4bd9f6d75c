"""PostgreSQL for the tests: one private cluster per test session, a fresh database per test.

Import the fixtures into a test module (``from pg_server import postgres, pg_url``). The
cluster is Debian's postgresql-15 (the README's set-up line installs it), on a free loopback
port, stopped at the end of the session.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import pytest

from contrib.scaleout.postgres import Postgres, start_postgres

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """Its data directory is not under pytest's tmp tree: pytest makes that 0700 (and resets it
    at every start), and the server runs as the postgres user, which must reach it."""
    base = Path(tempfile.mkdtemp(prefix="sessionfs-pg-"))
    base.chmod(0o755)
    pg = start_postgres(base / "data")
    try:
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres) -> str:
    """The URL of a new, empty database on the session's cluster."""
    return postgres.create_database(f"t{next(_names)}")
