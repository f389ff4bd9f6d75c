"""The catalog's register of the mounts sharing it, and their leases on unlinked inodes.

A file open on one mount and unlinked on another must live until the mount holding it lets
go, and a mount that died must not keep anything alive for ever. Each mount (a STORE
directory: its ``writer_id``) registers when it opens the store and sends heartbeats; one
whose last heartbeat is older than the expiry it stated is dead, and its registration and
leases are dropped by whichever mount notices (``expire``).

A lease says "mount W holds unlinked inode N". Holding an inode (the kernel's lookup count)
costs nothing in the catalog: a mount records its leases in its heartbeat (``beat``), on
the inodes that have lost their last name while it held them. So another mount cannot
delete an inode the moment it is unlinked: an unlinked inode is first *noted* (``deletable``
with ``inos=None``, the sweep), and deleted once every other live mount has scanned since
then without taking a lease on it. Every heartbeat's scan is stamped with the catalog's
clock read before the scan's transaction began, so a scan stamped after an inode was noted
saw it unlinked.

Times are nanoseconds of the catalog's clock (``clock``). A catalog that only one process
writes (SQLite: the store's lock file) has no other mounts: registering and beating change
nothing there, and every unlinked inode is deletable at once.
"""

from __future__ import annotations

import abc
from typing import Iterable


class Mounts(abc.ABC):
    """The mounts register over one view (see the module docstring). Writes run inside a
    write transaction; ``clock`` in any view."""

    @abc.abstractmethod
    def clock(self) -> int:
        """The catalog's clock now (ns): a heartbeat's scan stamp, read before its transaction."""

    @abc.abstractmethod
    def register(self, writer: str, expiry_s: float, now: int) -> None:
        """Register ``writer`` (its last heartbeat and scan at ``now``, from ``clock``), promising
        a heartbeat every ``expiry_s`` seconds at most; the leases of its earlier life (a crash:
        a STORE directory is open in one process at a time) are dropped."""

    @abc.abstractmethod
    def deregister(self, writer: str) -> None:
        """Remove ``writer`` and its leases (a clean stop)."""

    @abc.abstractmethod
    def beat(self, writer: str, expiry_s: float, scanned: int, held: Iterable[int]) -> bool:
        """A heartbeat of ``writer``: its leases become ``held`` (the unlinked inodes it holds,
        read in this transaction), its scan stamp ``scanned``. False when it had been expired
        (registered again now: what it held may be gone already)."""

    @abc.abstractmethod
    def expire(self, writer: str) -> list[str]:
        """Drop the mounts other than ``writer`` whose heartbeat is older than their expiry,
        and their leases; their writer ids."""

    @abc.abstractmethod
    def deletable(self, writer: str, inos: Iterable[int] | None) -> list[int]:
        """Of the unlinked inodes among ``inos``, those no other live mount may hold (the
        caller deletes them unless it holds one itself). ``inos=None``: every unlinked inode,
        and those seen for the first time are noted as of now; only a transaction that
        unlinks nothing may note (a note must come after the unlink's commit)."""
