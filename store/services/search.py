"""Full-text search over sessions: queries against the index, best first.

The index is the catalog's ``SearchIndex`` (``view.search``, typed operations), kept in
step by ``store.engine.search_upkeep``; the query language is ``store.core.query`` and
snippets ``store.core.snippets``. This module holds the evaluation strategy.

Ranking. ``search`` ranks sessions by BM25 (a session scores by its best file;
several terms add up) when its rarest term occurs in at most ``RANK_CAP`` files.
When every term is common, ranking all matches would cost time proportional to
the whole collection and tells little (a common word's BM25 weight is near zero),
so the newest matching sessions come first, with score 0; so do phrases made only
of common words (FTS5 evaluates a phrase once to count it and twice more to rank it,
each time over every row holding all of its words). ``_Plan`` documents the
evaluation.

Reads. A search runs in one read snapshot of the catalog (no half-applied commit is
ever seen) on the calling thread's reader view; a writable store first commits what is
queued (read your writes).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from store.backends.catalog.search import Filters
from store.core.errors import BadInputError, SearchIndexError, StoreError
from store.core.query import Atom, Clause, Query, parse_query
from store.core.snippets import make_snippet

if TYPE_CHECKING:
    from store.engine.store import Store

log = logging.getLogger("sessionfs.search")

#: A clause matching at most this many files is ranked by BM25; above, newest first.
RANK_CAP = 1500
#: Sessions a search directory of the mount lists at most (best first).
LISTING_LIMIT = 1000
MAX_LIMIT = 100_000
#: Rough costs (s) that choose between a pass over a clause's rows and probes of sessions.
ROW_COST, PHRASE_ROW_COST, PROBE_COST = 0.4e-6, 4e-6, 100e-6
#: Matches looked at first to tell a common clause from a rare one.
SAMPLE = 100
#: A clause matching at most this many files is checked with its set of sessions, else by probes.
SET_CAP = 20_000
#: Sessions visited newest first before a query of common terms is evaluated as sets.
SCAN_BUDGET = 400



# =====================================================================================
# Searching
# =====================================================================================


@dataclass(frozen=True)
class Result:
    """One session found. ``score``: higher is better (0 when results are newest first).
    ``file``: the file inside the session the snippet comes from; ``snippet``: its field and
    the text around the hit, the hit in [brackets]."""

    session_id: str
    score: float
    snippet: str
    file: str

    def as_dict(self) -> dict:
        return asdict(self)


def _require_index(store: "Store", view) -> None:
    """Raise IndexUnavailableError unless the index can answer (in ``view``'s snapshot)."""
    problem = store.text_index.problem or view.search.problem()
    if problem is not None:
        raise store.text_index.unavailable(problem)


def search(store: "Store", query: str | None, *, tags=None, status=None, after=None, before=None, topic=None,
           limit: int | None = 20, snippets: bool = True) -> list[Result]:
    """Sessions matching ``query`` and every filter, best first (see the module docstring).

    ``query`` may be empty when a filter is given: the filtered sessions, newest first.
    ``tags``/``topic``: a str or a list, all required; ``status``: one or any of a list;
    ``after``/``before``: inclusive bounds on the start time (a date covers its whole day,
    UTC). Queued writes of ``store`` are committed first (a store opened read-only beside a
    mount sees what the mount has committed, a few ms behind its closes).
    Malformed input raises BadInputError; an unusable index IndexUnavailableError."""
    q = parse_query(query) if query is not None and query.strip() else None
    filters = Filters.make(tags, status, after, before, topic)
    if q is None and filters.empty:
        raise BadInputError("empty query: give words to search for, or at least one filter")
    if limit is None:
        limit = MAX_LIMIT
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise BadInputError(f"limit: expected an int from 1 to {MAX_LIMIT}, got {limit!r}")
    if not store.readonly:
        store.settle()          # read your writes: what was closed or saved before is found
    view = store.catalog.reader()
    view.search.prepare_for_queries()
    try:
        with view.snapshot():
            _require_index(store, view)
            found = _Plan(store, view, q, filters, limit).run()
            return _results(store, view, q, found, snippets)
    except SearchIndexError as exc:     # other catalog errors (busy ...) are not the index's fault
        raise store.text_index.damaged(exc) from None


class _Plan:
    """Evaluates a query at the session level: a session matches a positive clause when one
    of its files does, and a negated clause when none does.

    Per clause, the rows matching it are counted (up to RANK_CAP + 1, then estimated). The rarest positive
    clause with at most RANK_CAP rows drives: its rows are ranked (bm25, best row per
    session), other such clauses add their scores, and the candidates are then checked,
    best first, against the remaining clauses until ``limit`` pass. Without such a clause,
    sessions are visited newest first and checked. A check uses the clause's set of
    sessions when it has at most SET_CAP rows, else a probe of the session's documents
    (cheap for the common words that take that path: the first rows match)."""

    def __init__(self, store, view, query: Query | None, filters: Filters, limit: int):
        self.index, self.query, self.filters, self.limit = view.search, query, filters, limit
        self.sessions_ino = store.sessions_ino
        self.skip_orphans = store.text_index.garbage
        self.sets: dict[Clause, dict[int, int]] = {}
        self.total: int | None = None           # sessions, roughly
        self.rankable: dict[Clause, bool] = {}

    # -- primitives -------------------------------------------------------------------
    def _count(self, clause: Clause) -> tuple[int, float]:
        """(rows matching ``clause`` counted up to RANK_CAP + 1, estimated total: the index
        estimates beyond what it counted, close enough to choose a plan). A first look at
        SAMPLE rows skips the exact count of clauses that are clearly common (phrases of
        common words are slow to count)."""
        n, est = self._count_upto(clause, SAMPLE)
        if n <= SAMPLE or est > 2 * RANK_CAP or clause.negated or not self._rankable(clause):
            return n, est
        return self._count_upto(clause, RANK_CAP)

    def _count_upto(self, clause: Clause, cap: int) -> tuple[int, float]:
        return self.index.count_upto(clause, cap, skip_orphans=self.skip_orphans)

    def _ranked(self, clause: Clause) -> dict[int, tuple[float, int]]:
        """{session dir: (best bm25, its document)} over every document matching ``clause``."""
        return self.index.best_per_session(clause, skip_orphans=self.skip_orphans)

    def _session_rows(self, clause: Clause) -> dict[int, int]:
        """{session dir: its first document matching ``clause``}."""
        return self.index.first_per_session(clause, skip_orphans=self.skip_orphans)

    def _in_session(self, clause: Clause, dir_ino: int) -> int | None:
        """A document of the session matching ``clause``, or None."""
        rows = self.sets.get(clause)
        if rows is not None:
            return rows.get(dir_ino)
        return self.index.first_in_session(clause, dir_ino, skip_orphans=self.skip_orphans)

    def _use_sets(self, clauses, counts, checks: float | None = None) -> None:
        """Evaluate as sets the clauses for which one pass over their rows is cheaper than
        probing sessions one by one. ``checks``: sessions that will be checked, when known;
        else those visited newest first until ``limit`` match a clause of that density."""
        if self.total is None:
            self.total = self.index.sessions_bound()
        for clause in clauses:
            est = counts[clause][1]
            if clause in self.sets or est > SET_CAP:
                continue
            phrase = any(len(re.findall(r"\w+", a.text)) > 1 for a in clause.atoms)
            set_cost = est * (PHRASE_ROW_COST if phrase else ROW_COST)
            visits = checks if checks is not None else self.limit * self.total / max(1.0, est / 1.5)
            if set_cost < min(visits, self.total) * PROBE_COST:
                self.sets[clause] = self._session_rows(clause)

    def _passes(self, dir_ino: int, clauses: list[Clause]) -> int | None:
        """When the session passes every clause (sets first, then probes): the row matching the
        first positive clause (0 when there is none), else None."""
        first = 0
        for clause in sorted(clauses, key=lambda c: c not in self.sets):
            rowid = self._in_session(clause, dir_ino)
            if (rowid is None) != clause.negated:
                return None
            if first == 0 and rowid is not None and clause is clauses[0]:
                first = rowid
        return first

    def _newest_first(self, among=None):
        return self.index.newest_first(self.filters, self.sessions_ino, None if among is None else list(among))

    def _rankable(self, clause: Clause) -> bool:
        """Whether ranking ``clause`` by bm25 is cheap: every phrase in it has a word that is
        not common. (A phrase of common words costs a pass over all of their rows for each
        evaluation, and bm25 evaluates it twice; such phrases list newest first.)"""
        if clause not in self.rankable:
            self.rankable[clause] = all(
                len(words := re.findall(r"\w+", atom.text)) < 2
                or min(self._count_upto(Clause((Atom(w),)), RANK_CAP)[1] for w in words) <= RANK_CAP
                for atom in clause.atoms)
        return self.rankable[clause]

    # -- plans ----------------------------------------------------------------------------
    def run(self) -> list[tuple[int, float, int | None]]:
        """[(session dir, score, rowid of the best row or None)], best first."""
        if self.query is None:
            return [(d, 0.0, None) for d, _ in zip(self._newest_first(), range(self.limit))]
        positive, negative = self.query.positive, self.query.negative
        counts = {c: self._count(c) for c in self.query.clauses}
        if any(not counts[c][0] for c in positive):
            return []
        negative = [c for c in negative if counts[c][0]]
        selective = sorted((c for c in positive if counts[c][1] <= RANK_CAP and self._rankable(c)),
                           key=lambda c: counts[c][1])      # (_rankable is cached)
        if selective:
            return self._ranked_plan(selective, [c for c in positive if c not in selective], negative, counts)
        return self._recency_plan(sorted(positive, key=lambda c: counts[c][1]), negative, counts)

    def _ranked_plan(self, selective, common, negative, counts):
        scored: dict[int, tuple[float, int]] | None = None
        for clause in selective:
            ranked = self._ranked(clause)
            if scored is None:
                scored = ranked
            else:
                scored = {s: (v[0] + ranked[s][0], v[1]) for s, v in scored.items() if s in ranked}
            if not scored:
                return []
        if not self.filters.empty:
            keep = self.index.filtered(scored, self.filters)
            scored = {s: v for s, v in scored.items() if s in keep}
        self._use_sets(common + negative, counts, checks=len(scored))
        out = []
        for dir_ino, (score, rowid) in sorted(scored.items(), key=lambda kv: (kv[1][0], kv[0])):
            if self._passes(dir_ino, common + negative) is not None:
                out.append((dir_ino, -score, rowid))
                if len(out) >= self.limit:
                    break
        return out

    def _recency_plan(self, positive, negative, counts):
        self._use_sets(positive + negative, counts)
        if self.limit > SCAN_BUDGET // 2:       # long listings: one pass over each clause beats many probes
            self.sets.update((c, self._session_rows(c)) for c in positive + negative if c not in self.sets)
        out = []
        known = [c for c in positive if c in self.sets]
        among = min((self.sets[c] for c in known), key=len) if known else None
        for visited, dir_ino in enumerate(self._newest_first(among), 1):
            if visited == SCAN_BUDGET and among is None:
                # Common terms that are rare together: evaluate every clause as a set.
                self.sets.update((c, self._session_rows(c)) for c in positive + negative if c not in self.sets)
            first = self._passes(dir_ino, positive + negative)
            if first is not None:
                out.append((dir_ino, 0.0, first))
                if len(out) >= self.limit:
                    break
        return out


def _results(store, view, query: Query | None, found, snippets: bool) -> list[Result]:
    if not found:
        return []
    names = {ino: name.decode("utf-8", "surrogateescape")
             for ino, name in view.search.session_names([f[0] for f in found], store.sessions_ino).items()}
    rowids = [f[2] for f in found if f[2] is not None]
    paths = view.search.paths(rowids) if rowids else {}
    atoms = [a for c in query.positive for a in c.atoms] if query is not None else []
    out = []
    for dir_ino, score, rowid in found:
        if dir_ino not in names:
            continue
        snippet = ""
        if snippets and rowid is not None and atoms:
            try:
                got = store.text_index.rows_of(view, rowid, lazy=True)
            except StoreError as exc:
                log.debug("no snippet for row %d: %s", rowid, exc)
                got = None
            if got is not None:
                snippet = make_snippet(got[1], atoms)
        out.append(Result(names[dir_ino], round(score, 4), snippet, paths.get(rowid, "")))
    return out
