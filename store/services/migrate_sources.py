"""Where legacy files and their attachments come from (an OS directory, or the store's own
``import/`` drop directory), and the jobs the migrator's pipeline carries."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store.core import legacy
from store.core.errors import CatalogError, StoreError
from store.core.legacy import LegacyError, Limits
from store.engine.persist import PathGroup
from store.engine.store import Store
from store.services import legacy_files
from .migrate_report import Outcome

STORE_SOURCE = "store:"            # prefix of the record source of files inside the store tree
IMPORT_DIR = "import"              # the mount's drop directory (a real directory of the store tree)
IMPORT_ATTACHMENTS = f"{IMPORT_DIR}/attachments"
ERROR_SUFFIX = ".error"


class DirAttachments:
    """Attachments of a legacy directory: ``<dir>/<attachment-id>.<ext>`` (read-only)."""

    def __init__(self, directory: Path):
        self.directory = Path(os.path.abspath(directory))
        self._index: dict[str, list[str]] | None = None

    @property
    def index(self) -> dict[str, list[str]]:
        if self._index is None:
            self._index = legacy_files.scan_attachments(self.directory)
        return self._index

    def find(self, attachment_id: str) -> str:
        return legacy.pick_attachment(attachment_id, self.index, str(self.directory))

    def read(self, name: str, limits: Limits) -> tuple[bytes, str]:
        data, _ = legacy_files.read_file(self.directory / name, limits.max_attachment_bytes, f"attachment {name}")
        return data, str(self.directory / name)


class StoreAttachments:
    """Attachments dropped into the store tree (``import/attachments/``)."""

    def __init__(self, store: Store, directory: str = IMPORT_ATTACHMENTS):
        self.store = store
        self.directory = directory

    def find(self, attachment_id: str) -> str:
        names = sorted(list_names(self.store, self.directory))
        return legacy.pick_attachment(attachment_id, legacy.attachment_index(names), self.directory)

    def read(self, name: str, limits: Limits) -> tuple[bytes, str]:
        path = f"{self.directory}/{name}"
        return read_store_file(self.store, path, limits.max_attachment_bytes, "attachments"), STORE_SOURCE + path


def read_store_file(store: Store, path: str, bound: int, stage: str) -> bytes:
    """The bytes of ``path`` in the store, refused (before reading) when over ``bound`` bytes."""
    try:
        ino = store.resolve(path)
        size = store.getattr(ino).size if ino is not None else None
        if size is not None and size > bound:
            raise LegacyError(stage, f"{path} is {size:,} bytes, over the bound of {bound:,} (the mount's "
                                     "memory limit sets it: raise --memory-limit, or unmount and run "
                                     "'sessionfs import')", size=size)
        data = store.read_path(path)
    except CatalogError:
        raise               # the catalog failed, not the file: no .error for it
    except StoreError as exc:
        raise LegacyError(stage, f"cannot read {path}: {exc}") from None
    if len(data) > bound:
        raise LegacyError(stage, f"{path} is {len(data):,} bytes, over the bound of {bound:,}", size=len(data))
    return data


@dataclass
class Job:
    """One legacy file to import."""

    source: str
    size: int
    mtime_ns: int
    attachments: DirAttachments | StoreAttachments
    path: str | None = None              # an OS path, or
    store_path: str | None = None        # a path inside the store tree
    check_name: bool = True


@dataclass
class Pending:
    """A queued import group awaiting commit and verification."""

    job: Job
    session_id: str
    sha256: str
    size: int
    digest: str
    attachments: dict[str, str]          # name -> sha256
    group: PathGroup | None = None       # None: verify an earlier run's commit
    record_id: int | None = None


def legacy_error_outcome(job: Job, exc: LegacyError) -> Outcome:
    return Outcome(job.source, "failed", exc.session_id, exc.reason, exc.stage,
                   exc.size if exc.size is not None else job.size, exc.sha256)


def list_names(store: Store, path: str) -> set[str]:
    """Names in a committed directory of the store ({} when absent), without waiting on the queue."""
    ino = store.resolve(path)
    if ino is None:
        return set()
    return {name.decode("utf-8", "surrogateescape") for name, _ in store.iter_dir(ino)}
