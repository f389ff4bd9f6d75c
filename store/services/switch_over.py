"""Switch-overs shared by gc's compaction and recompression (persistence worker only).

New copies of blocks are appended to the write pack and made durable, then one catalog
transaction points at them; after it commits, racing reads retry, stale cache entries go
and emptied packs are deleted. ``_hook`` marks each step (crash tests SIGKILL there).
"""

from __future__ import annotations

from store.engine.ingest import append_frame


def _hook(point: str) -> None:
    """Crash-test hook (tests replace it to SIGKILL at a chosen step); does nothing."""


class Appender:
    """New copies of blocks for one switch-over: appended to the write pack, fsynced, then
    recorded in the catalog transaction that points at them; ``undo`` cuts them away when
    anything fails before that commit (the catalog never saw them)."""

    def __init__(self, store):
        self.store = store
        self.before = store.mark_appends()
        self.new_packs: list[int] = []
        self.pack_ends: dict[int, int] = {}
        self.bytes = 0

    def new_block_id(self) -> int:
        return self.store.ids.take("block")

    def append(self, framed: bytes) -> tuple[int, int]:
        pid, off, created = append_frame(self.store.packs, self.store.ids, framed)
        if created:
            self.new_packs.append(pid)
        self.pack_ends[pid] = off + len(framed)
        self.bytes += len(framed)
        return pid, off

    def sync(self) -> None:
        _hook("appended")
        self.store.packs.prepare_commit()
        _hook("synced")

    def record(self, txn) -> None:
        """Inside the switch-over transaction: the new packs and their committed sizes."""
        self.store.record_packs(txn, self.new_packs, self.pack_ends)

    def undo(self) -> None:
        self.store.rollback_appends(self.before, self.new_packs)


def drop_empty_packs(store, txn, pack_ids=None) -> list[int]:
    """Inside a switch-over transaction: delete the rows of packs left without blocks (all of
    them, or those of ``pack_ids``) but the write pack (it fills up and is compacted later);
    their objects go after the commit (``after_commit``)."""
    return txn.maintenance.drop_empty_packs(pack_ids, keep=store.packs.write_position[0])


def after_commit(store, dropped_blocks, deleted_packs) -> None:
    """After a switch-over commit: racing reads retry, stale cache entries go, old packs go."""
    if dropped_blocks or deleted_packs:
        store.maintenance_epoch += 1          # before files go: racing reads retry
    for bid in dropped_blocks:
        store.cache.discard(bid)
    _hook("committed")
    store.packs.committed()                   # sealed packs into the object store
    for pid in deleted_packs:
        store.packs.delete(pid)
    _hook("deleted")
