"""Where a block lies in a WAV file: the sample layout the audio codec needs to code it.

A block holds a run of chunks of one file but not that file's header: recompression finds a
file holding the block, reads the file's first bytes (``wav.parse``) and places the block on
its sample grid (``wav.pcm_span``) from the file offset of the block's first chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.core import wav

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
