"""store.core.unicode61 cuts and folds words as SQLite's FTS5 does (the tokenizer options of the
SQLite search index), checked against the SQLite the tests run with, code point by code point.

Run as a script, it prints ``store/core/unicode61_tables.py`` derived from that SQLite (for a
SQLite whose unicode61 tables changed)."""

from __future__ import annotations

import random
import sqlite3
import sys

from store.backends.catalog.sqlite.schema import SEARCH_TOKENIZE
from store.core import unicode61_tables
from store.core.unicode61 import tokens

#: Probed whole in the CI test: the planes where SQLite's classes change often (the others are a
#: few long ranges, probed by a sample; the script probes every code point).
CHECKED_PLANES = (0, 1, 14)


def fts5_tokens(texts: list[str]) -> list[list[str]]:
    """The tokens SQLite's FTS5 makes of each text, in order (through an fts5vocab table)."""
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize=\"{SEARCH_TOKENIZE}\")")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    db.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts))
    found: list[list[tuple[int, str]]] = [[] for _ in texts]
    for term, doc, offset in db.execute("SELECT term, doc, offset FROM v"):
        found[doc].append((offset, term))
    db.close()
    return [[t for _, t in sorted(f)] for f in found]


def code_points(planes) -> list[int]:
    return [c for p in planes for c in range(p << 16, (p + 1) << 16) if not 0xD800 <= c < 0xE000]


def classify(codes: list[int]) -> dict[int, tuple[str, str]]:
    """{code point: (kind, folded)} as FTS5 sees it: kind ``token``, ``diacritic`` (continues a
    token, cannot start one) or ``separator``. Probes ``a<c>b <c>b``."""
    out = {}
    for code, got in zip(codes, fts5_tokens([f"a{chr(c)}b {chr(c)}b" for c in codes])):
        if got == ["a", "b", "b"]:
            out[code] = ("separator", "")
            continue
        folded = got[0][1:-1]
        out[code] = ("token", folded) if got[1] == folded + "b" and folded else ("diacritic", folded)
    return out


def ranges(codes) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for c in sorted(codes):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [tuple(r) for r in out]


def expand(table) -> set[int]:
    return {c for lo, hi in table for c in range(lo, hi + 1)}


def test_every_code_point_is_classified_and_folded_as_fts5_does():
    others = [c for c in range(0x110000) if c >> 16 not in CHECKED_PLANES]
    codes = code_points(CHECKED_PLANES) + random.Random(61).sample(others, 8192)
    truth = classify(codes)
    token, diacritic = expand(unicode61_tables.TOKEN_RANGES), expand(unicode61_tables.DIACRITIC_RANGES)
    folds = dict(unicode61_tables.FOLDS)
    wrong = []
    for code in codes:
        if code in token:
            mine = ("token", chr(folds.get(code, code)))
        else:
            mine = ("diacritic" if code in diacritic else "separator", "")
        if mine != truth[code]:
            wrong.append(f"U+{code:04X}: FTS5 {truth[code]}, unicode61 {mine}")
    assert not wrong, f"{len(wrong)} code points differ (regenerate the tables):\n" + "\n".join(wrong[:20])


def test_texts_are_tokenized_as_fts5_does():
    rng = random.Random(15)
    alphabet = ("abcXYZ_019 \n\t-.,'\"éÉßÅåøØİıΣσςЖжﬁ①²½\u0301\u0308\u200b\u00a0\u3000日本語한국어"
                "🙂\U0001D400\U000E0041\uFFFD\uE000\U0010FFFD")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))) for _ in range(3000)]
    texts += ["\u0301abc", "a\u0301\u0301b", "\u0301", "A_B c__d", "e-mail auth.py add_argument", "x\udc80y"]
    texts = [t for t in texts if "\udc80" not in t] + ["x y"]
    assert [tokens(t) for t in texts] == fts5_tokens(texts)
    assert tokens("x\udc80y") == ["x", "y"]            # a lone surrogate (SQLite never sees one) separates


def module_text(truth: dict[int, tuple[str, str]]) -> str:
    def table(pairs) -> str:
        items = [f"(0x{a:X}, 0x{b:X})," for a, b in pairs]
        lines, line = [], "   "
        for item in items:
            if len(line) + len(item) + 1 > 100:
                lines.append(line)
                line = "   "
            line += " " + item
        return "\n".join([*lines, line])
    token = ranges(c for c, (k, _) in truth.items() if k == "token")
    diacritic = ranges(c for c, (k, _) in truth.items() if k == "diacritic")
    folds = [(c, ord(f)) for c, (k, f) in sorted(truth.items()) if k == "token" and f != chr(c)]
    doc = unicode61_tables.__doc__.strip()
    return (f'"""{doc}\n"""\n\nTOKEN_RANGES = (\n{table(token)}\n)\n\nDIACRITIC_RANGES = (\n{table(diacritic)}\n)\n\n'
            f'FOLDS = (\n{table(folds)}\n)\n')


if __name__ == "__main__":
    everything = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    sys.stdout.write(module_text(classify(everything)))
