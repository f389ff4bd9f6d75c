"""gc on a shared store collects the pack objects a writer put and never committed (it died
between the put and its commit) once they are older than the grace period, and never before."""

from __future__ import annotations

import time

from store.backends.objects.packs import pack_name
from store.engine.store import Store
from store.services.gc import GcOptions, collect


def test_gc_collects_objects_no_commit_names_after_the_grace_period(tmp_path, shared_store):
    root = shared_store.init(tmp_path / "store")
    with Store.open(root, seal_every_commit=True) as store:
        store.write_files({"sessions/kept.txt": b"committed data\n" * 1000})
        store.flush()
        committed = set(store.catalog.reader().content.packs())
        orphan = max(committed) + 1000          # as a dead writer's reserved id would be
        store.packs.objects.put(pack_name(orphan), b"a pack its writer never committed")
        result = collect(store, GcOptions(grace=3600))
        assert result.orphan_objects_deleted == 0
        assert store.packs.objects.size(pack_name(orphan)) is not None, "gc deleted an object within its grace"
        time.sleep(1.5)
        result = collect(store, GcOptions(grace=1))
        assert result.orphan_objects_deleted == 1
        assert store.packs.objects.size(pack_name(orphan)) is None, "gc left an object no commit names"
        assert all(store.packs.objects.size(pack_name(p)) is not None for p in committed)
        assert store.read_path("sessions/kept.txt") == b"committed data\n" * 1000
