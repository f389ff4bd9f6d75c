"""Tests of the legacy session store generator (contrib.corpus)."""

from __future__ import annotations

import io
import json
import statistics
import struct
import wave
import zlib

import numpy
import pytest
from PIL import Image

from contrib.corpus import PROFILES, dumps_session, generate_session, write_legacy_store
from contrib.corpus.__main__ import main as cli_main

LARGE = ("screenshots", "audioSegments", "video", "summary", "audioInsights",
         "canvasSpec", "fullTranscription", "contextItems")
SESSION_FIELDS = {
    "id", "name", "description", "status", "startTime", "endTime", "lastScreenshotTime",
    "pausedAt", "totalPausedTime", "screenshotInterval", "autoAnalysis", "enableScreenshots",
    "audioMode", "audioRecording", "videoRecording", "audioConfig", "videoConfig",
    "trackingNoteId", "extractedTaskIds", "extractedNoteIds", "relationships", "topicIds",
    "tags", "category", "subCategory", "activityType", "totalDuration", "enrichmentStatus",
    "enrichmentConfig", "enrichmentLock", "version", "createdAt", "updatedAt", *LARGE}
SHOT_FIELDS = {"id", "sessionId", "timestamp", "sequenceNumber", "attachmentId", "analysis",
               "isDuplicate", "duplicateOf", "perceptualHash"}
ANALYSIS_FIELDS = {"summary", "detectedActivity", "extractedText", "keyElements",
                   "confidence", "curiosity", "curiosityReason"}
SEGMENT_FIELDS = {"id", "sessionId", "timestamp", "duration", "transcription", "attachmentId",
                  "speakerConfidence", "noiseLevel", "isEmpty"}


def size(value) -> int:
    return len(dumps_session(value))


@pytest.fixture(scope="module")
def small():
    return generate_session(3, 1, profile="small")


@pytest.fixture(scope="module")
def full_json():
    return generate_session(3, 1, profile="json-only")[0]


@pytest.fixture(scope="module")
def many_shots():
    """Small sessions with enough screenshots to measure the static share."""
    return generate_session(5, 0, profile="small", screenshots=81, audio_segments=1)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_same_seed_and_index_give_identical_bytes(small):
    again = generate_session(3, 1, profile="small")
    assert dumps_session(again[0]) == dumps_session(small[0])
    assert again[1] == small[1]
    other = generate_session(3, 2, profile="small")[0]
    assert other["id"] != small[0]["id"]
    assert generate_session(4, 1, profile="small")[0]["id"] != small[0]["id"]


def test_json_does_not_depend_on_attachments(small):
    bare, files = generate_session(3, 1, profile="small", attachments=False)
    assert files == {}
    assert dumps_session(bare) == dumps_session(small[0])


def test_serialization_matches_stdlib_json_indent_2(small):
    assert dumps_session(small[0]) == (json.dumps(small[0], indent=2) + "\n").encode()


def test_session_has_every_model_field(small, full_json):
    for session in (small[0], full_json):
        assert SESSION_FIELDS <= set(session)
        for shot in session["screenshots"]:
            assert set(shot) == SHOT_FIELDS
            assert set(shot["analysis"]) == ANALYSIS_FIELDS
            assert shot["sessionId"] == session["id"]
        for seg in session["audioSegments"]:
            assert set(seg) == SEGMENT_FIELDS
        assert set(session["video"]) == {"path", "optimizedPath", "duration", "chunks"}
        assert session["startTime"].endswith("Z") and len(session["startTime"]) == 24


def test_small_profile_sizes(small):
    session, files = small
    assert 30_000 < size(session) < 300_000
    assert len(session["screenshots"]) in range(9, 12)
    assert len(session["audioSegments"]) in range(3, 6)
    assert all(len(b) < 100_000 for b in files.values())


def test_full_profile_sizes(full_json):
    s = full_json
    assert 4_500_000 < size(s) < 9_000_000
    assert 6_000 < size({k: v for k, v in s.items() if k not in LARGE}) < 14_000
    assert 40_000 < size(s["summary"]) < 60_000
    assert 24_000 < size(s["audioInsights"]) < 38_000
    assert 32_000 < size(s["canvasSpec"]) < 50_000
    assert 80_000 < len(s["fullTranscription"]) < 125_000
    assert 7_000 < size(s["contextItems"]) < 14_000
    assert 108 <= len(s["screenshots"]) <= 132
    assert 36 <= len(s["audioSegments"]) <= 44
    assert 18 <= len(s["video"]["chunks"]) <= 22
    shot_sizes = [size(r) for r in s["screenshots"]]
    assert 40_000 < statistics.mean(shot_sizes) < 60_000


def test_every_attachment_id_has_a_file(small):
    session, files = small
    wanted = {r["attachmentId"] + ".png" for r in session["screenshots"]}
    wanted |= {s["attachmentId"] + ".wav" for s in session["audioSegments"]}
    assert set(files) == wanted


def test_pngs_are_valid(small):
    session, files = small
    width, height = PROFILES["small"].png_width, PROFILES["small"].png_height
    for name, data in files.items():
        if not name.endswith(".png"):
            continue
        chunks = png_chunks(data)
        assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
        assert struct.unpack(">IIBB", chunks[0][1][:10]) == (width, height, 8, 2)
        assert len(zlib.decompress(chunks[1][1])) == height * (1 + 3 * width)


def test_wavs_are_valid(small):
    session, files = small
    for seg in session["audioSegments"]:
        with wave.open(io.BytesIO(files[seg["attachmentId"] + ".wav"])) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert w.getnframes() == round(seg["duration"] * 16000)
            frames = w.readframes(w.getnframes())
        if not seg["isEmpty"]:
            assert max(abs(v) for v in struct.unpack(f"<{len(frames) // 2}h", frames)) > 2000


def test_about_30_percent_of_screenshots_repeat_the_previous_png(many_shots):
    session, files = many_shots
    shots = session["screenshots"]
    pngs = [files[r["attachmentId"] + ".png"] for r in shots]
    same = [a == b for a, b in zip(pngs, pngs[1:])]
    assert 0.2 <= sum(same) / len(same) <= 0.4
    assert len({r["attachmentId"] for r in shots}) == len(shots)
    for record, repeated in zip(shots[1:], same):
        assert record["isDuplicate"] == repeated
        if repeated:
            original = next(r for r in shots if r["id"] == record["duplicateOf"])
            assert files[original["attachmentId"] + ".png"] == files[record["attachmentId"] + ".png"]


def test_consecutive_ocr_texts_share_most_lines(full_json):
    shots = full_json["screenshots"]
    shares = []
    for a, b in zip(shots, shots[1:]):
        prev, cur = a["analysis"]["extractedText"], set(b["analysis"]["extractedText"])
        shares.append(sum(line in cur for line in prev) / len(prev))
    assert statistics.median(shares) > 0.95
    assert sum(s > 0.5 for s in shares) / len(shares) > 0.85
    changed = [s for s, b in zip(shares, shots[1:]) if not b["isDuplicate"]]
    assert all(s < 1.0 for s in changed)


def test_write_legacy_store_writes_files_and_totals(tmp_path):
    totals = write_legacy_store(tmp_path, 2, seed=9, profile="small")
    jsons = sorted((tmp_path / "sessions").iterdir())
    blobs = sorted((tmp_path / "attachments").iterdir())
    assert totals["sessions"] == len(jsons) == 2
    assert totals["json_bytes"] == sum(p.stat().st_size for p in jsons)
    assert totals["attachments"] == len(blobs)
    assert totals["attachment_bytes"] == sum(p.stat().st_size for p in blobs)
    assert totals["unique_attachment_bytes"] == sum(
        len(b) for b in {p.read_bytes() for p in blobs})
    assert totals["unique_attachment_bytes"] < totals["attachment_bytes"]
    session, files = generate_session(9, 0, profile="small")
    assert (tmp_path / "sessions" / f"{session['id']}.json").read_bytes() == dumps_session(session)
    for name, data in files.items():
        assert (tmp_path / "attachments" / name).read_bytes() == data


def test_cli_prints_totals(tmp_path, capsys):
    assert cli_main([str(tmp_path), "--count", "1", "--profile", "small",
                     "--no-attachments", "--quiet"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["sessions"] == 1 and totals["attachments"] == 0
    assert len(list((tmp_path / "sessions").iterdir())) == 1


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="unknown profile"):
        generate_session(1, 0, profile="huge")


def test_realistic_profile_speaks_and_draws_real_text():
    """espeak-ng speech over microphone noise in 16 kHz WAVs, Pillow screenshots of the text."""
    from store.core import wav
    session, files = generate_session(5, 0, profile="realistic", screenshots=2, audio_segments=3,
                                      wav_seconds=(1.0, 2.0))
    wavs = [data for name, data in files.items() if name.endswith(".wav")]
    pngs = [data for name, data in files.items() if name.endswith(".png")]
    assert len(wavs) == 3 and pngs
    for data in wavs:
        fmt = wav.parse(data, len(data))
        assert fmt is not None and (fmt.channels, fmt.width) == (1, 2)
        samples = numpy.frombuffer(data[fmt.data_start:], "<i2")
        assert 16000 <= len(samples) <= 32000 and samples.std() > 20        # never digital silence
    spoken = [s for s in session["audioSegments"] if s["transcription"]]
    assert spoken
    with Image.open(io.BytesIO(pngs[0])) as img:
        assert img.size == (1280, 800) and len(img.getcolors(1 << 16) or ()) > 8   # anti-aliased text
    assert generate_session(5, 0, profile="realistic", screenshots=2, audio_segments=3,
                            wav_seconds=(1.0, 2.0))[1] == files
