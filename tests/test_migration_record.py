"""The migration record's catalog operations (``store.backends.catalog.migration``): the
contracts the importer relies on, checked on a real catalog."""

from __future__ import annotations

import pytest

from store import Store
from store.backends.catalog.migration import AttachmentRecord
from store.core.errors import ConflictError


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "store", create=True) as s:
        with s.catalog.write() as txn:
            txn.migration.ensure_tables()
        yield s


def imported(txn, source: str, session_id: str, *attachments: AttachmentRecord) -> None:
    txn.migration.record_imported(source, session_id, "a" * 64, 10, 1, "d" * 64, attachments)


def test_a_catalog_without_the_tables_has_no_records(tmp_path):
    with Store.open(tmp_path / "store", create=True) as s:
        assert s.catalog.reader().migration.records() == []


def test_a_second_source_for_an_active_session_is_a_conflict_and_changes_nothing(store):
    with store.catalog.write() as txn:
        imported(txn, "/legacy/a.json", "s1", AttachmentRecord("x.png", "/legacy/attachments/x.png", "b" * 64, 3))
    with pytest.raises(ConflictError, match="session s1 is already imported from another file"):
        with store.catalog.write() as txn:
            imported(txn, "/copy/a.json", "s1")
    view = store.catalog.reader().migration
    assert [(r.source, r.status) for r in view.records()] == [("/legacy/a.json", "imported")]
    assert view.active_record_of("s1").source == "/legacy/a.json"
    assert view.attachment_users() == {"/legacy/attachments/x.png": {view.records()[0].id}}
    assert view.attachment_names_from("/legacy/attachments/") == {"x.png"}
    assert view.attachment_names_from("/other/") == set()


def test_a_failure_never_replaces_an_active_record(store):
    with store.catalog.write() as txn:
        imported(txn, "/legacy/a.json", "s1")
        txn.migration.record_failed("/legacy/a.json", "s1", "c" * 64, 11, 2, "parse", "broken")
        txn.migration.record_failed("/legacy/b.json", None, None, 5, 3, "parse", "broken")
        txn.migration.record_failed("/legacy/b.json", None, None, 6, 4, "read", "unreadable")
    records = {r.source: r for r in store.catalog.reader().migration.records()}
    assert (records["/legacy/a.json"].status, records["/legacy/a.json"].sha256) == ("imported", "a" * 64)
    assert (records["/legacy/b.json"].status, records["/legacy/b.json"].stage) == ("failed", "read")


def test_verify_fail_and_finalize_move_the_record_along(store):
    with store.catalog.write() as txn:
        imported(txn, "/legacy/a.json", "s1", AttachmentRecord("x.png", "/legacy/attachments/x.png", "b" * 64, 3))
        imported(txn, "/legacy/b.json", "s2")
        txn.migration.mark_verified(["/legacy/a.json"])
        txn.migration.mark_verification_failed("/legacy/b.json", "digest differs")
    view = store.catalog.reader().migration
    a, b = view.records()
    assert a.status == "verified" and a.verified_at is not None
    assert (b.status, b.stage, b.reason, b.imported_at) == ("failed", "verify", "digest differs", None)
    assert view.active_record_of("s2") is None
    with store.catalog.write() as txn:
        txn.migration.mark_finalized([a.id])
    first = store.catalog.reader().migration.records()[0].finalized_at
    with store.catalog.write() as txn:
        txn.migration.mark_finalized([a.id])
    again = store.catalog.reader().migration.records()[0]
    assert again.status == "finalized" and again.finalized_at == first
    assert [x.name for x in store.catalog.reader().migration.attachments(a.id)] == ["x.png"]
