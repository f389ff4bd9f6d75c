"""Would storing screenshots as their inflated IDAT pay? The evaluation the issue asks for.

    python -m contrib.bench.png_redeflate DIR_OF_PNGS

For each PNG: inflate the concatenated IDAT data, find the zlib level, memLevel and strategy
that re-deflate it to exactly the stored stream (a byte-exact rebuild is the condition), and
compare zstd -19 of the PNG as it is (what recompression stores today) with zstd -19 of the
inflated data plus the PNG's other bytes (what a re-deflating codec would store), with and
without a dictionary trained on the inflated data of the other files. Prints the totals.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import zstandard


def idat(png: bytes) -> tuple[bytes, bytes]:
    """(the PNG without its IDAT payloads, the concatenated IDAT payloads)."""
    pos, rest, data = 8, [png[:8]], []
    while pos + 8 <= len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        end = pos + 12 + length
        if kind == b"IDAT":
            data.append(png[pos + 8:pos + 8 + length])
            rest.append(png[pos:pos + 8] + png[end - 4:end])
        else:
            rest.append(png[pos:end])
        pos = end
    return b"".join(rest), b"".join(data)


def rebuild_params(stream: bytes, inflated: bytes) -> tuple[int, int, int] | None:
    """(level, memLevel, strategy) that deflate ``inflated`` to exactly ``stream``, if any."""
    for level in (6, 9, 1, 2, 3, 4, 5, 7, 8, 0):
        for mem in (8, 9):
            for strategy in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED):
                c = zlib.compressobj(level, zlib.DEFLATED, 15, mem, strategy)
                if c.compress(inflated) + c.flush() == stream:
                    return level, mem, strategy
    return None


def main(argv: list[str] | None = None) -> int:
    files = sorted(Path((argv or sys.argv[1:])[0]).glob("*.png"))
    z19 = zstandard.ZstdCompressor(level=19)
    stored = redeflated = exact = 0
    samples = []
    for f in files:
        png = f.read_bytes()
        rest, stream = idat(png)
        inflated = zlib.decompress(stream)
        params = rebuild_params(stream, inflated)
        stored += len(z19.compress(png))
        if params is None:
            redeflated += len(z19.compress(png))
            continue
        exact += 1
        samples.append(inflated)
        redeflated += len(z19.compress(rest + inflated)) + 4
    zdict = zstandard.train_dictionary(112_640, samples[: len(samples) // 2]) if len(samples) >= 20 else None
    with_dict = None
    if zdict is not None:
        zd = zstandard.ZstdCompressor(level=19, dict_data=zdict)
        held_out = files[len(samples) // 2:]
        base = sum(len(z19.compress(f.read_bytes())) for f in held_out)
        coded = sum(len(zd.compress(rest + zlib.decompress(stream))) + 4
                    for rest, stream in (idat(f.read_bytes()) for f in held_out))
        with_dict = (base, coded)
    print(f"{len(files)} PNGs, {exact} rebuilt byte-exact by zlib; zstd -19 as stored: {stored:,} B; "
          f"inflated + zstd -19: {redeflated:,} B ({redeflated / stored:.3f})")
    if with_dict:
        print(f"held-out half with a dictionary of the other half: {with_dict[0]:,} B as stored, "
              f"{with_dict[1]:,} B inflated ({with_dict[1] / with_dict[0]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
