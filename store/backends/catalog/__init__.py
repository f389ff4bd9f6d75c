"""The catalog: inodes and entries, chunk lists, block locations and refcounts, sessions,
the search index. ``interface`` defines it (``Catalog``, ``CatalogView``) with one module
per domain of typed operations (``tree``, ``content``, ``meta``, ...) and the shared rows
(``rows``); ``sqlite`` is the local implementation.

May import ``store.core`` and ``store.backends.objects``.
"""
