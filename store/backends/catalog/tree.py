"""The ``tree`` domain of the catalog: inodes, directory entries, extended attributes.

Reads see the view's state (this thread's committed state, or the open transaction's).
The POSIX operations run inside a write transaction and raise ``FsError`` with the errno
a local filesystem would give; they never change file content except by deletion
(content is committed by the engine's commit path through ``content``).

Readdir cookies: every entry has a cookie, an integer that only grows for new entries
(an entry made later has a larger cookie than every entry that exists, in any directory),
and that never changes while the entry exists. A listing that resumes after a cookie
neither skips nor repeats an entry that existed throughout.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from store.core.errors import FsError
from .rows import ROOT_INO, InodeRow

NAME_MAX = 255
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def check_name(name: bytes) -> None:
    """Raise ``FsError`` unless ``name`` can be a directory entry."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise FsError(errno.EINVAL, f"invalid file name {name!r}")
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"name longer than {NAME_MAX} bytes")


class Tree(ABC):
    """The file tree of one catalog view; see the module docstring."""

    # -- reads -------------------------------------------------------------------------
    @abstractmethod
    def inode(self, ino: int) -> InodeRow | None:
        """The inode ``ino``, or None when there is none."""

    def get(self, ino: int) -> InodeRow:
        """The inode ``ino``; ``FsError(ENOENT)`` when there is none."""
        row = self.inode(ino)
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        return row

    @abstractmethod
    def lookup(self, parent: int, name: bytes) -> int | None:
        """The inode named ``name`` in directory ``parent``, or None."""

    @abstractmethod
    def entry(self, parent: int, name: bytes) -> tuple[InodeRow, int] | None:
        """(inode, its bytes that hold data, not holes) of the entry ``name`` in directory
        ``parent``, or None: ``lookup``, ``inode`` and ``Content.data_bytes`` in one read (a
        mount's lookup needs all three; on a shared catalog each is a round trip)."""

    @abstractmethod
    def readdir(self, parent: int, after: int, limit: int) -> list[tuple[int, bytes, InodeRow]]:
        """Up to ``limit`` entries of ``parent`` as (cookie, name, inode), cookies > ``after``,
        in cookie order (``after`` = 0 starts the listing)."""

    def listing(self, parent: int, page: int = 1000) -> Iterator[tuple[bytes, InodeRow]]:
        """Every entry of ``parent`` as (name, inode), in cookie order, read ``page`` entries
        at a time (lazy: an entry added meanwhile may or may not be listed, none is repeated)."""
        after = 0
        while batch := self.readdir(parent, after, page):
            for _, name, row in batch:
                yield name, row
            after = batch[-1][0]

    @abstractmethod
    def named(self, parents: Iterable[int], name: bytes) -> dict[int, InodeRow]:
        """{directory: the inode named ``name`` in it} for those of ``parents`` having one."""

    @abstractmethod
    def names_of(self, ino: int) -> list[tuple[int, bytes]]:
        """Every (parent, name) of ``ino``, oldest entry first."""

    @abstractmethod
    def has_entry_in(self, ino: int, parent: int) -> bool:
        """True when ``ino`` has a name in directory ``parent``."""

    def path_of(self, ino: int) -> str | None:
        """One path of ``ino`` relative to the root ("sessions/x/metadata.json"), or None
        when it has no name (or its names loop)."""
        parts = []
        seen = set()
        while ino != ROOT_INO:
            if ino in seen:
                return None
            seen.add(ino)
            names = self.names_of(ino)
            if not names:
                return None
            ino, name = names[0]
            parts.append(name.decode("utf-8", "surrogateescape"))
        return "/".join(reversed(parts))

    @abstractmethod
    def unlinked_inodes(self) -> list[int]:
        """Inodes without a name (nlink 0) other than the root: after a crash, files that were
        open when their last name went."""

    @abstractmethod
    def count_inodes(self) -> int:
        """How many inodes exist (files, directories, links; ``statfs``'s ``f_files``)."""

    @abstractmethod
    def xattr_names(self) -> set[bytes]:
        """Every extended attribute name any inode has."""

    @abstractmethod
    def getxattr(self, ino: int, name: bytes) -> bytes | None:
        """The value of attribute ``name`` of ``ino``, or None."""

    @abstractmethod
    def listxattr(self, ino: int) -> list[bytes]:
        """The attribute names of ``ino``, sorted."""

    # -- writes (inside a write transaction) ---------------------------------------------
    @abstractmethod
    def create_root(self, uid: int, gid: int, now: int) -> None:
        """Make the root directory ``ROOT_INO`` (mode 0755) of an empty catalog."""

    @abstractmethod
    def make_node(self, parent: int, name: bytes, mode: int, uid: int, gid: int, now: int,
                  rdev: int = 0, target: bytes | None = None) -> InodeRow:
        """Create a file, directory, symlink (``target``) or device node named ``name`` in
        ``parent`` (set-group-id directories pass on their group); returns the new inode."""

    @abstractmethod
    def link(self, ino: int, parent: int, name: bytes, now: int) -> InodeRow:
        """Give the non-directory ``ino`` another name; returns it with its new nlink."""

    @abstractmethod
    def unlink(self, parent: int, name: bytes, now: int) -> InodeRow:
        """Remove a non-directory entry; returns the inode with its new nlink (the inode stays
        until ``delete_inode``)."""

    @abstractmethod
    def rmdir(self, parent: int, name: bytes, now: int) -> InodeRow:
        """Remove an empty directory's entry; returns it with nlink 0."""

    @abstractmethod
    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int,
               now: int) -> InodeRow | None:
        """rename(2)/renameat2(2) (``RENAME_NOREPLACE``, ``RENAME_EXCHANGE``). Returns the inode
        that lost its entry (a replaced target, with its new nlink), if any."""

    @abstractmethod
    def set_attrs(self, ino: int, now: int, *, mode: int | None = None, uid: int | None = None,
                  gid: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                  ctime_ns: int | None = None) -> InodeRow:
        """chmod/chown/utimes: change what is given (``mode``: permission bits only); ctime
        becomes ``ctime_ns`` or ``now``. Returns the new inode."""

    @abstractmethod
    def delete_inode(self, ino: int, now: int) -> None:
        """Remove an inode that has no entries and no users: its attributes, and its chunk
        references (their counts drop; a chunk reaching 0 is unreferenced since ``now``)."""

    @abstractmethod
    def delete_if_unlinked(self, ino: int, now: int) -> bool:
        """``delete_inode`` if ``ino`` exists with nlink 0; True when it did."""

    @abstractmethod
    def setxattr(self, ino: int, name: bytes, value: bytes, now: int, *, create: bool = False,
                 replace: bool = False) -> None:
        """Set an attribute (``create``: EEXIST if it exists; ``replace``: ENODATA if not).
        Setting the value it has changes nothing, not even ctime (as ext4)."""

    @abstractmethod
    def removexattr(self, ino: int, name: bytes, now: int) -> None:
        """Remove an attribute (ENODATA if absent); ctime becomes ``now``."""
