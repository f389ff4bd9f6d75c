"""The engine: ``store.Store`` (open, lock, recovery, the read path and the commit path),
the overlays of files being written, the persistence worker, the block cache, the
memory governor, and the search index's upkeep (``search_upkeep``: indexing inside the
commit transactions; ``search_rebuild``: the background rebuild).

May import ``store.core`` and ``store.backends``; never the services or the front ends
(work they add, such as background maintenance, is passed in as a callable).
"""
