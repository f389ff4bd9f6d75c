"""What ``statfs(2)`` reports for a mount: the space of the file system holding the store
(packs and staging live there), and as many inodes as the store holds plus those still free."""

from __future__ import annotations

import os

import pyfuse3

from store import Store
from store.backends.catalog.tree import NAME_MAX


def statvfs(store: Store) -> pyfuse3.StatvfsData:
    """The reply to STATFS (runs on a thread: it counts the store's inodes)."""
    host = os.statvfs(store.root)
    s = pyfuse3.StatvfsData()
    s.f_bsize = host.f_bsize
    s.f_frsize = host.f_frsize
    s.f_blocks = host.f_blocks
    s.f_bfree = host.f_bfree
    s.f_bavail = host.f_bavail
    s.f_files = store.inode_count() + host.f_ffree
    s.f_ffree = host.f_ffree
    s.f_favail = host.f_favail
    s.f_namemax = NAME_MAX
    return s
