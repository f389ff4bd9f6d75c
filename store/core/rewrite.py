"""Which chunks of a file survive a commit, and which byte ranges to re-chunk: pure.

Given the committed chunk list of a file and a sealed overlay (its size,
floor and dirty ranges), ``plan_commit`` keeps every committed chunk that the
overlay did not touch and returns the ranges whose bytes must be rebuilt and
cut again. A range to rebuild is widened by its untouched neighbour chunks on
each side, so that content-defined chunking resynchronises with the old cuts
and repeated small appends do not leave a trail of tiny chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .intervals import IntervalSet


@dataclass(frozen=True)
class Extent:
    off: int
    length: int
    chunk_id: int

    @property
    def end(self) -> int:
        return self.off + self.length


def plan_commit(base: list[Extent], size: int, floor: int, dirty: IntervalSet,
                widen: bool = True) -> tuple[list[Extent], list[tuple[int, int]]]:
    """Return (kept extents, sorted disjoint ranges to rebuild) for the new version.

    ``widen=False`` skips pulling in the untouched neighbour chunks (used when one of
    them cannot be read back).
    """
    keep: list[Extent] = []
    rebuild = IntervalSet()
    for start, end in dirty:
        rebuild.add(start, min(end, size))
    for ext in base:
        if ext.end <= floor and not dirty.intersects(ext.off, ext.end):
            keep.append(ext)
        else:
            if ext.off < floor:
                rebuild.add(ext.off, min(ext.end, floor))
    if not len(rebuild) or not widen:
        return keep, list(rebuild)
    # Widen each rebuilt range by the adjacent kept chunk on either side
    # (adjacent to the ranges as first planned, so widening does not cascade).
    planned = IntervalSet(rebuild)
    final_keep = []
    for ext in keep:
        if _adjacent(planned, ext):
            rebuild.add(ext.off, ext.end)
        else:
            final_keep.append(ext)
    return final_keep, list(rebuild)


def _adjacent(ranges: IntervalSet, ext: Extent) -> bool:
    """True when a range starts exactly at ext.end or ends exactly at ext.off."""
    return any(start == ext.end or end == ext.off
               for start, end in ranges.overlapping(ext.off - 1, ext.end + 1))
