"""What a write transaction changed (``rows.Changes``): gathered by the domains as they write,
and sent to the other mounts as the payload of ``NOTIFY sessionfs_changes``.

A payload is ``<origin> i<ino>,<ino>... c<ino>,<ino>... d<parent>:<hex name>,... [e]``
(inodes whose rows changed, files whose chunk lists changed, names created or removed, ``e``
for everything), or ``<origin> all`` when that would not fit NOTIFY's 8000 bytes; ``origin`` names the catalog object that committed, so a
listener skips its own commits (its commit hooks heard of them already).
"""

from __future__ import annotations

from ..rows import Changes

CHANNEL = "sessionfs_changes"
#: NOTIFY refuses payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900


class Touched:
    """What the open write transaction changed so far (the domains note it)."""

    def __init__(self):
        self.inodes: set[int] = set()
        self.contents: set[int] = set()
        self.entries: set[tuple[int, bytes]] = set()
        self.everything = False

    def peek(self) -> Changes:
        return Changes(frozenset(self.inodes), frozenset(self.contents), self.everything, frozenset(self.entries))

    def take(self) -> Changes:
        changes = self.peek()
        self.inodes, self.contents, self.entries, self.everything = set(), set(), set(), False
        return changes


def encode(origin: str, changes: Changes) -> str:
    """The NOTIFY payload for ``changes`` committed by ``origin``."""
    parts = [origin, "i" + ",".join(map(str, sorted(changes.inodes))),
             "c" + ",".join(map(str, sorted(changes.contents))),
             "d" + ",".join(f"{parent}:{name.hex()}" for parent, name in sorted(changes.entries))]
    if changes.everything:
        parts.append("e")
    payload = " ".join(parts)
    return payload if len(payload) <= MAX_PAYLOAD else f"{origin} all"


def decode(payload: str) -> tuple[str, Changes]:
    """(origin, changes) of a payload; ``all`` is ``Changes(everything=True)``."""
    origin, _, rest = payload.partition(" ")
    inodes, contents, entries, everything = set(), set(), set(), False
    for part in rest.split():
        if part in ("all", "e"):
            everything = True
        elif part[0] == "d" and part[1:]:
            for item in part[1:].split(","):
                parent, _, name = item.partition(":")
                entries.add((int(parent), bytes.fromhex(name)))
        elif part[1:]:
            (inodes if part[0] == "i" else contents).update(int(x) for x in part[1:].split(","))
    return origin, Changes(frozenset(inodes), frozenset(contents), everything, frozenset(entries))
