"""``verify``'s checks of the stored data: the catalog's format, packs, blocks and chunks."""

from __future__ import annotations

from itertools import groupby
from typing import Callable, Iterable

from store.backends.catalog.interface import CatalogView
from store.backends.catalog.rows import BlockRow
from store.backends.objects.packs import pack_name
from store.core import codec
from store.core.chunker import chunk_hash
from store.core.errors import IntegrityError
from store.core.units import human_bytes


class StorageChecks:
    """Mixin of ``Verifier``: format, packs and blocks, chunks."""

    # -- format, catalog ----------------------------------------------------------------
    def _format(self) -> None:
        version, current = self.audit.format_versions()
        if version is not None and version < current:
            self.add("format", f"catalog.db has format version {version}; it is upgraded to {current} at "
                               "the next writable open (mount, --repair)", severity="warning")
        elif version != current:
            self.add("format", f"catalog.db has format version {version}, this sessionfs reads {current}")
        rows = self.audit.integrity_problems()
        if rows:
            self.add("catalog", "catalog.db fails SQLite's quick_check: " + "; ".join(rows[:3]))

    # -- packs and blocks ------------------------------------------------------------------
    def _packs_and_blocks(self) -> None:
        audit = self.audit
        rows = {pid: size for pid, (size, _) in self.db.content.packs().items()}
        self.report.counts["packs"] = len(rows)
        present = self.store.packs.sizes()
        for pid, size in present.items():
            if pid not in rows:
                self.report.orphan_packs.append(pid)
                self.add("orphan-pack", f"pack {pack_name(pid)} ({size} bytes) is not in the catalog "
                                        "(left by a batch that never committed)",
                         repair="delete the pack", pack=pid, size=size,
                         recheck=lambda view, pid=pid: not view.audit.pack_listed(pid))
        self._dict_ids = audit.dictionary_ids()
        self.report.counts["blocks"], total = audit.block_totals()
        self._done = 0
        for pid, group in groupby(audit.blocks(), key=lambda b: b.pack_id):
            self._check_pack(pid, list(group), rows, present, total)

    def _check_pack(self, pid: int, pblocks: list[BlockRow], rows: dict[int, int], present: dict[int, int],
                    total: int) -> None:
        """The blocks of pack ``pid`` against the pack (``rows``: catalog sizes, ``present``: stored)."""
        if pid not in rows:
            for b in pblocks:
                self._bad_block(b, "block-without-pack",
                                f"block {b.id} names pack {pid:08d}, which the catalog does not list")
            self._done += sum(b.length for b in pblocks)
            return
        fsize = present.get(pid)
        if fsize is None:
            self.report.missing_packs.append(pid)
            text, paths = self._mark_lost(pblocks, f"pack {pid:08d} is missing")
            self.add("pack-missing", f"pack {pack_name(pid)} is missing ({len(pblocks)} blocks, "
                                     f"{human_bytes(sum(b.length for b in pblocks))}); {text}",
                     paths=paths, repair="record the files in lost+found; drop the pack's catalog rows",
                     pack=pid, recheck=self._pack_recheck(pid))
            self._done += sum(b.length for b in pblocks)
            return
        committed = rows[pid]
        past = [b for b in pblocks if b.offset + b.length > fsize]
        if fsize < committed:
            self.report.truncated_packs[pid] = fsize
            text, paths = self._mark_lost(past, f"pack {pid:08d} is truncated")
            self.add("pack-truncated", f"pack {pack_name(pid)} is truncated: {fsize} bytes stored, "
                                       f"catalog says {committed}; {len(past)} blocks lost; {text}",
                     paths=paths, repair="record the files in lost+found; drop the lost blocks",
                     pack=pid, stored_size=fsize, size=committed, recheck=self._pack_recheck(pid))
        past_ids = {b.id for b in past}
        prev_end, prev_id = 0, None
        for b in pblocks:
            if b.offset < prev_end:
                self.add("block-overlap", f"blocks {prev_id} and {b.id} overlap in pack {pid:08d} at {b.offset}",
                         block=b.id, pack=pid)
            prev_end, prev_id = max(prev_end, b.offset + b.length), b.id
            if b.id in past_ids:
                continue
            if b.offset + b.length > committed:
                self._bad_block(b, "block-outside-pack",
                                f"block {b.id} at pack {pid:08d} offset {b.offset} ends at {b.offset + b.length}, "
                                f"past the pack's committed size {committed}")
                continue
            self._check_block(b)
            self._done += b.length
            if self.progress:
                self.progress(self._done, total)

    @staticmethod
    def _pack_recheck(pid: int) -> Callable[[CatalogView], bool]:
        return lambda view: view.audit.pack_listed(pid) and view.audit.pack_has_blocks(pid)

    @staticmethod
    def _block_recheck(b: BlockRow) -> Callable[[CatalogView], bool]:
        def still(view: CatalogView) -> bool:
            now = view.content.block(b.id)
            return now is not None and (now.pack_id, now.offset) == (b.pack_id, b.offset)
        return still

    def _mark_lost(self, blocks: list[BlockRow], why: str) -> tuple[str, list[str]]:
        """Mark ``blocks`` and their chunks bad for ``why``; returns the text and paths naming
        the files they affect."""
        chunk_ids = self.audit.chunks_in_blocks(b.id for b in blocks)
        for b in blocks:
            self.report.bad_blocks[b.id] = why
        for c in chunk_ids:
            self.report.bad_chunks[c] = why
        return self.files_text(self.affected(chunk_ids))

    def _bad_block(self, b: BlockRow, kind: str, why: str, chunk_ids: Iterable[int] | None = None) -> None:
        """Record a wholly (or, with chunk_ids, partly) unreadable block as a problem."""
        whole = chunk_ids is None
        ids = self.audit.chunks_in_blocks([b.id]) if whole else list(chunk_ids)
        if whole:
            self.report.bad_blocks[b.id] = why
        for c in ids:
            self.report.bad_chunks[c] = why
        text, paths = self.files_text(self.affected(ids))
        self.add(kind, f"{why}; {text}", paths=paths, block=b.id, pack=b.pack_id, offset=b.offset,
                 chunks=len(ids), repair="record the files in lost+found; mark the data lost",
                 recheck=self._block_recheck(b))

    def _check_block(self, b: BlockRow) -> None:
        where = f"pack {b.pack_id:08d} offset {b.offset} (block {b.id})"
        try:
            frame = self.store.packs.read(b.pack_id, b.offset, b.length if self.data else
                                          min(b.length, codec.HEADER.size))
            h_codec, h_dict, h_raw, h_len = codec.parse_header(frame, where)
            if codec.HEADER.size + h_len != b.length:
                raise IntegrityError(f"{where}: frame holds {codec.HEADER.size + h_len} bytes, "
                                     f"catalog says {b.length}")
            if (h_codec, h_raw) != (b.codec, b.raw_length) or (h_codec == codec.CODEC_ZSTD_DICT
                                                               and h_dict != b.dict_id):
                raise IntegrityError(f"{where}: header says codec {h_codec}, dictionary {h_dict}, {h_raw} bytes; "
                                     f"catalog says codec {b.codec}, dictionary {b.dict_id}, {b.raw_length} bytes")
        except IntegrityError as exc:
            self._bad_block(b, "block-header", str(exc))
            return
        if b.codec == codec.CODEC_ZSTD_DICT and b.dict_id not in self._dict_ids:
            self._bad_block(b, "missing-dictionary", f"{where}: needs zstd dictionary {b.dict_id}, which is not "
                                                     "in the catalog")
            return
        chunk_rows = self.db.content.chunks_in_block(b.id)
        outside = [c.id for c in chunk_rows if c.block_off + c.length > b.raw_length]
        if outside:
            self._bad_block(b, "chunk-outside-block",
                            f"{len(outside)} chunk(s) of block {b.id} ({where}) end past its {b.raw_length} "
                            "decoded bytes", chunk_ids=outside)
        if not self.data:
            return
        try:
            raw = codec.decode_block(frame, where, self.store.dictionaries)
        except IntegrityError as exc:
            self._bad_block(b, "corrupt-data", str(exc))
            return
        self.report.counts["decoded_bytes"] = self.report.counts.get("decoded_bytes", 0) + len(raw)
        view = memoryview(raw)
        bad = [c.id for c in chunk_rows if c.block_off + c.length <= len(raw)
               and chunk_hash(view[c.block_off:c.block_off + c.length]) != c.hash]
        if bad:
            self._bad_block(b, "corrupt-data", f"{where}: {len(bad)} of {len(chunk_rows)} chunks fail their SHA-256",
                            chunk_ids=bad)

    # -- chunks ------------------------------------------------------------------------
    def _chunks(self) -> None:
        audit = self.audit
        self.report.counts["chunks"] = audit.chunk_count()
        for c in audit.chunks_without_block():
            self.report.bad_chunks[c.id] = f"its block {c.block_id} does not exist"
            text, paths = self.files_text(self.affected([c.id]))
            self.add("chunk-missing-block", f"chunk {c.hash.hex()[:16]} names block {c.block_id}, which does not "
                                            f"exist; {text}", paths=paths, chunk=c.id, block=c.block_id,
                     repair="mark the chunk lost and record its files in lost+found" if c.refcount else
                     "delete the unreferenced chunk row")
        for m in audit.refcount_mismatches():
            self.report.refcounts.append(m.chunk_id)
            text, paths = self.files_text(self.affected([m.chunk_id]))
            if m.refcount == m.references:
                msg = f"chunk {m.hash.hex()[:16]} is unreferenced but has no unref_since (gc would never reclaim it)"
            else:
                msg = (f"chunk {m.hash.hex()[:16]} has reference count {m.refcount} but {m.references} file "
                       f"reference{'s' if m.references != 1 else ''}; {text}")
            self.add("refcount", msg, paths=paths, chunk=m.chunk_id, refcount=m.refcount, references=m.references,
                     repair="recount")
