"""Bringing a store to a consistent state when it is opened for writing.

In order: packs cut back to what the catalog committed (and sealed ones put into the
object store), inodes left without a name by a crash removed (on a shared catalog: this
mount registered first, and only those no other live mount holds: ``liveness``), the id counters read, and
the overlays sealed before the last stop (closed files whose commit had not landed)
committed again; unsealed ones (files never closed) are dropped.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import orjson

from .ids import IdRanges
from .overlay import MARKER_SUFFIX, Overlay

log = logging.getLogger("sessionfs.store")


class Recovery:
    """Part of ``Store``: the recovery steps, run once by a writable open (locked, persistence
    worker not started yet)."""

    def _recover(self) -> None:
        catalog = self.catalog
        to_seal = self.packs.recover(catalog.reader().content.packs())
        with catalog.write() as view:
            view.content.seal_packs(to_seal)
        if self.config.shared:
            self.liveness.start()
        catalog.transact(self.liveness.sweep)
        self.packs.committed()                  # sealed packs still local go into the object store
        self.ids = self._load_ids()
        self._seq = max(int(catalog.meta(self.config.seq_key) or 0), _max_staged_seq(self.staging))
        self._replay_staged()

    def _load_ids(self) -> IdRanges:
        """Ids from catalog ranges, never those of packs left in the working area that the
        catalog does not know yet."""
        return IdRanges(self._reserve_ids, {"pack": max(self.packs.sizes(), default=0) + 1})

    def _reserve_ids(self, kind: str, count: int, floor: int) -> int:
        with self.catalog.write() as view:
            return view.content.reserve_ids(kind, count, floor)

    def _replay_staged(self) -> None:
        """Commit overlays sealed before a crash; drop unsealed ones (files never closed)."""
        markers = sorted(n for n in os.listdir(self.staging) if n.endswith(MARKER_SUFFIX))
        sealed = set()
        replay = []
        for name in markers:
            seq = name[: -len(MARKER_SUFFIX)]
            try:
                marker = orjson.loads((self.staging / name).read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                log.warning("ignoring unreadable staged marker %s: %s", name, exc)
                continue
            if marker.get("boot_id") != self._boot:
                log.warning("dropping staged write %s from an earlier boot (un-fsynced, may be torn)", seq)
                continue
            sealed.add(seq)
            replay.append(Overlay.load(self.staging, marker))
        for name in os.listdir(self.staging):
            if name.split(".")[0] not in sealed:
                os.unlink(self.staging / name)
        replay = [ov for ov in replay if self._replay_wanted(ov)]
        if replay:
            log.info("replaying %d closed files staged before the last stop", len(replay))
            for ov in replay:
                self._overlays.setdefault(ov.ino, []).append(ov)
            for ov in replay:
                self._commit_batch([ov], durable=True)
        for name in os.listdir(self.staging):
            os.unlink(self.staging / name)

    def _replay_wanted(self, ov: Overlay) -> bool:
        row = self.catalog.inode(ov.ino)
        if row is None or row.content_seq >= ov.seq or not stat.S_ISREG(row.mode):
            os.close(ov.fd)
            return False
        return True


def _max_staged_seq(staging: Path) -> int:
    seqs = [int(n.split(".")[0]) for n in os.listdir(staging) if n.split(".")[0].isdigit()]
    return max(seqs, default=0)
