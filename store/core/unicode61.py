"""Words as SQLite FTS5's ``unicode61`` tokenizer cuts and folds them (the options of the
SQLite search index: ``remove_diacritics 2 tokenchars '_'``), in pure Python: an index on
another engine (PostgreSQL's tsvector) holds the very tokens FTS5 holds, so a query finds
the same documents.

FTS5 reads a token as a token character followed by token characters and diacritics; each
character is folded on its own (lower case, diacritics removed: ``É`` -> ``e``, a combining
accent -> nothing). Every folded token character is a token character again and every
diacritic folds to nothing, so folding the whole text first and then taking the runs of
token characters gives FTS5's tokens. The tables (``unicode61_tables``) are SQLite's own
classification of every code point; a lone surrogate, which SQLite never receives, is a
separator.
"""

from __future__ import annotations

import re

from .unicode61_tables import DIACRITIC_RANGES, FOLDS, TOKEN_RANGES


def _char_class(ranges) -> str:
    return "".join(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
                   for lo, hi in ranges)


_FOLD: dict[int, str | None] = {code: chr(folded) for code, folded in FOLDS}
_FOLD.update((code, None) for lo, hi in DIACRITIC_RANGES for code in range(lo, hi + 1))
_TOKEN = re.compile(f"[{_char_class(TOKEN_RANGES)}]+")


def fold(text: str) -> str:
    """``text`` with every character folded as FTS5 folds it inside a token."""
    return text.translate(_FOLD)


def tokens(text: str) -> list[str]:
    """The tokens FTS5 makes of ``text``, folded, in order."""
    return _TOKEN.findall(text.translate(_FOLD))
