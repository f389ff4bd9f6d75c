"""The audio codec: WAV headers, blocks cut anywhere on the sample grid, byte-exact round trips."""

from __future__ import annotations

import struct

import numpy
import pytest
import zstandard

from store.core import codec, pcm_codec, wav
from store.core.chunker import cut
from store.core.errors import IntegrityError

GUID_PCM = b"\x01\x00" + bytes.fromhex("000000001000800000aa00389b71")
GUID_FLOAT = b"\x03\x00" + bytes.fromhex("000000001000800000aa00389b71")


def fmt_chunk(tag: int, channels: int, bits: int, rate: int = 16000, guid: bytes = b"") -> bytes:
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if tag == wav.FORMAT_EXTENSIBLE:
        body += struct.pack("<HHI", 22, bits, 0) + guid
    return b"fmt " + struct.pack("<I", len(body)) + body


def wav_file(samples: bytes, channels: int, bits: int, *, tag: int = wav.FORMAT_PCM, guid: bytes = b"",
             extra: bytes = b"", data_size: int | None = None) -> bytes:
    """A WAV file: RIFF header, fmt, ``extra`` chunks, then data (size ``data_size`` if given)."""
    body = (b"WAVE" + fmt_chunk(tag, channels, bits, guid=guid) + extra + b"data"
            + struct.pack("<I", len(samples) if data_size is None else data_size) + samples)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def speech(frames: int, channels: int, seed: int = 1) -> numpy.ndarray:
    """Speech-like float samples in [-1, 1): tones with a moving pitch and envelope over noise."""
    rng = numpy.random.default_rng(seed)
    t = numpy.arange(frames) / 16000
    tone = numpy.sin(2 * numpy.pi * (140 + 40 * numpy.sin(2 * numpy.pi * 0.7 * t)) * t)
    env = numpy.abs(numpy.sin(2 * numpy.pi * 1.3 * t))
    out = [0.5 * env * numpy.roll(tone, 17 * c) + rng.normal(0, 0.01, frames) for c in range(channels)]
    return numpy.clip(numpy.stack(out, axis=1), -1, 0.999)


def pcm_bytes(x: numpy.ndarray, bits: int) -> bytes:
    """Interleaved little-endian PCM of float samples ``x`` at ``bits`` (8: unsigned)."""
    if bits == 8:
        return (x * 127 + 128).astype(numpy.uint8).tobytes()
    if bits == 24:
        v = (x * (1 << 23)).astype("<i4").view(numpy.uint8).reshape(-1, 4)
        return v[:, :3].tobytes()
    return (x * (1 << (bits - 1))).astype(f"<i{bits // 8}").tobytes()


def blocks(data: bytes):
    """(file offset, bytes) of blocks as ingest forms them: runs of content-defined chunks."""
    spans = cut(data)
    for i in range(0, len(spans), 3):
        off = spans[i][0]
        end = spans[min(i + 2, len(spans) - 1)]
        yield off, data[off:end[0] + end[1]]


def round_trip(data: bytes) -> tuple[int, int]:
    """Code every block of a WAV file as ``recompress`` does; returns (coded blocks, framed bytes)."""
    fmt = wav.parse(data[:wav.HEADER_PROBE], len(data))
    assert fmt is not None
    coded, stored = 0, 0
    for off, raw in blocks(data):
        lead, pcm_len = wav.pcm_span(fmt, off, len(raw))
        framed = codec.encode_pcm_block(raw, fmt.channels, fmt.width, lead, pcm_len, 19)
        assert framed is not None
        assert codec.decode_block(framed, "t") == raw
        coded += 1
        stored += len(framed)
    return coded, stored


@pytest.mark.parametrize("bits,channels", [(8, 1), (16, 1), (16, 2), (24, 1), (24, 6), (8, 3)])
def test_every_block_of_a_wav_round_trips_byte_exact(bits, channels):
    data = wav_file(pcm_bytes(speech(300_000 // channels + 1, channels), bits), channels, bits,
                    extra=b"LIST" + struct.pack("<I", 27) + b"INFOISFT\x0f\x00\x00\x00sessionfs test\x00\x00")
    coded, stored = round_trip(data)
    assert coded > 1
    zstd = sum(len(codec.encode_block(raw, 19)[0]) for _, raw in blocks(data))
    assert stored < zstd


def test_blocks_cut_inside_a_sample_frame_keep_the_cut_bytes():
    data = wav_file(pcm_bytes(speech(30_000, 2), 24), 2, 24)
    fmt = wav.parse(data, len(data))
    for off in (0, 1, 44, 45, 46, 47, 50, 1001):
        raw = data[off:off + 40_003]
        lead, pcm_len = wav.pcm_span(fmt, off, len(raw))
        assert (off + lead - fmt.data_start) % fmt.frame == 0 and pcm_len % fmt.frame == 0
        assert 0 <= len(raw) - lead - pcm_len < 44 + 2 * fmt.frame
        framed = codec.encode_pcm_block(raw, fmt.channels, fmt.width, lead, pcm_len, 3)
        assert codec.decode_block(framed, "t") == raw


def test_a_wrong_layout_still_round_trips_or_is_refused():
    """encode_pcm_block verifies: samples read on the wrong grid code badly but exactly."""
    data = wav_file(pcm_bytes(speech(20_000, 1), 16), 1, 16)
    raw = data[1:]
    framed = codec.encode_pcm_block(raw, 2, 3, 3, 6 * ((len(raw) - 3) // 6), 3)
    assert framed is None or codec.decode_block(framed, "t") == raw


@pytest.mark.parametrize("make", [
    lambda s: wav_file(s, 1, 32),                                           # 32-bit integer
    lambda s: wav_file(s, 1, 32, tag=3),                                    # IEEE float
    lambda s: wav_file(s, 1, 32, tag=wav.FORMAT_EXTENSIBLE, guid=GUID_FLOAT),
    lambda s: wav_file(s, 1, 16, tag=2),                                    # ADPCM
    lambda s: wav_file(s, 9, 16),                                           # more channels than FLAC
    lambda s: b"RIFX" + wav_file(s, 1, 16)[4:],                            # big endian
    lambda s: wav_file(s, 1, 16)[:30],                                      # truncated header
    lambda s: wav_file(s, 1, 16).replace(b"fmt \x10", b"fmt \xff"),        # fmt size past the end
    lambda s: b"RIFF\0\0\0\0WAVEdata\4\0\0\0abcd" + s,                      # data before fmt
    lambda s: b"not a wav at all" + s,
])
def test_formats_flac_cannot_code_are_not_parsed(make):
    data = make(pcm_bytes(speech(1000, 1), 32))
    assert wav.parse(data, len(data)) is None


def test_extensible_pcm_and_open_ended_data_are_parsed():
    samples = pcm_bytes(speech(1000, 2), 24)
    data = wav_file(samples, 2, 24, tag=wav.FORMAT_EXTENSIBLE, guid=GUID_PCM, data_size=0xFFFFFFFF)
    fmt = wav.parse(data, len(data))
    assert fmt == wav.PcmFormat(2, 3, len(data) - len(samples), len(data))


def test_odd_widths_stay_on_zstd_and_round_trip():
    """32-bit integer and float WAVs are not parsed, so recompression keeps them on zstd."""
    for tag in (1, 3):
        data = wav_file(pcm_bytes(speech(20_000, 2), 32), 2, 32, tag=tag)
        assert wav.parse(data, len(data)) is None
        framed, used = codec.encode_block(data, 19)
        assert used in (codec.CODEC_ZSTD, codec.CODEC_RAW) and codec.decode_block(framed, "t") == data


def coded_block() -> tuple[bytes, bytes]:
    data = wav_file(pcm_bytes(speech(40_000, 2), 16), 2, 16)
    fmt = wav.parse(data, len(data))
    lead, pcm_len = wav.pcm_span(fmt, 0, len(data))
    return data, codec.encode_pcm_block(data, fmt.channels, fmt.width, lead, pcm_len, 3)


def payload_header(framed: bytes) -> tuple:
    return pcm_codec.PCM_HEAD.unpack_from(framed, codec.HEADER.size)


def with_payload_header(framed: bytes, **fields) -> bytes:
    names = ("version", "channels", "width", "lead", "pcm_len", "side_len")
    values = dict(zip(names, payload_header(framed)), **fields)
    return (framed[:codec.HEADER.size] + pcm_codec.PCM_HEAD.pack(*(values[n] for n in names))
            + framed[codec.HEADER.size + pcm_codec.PCM_HEAD.size:])


@pytest.mark.parametrize("fields,message", [
    (dict(version=2), "unknown audio codec version 2"),
    (dict(width=4), "inconsistent"),
    (dict(channels=0), "inconsistent"),
    (dict(pcm_len=10 ** 7), "inconsistent"),
    (dict(channels=4), "header says 4"),
    (dict(pcm_len=4 * 1000), "side data does not declare"),
    (dict(side_len=10 ** 6), "exceeds the payload"),
    (dict(lead=10 ** 6), "inconsistent"),
])
def test_damaged_audio_headers_are_integrity_errors(fields, message):
    _, framed = coded_block()
    with pytest.raises(IntegrityError, match=message):
        codec.decode_block(with_payload_header(framed, **fields), "t")


def test_damaged_flac_bytes_never_pass_as_the_block():
    data, framed = coded_block()
    for pos in (len(framed) // 2, len(framed) - 20, codec.HEADER.size + pcm_codec.PCM_HEAD.size + 60):
        broken = bytearray(framed)
        broken[pos] ^= 0x55
        try:
            assert codec.decode_block(bytes(broken), "t") != data
        except IntegrityError:
            pass
    truncated = framed[:len(framed) - 100]
    with pytest.raises(IntegrityError):
        codec.decode_block(codec.HEADER.pack(codec.MAGIC, codec.CODEC_FLAC, 0, len(data), len(truncated)
                                             - codec.HEADER.size) + truncated[codec.HEADER.size:], "t")


def test_side_data_that_lies_about_its_size_is_refused():
    data, framed = coded_block()
    side = zstandard.ZstdCompressor(write_content_size=True).compress(b"x" * 44)
    head = payload_header(framed)
    flac = framed[codec.HEADER.size + pcm_codec.PCM_HEAD.size + head[5]:]
    payload = pcm_codec.PCM_HEAD.pack(*head[:5], len(side)) + side + flac
    with pytest.raises(IntegrityError, match="side data"):
        pcm_codec.decode(payload, len(data) + 1, "t")
