"""Text into PostgreSQL ``tsvector`` parts and query clauses into ``tsquery``, with the tokens
of FTS5's unicode61 (``store.core.unicode61``), so PostgreSQL matches what SQLite matches.

A tsvector holds positions up to 16,383, at most 256 of them per word, and at most 1 MiB;
beyond, PostgreSQL silently drops positions (phrases would go unseen). A column is cut into
parts that each stay within all three limits; consecutive parts overlap by OVERLAP tokens,
and every part holds more than OVERLAP tokens, so a phrase of up to OVERLAP + 1 words is
found wherever it is. A longer phrase that crosses a part edge is not found: parts hold
thousands of words (at least 256), so that takes a phrase of over 65 words in a column of
over 16,383 words (or one repeating a word 256 times within its part).

A word longer than MAX_LEXEME_BYTES (PostgreSQL's limit is 2,047 bytes) is stored as its
head and a hash of the whole: it is found whole and by a prefix within its head.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from store.core.query import Clause
from store.core.unicode61 import tokens

#: PostgreSQL's limits on one tsvector (positions are 1-based).
MAX_POSITION = 16383
MAX_POSITIONS_PER_WORD = 256
#: Bytes one part's words and positions may take (the limit is 1 MiB; with room for headers).
PART_BYTES = 768 * 1024
#: Tokens consecutive parts share.
OVERLAP = 64
#: Longer words are stored as a head of HEAD_BYTES and a hash.
MAX_LEXEME_BYTES = 2000
HEAD_BYTES = 1900


def lexeme(token: str) -> str:
    """The tsvector word for an FTS5 token."""
    raw = token.encode("utf-8")
    if len(raw) <= MAX_LEXEME_BYTES:
        return token
    head = raw[:HEAD_BYTES].decode("utf-8", "ignore")
    return f"{head}\u2026{hashlib.sha256(raw).hexdigest()[:32]}"


def _quoted(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def _cost(word: str, count: int) -> int:
    return len(word.encode("utf-8")) + 8 + 2 * count


def _fits(words: list[str]) -> bool:
    if len(words) > MAX_POSITION:
        return False
    counts = Counter(words)
    return max(counts.values()) <= MAX_POSITIONS_PER_WORD and \
        sum(_cost(w, n) for w, n in counts.items()) <= PART_BYTES


def _cut(words: list[str]) -> list[list[str]]:
    """Consecutive parts of ``words`` within the limits, overlapping by OVERLAP."""
    if _fits(words):
        return [words]
    parts, start, n = [], 0, len(words)
    while True:
        counts: dict[str, int] = {}
        size, end = 0, start
        while end < n and end - start < MAX_POSITION:
            word = words[end]
            seen = counts.get(word, 0)
            grown = size + (2 if seen else _cost(word, 1))
            if seen == MAX_POSITIONS_PER_WORD or grown > PART_BYTES:
                break
            counts[word], size, end = seen + 1, grown, end + 1
        parts.append(words[start:end])
        if end >= n:
            return parts
        start = max(end - OVERLAP, start + 1)      # parts hold >= 256 tokens: always end - OVERLAP


def vector_text(words: list[str]) -> str:
    """tsvector input for ``words`` at positions 1, 2, ..."""
    positions: dict[str, list[str]] = {}
    for i, word in enumerate(words, 1):
        positions.setdefault(word, []).append(str(i))
    return " ".join(f"{_quoted(w)}:{','.join(p)}" for w, p in positions.items())


def parts(title: str, body: str) -> list[tuple[str, str]]:
    """(tsvector input, weight) of each part of a document: the title's (A) first, then the
    body's (D)."""
    out = []
    for text, weight in ((title, "A"), (body, "D")):
        words = [lexeme(t) for t in tokens(text)]
        if words:
            out.extend((vector_text(p), weight) for p in _cut(words))
    return out


def query_text(clause: Clause) -> str | None:
    """tsquery input matching what FTS5 matches for ``clause`` (its atoms ORed; a phrase is
    its tokens in a row, a prefix applies to the last one), or None when no atom has a token
    (FTS5 matches nothing for such an atom)."""
    alternatives = []
    for atom in clause.atoms:
        words = [lexeme(t) for t in tokens(atom.text)]
        if not words:
            continue
        terms = [_quoted(w) for w in words]
        if atom.prefix:
            terms[-1] += ":*"
        alternatives.append("(" + " <-> ".join(terms) + ")")
    return " | ".join(alternatives) if alternatives else None
