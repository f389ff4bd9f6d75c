"""Valid RGB PNG screenshots rendered from OCR text (zlib + struct only)."""

from __future__ import annotations

import functools
import random
import struct
import zlib

CELL_W, CELL_H = 6, 10
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

THEMES = {
    "dark": ((30, 30, 30), (212, 212, 212)),
    "light": ((250, 250, 250), (36, 41, 47)),
    "terminal": ((12, 12, 12), (80, 220, 100)),
    "chat": ((255, 255, 255), (29, 28, 29)),
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(width: int, height: int, rows: list[bytes], level: int = 6) -> bytes:
    """Encode RGB8 scanlines (each width*3 bytes) as a PNG file."""
    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b""))


@functools.lru_cache(maxsize=None)
def _glyphs(theme: str) -> tuple[tuple[bytes, ...], ...]:
    """Per character code 0-127, the CELL_H pixel rows of its glyph."""
    bg, fg = (bytes(c) for c in THEMES[theme])
    table = []
    for code in range(128):
        rows = []
        bits = (code * 2654435761) & 0xFFFFFFFF
        for r in range(CELL_H):
            if code <= 32 or r in (0, 1, CELL_H - 1):
                rows.append(bg * CELL_W)
                continue
            mask = (bits >> ((r * 5) % 27)) & 0x1F
            rows.append(b"".join(fg if mask >> x & 1 else bg for x in range(CELL_W - 1)) + bg)
        table.append(tuple(rows))
    return tuple(table)


def _text_rows(line: str, table, cols: int, pad: bytes) -> list[bytes]:
    codes = line.encode("ascii", "replace")[:cols]
    cells = [table[c] for c in codes]
    fill = pad * (cols - len(codes))
    return [b"".join([cell[r] for cell in cells]) + fill for r in range(CELL_H)]


@functools.lru_cache(maxsize=None)
def _noise_table(level: int) -> bytes:
    return bytes(level + (b & 0x1F) for b in range(256))


def _noise_rows(seed: int, width: int, count: int, base: tuple[int, int, int]) -> list[bytes]:
    """A photo-like band: a colour gradient with low-amplitude noise."""
    rng = random.Random(seed)
    tint = [rng.randrange(40, 180) for _ in range(3)]
    rows = []
    for y in range(count):
        row = bytearray(width * 3)
        for ch in range(3):
            level = min(223, tint[ch] + y // 2 + base[ch] // 8)
            row[ch::3] = rng.randbytes(width).translate(_noise_table(level))
        rows.append(bytes(row))
    return rows


def render_screenshot(lines: list[str], *, theme: str, noise_seed: int,
                      width: int = 640, height: int = 400,
                      noise_rows: int = 0, level: int = 6) -> bytes:
    """Render as many text lines as fit, then a noisy band, into a PNG."""
    table = _glyphs(theme)
    bg = bytes(THEMES[theme][0])
    pad = bg * CELL_W
    cols = width // CELL_W
    tail = bg * (width - cols * CELL_W)
    noise_rows = min(noise_rows, height)
    rows: list[bytes] = []
    for line in lines[: (height - noise_rows) // CELL_H]:
        rows.extend(r + tail for r in _text_rows(line, table, cols, pad))
    blank = bg * width
    rows.extend(blank for _ in range(height - noise_rows - len(rows)))
    rows.extend(_noise_rows(noise_seed, width, noise_rows, THEMES[theme][0]))
    return encode_png(width, height, rows, level)
