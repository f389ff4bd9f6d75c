"""The catalog's ``sessions`` domain: the indexed fields of every session directory.

A session is a directory ``sessions/<id>`` with a valid metadata.json; its row holds the
fields of ``store.core.session_fields`` (plus its tags and topicIds) and is re-derived in
the same write transaction as any change to that directory's name or metadata.json, so
the index never disagrees with the committed files.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions to list: each given condition must hold (empty or None: no condition).

    ``statuses``: any of them. ``start_after``/``start_before``: inclusive bounds on the
    startTime text (ISO 8601 UTC strings compare as text). ``tags``/``topic_ids``: having at
    least one of them. ``limit`` None: no limit.
    """

    statuses: Sequence[str] = ()
    start_after: str | None = None
    start_before: str | None = None
    tags: Sequence[str] = ()
    topic_ids: Sequence[str] = ()
    limit: int | None = None
    offset: int = 0


class Sessions(abc.ABC):
    """Typed operations on the session index (one view: a reader or a write transaction)."""

    @abc.abstractmethod
    def refresh(self, dir_ino: int, sessions_ino: int, read_file: Callable[[int], bytes]) -> None:
        """Re-derive the row of directory ``dir_ino`` (write transaction only).

        The row is dropped, then re-created only when ``dir_ino`` is still named in
        ``sessions_ino`` and holds a regular metadata.json whose bytes (``read_file(ino)``,
        read inside this transaction) parse as a JSON object; the directory's name is the
        session id.
        """

    @abc.abstractmethod
    def matching(self, where: SessionFilter) -> list[str]:
        """Ids of the sessions matching ``where``, newest startTime first (none last), then by id."""

    @abc.abstractmethod
    def blocks_under(self, dir_ino: int) -> list[int]:
        """Ids of the blocks holding the content of any file under directory ``dir_ino``
        (at any depth), each once."""

    @abc.abstractmethod
    def names(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        """The indexed ``name`` of each given session that has a row (None when it has no name)."""
