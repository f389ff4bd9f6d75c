"""The catalog: inodes and entries, chunk lists, block locations and refcounts, sessions,
the search index. ``sqlite`` is the local implementation; ``attr_cache`` is the in-memory
cache of inode attributes it keeps in step from its triggers.

May import ``store.core`` and ``store.backends.objects``.
"""
