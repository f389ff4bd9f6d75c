"""Pure tests of search: text extraction, the query parser, filters and snippets (no disk).

The parser's property test runs the FTS5 expressions it produces against an in-memory
FTS5 table: whatever the user types, the result is a query FTS5 accepts or a
BadInputError with a message, never anything else.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.core.errors import BadInputError
from store.backends.catalog.sqlite.schema import SEARCH_TOKENIZE
from store.core.query import Atom, Clause, parse_query, time_bound
from store.core.snippets import make_snippet
from store.backends.catalog.sqlite.search_queries import filter_sql
from store.services.search import Filters
from store.core.text_index import column_of, extract, indexed_path, iter_text

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- extraction
def test_metadata_indexes_name_description_category_and_tags_only():
    meta = {"id": "s1", "name": "Fix auth bug", "description": "Token refresh fails", "category": "Development",
            "subCategory": "Debugging", "tags": ["backend", "security", 3], "status": "active",
            "relationships": [{"metadata": {"reason": "unrelated words"}}], "topicIds": ["topic-x"]}
    assert extract("metadata.json", meta) == [("name", "Fix auth bug"), ("description", "Token refresh fails"),
                                              ("category", "Development"), ("tags", "backend"),
                                              ("tags", "security")]
    assert [column_of(f) for f, _ in extract("metadata.json", meta)] == [0, 1, 0, 0, 0]


def test_large_objects_index_every_string_but_ids_and_times():
    summary = {"narrative": "We fixed the auth bug.", "generatedAt": "2025-01-01T00:00:00Z", "model": "summary-v3",
               "keyMoments": [{"timestamp": "2025", "description": "found it", "screenshotIds": ["a", "b"],
                               "importance": "high"}],
               "focusAreas": [{"area": "tokens", "minutes": 5}]}
    assert extract("summary.json", summary) == [
        ("summary.narrative", "We fixed the auth bug."), ("summary.model", "summary-v3"),
        ("summary.keyMoments.description", "found it"), ("summary.keyMoments.importance", "high"),
        ("summary.focusAreas.area", "tokens")]
    items = [{"id": "ctx-1", "title": "RFC 6749", "content": "OAuth", "timestamp": "x", "source": "https://a.b/c"}]
    assert extract("context-items.json", items) == [("contextItems.title", "RFC 6749"),
                                                    ("contextItems.content", "OAuth"),
                                                    ("contextItems.source", "https://a.b/c")]
    assert extract("audio-insights.json", {"narrative": "calm"}) == [("audioInsights.narrative", "calm")]
    assert extract("transcription.json", "hello there") == [("transcription", "hello there")]
    assert extract("transcription.json", {"text": "odd shape"}) == [("transcription.text", "odd shape")]


def test_chunk_files_index_the_analysis_and_transcripts():
    shot = {"id": "x", "sessionId": "s1", "timestamp": "t", "attachmentId": "a", "perceptualHash": "abcd",
            "analysis": {"summary": "Editing auth.py", "detectedActivity": "coding",
                         "extractedText": ["def login():", "return token", "def login():"],
                         "keyElements": ["VS Code", "auth.py"], "confidence": 0.9,
                         "curiosityReason": "routine edit"}}
    chunk = {"sessionId": "s1", "chunkIndex": 0, "screenshots": [shot, dict(shot), {"analysis": None}, "junk"]}
    assert extract("screenshots/chunk-001.json", chunk) == [
        ("screenshot.summary", "Editing auth.py"), ("screenshot.detectedActivity", "coding"),
        ("screenshot.extractedText", "def login():"), ("screenshot.extractedText", "return token"),
        ("screenshot.keyElements", "VS Code"), ("screenshot.keyElements", "auth.py")]
    segs = {"sessionId": "s1", "chunkIndex": 0, "segments": [{"transcription": "so the token"},
                                                             {"transcription": ""}, {"isEmpty": True}]}
    assert extract("audio-segments/chunk-012.json", segs) == [("audioSegment.transcription", "so the token")]


@pytest.mark.parametrize("path", ["canvas-spec.json", "video-chunks/chunk-001.json", "notes.json",
                                  "attachments/a.json", "screenshots/chunk-1.json", "screenshots/x/chunk-001.json",
                                  "sub/metadata.json", "screenshots/chunk-000.json", ""])
def test_other_paths_are_not_indexed(path):
    assert not indexed_path(path)
    assert extract(path, {"name": "x", "screenshots": [{"analysis": {"summary": "y"}}]}) == []


@pytest.mark.parametrize("path", ["metadata.json", "summary.json", "screenshots/chunk-001.json",
                                  "audio-segments/chunk-001.json", "transcription.json", "context-items.json"])
@pytest.mark.parametrize("doc", [None, 1, "text", [], {}, [1, 2], {"screenshots": "no"}, {"segments": [None]}])
def test_unexpected_shapes_give_no_error(path, doc):
    rows = extract(path, doc)
    assert all(isinstance(f, str) and isinstance(t, str) and t.strip() for f, t in rows)
    assert [(f, t) for f, t in iter_text(path, doc) if isinstance(t, str) and t.strip()][:len(rows)] \
        or rows == []


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                      max_size=4), max_leaves=20)


@FAST
@given(path=st.sampled_from(["metadata.json", "summary.json", "audio-insights.json", "transcription.json",
                             "context-items.json", "screenshots/chunk-003.json", "audio-segments/chunk-001.json",
                             "canvas-spec.json"]), doc=json_values)
def test_extract_is_total_deterministic_and_deduplicated(path, doc):
    rows = extract(path, doc)
    assert rows == extract(path, doc)
    assert len(set(rows)) == len(rows)
    assert all(isinstance(f, str) and isinstance(t, str) and t.strip() for f, t in rows)


# ---------------------------------------------------------------- the query parser
def fts(query: str) -> list[str]:
    return [("-" if c.negated else "") + c.fts() for c in parse_query(query).clauses]


@pytest.mark.parametrize("text, expected", [
    ("auth", ['"auth"']),
    ("  auth   bug ", ['"auth"', '"bug"']),
    ('"auth bug"', ['"auth bug"']),
    ('"auth   bug"*', ['"auth bug"*']),
    ("auth*", ['"auth"*']),
    ("auth OR login", ['("auth" OR "login")']),
    ("bug auth OR login OR sso", ['"bug"', '("auth" OR "login" OR "sso")']),
    ("auth -flaky", ['"auth"', '-"flaky"']),
    ('auth -"flaky test"', ['"auth"', '-"flaky test"']),
    ("auth NOT flaky", ['"auth"', '-"flaky"']),
    ("auth AND bug", ['"auth"', '"bug"']),
    ("or and not", ['"or"', '"and"', '"not"']),
    ("e-mail auth.py", ['"e-mail"', '"auth.py"']),
    ('say "hi"', ['"say"', '"hi"']),
    ("it's", ['"it\'s"']),
    ("auth auth", ['"auth"']),
    ("café", ['"café"']),
    ("add_argument", ['"add_argument"']),
    ("!!! auth", ['"auth"']),
    ('a"b"', ['"a"', '"b"']),
])
def test_query_translation(text, expected):
    assert fts(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "no words"),
    ("   ", "no words"),
    ("!!! ...", "no words"),
    ('"auth', "unterminated quote"),
    ('auth "bug', "unterminated quote at column 6"),
    ("auth OR", "ends with OR"),
    ("OR auth", "OR at column 1"),
    ("auth OR OR bug", "OR at column 9"),
    ("auth AND", "ends with AND"),
    ("AND auth", "AND at column 1"),
    ("-", "'-' at column 1"),
    ("auth - bug", "'-' at column 6"),
    ("-auth", "only excludes"),
    ("-auth NOT bug", "only excludes"),
    ("(auth bug)", "parentheses are not supported"),
    ("auth (bug)", "parentheses"),
    ("-(auth)", "parentheses"),
    ("a*b", "'*'"),
    ("auth**", "'*'"),
    ("*", "'*'"),
    ("-*", "'*'"),
    ("auth NOT", "ends with NOT"),
    ("auth OR -bug", "excluded term cannot be part of OR"),
    ("auth OR NOT bug", "cannot follow OR"),
    ("NOT -auth bug", "excludes twice"),
    ("x" * 1001, "too long"),
    ("a\0b", "NUL"),
    (" ".join(f"w{i}" for i in range(40)), "more than 32 terms"),
])
def test_bad_queries_have_clear_messages(text, message):
    with pytest.raises(BadInputError) as e:
        parse_query(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_non_str_query_is_bad_input():
    with pytest.raises(BadInputError):
        parse_query(b"auth")     # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fts_db():
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE f USING fts5(title, body, content='', tokenize=\"{SEARCH_TOKENIZE}\")")
    db.execute("INSERT INTO f (rowid, title, body) VALUES (1, 'Fix auth bug', 'the add_argument e-mail café')")
    return db


query_text = st.lists(st.sampled_from(list('ab -"*()_é.:^+{}\'\\,;') + ["OR", " OR ", " NOT ", "AND", "NEAR"]),
                      max_size=15).map("".join) | st.text(max_size=30)


@FAST
@given(text=query_text)
def test_any_text_parses_to_valid_fts5_or_bad_input(fts_db, text):
    try:
        query = parse_query(text)
    except BadInputError as exc:
        assert str(exc)
        return
    assert query.positive
    for clause in query.clauses:
        fts_db.execute("SELECT rowid FROM f WHERE f MATCH ?", (clause.fts(),)).fetchall()


def test_words_match_like_grep_w(fts_db):
    def hits(q: str) -> bool:
        return all(fts_db.execute("SELECT count(*) FROM f WHERE f MATCH ?", (c.fts(),)).fetchone()[0]
                   for c in parse_query(q).positive)
    assert hits("AUTH") and hits("cafe") and hits("add_argument") and hits('"e mail"') and hits("e-mail")
    assert not hits("argument") and not hits("add")        # '_' is part of a word, as for grep -w
    assert hits("add*") and hits('"fix auth"') and not hits('"auth fix"')


# ---------------------------------------------------------------- filters and snippets
def test_time_bounds():
    assert time_bound("2025-01-31", "after", upper=False) == ("2025-01-31T00:00:00.000Z", False)
    assert time_bound("2025-01-31", "before", upper=True) == ("2025-02-01T00:00:00.000Z", True)
    assert time_bound(date(2024, 12, 31), "before", upper=True) == ("2025-01-01T00:00:00.000Z", True)
    assert time_bound("2025-01-31T09:30:00Z", "after", upper=False) == ("2025-01-31T09:30:00.000Z", False)
    assert time_bound("2025-01-31T10:30:00+01:00", "after", upper=False) == ("2025-01-31T09:30:00.000Z", False)
    assert time_bound(datetime(2025, 1, 31, 9, tzinfo=timezone.utc), "before", upper=True) == \
        ("2025-01-31T09:00:00.000Z", False)
    for bad in ("yesterday", "2025-13-01", "2025-02-30", 5):
        with pytest.raises(BadInputError):
            time_bound(bad, "after", upper=False)


def test_filters_sql():
    f = Filters.make(tags=["a", "b"], status="completed", after="2025-01-01", before="2025-01-31", topic="t")
    where, args = filter_sql(f)
    assert len(where) == 6 and args == ["completed", "2025-01-01T00:00:00.000Z", "2025-02-01T00:00:00.000Z",
                                        "a", "b", "t"]
    assert Filters.make().empty and not f.empty
    with pytest.raises(BadInputError):
        Filters.make(tags=[1])


def test_snippet_marks_the_first_hit_with_its_field():
    rows = [("name", "Unrelated"), ("summary.narrative", "We spent the morning on it. " * 5 +
                                    "Then the Auth bug showed up in the login flow again, and " + "more " * 40)]
    snippet = make_snippet(rows, [Atom("auth bug", phrase=True)])
    assert snippet.startswith("summary.narrative: …") and "[Auth bug]" in snippet and snippet.endswith("…")
    assert len(snippet) < 260
    assert make_snippet(rows, [Atom("log", prefix=True)]).count("[login]") == 1
    assert make_snippet([("t", "un café noir")], [Atom("cafe")]) == "t: un [café] noir"
    assert make_snippet(rows, [Atom("absent")]) == ""
    assert make_snippet([("f", "add_argument here")], [Atom("argument")]) == ""


def test_clause_rendering():
    q = parse_query('auth OR "single sign"* -flaky')
    assert str(q) == 'auth OR "single sign"* -flaky'
    assert q.positive == [Clause((Atom("auth"), Atom("single sign", prefix=True, phrase=True)))]
