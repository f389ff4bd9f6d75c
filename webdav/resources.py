"""WebDAV resources over the store's tree: a directory is a collection, a regular file a
non-collection, each holding its inode (found once, when the request resolves its path).

- Listings come from the catalog a page at a time (``Store.readdir``), each member built
  from its row: a depth-1 PROPFIND reads no file.
- ETags come from the file's chunk hashes in the catalog (``content_tag``).
- A PUT writes a hidden temporary file in the same directory through the store's
  staging overlay, seals it (as close(2) does: it survives kill -9 from then on) and
  renames it over the target, so a reader sees the old or the new file, never a torn one;
  only then is the PUT acknowledged.
- MOVE is a rename, DELETE one commit for a whole tree (path level), so the catalog,
  refcounts and search index stay in step as for the mount.
- Dead properties are extended attributes ``user.dav.{ns}name`` of the inode: they survive
  restarts and move with a MOVE.

Resources reached through a read-only view (``tags/<t>/<id>/...``) and the view
directories themselves refuse every change with 403 (``writable`` False).
"""

from __future__ import annotations

import errno
import hashlib
import secrets
import stat

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection
from wsgidav.xml_tools import etree

from store.backends.catalog.rows import ROOT_INO, InodeRow
from store.core.errors import FsError

from .errors import translated
from .streams import StoreReader, StoreWriter

#: Names a PUT stages under; never listed or resolved.
TEMP_PREFIX = ".sessionfs-put."
DEAD_PREFIX = b"user.dav."
FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755


def encode(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def hidden(name: bytes) -> bool:
    return name.startswith(TEMP_PREFIX.encode())


def content_tag(store, ino: int) -> str:
    """An ETag from the file's content: the SHA-256 of its size and chunk hashes as the
    catalog has them (no data is read). Sealed writes are committed first, so one content has
    one tag; a file open for writing through the mount is tagged by the SHA-256 of its bytes."""
    if store.has_pending(ino):
        store.settle()
        if store.has_pending(ino):
            return "b" + store.content_hash(ino)[:40]
    row = store.getattr(ino)
    h = hashlib.sha256(row.size.to_bytes(8, "big"))
    for loc in store.catalog.reader().content.all_locations(ino):
        h.update(loc.off.to_bytes(8, "big"))
        h.update(loc.hash)
    return "c" + h.hexdigest()[:40]


class ReadOnly:
    """Refuses every change (a view, or the store reached through one)."""

    writable = False

    def _refuse(self, *args, **kwargs):
        raise DAVError(HTTP_FORBIDDEN, context_info=f"{self.path}: the views are read-only")

    create_empty_resource = create_collection = delete = copy_move_single = move_recursive = _refuse
    begin_write = _refuse

    def set_property_value(self, name, value, *, dry_run=False):
        self._refuse()

    def prevent_locking(self) -> bool:
        return True

    def support_recursive_move(self, dest_path) -> bool:
        return True

    def support_recursive_delete(self) -> bool:
        return True


class _Stored:
    """What files and directories share: the inode, its row, dead properties, timestamps."""

    def _init_stored(self, row: InodeRow, parent: int, name: bytes, writable: bool) -> None:
        self.row, self.parent_ino, self.name_bytes, self.writable = row, parent, name, writable

    @property
    def store(self):
        return self.provider.store

    @property
    def ino(self) -> int:
        return self.row.id

    def get_creation_date(self):
        return self.row.ctime_ns / 1e9

    def get_last_modified(self):
        return self.row.mtime_ns / 1e9

    def get_display_name(self) -> str:
        return decode(self.name_bytes) if self.name_bytes else ""

    def prevent_locking(self) -> bool:
        return not self.writable

    def _check_writable(self) -> None:
        if not self.writable:
            raise DAVError(HTTP_FORBIDDEN, context_info=f"{self.path}: the views are read-only")
        if self.parent_ino == ROOT_INO:
            raise DAVError(HTTP_FORBIDDEN, context_info=f"{self.path}: the root's entries cannot be changed")

    # -- dead properties: extended attributes --------------------------------------------
    def get_property_names(self, *, is_allprop):
        names = super().get_property_names(is_allprop=is_allprop)
        with translated(self.path):
            names += [decode(n[len(DEAD_PREFIX):]) for n in self.store.listxattr(self.ino) if n.startswith(DEAD_PREFIX)]
        return names

    def get_property_value(self, name):
        if name.startswith("{DAV:}"):
            return super().get_property_value(name)
        try:
            value = self.store.getxattr(self.ino, DEAD_PREFIX + encode(name))
        except FsError as exc:
            if exc.errno == errno.ENODATA:
                raise DAVError(HTTP_NOT_FOUND) from None
            raise
        return etree.fromstring(value)

    def set_property_value(self, name, value, *, dry_run=False):
        if not self.writable:
            raise DAVError(HTTP_FORBIDDEN, context_info=f"{self.path}: the views are read-only")
        if name.startswith("{DAV:}"):
            return super().set_property_value(name, value, dry_run=dry_run)
        if dry_run:
            return None
        key = DEAD_PREFIX + encode(name)
        with translated(self.path):
            if value is None:
                if key in self.store.listxattr(self.ino):
                    self.store.removexattr(self.ino, key)
            else:
                self.store.setxattr(self.ino, key, etree.tostring(value))
        return None

    def remove_all_properties(self, *, recursive):
        """Dead properties go with the inode."""

    def _copy_properties(self, dest_ino: int) -> None:
        for key in self.store.listxattr(self.ino):
            if key.startswith(DEAD_PREFIX):
                self.store.setxattr(dest_ino, key, self.store.getxattr(self.ino, key))

    # -- changes ----------------------------------------------------------------------
    def _destination(self, dest_path: str) -> tuple["StoreCollection", bytes]:
        """The writable directory and name a MOVE or COPY goes to."""
        parent_path, name = util.get_uri_parent(dest_path), util.get_uri_name(dest_path)
        parent = self.provider.get_resource_inst(parent_path, self.environ)
        if not isinstance(parent, StoreCollection) or not parent.writable or parent.ino == ROOT_INO:
            raise DAVError(HTTP_FORBIDDEN, context_info=f"{dest_path}: not a place that can be written")
        return parent, encode(name)

    def support_recursive_move(self, dest_path) -> bool:
        return True

    def move_recursive(self, dest_path):
        """MOVE: one rename (the destination, if any, is gone already)."""
        self._check_writable()
        parent, name = self._destination(dest_path)
        with translated(self.path):
            self.store.rename(self.parent_ino, self.name_bytes, parent.ino, name)
            self.provider.serving.entry_renamed(parent.ino, name)
        self.remove_all_locks(recursive=True)
        return []

    def delete(self):
        self._check_writable()
        with translated(self.path):
            if stat.S_ISDIR(self.row.mode):
                self.store.write_files({}, delete_trees=[self.path])
                self.store.settle()
            else:
                self.store.unlink(self.parent_ino, self.name_bytes)
        self.remove_all_locks(recursive=True)
        return []


class StoreCollection(_Stored, DAVCollection):
    """A directory of the store."""

    def __init__(self, path: str, environ: dict, row: InodeRow, parent: int, name: bytes, writable: bool):
        DAVCollection.__init__(self, path, environ)
        self._init_stored(row, parent, name, writable)

    def _rows(self):
        """(name, row) of every visible entry, a catalog page at a time."""
        after = 0
        while True:
            with translated(self.path):
                entries = self.store.readdir(self.ino, after, 1000)
            if not entries:
                return
            for cookie, name, row in entries:
                after = cookie
                if not hidden(name) and (stat.S_ISDIR(row.mode) or stat.S_ISREG(row.mode)):
                    yield name, row

    def get_member_names(self):
        return [decode(name) for name, _ in self._rows()]

    def get_member_list(self):
        return [self.member(name, row) for name, row in self._rows()]

    def member(self, name: bytes, row: InodeRow):
        path = util.join_uri(self.path, decode(name))
        cls = StoreCollection if stat.S_ISDIR(row.mode) else StoreFile
        return cls(path, self.environ, row, self.ino, name, self.writable)

    def get_member(self, name: str):
        if hidden(encode(name)):
            return None
        with translated(self.path):
            try:
                row = self.store.lookup(self.ino, encode(name))
            except FsError as exc:
                if exc.errno == errno.ENOENT:
                    return None
                raise
        if not (stat.S_ISDIR(row.mode) or stat.S_ISREG(row.mode)):
            return None
        return self.member(encode(name), row)

    def support_recursive_delete(self) -> bool:
        return True

    def _check_creatable(self) -> None:
        if not self.writable:
            raise DAVError(HTTP_FORBIDDEN, context_info=f"{self.path}: the views are read-only")
        if self.ino == ROOT_INO:
            raise DAVError(HTTP_FORBIDDEN, context_info="only sessions/ and the read-only views live at the root")

    def _make(self, name: str, mode: int):
        self._check_creatable()
        store = self.store
        with translated(util.join_uri(self.path, name)):
            row = store.make_node(self.ino, encode(name), mode, store.owner_uid, store.owner_gid)
        return self.member(encode(name), row)

    def create_empty_resource(self, name: str):
        return self._make(name, FILE_MODE)

    def create_collection(self, name: str):
        return self._make(name, DIR_MODE)

    def copy_move_single(self, dest_path, *, is_move):
        """COPY of a directory: make it (its members are copied one by one)."""
        parent, name = self._destination(dest_path)
        existing = parent.get_member(decode(name))     # a COPY over a collection keeps it
        with translated(dest_path):
            if existing is None:
                existing = parent.member(name, self.store.make_node(parent.ino, name, self.row.mode, self.row.uid,
                                                                    self.row.gid))
            self._copy_properties(existing.ino)

    def get_directory_info(self):
        return None


class StoreFile(_Stored, DAVNonCollection):
    """A regular file of the store."""

    def __init__(self, path: str, environ: dict, row: InodeRow, parent: int, name: bytes, writable: bool):
        DAVNonCollection.__init__(self, path, environ)
        self._init_stored(row, parent, name, writable)
        self._temp: tuple[bytes, int] | None = None

    def get_content_length(self) -> int:
        return self.row.size

    def get_content_type(self) -> str:
        return util.guess_mime_type(self.path)

    def get_etag(self) -> str:
        with translated(self.path):
            return content_tag(self.store, self.ino)

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self):
        return StoreReader(self.store, self.ino, self.row.size)

    # -- PUT: a hidden temporary file, sealed, renamed over this one ----------------------
    def begin_write(self, *, content_type=None):
        self._check_writable()
        store = self.store
        temp = encode(TEMP_PREFIX + secrets.token_hex(8))
        with translated(self.path):
            row = store.make_node(self.parent_ino, temp, self.row.mode, self.row.uid, self.row.gid)
        self._temp = (temp, row.id)
        return StoreWriter(store, row.id)

    def end_write(self, *, with_errors):
        if self._temp is None:           # begin_write refused
            return
        temp, ino = self._temp
        self._temp = None
        store = self.store
        with translated(self.path):
            if with_errors:
                store.unlink(self.parent_ino, temp)
                return
            store.seal(ino)
            self._copy_properties(ino)
            store.rename(self.parent_ino, temp, self.parent_ino, self.name_bytes)
            self.provider.serving.entry_renamed(self.parent_ino, self.name_bytes)
            self.row = store.getattr(ino)

    def copy_move_single(self, dest_path, *, is_move):
        """COPY of a file: the bytes into a new file, written as a PUT writes."""
        parent, name = self._destination(dest_path)
        target = parent.get_member(decode(name)) or parent.create_empty_resource(decode(name))
        if not isinstance(target, StoreFile):
            raise DAVError(HTTP_FORBIDDEN, context_info=f"{dest_path} is a collection")
        out = target.begin_write()
        src = self.get_content()
        ok = False
        try:
            while chunk := src.read(1 << 20):
                out.write(chunk)
            ok = True
        finally:
            target.end_write(with_errors=not ok)
        with translated(dest_path):
            for key in self.store.listxattr(target.ino):
                if key.startswith(DEAD_PREFIX):
                    self.store.removexattr(target.ino, key)
            self._copy_properties(target.ino)
