"""Training the zstd dictionary for small blocks: from what, how big, and when again.

A dictionary is trained on the store's own small text blocks (with merging: those of
metadata.json files, the small files that stay alone; the others of a session are
merged, and a dictionary adds nothing to a merged block). Its own bytes count as
stored, so it is sized to its training data (``dictionary_size``) and trained only from
at least ``MIN_SAMPLES`` files: it pays off from some dozens of sessions. A new version is
trained when the store holds ``RETRAIN_GROWTH`` times more small blocks than the newest was
trained on. The catalog keeps every version (``store.backends.catalog.dictionaries``).
"""

from __future__ import annotations

import zstandard

from store.core import codec
from store.core.layout import METADATA_FILE
from store.core.errors import IntegrityError

#: Largest dictionary trained (zstd's own default is 110 KiB).
MAX_DICT_SIZE = 112 * 1024
#: Smallest dictionary worth training.
MIN_DICT_SIZE = 4 * 1024
#: A dictionary is at most this share of the sample bytes it was trained on.
DICT_SHARE = 1 / 16
#: Fewer samples than this train nothing useful (zstd refuses, or overfits).
MIN_SAMPLES = 16
#: Upper bound of the bytes fed to the trainer (time and memory).
MAX_TRAINING_BYTES = 32 * 1024 * 1024
#: Blocks up to this many decoded bytes are "small": they may use the dictionary.
SMALL_BLOCK = 128 * 1024
#: A new dictionary is trained when there are this many times more small blocks than the newest
#: one was trained on (the store changed a lot since).
RETRAIN_GROWTH = 2.0

_TEXT_BYTES = bytes([9, 10, 13, *range(32, 127)])


def looks_like_text(raw: bytes) -> bool:
    """JSON and other text (merged, and the dictionary is trained on and used for, these only).

    In C (``bytes.translate``), not a Python loop: it runs beside foreground reads, and a
    Python loop holds the GIL they need."""
    head = bytes(raw[:4096])
    if not head:
        return False
    return len(head.translate(None, _TEXT_BYTES)) <= len(head) * 0.05


def dictionary_size(sample_bytes: int) -> int:
    """The dictionary size for ``sample_bytes`` of training data (0: too little data)."""
    size = min(MAX_DICT_SIZE, int(sample_bytes * DICT_SHARE))
    return size if size >= MIN_DICT_SIZE else 0


def train(samples: list[bytes], dict_id: int, level: int = 19) -> bytes | None:
    """Train a dictionary with zstd id ``dict_id`` on ``samples``; None when there is too little data."""
    total = sum(len(s) for s in samples)
    size = dictionary_size(total)
    if len(samples) < MIN_SAMPLES or not size:
        return None
    try:
        d = zstandard.train_dictionary(size, samples, dict_id=dict_id, level=level)
    except zstandard.ZstdError:
        return None
    return d.as_bytes()


def _population(merge: bool) -> bytes | None:
    """The file name whose small blocks a dictionary is for (None: every small block)."""
    return METADATA_FILE.encode() if merge else None


def small_text_blocks(store, limit_bytes: int, merge: bool) -> list[bytes]:
    """Decoded text blocks of the dictionary's population, newest first, up to ``limit_bytes``."""
    samples, total = [], 0
    for b in store.catalog.reader().maintenance.small_blocks(SMALL_BLOCK, _population(merge)):
        if total >= limit_bytes:
            break
        try:
            raw = codec.decode_block(store.packs.read(b.pack_id, b.offset, b.length), f"block {b.id}",
                                     store.dictionaries)
        except IntegrityError:
            continue
        if looks_like_text(raw):
            samples.append(raw)
            total += len(raw)
    return samples


def small_block_count(view, merge: bool = True) -> int:
    """How many blocks of the dictionary's population the store holds."""
    return view.maintenance.count_small_blocks(SMALL_BLOCK, _population(merge))


def ensure_dictionary(store, options, force: bool = False) -> tuple[tuple | None, bool]:
    """The dictionary to encode small blocks with ((id, dict) or None), training a new version
    when there is none yet, or the store holds ``RETRAIN_GROWTH`` times more small blocks than
    when the newest was trained. ``options`` are the ``CompressOptions`` (``dictionary``,
    ``merge``, ``level``). Returns (dictionary, trained now). Training runs in the calling
    thread; the insert in the persistence worker."""
    if not options.dictionary:
        return None, False
    view = store.catalog.reader()
    info = store.dictionaries.latest_info(view)
    small = small_block_count(view, options.merge)
    due = info is None or small >= max(info.small_blocks, 1) * RETRAIN_GROWTH
    if store.dictionaries.training_failed_at and small < store.dictionaries.training_failed_at * RETRAIN_GROWTH:
        due = False                     # too little data last time; wait for more
    if not (due or force):
        return store.dictionaries.latest(view), False
    samples = small_text_blocks(store, MAX_TRAINING_BYTES, options.merge)
    dict_id = view.maintenance.next_dictionary_id()
    data = train(samples, dict_id, options.level)
    if data is None:
        store.dictionaries.training_failed_at = max(small, 1)
        return store.dictionaries.latest(view), False

    def insert():
        with store.catalog.write(durable=True) as txn:
            if txn.maintenance.next_dictionary_id() != dict_id:
                return False            # trained by someone else meanwhile (not expected)
            txn.maintenance.add_dictionary(dict_id, data, len(samples), sum(len(s) for s in samples), small)
        return True
    added = store.run_in_worker(insert)
    store.dictionaries.training_failed_at = 0
    return store.dictionaries.latest(), bool(added)
