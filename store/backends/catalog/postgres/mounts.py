"""The ``mounts`` domain on PostgreSQL: tables ``mounts``, ``leases`` and ``unlinked_noted``
(``schema.create_mount_tables`` documents them).

Every time is the server's ``clock_timestamp()`` in ns, so the mounts' own clocks never
matter. A registration updates the ``meta`` row ``mount_registrations``, and a transaction
asking what it may delete reads that row ``FOR SHARE``: a mount registering while another
transaction unlinks and deletes a file either waits for its commit or makes it run again,
so a new mount never looks a name up that a transaction deleting its inode did not count it
for.
"""

from __future__ import annotations

from typing import Iterable

from ..mounts import Mounts
from ..rows import ROOT_INO
from .domain import Domain
from .errors import translated

NOW_NS = "(extract(epoch FROM clock_timestamp()) * 1e9)::bigint"
GUARD_KEY = "mount_registrations"
_LIVE = f"writer <> %s AND heartbeat + expiry_ns >= {NOW_NS}"


@translated
class PostgresMounts(Domain, Mounts):
    """``Mounts`` over one view (see ``store.backends.catalog.mounts``)."""

    def clock(self) -> int:
        return self._one(f"SELECT {NOW_NS}")[0]

    def register(self, writer: str, expiry_s: float, now: int) -> None:
        self._x("UPDATE meta SET value = to_jsonb(value::bigint + 1) WHERE key = %s", (GUARD_KEY,))
        self.deregister(writer)
        self._x("INSERT INTO mounts (writer, heartbeat, scanned, expiry_ns) VALUES (%s, %s, %s, %s)",
                (writer, now, now, int(expiry_s * 1e9)))

    def deregister(self, writer: str) -> None:
        self._x("DELETE FROM mounts WHERE writer = %s", (writer,))      # its leases go with it

    def beat(self, writer: str, expiry_s: float, scanned: int, held: Iterable[int]) -> bool:
        held = list(held)
        alive = self._x(f"UPDATE mounts SET heartbeat = {NOW_NS}, scanned = %s, expiry_ns = %s WHERE writer = %s",
                        (scanned, int(expiry_s * 1e9), writer)).rowcount > 0
        if not alive:
            self.register(writer, expiry_s, scanned)
        self._x("DELETE FROM leases WHERE writer = %s AND NOT ino = ANY(%s::bigint[])", (writer, held))
        self._x("INSERT INTO leases (writer, ino) SELECT %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
                (writer, held))
        return alive

    def expire(self, writer: str) -> list[str]:
        return [r[0] for r in self._x(f"DELETE FROM mounts WHERE writer <> %s AND heartbeat + expiry_ns < {NOW_NS} "
                                      "RETURNING writer", (writer,))]

    def deletable(self, writer: str, inos: Iterable[int] | None) -> list[int]:
        self._x("SELECT 1 FROM meta WHERE key = %s FOR SHARE", (GUARD_KEY,))
        if inos is None:
            self._x(f"INSERT INTO unlinked_noted (ino, noted) SELECT id, {NOW_NS} FROM inodes "
                    "WHERE nlink = 0 AND id <> %s ON CONFLICT DO NOTHING", (ROOT_INO,))
            candidates = [r[0] for r in self._x("SELECT id FROM inodes WHERE nlink = 0 AND id <> %s", (ROOT_INO,))]
        else:
            candidates = [r[0] for r in self._x(
                "SELECT id FROM inodes WHERE id = ANY(%s::bigint[]) AND nlink = 0 AND id <> %s",
                (list(inos), ROOT_INO))]
        if not candidates or self._one(f"SELECT 1 FROM mounts WHERE {_LIVE} LIMIT 1", (writer,)) is None:
            return candidates
        return [r[0] for r in self._x(
            "SELECT n.ino FROM unlinked_noted n WHERE n.ino = ANY(%s::bigint[]) "
            f"AND n.noted < (SELECT min(scanned) FROM mounts WHERE {_LIVE}) "
            "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.ino = n.ino "
            f"                AND l.writer IN (SELECT writer FROM mounts WHERE {_LIVE}))",
            (candidates, writer, writer))]
