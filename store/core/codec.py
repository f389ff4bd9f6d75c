"""Block framing and compression: pure functions over bytes.

A *block* is the unit written to a pack: one or more neighbouring chunks of
one file, compressed together as a single zstd frame. Compressing chunks one by
one throws away most of zstd's ratio on session JSON (measured on a ~1 MB
screenshot chunk file: 17x for the whole file, 5x for 64 KiB pieces), while
one frame per run of new chunks keeps the whole-file ratio and still lets
every chunk be addressed (chunk -> block, offset inside the decoded block).
A rewrite that appends one record re-chunks only the tail, so only the tail's
new chunks form a new (small) block.

Measured on one generated 2-hour session (6.45 MB of chunked JSON, 14 files;
``contrib/corpus``): zstd-3 of each whole file stores 350 KB (18.4x); zstd-3
of each 64 KiB CDC chunk alone 976 KB (6.6x); zstd-3 of 1 MiB blocks of
neighbouring chunks 351 KB (18.4x). Blocks of 1 MiB keep the whole-file ratio
while a random read decodes at most 1 MiB (cached afterwards).

On-disk frame of a block (little endian)::

    magic   4s  b"SFB1"
    codec   u8  CODEC_RAW | CODEC_ZSTD | CODEC_ZSTD_DICT | CODEC_FLAC
    dict_id u32 zstd dictionary id (0 without one)
    raw_len u32 length of the decoded payload
    length  u32 length of the stored payload that follows
    payload

The codec and dictionary are recorded per block so that later recompression
(higher levels, trained dictionaries, audio) can coexist with every older block.
CODEC_FLAC (``pcm_codec``, written only by recompression) carries the sample format
in its own payload, with a version of its own, so a block decodes without knowing
its file; ``encode_pcm_block`` keeps a coding only when it decodes to the same bytes.
Decoding refuses a header whose raw length exceeds MAX_BLOCK_RAW and never
lets zstd produce more than the header promised: a decompression bomb costs
at most MAX_BLOCK_RAW bytes.
"""

from __future__ import annotations

import struct
from typing import Callable

import zstandard

from .errors import IntegrityError

MAGIC = b"SFB1"
HEADER = struct.Struct("<4sBIII")
CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_ZSTD_DICT = 2
CODEC_FLAC = 3
CODEC_NAMES = {CODEC_RAW: "raw", CODEC_ZSTD: "zstd", CODEC_ZSTD_DICT: "zstd+dict", CODEC_FLAC: "flac"}
MAX_BLOCK_RAW = 16 * 1024 * 1024
# Store compressed only when it saves at least this share: PNG, WAV and MP4
# barely shrink, and raw blocks are cheaper to read.
MIN_SAVING = 0.05

DictLookup = Callable[[int], "zstandard.ZstdCompressionDict"]


def encode_block(raw: bytes, level: int = 3, zdict: "zstandard.ZstdCompressionDict | None" = None,
                 dict_id: int = 0) -> tuple[bytes, int]:
    """Frame ``raw``; returns (framed bytes, codec used)."""
    if len(raw) > MAX_BLOCK_RAW:
        raise ValueError(f"block of {len(raw)} bytes exceeds {MAX_BLOCK_RAW}")
    codec, payload = CODEC_RAW, raw
    if level > 0 and raw:
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True,
                                        dict_data=zdict)
        packed = cctx.compress(raw)
        if len(packed) <= len(raw) * (1 - MIN_SAVING):
            codec = CODEC_ZSTD_DICT if zdict is not None else CODEC_ZSTD
            payload = packed
    if codec != CODEC_ZSTD_DICT:
        dict_id = 0
    return HEADER.pack(MAGIC, codec, dict_id, len(raw), len(payload)) + payload, codec


def encode_pcm_block(raw: bytes, channels: int, width: int, lead: int, pcm_len: int, level: int) -> bytes | None:
    """Frame ``raw`` with its whole sample frames [lead, lead + pcm_len) coded as FLAC (see
    ``pcm_codec``); None when that does not decode to ``raw`` bit for bit (then stay on zstd)."""
    if len(raw) > MAX_BLOCK_RAW:
        raise ValueError(f"block of {len(raw)} bytes exceeds {MAX_BLOCK_RAW}")
    try:
        from . import pcm_codec     # numpy and libsndfile load only where audio is coded (0.15 s)
        payload = pcm_codec.encode(raw, channels, width, lead, pcm_len, level)
        if pcm_codec.decode(payload, len(raw), "audio encoding") != raw:
            return None
    except (IntegrityError, RuntimeError, ValueError):
        return None
    return HEADER.pack(MAGIC, CODEC_FLAC, 0, len(raw), len(payload)) + payload


def parse_header(header: bytes, where: str) -> tuple[int, int, int, int]:
    """Check a block header; returns (codec, dict_id, raw_len, stored_len)."""
    if len(header) < HEADER.size:
        raise IntegrityError(f"{where}: block header truncated ({len(header)} bytes)")
    magic, codec, dict_id, raw_len, length = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise IntegrityError(f"{where}: bad block magic {magic!r}")
    if codec not in CODEC_NAMES:
        raise IntegrityError(f"{where}: unknown codec {codec}")
    if raw_len > MAX_BLOCK_RAW:
        raise IntegrityError(f"{where}: block claims {raw_len} bytes, more than {MAX_BLOCK_RAW}")
    return codec, dict_id, raw_len, length


def decode_block(framed: bytes, where: str, dicts: DictLookup | None = None) -> bytes:
    """Decode one framed block, checking every length; raises IntegrityError."""
    codec, dict_id, raw_len, length = parse_header(framed, where)
    payload = memoryview(framed)[HEADER.size:]
    if len(payload) != length:
        raise IntegrityError(f"{where}: block payload is {len(payload)} bytes, header says {length}")
    if codec == CODEC_RAW:
        if length != raw_len:
            raise IntegrityError(f"{where}: raw block length {length} != {raw_len}")
        return bytes(payload)
    if codec == CODEC_FLAC:
        from . import pcm_codec
        return pcm_codec.decode(payload, raw_len, where)
    zdict = None
    if codec == CODEC_ZSTD_DICT:
        if dicts is None:
            raise IntegrityError(f"{where}: block needs zstd dictionary {dict_id}, none available")
        zdict = dicts(dict_id)
    try:
        # zstandard sizes its output by the frame's own content size when the frame
        # declares one and ignores max_output_size: check it first (decompression bomb).
        declared = zstandard.frame_content_size(payload)
        if declared not in (-1, raw_len):
            raise IntegrityError(f"{where}: zstd frame declares {declared} bytes, header says {raw_len}")
        dctx = zstandard.ZstdDecompressor(dict_data=zdict) if zdict else zstandard.ZstdDecompressor()
        raw = dctx.decompress(payload, max_output_size=raw_len)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where}: zstd frame does not decode: {exc}") from None
    if len(raw) != raw_len:
        raise IntegrityError(f"{where}: block decodes to {len(raw)} bytes, header says {raw_len}")
    return raw
