"""Search snippets: the field and the text around the first hit, the hit in [brackets]."""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Iterable

from store.core.query import Atom

SNIPPET_BEFORE = 60
SNIPPET_AFTER = 100


def _fold(text: str) -> str:
    """Lower case without diacritics, like the tokenizer's ``remove_diacritics 2``."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _atom_pattern(atom: Atom) -> re.Pattern:
    """Matches the atom in lower-cased text; it starts with a literal (fast to search), so the
    word boundary on its left is checked by ``_first_hit``."""
    words = re.findall(r"\w+", _fold(atom.text))
    body = r"\W+".join(re.escape(w) for w in words)
    return re.compile(body + (r"\w*" if atom.prefix else r"(?!\w)"))


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _first_hit(text: str, patterns: list[re.Pattern], folded: bool = False) -> tuple[int, int] | None:
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text.casefold() if len(text.casefold()) == len(text) else text
    best = None
    for pattern in patterns:
        for m in pattern.finditer(lowered, 0, best[0] if best else len(lowered)):
            if m.start() == 0 or not _is_word(lowered[m.start() - 1]):
                best = m.span()
                break
    if best is None and not folded and not text.isascii():
        decomposed = _fold(text)        # accents: café matches cafe, as in the index
        if len(decomposed) == len(text):
            return _first_hit(decomposed, patterns, True)
    return best


def make_snippet(rows: Iterable[tuple[str, str]], atoms: list[Atom]) -> str:
    """``field: …text around the first hit…`` with the hit in [brackets]; "" when none is found."""
    patterns = [_atom_pattern(a) for a in atoms]
    rows = [(f, t) for f, t in rows if isinstance(t, str)]
    starts, pos = [], 0
    for _, text in rows:
        starts.append(pos)
        pos += len(text) + 1
    joined = "\n".join(t for _, t in rows)      # one scan of the whole file's text (rows never hold \n
    hit = _first_hit(joined, patterns)          # where it would matter: a hit across rows is dropped)
    while hit is not None:
        i = bisect.bisect_right(starts, hit[0]) - 1
        field, source = rows[i]
        start, end = hit[0] - starts[i], hit[1] - starts[i]
        if end <= len(source):
            return _excerpt(field, source, start, end)
        nxt = _first_hit(joined[hit[1]:], patterns)
        hit = None if nxt is None else (nxt[0] + hit[1], nxt[1] + hit[1])
    return ""


def _excerpt(field: str, source: str, start: int, end: int) -> str:
    lo = max(0, start - SNIPPET_BEFORE)
    hi = min(len(source), end + SNIPPET_AFTER)
    if lo > 0:
        space = source.find(" ", lo, start)
        lo = space + 1 if space >= 0 else lo
    if hi < len(source):
        space = source.rfind(" ", end, hi)
        hi = space if space >= 0 else hi
    excerpt = (("…" if lo > 0 else "") + source[lo:start] + "[" + source[start:end] + "]"
               + source[end:hi] + ("…" if hi < len(source) else ""))
    return f"{field}: " + " ".join(excerpt.split())
