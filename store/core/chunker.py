"""Content-defined chunking and hashing: pure functions over bytes.

FastCDC (the compiled ``pyfastcdc``) cuts at content-defined boundaries, so
an insertion or an appended record changes only the chunks around it. The
sizes (16 KiB min, 64 KiB average, 256 KiB max) keep a ~1 MB chunk file at
about 16 chunks: an appended record rewrites one or two of them, while the
chunk count of a 256 MB attachment stays in the low thousands.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Iterator

from pyfastcdc import FastCDC

MIN_CHUNK = 16 * 1024
AVG_CHUNK = 64 * 1024
MAX_CHUNK = 256 * 1024

_CDC = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def chunk_hash(data: bytes | memoryview) -> bytes:
    """The chunk's identity: SHA-256 of its bytes."""
    return hashlib.sha256(data).digest()


def cut(data: bytes | memoryview) -> list[tuple[int, int]]:
    """Content-defined (offset, length) pieces covering ``data``."""
    if not data:
        return []
    return [(c.offset, c.length) for c in _CDC.cut_buf(data)]


def cut_stream(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Chunk a stream given as byte pieces, with boundaries as if it were one buffer.

    The last chunk of each window was cut by the window's end, not by content,
    so it is carried into the next window; memory stays within one window plus
    one chunk.
    """
    carry = b""
    for piece in pieces:
        if not piece:
            continue
        buf = carry + piece if carry else piece
        spans = cut(buf)
        for off, length in spans[:-1]:
            yield buf[off:off + length]
        off, length = spans[-1]
        carry = bytes(buf[off:off + length])
    if carry:
        for off, length in cut(carry):
            yield carry[off:off + length]


def is_zero(data: bytes) -> bool:
    """True when ``data`` is all zero bytes (such chunks are stored as holes)."""
    return not data.strip(b"\0")
