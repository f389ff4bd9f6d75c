"""RIFF/WAVE headers and where a block's bytes hold whole PCM sample frames: pure functions.

The audio codec (``pcm_codec``) codes only the integer PCM samples of a WAV file; every other
byte (the header, LIST and other chunks, a sample frame cut by a block edge) stays as it is. A
block is a run of chunks of one file starting at some file offset, so what it needs is the
file's sample format and where the ``data`` chunk lies in the file: ``parse`` reads them from
the file's first bytes, ``pcm_span`` places a block on the file's sample grid.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FORMAT_PCM = 0x0001
FORMAT_EXTENSIBLE = 0xFFFE
#: The KSDATAFORMAT_SUBTYPE_PCM GUID's tail: an extensible header's sub-format is integer PCM
#: when its first two bytes are 0x0001 and the rest is this.
_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
#: Sample widths FLAC codes through libsndfile (PCM_S8, PCM_16, PCM_24); 32-bit integer and
#: float samples stay on zstd.
CODED_WIDTHS = (1, 2, 3)
MAX_CHANNELS = 8                # FLAC's limit
HEADER_PROBE = 64 * 1024        # bytes of a file's start that ``parse`` looks at


@dataclass(frozen=True)
class PcmFormat:
    """Integer little-endian PCM in a WAV file: its sample layout and its ``data`` chunk."""
    channels: int
    width: int                  # bytes per sample (1: unsigned 8-bit, else signed)
    data_start: int             # file offset of the first sample
    data_end: int               # file offset after the last sample

    @property
    def frame(self) -> int:
        """Bytes of one sample frame (one sample of every channel)."""
        return self.channels * self.width


def parse(head: bytes, file_size: int) -> PcmFormat | None:
    """The PCM format of a WAV file from its first bytes; None when it is not a WAV of integer
    PCM that FLAC can code (compressed or float WAV, RIFX, odd layouts, a truncated header)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        cid, size = struct.unpack_from("<4sI", head, pos)
        body = pos + 8
        if cid == b"fmt ":
            fmt = _format(head[body:body + size]) if size <= len(head) - body else None
            if fmt is None:
                return None
        elif cid == b"data":
            if fmt is None:
                return None
            channels, width = fmt
            # A header written before the recording's end says 0 or 0xFFFFFFFF: the file's end bounds it.
            end = file_size if size in (0, 0xFFFFFFFF) else min(file_size, body + size)
            return PcmFormat(channels, width, body, end) if end > body else None
        pos = body + size + (size & 1)
    return None


def _format(body: bytes) -> tuple[int, int] | None:
    """(channels, bytes per sample) of a ``fmt `` chunk body, if FLAC can code it."""
    if len(body) < 16:
        return None
    tag, channels, _rate, _rate_bytes, align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == FORMAT_EXTENSIBLE:
        if len(body) < 40 or body[24:26] != b"\x01\x00" or body[26:40] != _PCM_GUID_TAIL:
            return None
    elif tag != FORMAT_PCM:
        return None
    width = bits // 8
    if bits % 8 or width not in CODED_WIDTHS or not 1 <= channels <= MAX_CHANNELS or align != channels * width:
        return None
    return channels, width


def pcm_span(fmt: PcmFormat, file_off: int, length: int) -> tuple[int, int]:
    """(lead, pcm length): of a block of ``length`` bytes starting at file offset ``file_off``,
    bytes [lead, lead + pcm length) are whole sample frames; what is before and after (header,
    other chunks, a frame cut by the block's edge) is not audio to code."""
    start = max(fmt.data_start - file_off, 0)
    end = min(fmt.data_end - file_off, length)
    if end <= start:
        return 0, 0
    start += -(file_off + start - fmt.data_start) % fmt.frame
    frames = max(end - start, 0) // fmt.frame
    return (start, frames * fmt.frame) if frames else (0, 0)
