"""A store whose catalog is PostgreSQL (and objects S3), opened through the engine's
back-end opener as ``sessionfs init`` and ``mount`` do: files round-trip, a second STORE
directory joins and reads them, verify finds nothing wrong."""

from __future__ import annotations

import pytest

from catalogs import pg_url, postgres  # noqa: F401 - fixtures
from s3_server import s3_url, seaweed  # noqa: F401 - fixtures
from store import Store
from store.core.config import StoreConfig
from store.services.search import search
from store.services.verify import verify


@pytest.fixture
def shared(seaweed, s3_url, pg_url, monkeypatch):
    for key, value in seaweed.env.items():
        if key.startswith("AWS_") or key.startswith("SSL_"):
            monkeypatch.setenv(key, value)
    return StoreConfig(objects=s3_url, catalog=pg_url)


def test_a_store_on_postgres_round_trips_and_a_second_directory_joins_it(tmp_path, shared):
    Store.init(tmp_path / "a", config=shared)
    files = {f"sessions/s{i}/metadata.json": b'{"id": "s%d", "name": "n%d", "tags": ["t%d"]}' % (i, i, i % 2)
             for i in range(5)}
    with Store.open(tmp_path / "a") as a:
        a.write_files(files)
        a.flush()
        assert all(a.read_path(p) == data for p, data in files.items())
    with Store.open(tmp_path / "a") as a:
        assert all(a.read_path(p) == data for p, data in files.items())
        assert {r.session_id for r in search(a, "n3")} == {"s3"}
        assert {r.session_id for r in search(a, None, tags=["t1"])} == {"s1", "s3"}
        report = verify(a, data=True)
        assert report.ok and not report.problems, report.problems
        assert report.counts["sessions"] == 5
    Store.init(tmp_path / "b", config=shared)
    with Store.open(tmp_path / "b") as b:
        assert all(b.read_path(p) == data for p, data in files.items())
        assert sorted(b.list_dir("sessions")) == [f"s{i}" for i in range(5)]
        with Store.open(tmp_path / "a") as a:            # two mounts at once: b reads what a commits
            a.write_files({"sessions/s0/metadata.json": b'{"id": "s0", "name": "renamed"}'})
            a.flush()
            assert b.read_path("sessions/s0/metadata.json") == b'{"id": "s0", "name": "renamed"}'
            assert {r.session_id for r in search(b, "renamed")} == {"s0"}
