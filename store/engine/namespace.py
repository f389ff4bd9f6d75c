"""Namespace operations of ``Store`` (the mount's mkdir, link, unlink, rename, setattr,
xattrs): each one write transaction of the catalog's ``tree`` domain, with the session
index and the search index kept in step in the same transaction."""

from __future__ import annotations

import errno
import logging
import time
from typing import Iterable

from store.backends.catalog.interface import CatalogView
from store.backends.catalog.rows import ROOT_INO, InodeRow
from store.core.session_fields import METADATA_NAME
from store.core.errors import FsError, IntegrityError

log = logging.getLogger("sessionfs.store")


class NamespaceOps:
    """The namespace part of ``Store``."""

    def _namespace(self, op, *, entries: Iterable[tuple[int, bytes]] = (), moved: Iterable[int] = ()):
        """Run ``op(tree, now)`` in a write transaction (again, if it lost a race with another
        mount's) and keep the session index in step."""
        self._check_writable()
        entries, moved = list(entries), list(moved)

        def run(view: CatalogView):
            result = op(view.tree, time.time_ns())
            self._refresh_sessions(view, entries, moved)
            return result
        return self.catalog.transact(run)

    def _refresh_sessions(self, view: CatalogView, entries: Iterable[tuple[int, bytes]], moved: Iterable[int]) -> None:
        """Keep the session rows and the search index in step with changed names: ``entries``
        are the (parent, name) created, removed or replaced, ``moved`` the inodes that gained or
        lost a name. A session's row depends only on its directory's name in sessions/ and on
        its metadata.json, so other names in a session leave it alone (creating a file in a
        session used to re-read and re-parse metadata.json)."""
        entries, moved = list(entries), list(moved)
        dirs = set()
        for parent, name in entries:
            if parent == self.sessions_ino:
                dirs.update(moved)
            elif name == METADATA_NAME and view.tree.has_entry_in(parent, self.sessions_ino):
                dirs.add(parent)
        for d in dirs:
            view.sessions.refresh(d, self.sessions_ino, lambda i: self.read_file_in(view, i))
        self.text_index.namespace_changed(view, entries, moved)

    def read_file_in(self, view: CatalogView, ino: int) -> bytes:
        """The committed bytes of file ``ino`` as transaction ``view`` sees them; a damaged file
        reads as empty (logged), so indexing it never fails the transaction."""
        row = view.tree.get(ino)
        try:
            return self.read_committed(ino, 0, row.size, view)
        except IntegrityError as exc:
            # A damaged metadata.json indexes like an invalid one; it must not make every
            # change in its session directory fail.
            log.error("%s; the session is left out of the index until it is rewritten", exc)
            return b""

    def make_node(self, parent: int, name: bytes, mode: int, uid: int, gid: int, rdev: int = 0,
                  target: bytes | None = None) -> InodeRow:
        return self._namespace(lambda tree, now: tree.make_node(parent, name, mode, uid, gid, now, rdev, target),
                               entries=[(parent, name)])

    def link(self, ino: int, parent: int, name: bytes) -> InodeRow:
        """The new name's inode as it is now: its writes not yet committed included (the
        kernel caches this reply's size; the committed row alone may still say 0)."""
        layers = self._layers(ino)
        row = self._namespace(lambda tree, now: tree.link(ino, parent, name, now),
                              entries=[(parent, name)], moved=[ino])
        return self._overlaid(row, layers)

    def unlink(self, parent: int, name: bytes) -> None:
        row = self._namespace(lambda tree, now: tree.unlink(parent, name, now), entries=[(parent, name)])
        self._maybe_delete(row)

    def rmdir(self, parent: int, name: bytes) -> None:
        ino = self.catalog.lookup(parent, name)
        row = self._namespace(lambda tree, now: tree.rmdir(parent, name, now),
                              entries=[(parent, name)], moved=[ino] if ino else [])
        self._maybe_delete(row)

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int = 0) -> None:
        moved = [i for i in (self.catalog.lookup(old_parent, old_name), self.catalog.lookup(new_parent, new_name))
                 if i]
        replaced = self._namespace(
            lambda tree, now: tree.rename(old_parent, old_name, new_parent, new_name, flags, now),
            entries=[(old_parent, old_name), (new_parent, new_name)], moved=moved)
        if replaced is not None:
            self._maybe_delete(replaced)

    def setattr(self, ino: int, *, mode=None, uid=None, gid=None, atime_ns=None, mtime_ns=None,
                size: int | None = None) -> InodeRow:
        self._check_writable()
        if size is not None:
            self.truncate(ino, size)
            self.seal(ino)
        if mtime_ns is not None:
            # Before the catalog: a queued overlay committing in between must not put back its
            # older mtime (write, close, utimes - as cp -p and rsync -t do).
            with self._ov_lock:
                for ov in self._overlays.get(ino, ()):
                    ov.mtime_ns = mtime_ns
        if any(v is not None for v in (mode, uid, gid, atime_ns, mtime_ns)) or size is not None:
            self.catalog.transact(lambda view: view.tree.set_attrs(
                ino, time.time_ns(), mode=mode, uid=uid, gid=gid, atime_ns=atime_ns, mtime_ns=mtime_ns))
        return self.getattr(ino)

    def pin(self, ino: int, n: int = 1) -> None:
        """The kernel (or another user) holds ``n`` more references to ``ino``."""
        with self._ov_lock:
            self._pins[ino] += n

    def unpin(self, ino: int, n: int = 1) -> None:
        with self._ov_lock:
            self._pins[ino] -= n
            if self._pins[ino] > 0:
                return
            del self._pins[ino]
        row = self.committed_inode(ino)
        if row is not None and row.nlink == 0:
            self._maybe_delete(row)

    def _maybe_delete(self, row: InodeRow) -> None:
        """Remove an inode that lost its last name once nobody holds it."""
        if row.nlink > 0 or row.id == ROOT_INO:
            return
        with self._ov_lock:
            if self._pins.get(row.id):
                return
            layers = self._overlays.pop(row.id, [])
            for ov in layers:       # under the lock: write() pwrites under it, never to a closed fd
                if not ov.sealed:
                    ov.discard()
        self.catalog.transact(lambda view: self.liveness.delete_unheld(view, [row.id], time.time_ns()))

    # -- xattrs ---------------------------------------------------------------
    def getxattr(self, ino: int, name: bytes) -> bytes:
        value = self.catalog.reader().tree.getxattr(ino, name)
        if value is None:
            raise FsError(errno.ENODATA, "no such attribute")
        return value

    def listxattr(self, ino: int) -> list[bytes]:
        return self.catalog.reader().tree.listxattr(ino)

    def may_have_xattr(self, name: bytes) -> bool:
        """False when no inode has an attribute ``name`` (from memory: safe on an event loop).
        A read-only store cannot know: the process that writes may have set it since."""
        return self.readonly or name in self._xattr_names

    def setxattr(self, ino: int, name: bytes, value: bytes, *, create: bool = False, replace: bool = False) -> None:
        self._check_writable()
        self._xattr_names.add(name)      # before the commit: a reader must never miss it
        self.catalog.transact(lambda view: view.tree.setxattr(ino, name, value, time.time_ns(), create=create,
                                                              replace=replace))

    def removexattr(self, ino: int, name: bytes) -> None:
        self._check_writable()
        self.catalog.transact(lambda view: view.tree.removexattr(ino, name, time.time_ns()))

