"""Rows and sentinels every catalog implementation shares with its callers.

The catalog's typed operations (``tree``, ``content``, ``meta``) take and return these;
their fields are the columns ``sqlite.schema`` documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Inode of the mount root (a directory); created with the catalog.
ROOT_INO = 1
#: Block id of lost chunks (see ``lost_found``): real block ids start at 1.
LOST_BLOCK = 0
#: Prefix making a lost chunk's hash 33 bytes long (no SHA-256 can equal it).
LOST_HASH_PREFIX = b"\x00"


@dataclass(slots=True)
class InodeRow:
    """One inode as stat(2) shows it, plus the sequence of the last staged write applied."""
    id: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    content_seq: int
    target: bytes | None

    def values(self) -> tuple:
        """The fields in order (``InodeRow(*row.values())`` is a copy)."""
        return (self.id, self.mode, self.nlink, self.uid, self.gid, self.rdev, self.size, self.atime_ns,
                self.mtime_ns, self.ctime_ns, self.content_seq, self.target)


@dataclass(slots=True, frozen=True)
class BlockRow:
    """One framed block in a pack."""
    id: int
    pack_id: int
    offset: int
    length: int
    raw_length: int
    codec: int
    dict_id: int


@dataclass(slots=True, frozen=True)
class ChunkLocation:
    """Where one chunk reference of a file lives: the chunk and its place in a block;
    ``block``: that block's row when the read that found the chunk joined it (``locations``)."""
    off: int          # offset of the chunk in the file
    length: int
    chunk_id: int
    hash: bytes
    block_id: int
    block_off: int
    block: BlockRow | None = field(default=None, compare=False)


@dataclass(slots=True, frozen=True)
class ChunkInBlock:
    """A chunk stored in a block: its id, SHA-256 and byte range in the decoded block."""
    id: int
    hash: bytes
    block_off: int
    length: int


@dataclass(slots=True, frozen=True)
class Changes:
    """What one write transaction changed, as the attribute cache needs it: the inodes whose
    rows changed, the files whose chunk lists changed, and ``everything`` when a chunk's
    length changed or a chunk went away (any file's byte count may have changed).
    ``entries``: the names (parent, name) created or removed (the engine's directory cache
    forgets them; other mounts of a shared catalog drop them from their kernels' caches)."""
    inodes: frozenset[int] = field(default_factory=frozenset)
    contents: frozenset[int] = field(default_factory=frozenset)
    everything: bool = False
    entries: frozenset[tuple[int, bytes]] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.inodes or self.contents or self.everything or self.entries)
