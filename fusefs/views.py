"""Read-only virtual entries of the mount root (``.sessionfs/``), computed on demand.

Virtual inodes live far above any catalog inode number. Each node renders
its content when opened; handles keep that snapshot, so a reader sees one
consistent document however it reads.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import Callable

VIEW_BASE = 1 << 48


@dataclass(frozen=True)
class VirtualNode:
    ino: int
    name: bytes
    parent: int
    mode: int
    render: Callable[[], bytes] | None = None   # files only

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class Views:
    """The table of virtual nodes below the root."""

    def __init__(self, root_ino: int, render_stats: Callable[[], bytes]):
        control = VirtualNode(VIEW_BASE + 1, b".sessionfs", root_ino, stat.S_IFDIR | 0o555)
        stats_file = VirtualNode(VIEW_BASE + 2, b"stats.json", control.ino, stat.S_IFREG | 0o444, render_stats)
        self.nodes = {n.ino: n for n in (control, stats_file)}
        self._children: dict[int, list[VirtualNode]] = {}
        for n in self.nodes.values():
            self._children.setdefault(n.parent, []).append(n)

    def add(self, node: VirtualNode) -> None:
        """Register one more node (views that live in other modules, e.g. ``search_views``)."""
        self.nodes[node.ino] = node
        self._children.setdefault(node.parent, []).append(node)

    def get(self, ino: int) -> VirtualNode | None:
        return self.nodes.get(ino)

    def children(self, ino: int) -> list[VirtualNode]:
        return self._children.get(ino, [])

    def child(self, parent: int, name: bytes) -> VirtualNode | None:
        for n in self._children.get(parent, ()):
            if n.name == name:
                return n
        return None

    @staticmethod
    def is_virtual(ino: int) -> bool:
        return ino >= VIEW_BASE
