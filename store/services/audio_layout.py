"""Where a block lies in a WAV file: the sample layout the audio codec needs to code it.

A block holds a run of chunks of one file but not that file's header: recompression finds a
file holding the block, reads the file's first bytes (``wav.parse``) and places the block on
its sample grid (``wav.pcm_span``) from the file offset of the block's first chunk. gc, which
keeps only the live chunks of a FLAC block, takes the grid from the block itself
(``trimmed_layout``): the files that held the dead chunks may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.core import codec, wav

#: Blocks with fewer bytes of whole sample frames stay on zstd (FLAC's own headers would eat the gain).
MIN_PCM = 16 * 1024


@dataclass(frozen=True)
class PcmLayout:
    """How to code one block: its file's sample format and its span of whole sample frames."""
    channels: int
    width: int
    lead: int
    pcm_len: int


def pcm_layout(store, block_id: int, raw_len: int) -> PcmLayout | None:
    """The block's layout in the first file holding it that is a WAV FLAC can code, else None."""
    view = store.catalog.reader()
    for ino in view.maintenance.files_of_block(block_id):
        row = view.tree.inode(ino)
        if row is None:
            continue
        fmt = wav.parse(store.read_committed(ino, 0, min(wav.HEADER_PROBE, row.size)), row.size)
        if fmt is None:
            continue
        starts = [loc.off - loc.block_off for loc in view.content.all_locations(ino) if loc.block_id == block_id]
        if not starts:
            continue
        lead, pcm_len = wav.pcm_span(fmt, min(starts), raw_len)
        return PcmLayout(fmt.channels, fmt.width, lead, pcm_len) if pcm_len >= MIN_PCM else None
    return None


def trimmed_layout(framed: bytes, kept: list[tuple[int, int]]) -> PcmLayout | None:
    """The layout of a copy of the CODEC_FLAC block ``framed`` holding only its pieces ``kept``
    ((offset in the block, length), in order, joined): the whole sample frames of the first run
    of adjacent pieces, on the old block's grid. None for another codec or too little audio."""
    declared = codec.pcm_layout_of(framed)
    if declared is None or not kept:
        return None
    channels, width, lead, pcm_len = declared
    start, end = kept[0][0], kept[0][0] + kept[0][1]
    for off, length in kept[1:]:
        if off != end:
            break
        end += length
    grid = wav.PcmFormat(channels, width, lead, lead + pcm_len)
    new_lead, new_len = wav.pcm_span(grid, start, end - start)
    return PcmLayout(channels, width, new_lead, new_len) if new_len >= MIN_PCM else None
