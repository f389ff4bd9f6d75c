"""Bringing a store to a consistent state when it is opened for writing.

In order: packs cut back to what the catalog committed (and sealed ones put into the
object store), inodes left without a name by a crash removed, the id counters read, and
the overlays sealed before the last stop (closed files whose commit had not landed)
committed again; unsealed ones (files never closed) are dropped.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import orjson

from .ingest import Counters
from .overlay import MARKER_SUFFIX, Overlay

log = logging.getLogger("sessionfs.store")


def recover(store) -> None:
    """Run every recovery step on ``store`` (open, locked, persistence worker not started)."""
    catalog = store.catalog
    to_seal = store.packs.recover(catalog.reader().content.packs())
    with catalog.write() as view:
        view.content.seal_packs(to_seal)
        now = time.time_ns()
        for ino in view.tree.unlinked_inodes():
            view.tree.delete_inode(ino, now)
    store.packs.committed()                  # sealed packs still local go into the object store
    store.ids = load_ids(store)
    store._seq = max(int(catalog.meta("last_seq") or 0), _max_staged_seq(store.staging))
    _replay_staged(store)


def load_ids(store) -> Counters:
    """The next free block, chunk and pack ids (packs the catalog does not know yet count)."""
    block, chunk, pack = store.catalog.reader().content.max_ids()
    return Counters(block + 1, chunk + 1, max([pack, *store.packs.sizes()]) + 1)


def _max_staged_seq(staging: Path) -> int:
    seqs = [int(n.split(".")[0]) for n in os.listdir(staging) if n.split(".")[0].isdigit()]
    return max(seqs, default=0)


def _replay_staged(store) -> None:
    """Commit overlays sealed before a crash; drop unsealed ones (files never closed)."""
    markers = sorted(n for n in os.listdir(store.staging) if n.endswith(MARKER_SUFFIX))
    sealed = set()
    replay = []
    for name in markers:
        seq = name[: -len(MARKER_SUFFIX)]
        try:
            marker = orjson.loads((store.staging / name).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("ignoring unreadable staged marker %s: %s", name, exc)
            continue
        if marker.get("boot_id") != store._boot:
            log.warning("dropping staged write %s from an earlier boot (un-fsynced, may be torn)", seq)
            continue
        sealed.add(seq)
        replay.append(Overlay.load(store.staging, marker))
    for name in os.listdir(store.staging):
        if name.split(".")[0] not in sealed:
            os.unlink(store.staging / name)
    replay = [ov for ov in replay if _replay_wanted(store, ov)]
    if replay:
        log.info("replaying %d closed files staged before the last stop", len(replay))
        for ov in replay:
            store._overlays.setdefault(ov.ino, []).append(ov)
        for ov in replay:
            store._commit_batch([ov], durable=True)
    for name in os.listdir(store.staging):
        os.unlink(store.staging / name)


def _replay_wanted(store, ov: Overlay) -> bool:
    row = store.catalog.inode(ov.ino)
    if row is None or row.content_seq >= ov.seq or not stat.S_ISREG(row.mode):
        os.close(ov.fd)
        return False
    return True

