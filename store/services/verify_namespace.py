"""``verify``'s checks of files and names: chunk references, directory entries, link counts."""

from __future__ import annotations

import stat
from collections import defaultdict

from store.backends.catalog.rows import ROOT_INO
from store.services.verify_report import merge_ranges, ranges_text


def entry_name(name: bytes) -> str:
    """An entry's name as text (bytes that are not UTF-8 kept as surrogates)."""
    return name.decode("utf-8", "surrogateescape")


class NamespaceChecks:
    """Mixin of ``Verifier``: the chunk references of files, and the namespace."""

    # -- file_chunks ---------------------------------------------------------------------
    def _file_chunks(self) -> None:
        audit = self.audit
        missing: dict[int, list] = defaultdict(list)
        for ref in audit.missing_chunk_references():
            missing[ref.ino].append((ref.off, ref.chunk_id))
        orphan = set()
        for ino, mode, n in audit.non_file_references():
            orphan.add(ino)
            self.report.orphan_file_chunks.append(ino)
            what = "does not exist" if mode is None else "is not a regular file"
            self.add("orphan-file-chunks", f"{n} chunk references belong to inode {ino}, which {what}",
                     ino=ino, repair="drop the references")
        # Extents: overlap, past EOF; and the inferred extent of each missing chunk.
        prev_ino, prev_end = None, 0
        ends: dict[int, list] = defaultdict(list)        # for inferring missing chunk lengths
        overlaps: dict[int, list] = defaultdict(list)
        past: dict[int, list] = defaultdict(list)
        for ino, off, length, size in audit.file_extents():
            if ino != prev_ino:
                prev_ino, prev_end = ino, 0
            if ino in missing:
                ends[ino].append((off, length, size))
            if length is None:
                continue
            if off < prev_end:
                overlaps[ino].append((off, prev_end))
            if off + length > size:
                past[ino].append((off, off + length, size))
            prev_end = max(prev_end, off + length)
        self.report.counts["files"] = audit.file_count()
        for ino, spans in overlaps.items():
            self.add("extent-overlap", f"{self.path(ino)}: chunk references overlap at "
                                       f"{ranges_text(spans)}", paths=[self.path(ino)], ino=ino)
        for ino, spans in past.items():
            self.add("extent-past-eof", f"{self.path(ino)}: chunk references end past the file size "
                                        f"{spans[0][2]} (at {', '.join(str(e) for _, e, _ in spans[:3])})",
                     paths=[self.path(ino)], ino=ino)
        for ino, refs in missing.items():
            if ino not in orphan:
                self._missing_chunks(ino, refs, ends[ino])

    def _missing_chunks(self, ino: int, refs: list[tuple[int, int]], layout: list[tuple]) -> None:
        """File ``ino`` refers at (offset, chunk id) ``refs`` to chunks that do not exist;
        ``layout``: its (offset, length, size) references."""
        size = layout[0][2] if layout else 0
        lost = []
        for off, cid in refs:
            # The chunk's length is gone with it: the range up to the next reference (or EOF)
            # is either that chunk or a hole, so all of it is marked lost (reads fail there).
            nxt = [o for o, _, _ in layout if o > off]
            end = min([*nxt, size])
            if end > off:
                lost.append((off, end))
            self.report.missing_refs.append((ino, off, cid, end - off))
        where = ranges_text(merge_ranges(lost)) if lost else f"offsets past the end of the file ({size} bytes)"
        self.add("missing-chunk", f"{self.path(ino)} refers to {len(refs)} chunk(s) that do not exist "
                                  f"(chunk ids {', '.join(str(c) for _, c in refs[:3])}) at {where}",
                 paths=[self.path(ino)], ino=ino, ranges=merge_ranges(lost),
                 repair="record the file in lost+found; reads of those ranges fail" if lost else
                 "drop the references (past the end of the file, never read)")

    # -- namespace ---------------------------------------------------------------------------
    def _namespace(self) -> None:
        audit = self.audit
        for parent, name, ino in audit.dangling_entries():
            where = self._entry_path(parent, name)
            self.report.dangling.append((parent, name))
            self.add("dangling-dentry", f"{where}: directory entry names inode {ino}, which does not exist",
                     paths=[where], ino=ino, repair="drop the entry")
        for parent, name, ino, pmode in audit.misplaced_entries():
            what = "does not exist" if pmode is None else "is not a directory"
            self.add("bad-parent", f"entry {entry_name(name)!r} (inode {ino}) is in "
                                   f"inode {parent}, which {what}", ino=ino, parent=parent)
        for ino, mode, nlink, names, subdirs in audit.link_counts():
            if names == 0 and ino != ROOT_INO:
                if nlink != 0:
                    self.add("unreachable", f"inode {ino} has link count {nlink} but no directory entry "
                                            "(unreachable)", ino=ino, nlink=nlink)
                continue                     # nlink 0: unlinked while open; removed at the next open
            expected = 2 + subdirs if stat.S_ISDIR(mode) else names
            if nlink != expected:
                self.report.nlinks.append((ino, expected))
                self.add("nlink", f"{self.path(ino) or '/'}: link count is {nlink}, directory entries say "
                                  f"{expected}", paths=[self.path(ino)], ino=ino, nlink=nlink, expected=expected,
                         repair="recount")

    def _entry_path(self, parent: int, name: bytes) -> str:
        base = "" if parent == ROOT_INO else self.path(parent)
        n = entry_name(name)
        return f"{base}/{n}" if base else n
