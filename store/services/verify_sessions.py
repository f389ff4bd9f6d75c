"""``verify``'s checks of what the files say: the session index, the stored totals, the
session JSON files (``--data``) and lost+found."""

from __future__ import annotations

import stat
from collections import defaultdict

import orjson

from store.core import session_fields
from store.core.errors import IntegrityError
from store.core.layout import ARRAY_KINDS, LARGE_OBJECTS, METADATA_FILE, parse_chunk_file_name
from store.services.verify_namespace import entry_name
from store.services.verify_report import merge_ranges, ranges_text

_KNOWN_JSON = {METADATA_FILE, *LARGE_OBJECTS.values()}
_CHUNK_DIRS = {kind.directory for kind in ARRAY_KINDS.values()}
#: The session fields compared one by one (tags and topic ids as sets).
_SCALARS = ("name", "status", "start_time", "end_time", "category", "version", "updated_at")


class SessionChecks:
    """Mixin of ``Verifier``: sessions, counters, JSON files, lost+found."""

    def _session_dirs(self) -> list[tuple[bytes, int]]:
        """(name, inode) of every directory in sessions/."""
        return [(name, row.id) for name, row in self.db.tree.listing(self.store.sessions_ino)
                if stat.S_ISDIR(row.mode)]

    def _read(self, ino: int, size: int) -> bytes | None:
        """The file's committed bytes, or None when they cannot be read (reported elsewhere)."""
        try:
            return self.store.read_committed(ino, 0, size)
        except IntegrityError:
            return None

    # -- sessions ---------------------------------------------------------------------------
    def _sessions(self) -> None:
        rows = self.audit.indexed_sessions()
        dirs = self._session_dirs()
        named = self.db.tree.named([ino for _, ino in dirs], session_fields.METADATA_NAME)
        metadata = {d: row for d, row in named.items() if stat.S_ISREG(row.mode)}
        self.report.counts["sessions"] = len(dirs)
        seen = set()
        for name, dir_ino in dirs:
            sid = entry_name(name)
            seen.add(sid)
            where = f"sessions/{sid}/{METADATA_FILE}"
            expected = None
            meta_row = metadata.get(dir_ino)
            if meta_row is not None:
                data = self._read(meta_row.id, meta_row.size)
                if data is None:
                    continue        # unreadable (reported as lost data): the row keeps the last good values
                meta = session_fields.parse_metadata(data)
                if meta is None:
                    self._invalid_json(where, data)
                else:
                    expected = session_fields.session_fields(meta)
            row = rows.get(sid)
            if expected is None:
                if row is not None:
                    self.report.session_dirs.add(dir_ino)
                    self.add("session-stale", f"sessions/{sid}: the session index has a row but the directory has "
                                              f"no valid {METADATA_FILE}", paths=[f"sessions/{sid}"],
                             session=sid, repair="rebuild the row from the directory")
                continue
            if row is None:
                self.report.session_dirs.add(dir_ino)
                self.add("session-missing", f"{where} is valid but the session index has no row for {sid}",
                         paths=[where], session=sid, repair="rebuild the row from the directory")
                continue
            got = row.fields
            pairs = [("id", row.id, sid), ("dir_ino", row.dir_ino, dir_ino)]
            pairs += [(c, getattr(got, c), getattr(expected, c)) for c in _SCALARS]
            pairs += [("meta_size", row.meta_size, meta_row.size), ("tags", set(got.tags), set(expected.tags)),
                      ("topicIds", set(got.topic_ids), set(expected.topic_ids))]
            differs = [c for c, a, b in pairs if a != b]
            if differs:
                self.report.session_dirs.add(dir_ino)
                self.add("session-stale", f"the session index row of {sid} disagrees with {where} "
                                          f"({', '.join(differs)})", paths=[where], session=sid, columns=differs,
                         repair="rebuild the row from the directory")
        for sid in rows:
            if sid not in seen:
                self.report.stale_sessions.append(sid)
                self.add("session-stale", f"the session index has a row for {sid} but sessions/{sid} is not a "
                                          "session directory", paths=[f"sessions/{sid}"], session=sid,
                         repair="delete the row")

    def _counters(self) -> None:
        wrong = self.audit.counter_disagreements()
        if wrong:
            self.report.counters = True
            self.add("counters", "stored totals differ from the tables: " + ", ".join(
                f"{name} {stored:,} (recounted {actual:,})" for name, (stored, actual) in wrong.items()),
                     repair="store the recounted totals", counters={k: list(v) for k, v in wrong.items()})

    # -- JSON files (--data) ------------------------------------------------------------------
    def _invalid_json(self, where: str, data: bytes) -> None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.add("invalid-json", f"{where} is not valid JSON: {exc}", severity="warning", paths=[where])
            return
        if where.endswith(METADATA_FILE) and not isinstance(value, dict):
            self.add("invalid-json", f"{where} is JSON but not an object", severity="warning", paths=[where])

    def _json_files(self) -> None:
        """(--data) Every known session JSON file parses."""
        tree = self.db.tree
        for sdir_name, sdir in self._session_dirs():
            base = f"sessions/{entry_name(sdir_name)}"
            for e_name, e in tree.listing(sdir):
                name = entry_name(e_name)
                if stat.S_ISREG(e.mode) and name in _KNOWN_JSON and name != METADATA_FILE:
                    self._check_json(f"{base}/{name}", e.id, e.size)
                elif stat.S_ISDIR(e.mode) and name in _CHUNK_DIRS:
                    for c_name, c in tree.listing(e.id):
                        cname = entry_name(c_name)
                        if stat.S_ISREG(c.mode) and parse_chunk_file_name(cname) is not None:
                            self._check_json(f"{base}/{name}/{cname}", c.id, c.size)

    def _check_json(self, where: str, ino: int, size: int) -> None:
        data = self._read(ino, size)
        if data is not None:
            self._invalid_json(where, data)

    # -- lost+found -----------------------------------------------------------------------
    def _lost_found(self) -> None:
        lost_refs: dict[int, list] = defaultdict(list)
        for ino, off, length in self.audit.lost_references():
            lost_refs[ino].append((off, off + length))
        recorded = defaultdict(list)
        for entry in self.audit.lost_found():
            recorded[entry.ino].append(entry._asdict())
        self.report.stale_lost = sum(len(v) for ino, v in recorded.items() if ino not in lost_refs)
        for ino, ranges in sorted(lost_refs.items()):
            if ino not in recorded:
                self.report.unrecorded[ino] = "refers to lost data"
                self.add("unrecorded-loss", f"{self.path(ino)} refers to lost data at "
                                            f"{ranges_text(merge_ranges(ranges))} but is not in lost+found",
                         paths=[self.path(ino)], ino=ino, repair="record it in lost+found")
                continue
            entry = dict(recorded[ino][-1])
            entry["current_path"] = self.path(ino)
            entry["lost_ranges"] = merge_ranges(ranges)
            self.report.lost.append(entry)
