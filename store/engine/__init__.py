"""The engine: ``store.Store`` (open, lock, recovery, the read path and the commit path),
the overlays of files being written, the persistence worker, the block cache and the
memory governor.

May import ``store.core`` and ``store.backends``; never the services or the front ends
(work they add, such as background maintenance, is passed in as a callable).
"""
