"""What a front end serving a writable store runs beside it, for every front end (the FUSE
mount, the WebDAV server, both from one daemon): the ``import/`` drop directory and its
migrator, the memory governor, the warm-up of sessions' metadata (``store.engine.warmup``)
and the ``.sessionfs/stats.json`` document.

A store has one writer, so one ``Serving`` per open store: the mount daemon that also
serves WebDAV hands the same one to both front ends.
"""

from __future__ import annotations

import os
import time

import orjson

from store.core.legacy import Limits
from store.engine.memory import MemoryGovernor
from store.engine.warmup import Warmup

from .migrate import Migrator


class Serving:
    """The import/ migrator, memory governor, metadata warm-up and live statistics of one
    served store."""

    def __init__(self, store, **where):
        """``where``: how the store is reached (``mountpoint=``, ``webdav=``), shown in stats.json."""
        self.store = store
        self.where = dict(where)
        self.started = time.time()
        memory = store.memory
        limits = Limits()
        if memory is not None:
            limits = Limits(max_file_bytes=memory.import_file_bytes, max_attachment_bytes=memory.import_attachment_bytes)
        self.migrator = Migrator(store, limits=limits)
        self.migrator.ensure_import_dir()
        self.governor = MemoryGovernor(memory, store.cache) if memory is not None else None
        self.warmup = Warmup(store)

    def start(self) -> None:
        """Migrate legacy files dropped into import/ in the background; govern memory; load
        sessions' metadata into memory."""
        self.migrator.start(rescan=True)
        if self.governor is not None:
            self.governor.start()
        self.warmup.start()

    def stop(self) -> None:
        self.warmup.stop()
        self.migrator.stop()
        if self.governor is not None:
            self.governor.stop()

    def stats(self) -> dict:
        """The live statistics document (``.sessionfs/stats.json``)."""
        stats = self.store.statistics().as_dict()
        return {"pid": os.getpid(), "store": str(self.store.root.resolve()), **self.where,
                "started": self.started, **stats, "migration": self.migrator.progress().as_dict(),
                "memory": self.governor.statistics().as_dict() if self.governor else None,
                "warmup": self.warmup.statistics()}

    def stats_json(self) -> bytes:
        """``stats()`` as the bytes of stats.json."""
        return orjson.dumps(self.stats(), option=orjson.OPT_INDENT_2) + b"\n"

    # -- import/ drops: a file written through a front end ----------------------------------
    def file_closed(self, ino: int) -> None:
        """A file written through a front end was closed: queue it if it is an import/ drop."""
        self.migrator.file_closed(ino)

    def entry_renamed(self, parent: int, name: bytes) -> None:
        """A name was renamed to ``parent/name``: queue it if it is an import/ drop."""
        self.migrator.entry_renamed(parent, name)
