"""The catalog's ``migration`` domain: the record of what the legacy importer did.

One record per legacy file the importer has seen (its ``source``: an OS path, or
``store:<path>`` for a file dropped into the store tree), and for each the attachment
files it copied. Statuses: ``imported`` (committed together with the session, not yet
verified), ``verified``, ``failed`` (with stage and reason) and ``finalized`` (its
original was deleted). At most one active record (imported, verified or finalized)
names a session. Timestamps are nanoseconds since the epoch, stamped by the catalog.
Every write runs inside the caller's write transaction, typically a ``write_files``
group's ``on_commit`` hook, so a record changes together with the files it describes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from store.core.units import iso_ns

ACTIVE = ("imported", "verified", "finalized")


@dataclass(frozen=True)
class Record:
    """One legacy file's migration record."""

    id: int
    source: str
    session_id: str | None
    sha256: str | None
    size: int | None
    mtime_ns: int | None
    digest: str | None
    status: str
    stage: str | None
    reason: str | None
    imported_at: int | None
    verified_at: int | None
    finalized_at: int | None
    updated_at: int

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("imported_at", "verified_at", "finalized_at", "updated_at"):
            d[key.replace("_at", "")] = iso_ns(d[key])
        return d


@dataclass(frozen=True)
class AttachmentRecord:
    """An attachment a migration copied into ``sessions/<id>/attachments/<name>``."""

    name: str
    source: str
    sha256: str
    size: int


class Migration(abc.ABC):
    """Typed operations on the migration record (one view: a reader or a write transaction)."""

    @abc.abstractmethod
    def ensure_tables(self) -> None:
        """Create the record's tables in a catalog made before they existed (idempotent;
        write transaction only)."""

    @abc.abstractmethod
    def records(self) -> list[Record]:
        """Every record, oldest first ([] when the catalog has no migration tables)."""

    @abc.abstractmethod
    def active_record_of(self, session_id: str) -> Record | None:
        """The record (imported, verified or finalized) that holds ``session_id``, if any."""

    @abc.abstractmethod
    def attachments(self, record_id: int) -> list[AttachmentRecord]:
        """The attachments record ``record_id`` copied, by name."""

    @abc.abstractmethod
    def attachment_users(self) -> dict[str, set[int]]:
        """For every attachment source file: the ids of the records that copied it."""

    @abc.abstractmethod
    def attachment_names_from(self, directory: str) -> set[str]:
        """Names of the attachments active records copied from files under ``directory``
        (a path prefix ending in the separator)."""

    @abc.abstractmethod
    def record_imported(self, source: str, session_id: str, sha256: str, size: int, mtime_ns: int, digest: str,
                        attachments: Iterable[AttachmentRecord]) -> None:
        """Make ``source``'s record ``imported`` with these values (``digest``: the canonical
        digest of the session's values) and attachments, replacing whatever it recorded
        before (verified and finalized times cleared).

        Raises ``ConflictError`` naming the session when another source's active record
        holds it (nothing is changed)."""

    @abc.abstractmethod
    def record_failed(self, source: str, session_id: str | None, sha256: str | None, size: int,
                      mtime_ns: int, stage: str | None, reason: str | None) -> None:
        """Record that ``source`` failed at ``stage`` for ``reason``: a new failed record, or an
        update of a failed one; an active record of ``source`` is left as it is."""

    @abc.abstractmethod
    def touch(self, record_id: int, sha256: str, mtime_ns: int) -> None:
        """Remember a new mtime for record ``record_id`` if its content is still ``sha256``
        (a copied or touched original then skips unread)."""

    @abc.abstractmethod
    def mark_verified(self, sources: Iterable[str]) -> None:
        """Records of these sources that are ``imported`` become ``verified``."""

    @abc.abstractmethod
    def mark_verification_failed(self, source: str, reason: str) -> None:
        """``source``'s record becomes failed at stage ``verify`` with ``reason`` (its session
        was removed again): import and verify times and its attachments are dropped."""

    @abc.abstractmethod
    def mark_finalized(self, record_ids: Iterable[int]) -> None:
        """These records become ``finalized`` (their originals are about to be deleted); a
        record finalized before keeps its first finalized time."""
