"""pyfuse3 operations: each handler translates one request into store calls.

Thin by design: every catalog, hashing or disk operation runs in a worker
thread (``threads.run``) so the event loop never blocks, and
``_handler`` turns every failure into a ``FUSEError`` (anything else would
kill the mount): store errors keep their errno, integrity errors are EIO, and
an unexpected exception is logged with its traceback and answered with EIO.

Kernel references: every reply that hands the kernel an inode (lookup,
create, mkdir, mknod, symlink, link, readdirplus entries) pins it in the
store; ``forget`` unpins. An unlinked file stays readable while pinned.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import time
from dataclasses import dataclass

import pyfuse3

from store import Store
from store.engine.dir_cache import ABSENT
from store.backends.catalog.rows import ROOT_INO, InodeRow
from store.core.errors import FsError
from store.backends.catalog.tree import NAME_MAX
from store.services.serving import Serving

from .search_views import SearchViews
from .handler import handler as _handler
from .statfs import statvfs
from .threads import run as _run
from .views import VirtualNode, Views


CACHE_TIMEOUT = 60.0       # seconds the kernel keeps names and attributes (one writer: exact)
#: A store shared with other mounts: their commits invalidate this kernel's caches as they are
#: notified; these bound how stale a cached name or attribute can be if a notification is lost.
SHARED_TIMEOUT = 1.0
DIR_OFFSET = 1000          # readdir offsets below this are ".", ".." and virtual entries
XATTR_SHA256 = b"user.sessionfs.sha256"


def _clamp_ns(ns: int) -> int:
    """Timestamps are stored as 64-bit nanoseconds (1677..2262); like ext4 at its own limits,
    a time beyond the range is clamped to it, not refused."""
    return max(-(1 << 63), min((1 << 63) - 1, ns))


@dataclass
class Handle:
    ino: int
    writable: bool
    snapshot: bytes | None = None   # virtual files: the content rendered at open
    wrote: bool = False             # created, truncated or written through this handle


class SessionFS(pyfuse3.Operations):
    """The mount: ``sessions/`` from the store, plus read-only views at the root."""

    enable_writeback_cache = False

    def __init__(self, store: Store, serving: Serving):
        super().__init__()
        self.store = store
        self.entry_timeout = self.attr_timeout = SHARED_TIMEOUT if store.config.shared else CACHE_TIMEOUT
        self.serving = serving    # import/ drops and stats.json, shared with a WebDAV server of the daemon
        self.views = Views(ROOT_INO, serving.stats_json)
        self.search_views = SearchViews(store, self.views, ROOT_INO)     # tags/, by-date/, search/
        self._handles: dict[int, Handle] = {}
        self._fh = itertools.count(1)
        self._rendered_size: dict[int, int] = {}
        self._started_ns = time.time_ns()

    # -- attributes --------------------------------------------------------
    def _entry(self, row: InodeRow, stored: int | None = None) -> pyfuse3.EntryAttributes:
        """Attributes of ``row``; ``stored``: its bytes that are data, not holes (looked up if None)."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = row.id
        a.generation = 0
        a.entry_timeout = self.entry_timeout
        a.attr_timeout = self.attr_timeout
        a.st_mode = row.mode
        a.st_nlink = row.nlink
        a.st_uid = row.uid
        a.st_gid = row.gid
        a.st_rdev = row.rdev
        a.st_size = row.size
        a.st_blksize = 128 * 1024
        if stat.S_ISREG(row.mode) and row.size:
            if stored is None:
                stored = self.store.stored_bytes([row.id])[row.id]
            a.st_blocks = (min(row.size, stored) + 511) // 512    # a sparse file takes what it holds
        else:
            a.st_blocks = (row.size + 511) // 512
        a.st_atime_ns = row.atime_ns
        a.st_mtime_ns = row.mtime_ns
        a.st_ctime_ns = row.ctime_ns
        return a

    def _virtual_entry(self, node: VirtualNode) -> pyfuse3.EntryAttributes:
        """Attributes of a view node; the size is that of its last rendering (reads use direct I/O)."""
        size = self._rendered_size.get(node.ino, 0)
        row = InodeRow(node.ino, node.mode, 2 if node.is_dir else 1, self.store.owner_uid, self.store.owner_gid,
                       0, size, self._started_ns, self._started_ns, self._started_ns, 0, None)
        a = self._entry(row, size)
        a.entry_timeout = a.attr_timeout = 1.0
        return a

    def _pinned(self, row: InodeRow) -> pyfuse3.EntryAttributes:
        """Pin ``row`` for the kernel and return its attributes. May query the catalog (for
        st_blocks of a non-empty file): call it on the event loop only for new, empty inodes."""
        self.store.pin(row.id)
        return self._entry(row)

    def _check_root_write(self, parent: int) -> None:
        """Only sessions/ lives at the root: nothing else may be created there."""
        if parent == ROOT_INO:
            raise FsError(errno.EPERM, "only sessions/ and the read-only views live at the mount root")
        if Views.is_virtual(parent):
            raise FsError(errno.EROFS, "the views are read-only")

    # -- lookups -----------------------------------------------------------
    @_handler
    async def lookup(self, parent_inode, name, ctx):
        if self.search_views.owns(parent_inode):
            return await self.search_views.lookup(parent_inode, name)
        node = self.views.child(parent_inode, name)
        if node is not None:
            return self._virtual_entry(node)
        if Views.is_virtual(parent_inode):
            if name == b".":
                return self._virtual_entry(self.views.get(parent_inode))
            if name == b"..":
                return await self.getattr(self.views.get(parent_inode).parent, ctx)
            raise FsError(errno.ENOENT)
        if len(name) > NAME_MAX:
            raise FsError(errno.ENAMETOOLONG)
        entry = self._cached_lookup(parent_inode, name)
        if entry is not None:
            return entry
        return await _run(self._lookup_pin, parent_inode, name)

    def _cached_lookup(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes | None:
        """A lookup answered from the store's memory (no thread hop), its inode pinned; None when
        not all of it is cached."""
        if name in (b".", b".."):
            return None
        ino = self.store.cached_entry(parent, name)
        if ino == ABSENT:
            return self._negative_entry()
        entry = None if ino is None else self._cached_entry(ino)
        if entry is not None:
            self.store.pin(ino)
        return entry

    def _lookup_pin(self, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        if name == b".":
            row = self.store.getattr(parent)
        elif name == b"..":
            names = self.store.catalog.names_of(parent)
            row = self.store.getattr(names[0][0] if names else ROOT_INO)
        else:
            try:
                row = self.store.lookup(parent, name)
            except FsError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                return self._negative_entry()
        return self._pinned(row)

    def _negative_entry(self) -> pyfuse3.EntryAttributes:
        """"No such name", which the kernel caches like ext4's negative dentries: a repeated
        lookup of a missing name (shells, editors, imports probing paths) costs no request. Names
        created behind the kernel (session API, importer) are invalidated by the daemon's
        entry listener; names created through the kernel replace the entry themselves."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = 0
        a.entry_timeout = self.entry_timeout
        return a

    async def forget(self, inode_list):
        """Never raises: the kernel takes no reply, and an error here would end the session
        loop. One inode failing (logged by the handler) leaves the others forgotten; an
        unlinked inode left behind is deleted by the next recovery."""
        for ino, n in inode_list:
            try:
                await self._forget_one(ino, n)
            except pyfuse3.FUSEError:
                pass

    @_handler
    async def _forget_one(self, ino: int, n: int) -> None:
        if self.search_views.owns(ino):
            self.search_views.forget(ino, n)
        elif not Views.is_virtual(ino):
            await _run(self.store.unpin, ino, n)

    @_handler
    async def getattr(self, inode, ctx=None):
        if self.search_views.owns(inode):
            return await self.search_views.getattr(inode)
        node = self.views.get(inode)
        if node is not None:
            return self._virtual_entry(node)
        entry = self._cached_entry(inode)
        if entry is not None:
            return entry
        return await _run(lambda: self._entry(self.store.getattr(inode)))

    def _cached_entry(self, ino: int) -> pyfuse3.EntryAttributes | None:
        """Attributes from the store's memory (no thread hop); None when not all of it is cached."""
        row = self.store.cached_getattr(ino)
        if row is None:
            return None
        stored = None
        if stat.S_ISREG(row.mode) and row.size:
            stored = self.store.cached_stored_bytes(ino)
            if stored is None:
                return None
        return self._entry(row, stored)

    @_handler
    async def setattr(self, inode, attr, fields, fh, ctx):
        if Views.is_virtual(inode):
            raise FsError(errno.EROFS)
        kw = {}
        if fields.update_mode:
            kw["mode"] = attr.st_mode
        if fields.update_uid:
            kw["uid"] = attr.st_uid
        if fields.update_gid:
            kw["gid"] = attr.st_gid
        if fields.update_atime:
            kw["atime_ns"] = _clamp_ns(attr.st_atime_ns)
        if fields.update_mtime:
            kw["mtime_ns"] = _clamp_ns(attr.st_mtime_ns)
        if fields.update_size:
            kw["size"] = attr.st_size
            if fh is not None and fh in self._handles:
                self._handles[fh].wrote = True
        if not kw:
            # chown(f, -1, -1) and the like arrive with no field set: like ext4, only ctime changes.
            kw["mode"] = (await _run(self.store.getattr, inode)).mode
        return await _run(lambda: self._entry(self.store.setattr(inode, **kw)))

    @_handler
    async def readlink(self, inode, ctx):
        if self.search_views.owns(inode):
            return self.search_views.readlink(inode)
        return await _run(self.store.readlink, inode)

    # -- directories -------------------------------------------------------
    @_handler
    async def opendir(self, inode, ctx):
        if self.search_views.owns(inode):
            return await self.search_views.opendir(inode)
        node = self.views.get(inode)
        if node is not None and not node.is_dir:
            raise FsError(errno.ENOTDIR)
        if node is None:
            row = self.store.cached_getattr(inode) or await _run(self.store.getattr, inode)
            if not stat.S_ISDIR(row.mode):
                raise FsError(errno.ENOTDIR)
        return inode

    @_handler
    async def readdir(self, fh, start_id, token):
        if self.search_views.owns(fh):
            return await self.search_views.readdir(fh, start_id, token)
        ino = fh
        fixed: list[tuple[bytes, pyfuse3.EntryAttributes]] = [(b".", await self.getattr(ino))]
        parent = self.views.get(ino).parent if Views.is_virtual(ino) else await _run(self._parent_of, ino)
        fixed.append((b"..", await self.getattr(parent)))
        fixed.extend((n.name, self._virtual_entry(n)) for n in self.views.children(ino))
        for i, (name, attr) in enumerate(fixed):
            if i + 1 <= start_id:
                continue
            if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                return
        if Views.is_virtual(ino):
            return
        after = max(0, start_id - DIR_OFFSET)
        while True:
            entries = await _run(self.store.readdir, ino, after, 256)
            if not entries:
                return
            stored = await _run(self.store.stored_bytes, [r.id for _, _, r in entries if stat.S_ISREG(r.mode)])
            for cookie, name, row in entries:
                self.store.pin(row.id)
                attr = self._entry(row, stored.get(row.id, 0))
                if not pyfuse3.readdir_reply(token, name, attr, cookie + DIR_OFFSET):
                    self.store.unpin(row.id)
                    return
                after = cookie

    def _parent_of(self, ino: int) -> int:
        names = self.store.catalog.names_of(ino)
        return names[0][0] if names else ROOT_INO

    @_handler
    async def releasedir(self, fh):
        return None

    @_handler
    async def fsyncdir(self, fh, datasync):
        await _run(self.store.fsync, None)

    @_handler
    async def mkdir(self, parent_inode, name, mode, ctx):
        self._check_root_write(parent_inode)
        row = await _run(self.store.make_node, parent_inode, name, stat.S_IFDIR | (mode & ~ctx.umask & 0o7777),
                         ctx.uid, ctx.gid)
        return self._pinned(row)

    @_handler
    async def rmdir(self, parent_inode, name, ctx):
        self._check_root_write(parent_inode)
        await _run(self.store.rmdir, parent_inode, name)

    # -- names ---------------------------------------------------------------
    @_handler
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        self._check_root_write(parent_inode)
        fmt = stat.S_IFMT(mode) or stat.S_IFREG
        if fmt not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
            raise FsError(errno.EINVAL)
        row = await _run(self.store.make_node, parent_inode, name, fmt | (mode & ~ctx.umask & 0o7777),
                         ctx.uid, ctx.gid, rdev)
        return self._pinned(row)

    @_handler
    async def symlink(self, parent_inode, name, target, ctx):
        self._check_root_write(parent_inode)
        row = await _run(self.store.make_node, parent_inode, name, stat.S_IFLNK | 0o777, ctx.uid, ctx.gid,
                         0, bytes(target))
        return self._pinned(row)

    @_handler
    async def link(self, inode, new_parent_inode, new_name, ctx):
        self._check_root_write(new_parent_inode)
        if Views.is_virtual(inode):
            raise FsError(errno.EROFS)
        return await _run(lambda: self._pinned(self.store.link(inode, new_parent_inode, new_name)))

    @_handler
    async def unlink(self, parent_inode, name, ctx):
        self._check_root_write(parent_inode)
        await _run(self.store.unlink, parent_inode, name)

    @_handler
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        self._check_root_write(parent_inode_old)
        self._check_root_write(parent_inode_new)
        await _run(self.store.rename, parent_inode_old, name_old, parent_inode_new, name_new, flags)
        await _run(self.serving.entry_renamed, parent_inode_new, name_new)

    # -- files -----------------------------------------------------------------
    def _new_handle(self, handle: Handle) -> int:
        fh = next(self._fh)
        self._handles[fh] = handle
        return fh

    @_handler
    async def open(self, inode, flags, ctx):
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        node = self.views.get(inode)
        if node is not None:
            if node.is_dir:
                raise FsError(errno.EISDIR)
            if writable or flags & os.O_TRUNC:
                raise FsError(errno.EROFS)
            snapshot = await _run(node.render)
            self._rendered_size[inode] = len(snapshot)
            return pyfuse3.FileInfo(fh=self._new_handle(Handle(inode, False, snapshot)), direct_io=True)
        row = self.store.cached_getattr(inode) or await _run(self.store.getattr, inode)
        if stat.S_ISDIR(row.mode):
            raise FsError(errno.EISDIR)
        if flags & os.O_TRUNC and stat.S_ISREG(row.mode):
            # libfuse negotiates atomic_o_trunc: the kernel leaves O_TRUNC to us (and has already
            # checked write permission). Like ext4, mtime/ctime change even if the file was empty.
            await _run(self.store.setattr, inode, size=0)
        handle = Handle(inode, writable, wrote=bool(flags & os.O_TRUNC))
        return pyfuse3.FileInfo(fh=self._new_handle(handle), keep_cache=True)

    @_handler
    async def create(self, parent_inode, name, mode, flags, ctx):
        self._check_root_write(parent_inode)
        try:
            row = await _run(self.store.make_node, parent_inode, name, stat.S_IFREG | (mode & ~ctx.umask & 0o7777),
                             ctx.uid, ctx.gid)
        except FsError as exc:
            if exc.errno != errno.EEXIST or flags & os.O_EXCL:
                raise
            # The name appeared behind the kernel's negative entry (another mount, the session
            # API). ESTALE makes the kernel look the name up again and open what is there, as
            # open(2) without O_EXCL does, with its permission checks.
            raise FsError(errno.ESTALE, "the name was created elsewhere meanwhile") from None
        fh = self._new_handle(Handle(row.id, True, wrote=True))
        return pyfuse3.FileInfo(fh=fh, keep_cache=True), self._pinned(row)

    @_handler
    async def read(self, fh, off, size):
        handle = self._handles[fh]
        if handle.snapshot is not None:
            return handle.snapshot[off:off + size]
        data = self.store.cached_read(handle.ino, off, size)
        if data is not None:
            return data
        return await _run(self.store.read, handle.ino, off, size)

    @_handler
    async def write(self, fh, off, buf):
        handle = self._handles[fh]
        if not handle.writable:
            raise FsError(errno.EBADF)
        handle.wrote = True
        return await _run(self.store.write, handle.ino, off, buf)

    @_handler
    async def flush(self, fh):
        """close(2) waits for this: it seals the file's writes, on a thread only if there are any."""
        handle = self._handles.get(fh)
        if handle is not None and handle.writable and self.store.has_unsealed(handle.ino):
            await _run(self.store.seal, handle.ino)

    @_handler
    async def release(self, fh):
        """The last reference to a handle: a file written through it is sealed and may be an
        import/ drop (a thread's work); a handle that changed nothing costs nothing."""
        handle = self._handles.pop(fh, None)
        if handle is not None and handle.writable and (handle.wrote or self.store.has_unsealed(handle.ino)):
            await _run(self._closed, handle.ino)

    def _closed(self, ino: int) -> None:
        """The last reference to a written file is gone: seal it, hand an import/ drop over."""
        self.store.seal(ino)
        self.serving.file_closed(ino)

    @_handler
    async def fsync(self, fh, datasync):
        handle = self._handles[fh]
        if handle.writable or self.store.has_pending(handle.ino):
            await _run(self.store.fsync, handle.ino)

    # -- xattrs ------------------------------------------------------------------
    @_handler
    async def getxattr(self, inode, name, ctx):
        if Views.is_virtual(inode):
            raise FsError(pyfuse3.ENOATTR)
        if name == XATTR_SHA256:
            row = await _run(self.store.getattr, inode)
            if not stat.S_ISREG(row.mode):
                raise FsError(pyfuse3.ENOATTR)
            return (await _run(self.store.content_hash, inode)).encode()
        if not self.store.may_have_xattr(name):
            # The kernel asks for security.capability before every write(2) to a file.
            raise FsError(pyfuse3.ENOATTR)
        return await _run(self.store.getxattr, inode, name)

    @_handler
    async def listxattr(self, inode, ctx):
        if Views.is_virtual(inode):
            return []
        names = await _run(self.store.listxattr, inode)
        row = await _run(self.store.getattr, inode)
        return names + [XATTR_SHA256] if stat.S_ISREG(row.mode) else names

    @_handler
    async def setxattr(self, inode, name, value, ctx):
        if Views.is_virtual(inode):
            raise FsError(errno.EROFS)
        if name == XATTR_SHA256:
            raise FsError(errno.EPERM)
        if not name.startswith((b"user.", b"trusted.", b"security.")):
            raise FsError(errno.ENOTSUP)
        await _run(self.store.setxattr, inode, name, value)

    @_handler
    async def removexattr(self, inode, name, ctx):
        if Views.is_virtual(inode) or name == XATTR_SHA256:
            raise FsError(errno.EPERM)
        await _run(self.store.removexattr, inode, name)

    # -- the filesystem ------------------------------------------------------------
    @_handler
    async def statfs(self, ctx):
        return await _run(statvfs, self.store)
