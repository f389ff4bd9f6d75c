"""Writes not yet handed to the store, readable through to it (the session API's groups)."""

from __future__ import annotations

import errno

from store.core.errors import BadInputError, FsError
from store.engine.store import Store
from .session_files import under


class Batch:
    """Writes and tree deletions not yet handed to the store, readable through to it.

    Semantics are those of one ``write_files`` group: deleting a tree drops the batch's
    earlier writes under it; later writes under it stand. A child batch (one call inside
    a transaction) merges into its parent only when the call succeeds.
    """

    def __init__(self, store: Store, parent: "Batch | None" = None):
        self.store = store
        self.parent = parent
        self.writes: dict[str, bytes | None] = {}
        self.trees: list[str] = []

    def _norm(self, path: str) -> str:
        return "/".join(p.decode("utf-8", "surrogateescape") for p in self.store.split_path(path))

    def _deleted(self, path: str) -> bool:
        return any(under(path, tree) for tree in self.trees)

    def read(self, path: str) -> bytes | None:
        """Current bytes of a file, None when it does not exist."""
        if path in self.writes:
            return self.writes[path]
        if self._deleted(path):
            return None
        if self.parent is not None:
            return self.parent.read(path)
        try:
            return self.store.read_path(path)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def exists(self, path: str) -> bool:
        if path in self.writes:
            return self.writes[path] is not None
        if self._deleted(path):
            return False
        return self.parent.exists(path) if self.parent is not None else self.store.exists(path)

    def names(self, directory: str) -> set[str]:
        """Names of the entries of ``directory`` as they will be after this batch."""
        if self._deleted(directory):
            names: set[str] = set()
        elif self.parent is not None:
            names = self.parent.names(directory)
        else:
            try:
                names = set(self.store.list_dir(directory))
            except FsError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                names = set()
        for path, data in self.writes.items():
            head, _, name = path.rpartition("/")
            if head == directory:
                (names.add if data is not None else names.discard)(name)
        return names

    def put(self, path: str, data: bytes | None) -> None:
        self.writes[self._norm(path)] = data

    def delete_tree(self, path: str) -> None:
        tree = self._norm(path)
        if not tree:
            raise BadInputError("cannot delete the root directory")
        self.writes = {p: d for p, d in self.writes.items() if not under(p, tree)}
        self.trees.append(tree)

    def commit(self) -> None:
        """Into the parent batch, or to the store as one atomic group."""
        if self.parent is not None:
            for tree in self.trees:
                self.parent.delete_tree(tree)
            for path, data in self.writes.items():
                self.parent.put(path, data)
        elif self.writes or self.trees:
            self.store.write_files(self.writes, delete_trees=self.trees)
        self.writes, self.trees = {}, []
