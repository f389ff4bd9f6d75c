"""A set of half-open byte intervals [start, end): pure, used for dirty ranges."""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator


class IntervalSet:
    """Sorted, disjoint, non-adjacent half-open intervals."""

    __slots__ = ("_starts", "_ends")

    def __init__(self, spans: Iterable[tuple[int, int]] = ()):
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in spans:
            self.add(start, end)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends))

    def __len__(self) -> int:
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntervalSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"IntervalSet({list(self)!r})"

    def total(self) -> int:
        return sum(e - s for s, e in self)

    def add(self, start: int, end: int) -> None:
        """Add [start, end), merging with overlapping or touching intervals."""
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def remove(self, start: int, end: int) -> None:
        """Remove [start, end) from the set."""
        if end <= start:
            return
        i = bisect.bisect_right(self._ends, start)
        j = bisect.bisect_left(self._starts, end)
        if i >= j:
            return
        keep_s: list[int] = []
        keep_e: list[int] = []
        if self._starts[i] < start:
            keep_s.append(self._starts[i])
            keep_e.append(start)
        if self._ends[j - 1] > end:
            keep_s.append(end)
            keep_e.append(self._ends[j - 1])
        self._starts[i:j] = keep_s
        self._ends[i:j] = keep_e

    def overlapping(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of the set inside [start, end), in order."""
        out = []
        if end <= start:
            return out
        i = bisect.bisect_right(self._ends, start)
        while i < len(self._starts) and self._starts[i] < end:
            out.append((max(start, self._starts[i]), min(end, self._ends[i])))
            i += 1
        return out

    def intersects(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._ends, start)
        return start < end and i < len(self._starts) and self._starts[i] < end


def split_by(start: int, end: int, spans: IntervalSet) -> list[tuple[int, int, bool]]:
    """Cut [start, end) into (s, e, inside) pieces by membership in ``spans``."""
    out = []
    pos = start
    for s, e in spans.overlapping(start, end):
        if s > pos:
            out.append((pos, s, False))
        out.append((s, e, True))
        pos = e
    if pos < end:
        out.append((pos, end, False))
    return out
