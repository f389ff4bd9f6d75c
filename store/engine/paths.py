"""The path-level face of ``Store`` (the session API and the CLI): whole-file reads and
atomic groups of whole-file writes and tree deletions by path, which see queued groups
before they commit."""

from __future__ import annotations

import errno
import stat
import time
from typing import Callable, Iterable, Iterator

from store.backends.catalog.interface import CatalogView
from store.backends.catalog.rows import ROOT_INO, InodeRow
from store.backends.catalog.tree import NAME_MAX
from store.core.errors import BadInputError, FsError, IntegrityError
from .persist import PathGroup


class PathFace:
    """The path-level part of ``Store``."""

    @staticmethod
    def split_path(path: str) -> list[bytes]:
        if not isinstance(path, str) or "\0" in path:
            raise BadInputError(f"invalid path {path!r}")
        parts = [p.encode("utf-8", "surrogateescape") for p in path.strip("/").split("/") if p]
        for p in parts:
            if p in (b".", b".."):
                raise BadInputError(f"path {path!r} may not contain '.' or '..'")
            if len(p) > NAME_MAX:
                raise BadInputError(f"path {path!r} has a component longer than {NAME_MAX} bytes")
        return parts

    def resolve(self, path: str, view: CatalogView | None = None) -> int | None:
        """The inode at ``path`` (committed; inside transaction ``view`` if given), or None."""
        ino = ROOT_INO
        for part in self.split_path(path):
            ino = self.catalog.lookup(ino, part, view)
            if ino is None:
                return None
        return ino

    def _pending_state(self, path: str):
        """(found, bytes or None) for a path changed by a queued group."""
        norm = "/".join(p.decode("utf-8", "surrogateescape") for p in self.split_path(path))
        with self._ov_lock:
            gen_w, data = self._pending_paths.get(norm, (0, None))
            gen_t = max((g for t, g in self._pending_trees.items() if norm == t or norm.startswith(t + "/")),
                        default=0)
        if gen_w and gen_w >= gen_t:
            return True, data
        if gen_t:
            return True, None
        return False, None

    def read_path(self, path: str) -> bytes:
        found, data = self._pending_state(path)
        if found:
            if data is None:
                raise FsError(errno.ENOENT, f"{path} does not exist")
            return data
        ino = self.resolve(path)
        if ino is None:
            raise FsError(errno.ENOENT, f"{path} does not exist")
        row = self.getattr(ino)
        if stat.S_ISDIR(row.mode):
            raise FsError(errno.EISDIR, f"{path} is a directory")
        try:
            return self.read_all(ino)
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: {exc}", chunk=exc.chunk, path=path) from None

    def exists(self, path: str) -> bool:
        found, data = self._pending_state(path)
        if found:
            return data is not None
        return self.resolve(path) is not None

    def list_dir(self, path: str) -> list[str]:
        """Names in a directory, committed state after queued groups land."""
        self.settle()
        ino = self.resolve(path)
        if ino is None:
            raise FsError(errno.ENOENT, f"{path} does not exist")
        return [name.decode("utf-8", "surrogateescape") for name, _ in self.iter_dir(ino)]

    def iter_dir(self, ino: int, view: CatalogView | None = None) -> Iterator[tuple[bytes, InodeRow]]:
        """(name, inode) of every committed entry of directory ``ino`` (inside transaction
        ``view`` if given), read a page at a time (``Tree.listing``)."""
        return (view or self.catalog.reader()).tree.listing(ino)

    def write_files(self, writes: dict[str, bytes | None] | Iterable[tuple[str, bytes | None]],
                    delete_trees: Iterable[str] = (), on_commit: Callable | None = None) -> PathGroup:
        """Queue whole-file writes (None deletes) and tree deletions as one atomic group.

        ``on_commit(view)``, if given, runs in the commit's transaction just before the group's
        deletions and writes (see ``PathGroup.on_commit``): it may check the committed tree and
        add catalog rows that commit with the group or not at all."""
        self._check_writable()
        self.last_activity = time.monotonic()
        items = list(writes.items() if isinstance(writes, dict) else writes)
        norm = []
        for path, data in items:
            parts = self.split_path(path)
            if not parts:
                raise BadInputError("cannot write the root directory")
            if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
                raise BadInputError(f"{path}: content must be bytes, not {type(data).__name__}")
            norm.append(("/".join(p.decode("utf-8", "surrogateescape") for p in parts),
                         bytes(data) if data is not None else None))
        trees = []
        for t in delete_trees:
            parts = self.split_path(t)
            if not parts:
                raise BadInputError("cannot delete the root directory")
            trees.append("/".join(p.decode("utf-8", "surrogateescape") for p in parts))
        self.persister.wait_for_room(self.pending_bytes)
        with self._ov_lock:
            self._gen += 1
            gen = self._gen
            group = PathGroup(gen, norm, trees, on_commit=on_commit)
            for t in trees:
                self._pending_trees[t] = gen
            for path, data in norm:
                self._pending_paths[path] = (gen, data)
        self.persister.submit(group)
        return group

    def settle(self) -> None:
        """Wait until every write queued so far is committed (not necessarily durable)."""
        if self.persister is not None and not self.persister.idle:
            self.persister.barrier(durable=False).wait()

    def flush(self) -> None:
        """Make everything queued so far durable."""
        if self.persister is not None:
            self.persister.barrier(durable=True).wait()

    def run_in_worker(self, fn: Callable[[], object]) -> object:
        """Run ``fn()`` in the persistence worker (the only writer of packs, blocks and chunks)
        between batches and return its result; maintenance (gc, recompression) goes through here."""
        self._check_writable()
        return self.persister.call(fn).wait()

