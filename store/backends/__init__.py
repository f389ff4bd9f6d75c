"""Backends: where objects and the catalog live.

``objects`` holds the packs of blocks, ``catalog`` the inodes, entries, chunk lists,
block locations, sessions and the search index. May import ``store.core`` only.
"""
