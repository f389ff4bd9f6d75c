"""Audio coding in a store: WAVs written through a real mount, recompressed by ``sessionfs
compress``, verified with ``verify --data`` and read back bit for bit through the mount."""

from __future__ import annotations

import sqlite3

from checks import pack_file
from mounting import sessionfs
from store.core import codec
from test_codec_audio import GUID_PCM, pcm_bytes, speech, wav_file

FILES = {
    "mono16.wav": wav_file(pcm_bytes(speech(1_500_001, 1), 16), 1, 16),     # blocks start at odd offsets
    "stereo24.wav": wav_file(pcm_bytes(speech(150_000, 2, seed=2), 24), 2, 24, tag=0xFFFE, guid=GUID_PCM),
    "six8.wav": wav_file(pcm_bytes(speech(100_000, 6, seed=3), 8), 6, 8),
    "float32.wav": wav_file(pcm_bytes(speech(100_000, 1, seed=4), 32), 1, 32, tag=3),
}
#: The mono file one byte later: its chunks after the first are the mono file's (dedup), and
#: their blocks are coded from the WAV holding them.
FILES["shifted.bin"] = b"\x00" + FILES["mono16.wav"]


def block_codecs(store) -> dict[int, int]:
    with sqlite3.connect(f"file:{store / 'catalog.db'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT codec, count(*) FROM blocks GROUP BY codec").fetchall())


def test_wavs_are_coded_when_cold_and_read_back_exactly(mount, tmp_path):
    folder = mount.sessions / "s1" / "attachments"
    folder.mkdir(parents=True)
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    mount.umount()
    assert codec.CODEC_FLAC not in block_codecs(mount.store)

    sessionfs("compress", str(mount.store), timeout=600)
    codecs = block_codecs(mount.store)
    assert codecs.get(codec.CODEC_FLAC, 0) >= 5, codecs
    assert codecs.get(codec.CODEC_ZSTD, 0) + codecs.get(codec.CODEC_RAW, 0) >= 2, codecs   # float WAV, shifted head
    result = sessionfs("verify", "--data", str(mount.store), timeout=600)
    assert "no problems" in result.stdout

    mount.start()
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data, name

    (folder / "stereo24.wav").unlink()                  # gc compacts around coded blocks
    mount.umount()
    sessionfs("gc", "--grace", "0", "--threshold", "1", str(mount.store), timeout=600)
    assert "no problems" in sessionfs("verify", "--data", str(mount.store), timeout=600).stdout
    mount.start()
    for name, data in FILES.items():
        if name != "stereo24.wav":
            assert (folder / name).read_bytes() == data, name


def test_verify_data_finds_a_damaged_audio_block(mount):
    folder = mount.sessions / "s1" / "attachments"
    folder.mkdir(parents=True)
    (folder / "mono16.wav").write_bytes(FILES["mono16.wav"])
    mount.umount()
    sessionfs("compress", str(mount.store), timeout=600)
    with sqlite3.connect(mount.store / "catalog.db") as db:
        pack_id, offset, length = db.execute("SELECT pack_id, offset, length FROM blocks WHERE codec = ? "
                                             "ORDER BY id LIMIT 1", (codec.CODEC_FLAC,)).fetchone()
    with open(pack_file(mount.store, pack_id), "r+b") as f:
        f.seek(offset + length // 2)
        byte = f.read(1)
        f.seek(offset + length // 2)
        f.write(bytes([byte[0] ^ 0x5A]))
    result = sessionfs("verify", "--data", str(mount.store), check=False, timeout=600)
    assert result.returncode != 0
    assert f"pack {pack_id:08d} offset {offset}" in result.stdout + result.stderr
