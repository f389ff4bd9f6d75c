"""The search query language: what people type, parsed into terms, translated to FTS5
syntax (never passed through), and the time bounds of --after/--before.

=================  ==============================================================
``auth bug``       sessions containing both words (in any of their files)
``"auth bug"``     the phrase, within one file
``auth*``          a word starting with ``auth``
``auth OR login``  either word; OR binds tighter than the implicit AND:
                   ``bug auth OR login`` is bug AND (auth OR login)
``-flaky``         sessions that do not contain the word (also ``NOT flaky``)
=================  ==============================================================

Words are matched like ``grep -iw``: case- and accent-insensitive, ``_`` is part
of a word (``add_argument`` is one word). A word with punctuation inside
(``e-mail``, ``auth.py``) is searched as the phrase of its parts. Parentheses are
refused with a message (there is no grouping beyond OR).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable

from store.core.errors import BadInputError

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32


@dataclass(frozen=True)
class Atom:
    """One searchable unit: a word or a phrase (both may end in a prefix)."""

    text: str
    prefix: bool = False
    phrase: bool = False

    def fts(self) -> str:
        return '"' + self.text.replace('"', '""') + '"' + ("*" if self.prefix else "")

    def __str__(self) -> str:
        body = f'"{self.text}"' if self.phrase else self.text
        return body + ("*" if self.prefix else "")


@dataclass(frozen=True)
class Clause:
    """Alternatives joined by OR; a negated clause excludes sessions matching any of them."""

    atoms: tuple[Atom, ...]
    negated: bool = False

    def fts(self) -> str:
        parts = [a.fts() for a in self.atoms]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def __str__(self) -> str:
        return ("-" if self.negated else "") + " OR ".join(map(str, self.atoms))


@dataclass(frozen=True)
class Query:
    """Clauses that must all hold (AND): positive ones present, negated ones absent."""

    clauses: tuple[Clause, ...]

    @property
    def positive(self) -> list[Clause]:
        return [c for c in self.clauses if not c.negated]

    @property
    def negative(self) -> list[Clause]:
        return [c for c in self.clauses if c.negated]

    def __str__(self) -> str:
        return " ".join(map(str, self.clauses))


def _has_word(text: str) -> bool:
    return any(ch.isalnum() or ch == "_" for ch in text)


def _lex(text: str) -> list[tuple]:
    """Tokens: ("op", "OR"|"AND"|"NOT", pos) or ("term", Atom | None, negated, pos)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        negated = False
        if ch == "-":
            negated = True
            i += 1
            if i >= n or text[i].isspace():
                raise BadInputError(f"'-' at column {start + 1} must be followed directly by a word or "
                                    "\"phrase\" to exclude (-word)")
            ch = text[i]
        if ch in "()":
            raise BadInputError(f"parentheses are not supported (column {i + 1}): OR applies to the terms on "
                                "either side (a b OR c means a AND (b OR c)); quote text to search for "
                                "it literally")
        if ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise BadInputError(f'unterminated quote at column {i + 1}: close the phrase with "')
            inner = text[i + 1:end]
            i = end + 1
            prefix = i < n and text[i] == "*"
            if prefix:
                i += 1
            atom = Atom(" ".join(inner.split()), prefix, phrase=True) if _has_word(inner) else None
            out.append(("term", atom, negated, start))
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in '"()':
            j += 1
        word = text[i:j]
        i = j
        if not negated and word in ("OR", "AND", "NOT"):
            out.append(("op", word, start))
            continue
        prefix = word.endswith("*")
        core = word.rstrip("*") if prefix else word
        if prefix and len(word) - len(core) > 1 or "*" in core:
            raise BadInputError(f"'*' at column {start + 1}: it marks a prefix and goes once at the end of "
                                f"a word (auth*), not in {word!r}")
        if prefix and not _has_word(core):
            raise BadInputError(f"'*' at column {start + 1} needs the start of a word before it (auth*)")
        out.append(("term", Atom(core, prefix, phrase=False) if _has_word(core) else None, negated, start))
    return out


def parse_query(text: str) -> Query:
    """Parse the user's query; BadInputError with a clear message when it is malformed."""
    if not isinstance(text, str):
        raise BadInputError(f"query: expected a str, got {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise BadInputError(f"query too long: {len(text)} characters (at most {MAX_QUERY_CHARS})")
    if "\0" in text:
        raise BadInputError("query: must not contain NUL characters")
    tokens = _lex(text)
    clauses: list[list] = []          # [atoms, negated]
    pending_not = False
    joined = False                    # the previous token was OR
    prev_kind = None
    for tok in tokens:
        if tok[0] == "op":
            op, pos = tok[1], tok[2]
            if op == "OR":
                if prev_kind != "term" or not clauses:
                    raise BadInputError(f"OR at column {pos + 1} needs a word or phrase on its left")
                if clauses[-1][1]:
                    raise BadInputError(f"OR at column {pos + 1}: an excluded term cannot be part of OR")
                joined = True
            elif op == "AND":
                if prev_kind != "term":
                    raise BadInputError(f"AND at column {pos + 1} needs a word or phrase on its left")
            else:   # NOT
                if pending_not or joined:
                    raise BadInputError(f"NOT at column {pos + 1} must be followed by a word or phrase "
                                        "(and cannot follow OR)")
                pending_not = True
            prev_kind = op
            continue
        _, atom, negated, pos = tok
        if pending_not:
            if negated:
                raise BadInputError(f"column {pos + 1}: NOT followed by '-' excludes twice")
            negated, pending_not = True, False
        if joined:
            joined = False
            if negated:
                raise BadInputError(f"column {pos + 1}: an excluded term cannot be part of OR")
            if atom is not None:
                clauses[-1][0].append(atom)
        elif atom is not None:
            clauses.append([[atom], negated])
        prev_kind = "term"
    if joined or prev_kind in ("AND", "OR"):
        raise BadInputError(f"the query ends with {prev_kind}: it needs a word or phrase after it")
    if pending_not:
        raise BadInputError("the query ends with NOT: it needs a word or phrase after it")
    result = []
    for atoms, negated in clauses:
        unique = tuple(dict.fromkeys(atoms))
        clause = Clause(unique, negated)
        if clause not in result:
            result.append(clause)
    if sum(len(c.atoms) for c in result) > MAX_TERMS:
        raise BadInputError(f"query has more than {MAX_TERMS} terms")
    if not result:
        raise BadInputError("the query has no words to search for")
    if not any(not c.negated for c in result):
        raise BadInputError("the query only excludes: give at least one word or phrase to search for")
    return Query(tuple(result))


def string_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return list(dict.fromkeys(items))
    raise BadInputError(f"{what}: expected a str or a list of str, got {value!r}")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def time_bound(value, what: str, *, upper: bool) -> tuple[str, bool] | None:
    """(ISO 8601 UTC bound as the app writes start times, exclusive?) for --after/--before.

    A date (``2025-01-31`` or a ``date``) covers its whole day: as an upper bound it means
    before the next day starts. A time without an offset is UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _iso(value), False
    if isinstance(value, date):
        day = value
    elif isinstance(value, str):
        text = value.strip()
        if _DATE.fullmatch(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise BadInputError(f"{what}: {value!r} is not a valid date") from None
        else:
            try:
                return _iso(datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))), False
            except ValueError:
                raise BadInputError(f"{what}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                                    "time (2025-01-31T09:30:00Z)") from None
    else:
        raise BadInputError(f"{what}: expected a date, a datetime or an ISO 8601 str, got {value!r}")
    if upper:
        return _iso(datetime.combine(day + timedelta(days=1), datetime.min.time())), True
    return _iso(datetime.combine(day, datetime.min.time())), False


