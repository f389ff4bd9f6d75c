"""The audio codec: ratio and decode speed per block, and reading a 100 MB WAV through the mount.

    python -m contrib.bench.audio_bench [--mb 100] [--dir DIR] [--json OUT] [--report FILE]

The WAV is recorded-like speech (``contrib.corpus.speech``: espeak-ng over microphone noise,
16 kHz mono 16-bit), one minute of speech repeated with fresh noise each time. Printed:

- per 1 MiB block (the size ingest forms): stored share and decode MB/s of zstd -3 (as
  written), zstd -19 (recompression today) and FLAC (``codec.encode_pcm_block``), one thread;
- through a mount: the file written, ``compress`` run without audio coding (the zstd path) in
  one store and with it in another, then sequential 1 MiB reads of the whole file on a fresh
  mount with the page cache dropped (cold) and again (warm), MB/s, median of ``--repeats``.

The goal (issue 17): reads of the FLAC-coded file stay within 1.5x of the zstd path's time, cold
and warm (READ_GOAL). ``--json`` keeps the results (``bench/audio.json``), ``--report FILE`` puts
the section in FILE (``media_bench.put_section``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy

from contrib.bench.media_bench import put_section
from contrib.bench.mount_bench import Mounted, drop_caches, read_file
from contrib.corpus.speech import espeak_pcm, microphone
from contrib.corpus.text import load_corpus
from contrib.corpus.wav import wav_bytes
from store import Store
from store.core import codec, wav
from store.services.recompress import CompressOptions, compress

BLOCK = 1024 * 1024
#: The FLAC path's read throughput may fall to this share of the zstd path's, cold and warm.
READ_GOAL = 1 / 1.5
SECTION = "## Audio codec: decode speed and reads through the mount"


def speech_wav(mb: int) -> bytes:
    """About ``mb`` MB of 16 kHz mono speech over microphone noise."""
    from array import array
    text = " ".join(load_corpus().sentences[:40])
    pcm, rate = espeak_pcm(text)
    minute, parts = 60.0, []
    for i in range(max(1, round(mb * 1e6 / (16000 * 2 * minute)))):
        parts.append(microphone(pcm, rate, minute, f"bench-{i}"))
    return wav_bytes(array("h", numpy.concatenate(parts).tobytes()), 16000)


def codec_rows(data: bytes) -> list[tuple[str, float, float]]:
    """(codec, stored share, decode MB/s) over the file's 1 MiB blocks."""
    fmt = wav.parse(data[:wav.HEADER_PROBE], len(data))
    blocks = [(off, data[off:off + BLOCK]) for off in range(0, len(data), BLOCK)]
    rows = []
    for name, enc in (("zstd -3", lambda off, raw: codec.encode_block(raw, 3)[0]),
                      ("zstd -19", lambda off, raw: codec.encode_block(raw, 19)[0]),
                      ("flac", lambda off, raw: codec.encode_pcm_block(
                          raw, fmt.channels, fmt.width, *wav.pcm_span(fmt, off, len(raw)), 19))):
        framed = [enc(off, raw) for off, raw in blocks]
        t0 = time.perf_counter()
        for f in framed:
            codec.decode_block(f, name)
        seconds = time.perf_counter() - t0
        rows.append((name, sum(map(len, framed)) / len(data), len(data) / seconds / 1e6))
    return rows


def mount_rows(data: bytes, work: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """{path: (cold MB/s, warm MB/s)} reading the WAV through a mount."""
    out = {}
    for name, audio in (("zstd", False), ("flac", True)):
        root = work / f"store-{name}"
        Store.init(root)
        with Store.open(root) as store:
            store.write_files({"sessions/s/attachments/speech.wav": data})
            store.flush()
            compress(store, CompressOptions(cold_age=0, audio=audio))
        m = Mounted(root, work / f"mnt-{name}")
        (work / f"mnt-{name}").mkdir()
        cold, warm = [], []
        try:
            m.mount()
            path = m.mnt / "sessions/s/attachments/speech.wav"
            for _ in range(repeats):
                m.remount()
                drop_caches()
                for into in (cold, warm):
                    t0 = time.perf_counter()
                    assert read_file(path) == len(data)
                    into.append(len(data) / (time.perf_counter() - t0) / 1e6)
        finally:
            m.cleanup()
        out[name] = (statistics.median(cold), statistics.median(warm))
    return out


def section(data: dict) -> str:
    """The report's section (SECTION and its body) from the results ``--json`` keeps."""
    lines = [SECTION, "",
             f"`python -m contrib.bench.audio_bench --mb {data['mb']} --json bench/audio.json`, "
             f"{data['finished']}: a {data['wav_mb']:.1f} MB WAV of 16 kHz mono speech over microphone noise, "
             f"1-minute load average {data['load'][0]:.1f} before and {data['load'][1]:.1f} after the run.", "",
             "| codec | stored share | decode MB/s (1 MiB blocks, one thread) |", "|---|---:|---:|"]
    lines += [f"| {name} | {share:.3f} | {speed:.0f} |" for name, share, speed in data["codecs"]]
    lines += ["", f"| read through the mount, 1 MiB reads (median of {data['repeats']}) | cold MB/s | warm MB/s |",
              "|---|---:|---:|"]
    zstd_cold, zstd_warm = data["mount"]["zstd"]
    for name, (cold, warm) in data["mount"].items():
        lines.append(f"| {name} | {cold:.0f} | {warm:.0f} |")
    flac_cold, flac_warm = data["mount"]["flac"]
    verdict = lambda flac, zstd: f"{flac / zstd:.2f}x: {'met' if flac >= READ_GOAL * zstd else 'NOT met'}"  # noqa: E731
    lines += ["", f"Goal: FLAC reads at least {READ_GOAL:.2f}x of the zstd path's MB/s (within 1.5x of its time). "
              f"Cold {verdict(flac_cold, zstd_cold)}; warm {verdict(flac_warm, zstd_warm)}. The codec's decode "
              "speed is shown beside zstd's; the reads through the mount are what an app waits for."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--report", type=Path, default=None, help="also put the section in this markdown file")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="audio-bench-", dir=args.dir))
    try:
        wav_data = speech_wav(args.mb)
        load_before = os.getloadavg()[0]
        codecs = codec_rows(wav_data)
        mount = mount_rows(wav_data, work, args.repeats)
        data = {"mb": args.mb, "wav_mb": len(wav_data) / 1e6, "repeats": args.repeats,
                "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "load": [load_before, os.getloadavg()[0]], "codecs": codecs, "mount": mount}
        text = section(data)
        print(text)
        if args.json:
            args.json.write_text(json.dumps(data, indent=1) + "\n")
        if args.report:
            put_section(args.report, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
