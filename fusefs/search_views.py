"""The read-only views ``tags/``, ``by-date/`` and ``search/`` at the mount root.

::

    tags/<tag>/<session-id>            -> ../../sessions/<session-id>   newest first
    by-date/<YYYY-MM-DD>/<session-id>  -> ../../sessions/<session-id>   by start time (UTC day)
    search/<any query>/<session-id>    -> ../../sessions/<session-id>   best first

Every listing is computed from the catalog when it is read (``search/<q>/`` runs the
query, at most ``search.LISTING_LIMIT`` sessions); a lookup of any name under
``search/`` makes that query directory on the fly (names starting with "." are not
queries: file managers probe for those). View nodes have 1 s entry and attribute
timeouts, so what the kernel caches is at most a second old. Everything here is
read-only: the mount's handlers refuse writes below a virtual inode with EROFS.

Inode numbers come from a counter in this process, above ``VIEW_BASE``, and are never
reused: one per tag, date and query directory and one symlink per session id (shared
by all the views that list it). A node lives while the kernel holds it (lookups and
readdirplus entries minus ``forget``), so the table stays as small as what is cached.

Called from ``ops.SessionFS`` on the trio loop; every catalog access runs in a worker
thread. Only store errors leave these methods (``fusefs.handler`` turns them into FUSEError).
"""

from __future__ import annotations

import errno
import functools
import stat
import time
from collections import Counter
from dataclasses import dataclass

import pyfuse3

from store.services import views as views_api
from store.core.errors import FsError

from .views import VIEW_BASE, VirtualNode, Views
from .threads import run as _run


TIMEOUT = 1.0                      # entry and attribute timeout of view nodes (s)
LISTING_TTL = 1.0                  # a query listing answers lookups for this long (s)
BASE = VIEW_BASE + 0x100           # inode numbers of this module: BASE + 1.. static, then dynamic
_FIRST_DYNAMIC = BASE + 0x1000
ROOTS = views_api.ROOTS


@dataclass
class _Node:
    ino: int
    kind: str             # tags, dates, queries (the three roots), tag, date, query, link
    key: object           # the tag / date / query text / session id (bytes) of the node
    parent: int

    @property
    def is_dir(self) -> bool:
        return self.kind != "link"

    @property
    def target(self) -> bytes:
        return b"../../sessions/" + self.key






class SearchViews:
    """The three view trees; ``owns(ino)`` says whether an inode is one of theirs."""

    def __init__(self, store, views: Views, root_ino: int):
        self.store = store
        self.root_ino = root_ino
        self._started_ns = time.time_ns()
        self._nodes: dict[int, _Node] = {}
        self._by_key: dict[tuple[str, object], int] = {}
        self._lookups: Counter[int] = Counter()
        self._next = _FIRST_DYNAMIC
        self._listings: dict[int, tuple[float, list[bytes]]] = {}
        for i, (name, kind) in enumerate(ROOTS.items(), 1):
            node = _Node(BASE + i, kind, name, root_ino)
            self._nodes[node.ino] = node
            views.add(VirtualNode(node.ino, name, root_ino, stat.S_IFDIR | 0o555))

    def owns(self, ino: int) -> bool:
        return ino in self._nodes

    # -- nodes -------------------------------------------------------------------------
    def _node(self, ino: int) -> _Node:
        node = self._nodes.get(ino)
        if node is None:
            raise FsError(errno.ENOENT, "view entry no longer exists")
        return node

    def _get(self, kind: str, key, parent: int) -> _Node:
        ino = self._by_key.get((kind, key))
        if ino is None:
            ino = self._next
            self._next += 1
            self._by_key[(kind, key)] = ino
            self._nodes[ino] = _Node(ino, kind, key, parent)
        return self._nodes[ino]

    def _attr(self, node: _Node) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = a.attr_timeout = TIMEOUT
        if node.is_dir:
            a.st_mode, a.st_nlink, a.st_size = stat.S_IFDIR | 0o555, 2, 0
        else:
            a.st_mode, a.st_nlink, a.st_size = stat.S_IFLNK | 0o777, 1, len(node.target)
        a.st_uid, a.st_gid = self.store.owner_uid, self.store.owner_gid
        a.st_blksize = 4096
        a.st_blocks = 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self._started_ns
        return a

    def _handed_out(self, node: _Node) -> pyfuse3.EntryAttributes:
        """Attributes of a node the kernel now holds one more reference to."""
        if node.ino >= _FIRST_DYNAMIC:
            self._lookups[node.ino] += 1
        return self._attr(node)

    def forget(self, ino: int, n: int) -> None:
        if ino < _FIRST_DYNAMIC:
            return
        self._lookups[ino] -= n
        if self._lookups[ino] <= 0:
            del self._lookups[ino]
            node = self._nodes.pop(ino, None)
            self._listings.pop(ino, None)
            if node is not None:
                self._by_key.pop((node.kind, node.key), None)

    # -- catalog queries (worker threads) ------------------------------------------------
    def _children_of(self, node: _Node) -> list[bytes]:
        """Names in a view directory, in listing order."""
        return views_api.listing(self.store, node.kind, node.key)

    def _listing(self, node: _Node, fresh: bool, *, continued: bool = False) -> list[bytes]:
        """The names of a view directory: computed now (``fresh``), or the last listing when it
        is recent, or whatever its age when ``continued`` (a readdir in progress keeps its
        offsets)."""
        cached = self._listings.get(node.ino)
        if not fresh and cached is not None and (continued or time.monotonic() - cached[0] < LISTING_TTL):
            return cached[1]
        names = self._children_of(node)
        self._listings[node.ino] = (time.monotonic(), names)
        return names

    def _exists(self, parent: _Node, name: bytes) -> bool:
        """Whether ``name`` is an entry of the view directory ``parent`` (worker thread)."""
        if parent.kind == "query":      # the last listing answers (globs after a readdir), else run it again
            return views_api.valid_name(name) and (name in self._listing(parent, fresh=False)
                                                  or name in self._listing(parent, fresh=True))
        return views_api.contains(self.store, parent.kind, parent.key, name)

    # -- handlers (trio loop) ----------------------------------------------------------------
    async def lookup(self, parent_ino: int, name: bytes) -> pyfuse3.EntryAttributes:
        parent = self._node(parent_ino)
        if name == b".":
            return self._handed_out(parent)
        if name == b"..":
            if parent.parent == self.root_ino:
                raise FsError(errno.ENOENT)      # answered by the mount for the root
            return self._handed_out(self._node(parent.parent))
        if parent.kind == "queries":
            return self._handed_out(self._get("query", views_api.query_of(name), parent.ino))
        if not await _run(self._exists, parent, name):
            raise FsError(errno.ENOENT)
        text = name.decode("utf-8", "surrogateescape")
        if parent.kind == "tags":
            return self._handed_out(self._get("tag", text, parent.ino))
        if parent.kind == "dates":
            return self._handed_out(self._get("date", text, parent.ino))
        return self._handed_out(self._get("link", name, parent.ino))

    async def getattr(self, ino: int) -> pyfuse3.EntryAttributes:
        return self._attr(self._node(ino))

    def readlink(self, ino: int) -> bytes:
        node = self._node(ino)
        if node.is_dir:
            raise FsError(errno.EINVAL, "not a symbolic link")
        return node.target

    async def opendir(self, ino: int) -> int:
        if not self._node(ino).is_dir:
            raise FsError(errno.ENOTDIR)
        return ino

    async def readdir(self, ino: int, start_id: int, token) -> None:
        node = self._node(ino)
        if node.parent in self._nodes:
            up = self._attr(self._nodes[node.parent])
        else:       # the mount root: the kernel does not use the attributes of ".." entries
            up = self._attr(_Node(node.parent, "tags", b"", node.parent))
            up.st_mode = stat.S_IFDIR | 0o755
        fixed = [(b".", self._attr(node)), (b"..", up)]
        for i, (name, attr) in enumerate(fixed, 1):
            if start_id < i and not pyfuse3.readdir_reply(token, name, attr, i):
                return
        names = await _run(functools.partial(self._listing, node, start_id == 0, continued=start_id > 0))
        kind = views_api.CHILD_KIND[node.kind]
        for i, name in enumerate(names, len(fixed) + 1):
            if i <= start_id:
                continue
            key = name.decode("utf-8", "surrogateescape") if kind != "link" else name
            child = self._get(kind, key, node.ino)
            if not pyfuse3.readdir_reply(token, name, self._attr(child), i):
                if child.ino >= _FIRST_DYNAMIC and not self._lookups.get(child.ino):
                    self.forget(child.ino, 0)        # made for this entry and not handed out
                return
            self._lookups[child.ino] += 1


