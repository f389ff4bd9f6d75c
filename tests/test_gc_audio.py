"""gc compaction around FLAC-coded audio: a block trimmed to its live chunks stays FLAC, every
file reads back bit for bit, and ``verify --data`` finds nothing wrong."""

from __future__ import annotations

from store import Store
from store.core import codec
from store.services.gc import GcOptions, collect
from store.services.recompress import CompressOptions, compress
from store.services.verify import verify
from store.backends.catalog.sqlite.view import sql
from test_codec_audio import pcm_bytes, speech, wav_file


def codecs(store) -> dict[int, int]:
    return dict(sql(store.catalog.reader()).execute("SELECT codec, count(*) FROM blocks GROUP BY codec").fetchall())


def test_compaction_keeps_trimmed_audio_blocks_flac(tmp_path):
    whole = wav_file(pcm_bytes(speech(1_200_001, 1), 16), 1, 16)
    kept = {"sessions/s1/attachments/head.wav": whole[:len(whole) * 2 // 5],     # shares the whole file's chunks
            "sessions/s1/attachments/other.wav": wav_file(pcm_bytes(speech(300_000, 2, seed=5), 16), 2, 16)}
    Store.init(tmp_path / "store")
    with Store.open(tmp_path / "store") as store:
        store.write_files({"sessions/s1/attachments/whole.wav": whole, **kept})
        store.flush()
        compress(store, CompressOptions(cold_age=0))
        before = codecs(store)
        assert set(before) == {codec.CODEC_FLAC}, before
        store.write_files({"sessions/s1/attachments/whole.wav": None})
        store.flush()
        result = collect(store, GcOptions(grace=0, threshold=1.0, reencode_below=1.0))
        after = codecs(store)
        assert result.blocks_reencoded >= 1 and result.chunks_reclaimed > 0
        assert set(after) == {codec.CODEC_FLAC}, after          # the trimmed block too (not zstd, not raw)
        for path, data in kept.items():
            assert store.read_path(path) == data, path
        report = verify(store, data=True)
        assert not report.problems, [p.line() for p in report.problems]
