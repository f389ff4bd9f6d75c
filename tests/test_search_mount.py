"""Search through a real mount: word searches agree with ``grep -rliw`` over the mount, and
the views ``search/``, ``tags/``, ``by-date/`` follow what is written, renamed and deleted."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from contrib.corpus import generate_session
from mounting import FUSE_AVAILABLE, Mount
from shared_store import STORE_KINDS, on_both_stores, store_dir
from store.engine.store import Store
from store.services.search import search
from store.services.sessions import SessionStore

pytestmark = pytest.mark.skipif(not FUSE_AVAILABLE, reason="FUSE is not available here")

LARGE = {"summary.json", "audio-insights.json", "context-items.json", "transcription.json"}
CHUNK = re.compile(r"(screenshots|audio-segments)/chunk-\d{3}\.json")
WORD = re.compile(r"\w+")


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def indexed_strings(rel: str, doc) -> list[str]:
    """The fields the issue lists as indexed, by this test's own reading of it."""
    if rel == "metadata.json":
        return [v for v in (doc.get("name"), doc.get("description"), doc.get("category"), *doc.get("tags", []))
                if isinstance(v, str)]
    if rel in LARGE:
        return list(strings(doc))
    if m := CHUNK.fullmatch(rel):
        if m.group(1) == "screenshots":
            out = []
            for shot in doc["screenshots"]:
                a = shot.get("analysis") or {}
                out += [a.get("summary"), a.get("detectedActivity"), *a.get("extractedText", []),
                        *a.get("keyElements", [])]
            return [v for v in out if isinstance(v, str)]
        return [s.get("transcription") for s in doc["segments"] if isinstance(s.get("transcription"), str)]
    return []


def has_word(texts: list[str], word: str) -> bool:
    pattern = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)
    return any(pattern.search(t) for t in texts)


def pick_words(files: dict[tuple[str, str], object], rnd: random.Random) -> list[str]:
    """Rare, medium and common words of the indexed text, plus words found only outside it."""
    per_session: Counter[str] = Counter()
    everywhere: set[str] = set()
    for sid in {s for s, _ in files}:
        seen = set()
        for (s, rel), doc in files.items():
            if s == sid:
                seen.update(w.lower() for t in indexed_strings(rel, doc) for w in WORD.findall(t))
                everywhere.update(w.lower() for t in strings(doc) for w in WORD.findall(t))
        per_session.update(seen)

    def usable(w: str) -> bool:
        return w.isalpha() and w.isascii() and len(w) >= 4 and not set(w) <= set("abcdef")

    words = sorted(w for w in per_session if usable(w))
    rare = [w for w in words if per_session[w] <= 2]
    mid = [w for w in words if 3 <= per_session[w] <= 10]
    common = [w for w in words if per_session[w] > 10]
    outside = sorted(w for w in everywhere - set(per_session) if usable(w))
    assert rare and mid and common and outside
    return (rnd.sample(rare, 14) + rnd.sample(mid, 8) + rnd.sample(common, 4)
            + rnd.sample(outside, min(4, len(outside))) + ["backend", "Development"])


def grep_sessions(mnt: Path, word: str) -> dict[str, set[str]]:
    out = subprocess.run(["grep", "-rliw", "--", word, str(mnt / "sessions")], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    found: dict[str, set[str]] = {}
    for line in out.stdout.splitlines():
        rel = Path(line).relative_to(mnt / "sessions")
        found.setdefault(rel.parts[0], set()).add("/".join(rel.parts[1:]))
    return found


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_word_search_equals_grep_over_the_mount(tmp_path, request, kind):
    root = store_dir(request, tmp_path / "store", kind)
    if kind == "local":
        Store.init(root)
    docs = [generate_session(11, i, profile="small", attachments=False)[0] for i in range(24)]
    with Store.open(root) as store:
        api = SessionStore(store)
        for doc in docs:
            api.save_full_session(doc)
        store.flush()
    m = Mount(root, tmp_path / "mnt")
    try:
        m.start()
        files = {}
        for path in m.sessions.rglob("*.json"):
            rel = path.relative_to(m.sessions)
            files[(rel.parts[0], "/".join(rel.parts[1:]))] = orjson.loads(path.read_bytes())
        words = pick_words(files, random.Random(7))
        with Store.open(root, readonly=True) as ro:
            for word in words:
                expected = {sid for sid, rels in grep_sessions(m.path, word).items()
                            if any(has_word(indexed_strings(rel, files[(sid, rel)]), word) for rel in rels)}
                got = {r.session_id for r in search(ro, word, limit=None)}
                assert got == expected, word
                assert sorted(os.listdir(m.path / "search" / word)) == sorted(expected), word
        assert any(not os.listdir(m.path / "search" / w) for w in words)     # words outside the indexed fields
        r = subprocess.run([sys.executable, "-m", "store.cli", "search", str(m.path), words[0], "--json"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert {x["session_id"] for x in json.loads(r.stdout)} == set(os.listdir(m.path / "search" / words[0]))
    finally:
        m.cleanup()


@on_both_stores
def test_views_follow_changes_through_the_mount(mount):
    top, sessions = mount.path, mount.sessions
    assert {"tags", "by-date", "search", "sessions"} <= set(os.listdir(top))
    for i in range(4):
        sid = f"fresh-{i}"
        (sessions / sid).mkdir()
        meta = {"id": sid, "name": f"wapiti{i} handler", "status": "active", "tags": ["fresh", f"t{i}"],
                "startTime": f"2025-03-0{i + 1}T10:00:00.000Z"}
        (sessions / sid / "metadata.json").write_bytes(orjson.dumps(meta))
        # found right after close(): the listing commits what was closed first
        assert os.listdir(top / "search" / f"wapiti{i}") == [sid]
        assert sid in os.listdir(top / "tags" / "fresh")
        assert os.listdir(top / "by-date" / f"2025-03-0{i + 1}") == [sid]
        with open(sessions / sid / "summary.json.tmp", "wb") as f:       # the app's atomic save
            f.write(orjson.dumps({"narrative": f"then the gnu{i} escaped"}))
        assert os.listdir(top / "search" / f"gnu{i}") == []
        os.rename(sessions / sid / "summary.json.tmp", sessions / sid / "summary.json")
        assert os.listdir(top / "search" / f'"gnu{i} escaped"') == [sid]
    assert sorted(os.listdir(top / "search" / "wapiti0 OR gnu2 -absent")) == ["fresh-0", "fresh-2"]
    assert os.readlink(top / "tags" / "fresh" / "fresh-0") == "../../sessions/fresh-0"
    assert os.readlink(top / "search" / "gnu3" / "fresh-3") == "../../sessions/fresh-3"
    out = subprocess.run(["sh", "-c", f'cat "{top}/search/wapiti1 handler"/*/metadata.json'], capture_output=True)
    assert out.returncode == 0 and json.loads(out.stdout)["id"] == "fresh-1"
    assert orjson.loads((top / "by-date" / "2025-03-03" / "fresh-2" / "summary.json").read_bytes())
    assert os.listdir(top / "search") == [] and "t3" in os.listdir(top / "tags")

    # deleted: gone from every view at once, and from a read-only search beside the mount
    shutil.rmtree(sessions / "fresh-1")
    assert os.listdir(top / "search" / "wapiti1") == [] and os.listdir(top / "search" / "gnu1") == []
    assert "fresh-1" not in os.listdir(top / "tags" / "fresh")
    assert "2025-03-02" not in os.listdir(top / "by-date") and "t1" not in os.listdir(top / "tags")
    time.sleep(1.1)            # what the kernel cached of a view (1 s timeouts) has expired
    assert not (top / "by-date" / "2025-03-02").exists() and not (top / "tags" / "t1").exists()
    os.rename(sessions / "fresh-2", sessions / "renamed-2")
    assert os.listdir(top / "search" / "gnu2") == ["renamed-2"]
    with Store.open(mount.store, readonly=True) as ro:
        assert {r.session_id for r in search(ro, "wapiti1 OR gnu1 OR wapiti2")} == {"renamed-2"}

    # read-only views
    for op in (lambda: (top / "tags" / "fresh" / "x").mkdir(),
               lambda: open(top / "search" / "gnu0" / "new", "w"),
               lambda: os.rename(sessions / "fresh-0", top / "tags" / "fresh" / "y"),
               lambda: os.unlink(top / "tags" / "fresh" / "fresh-0"),
               lambda: os.symlink("x", top / "by-date" / "x"),
               lambda: os.rmdir(top / "search" / "gnu0")):
        with pytest.raises(OSError) as e:
            op()
        assert e.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    with pytest.raises(OSError) as e:
        os.listdir(top / "search" / "(unbalanced")
    assert e.value.errno == errno.EINVAL
    assert not (top / "search" / ".hidden").exists()
    assert "fresh-0" in os.listdir(top / "tags" / "fresh")
