"""A simulated desktop whose OCR text drifts slowly from shot to shot.

A scene is one application window (editor, terminal, browser, chat) showing
a window of lines fed from the text corpus. Between shots the scene scrolls
a few lines or edits a few, and now and then the user switches to another
scene (often back to one seen before), as a real screen does.
"""

from __future__ import annotations

import itertools
import random
import zlib
from typing import Iterator

from .text import TextCorpus

KINDS = ("code", "code", "code", "code", "terminal", "terminal",
         "browser", "browser", "chat")
APPS = {"code": "VS Code", "terminal": "Terminal", "browser": "Firefox", "chat": "Slack"}
THEMES = {"code": "dark", "terminal": "terminal", "browser": "light", "chat": "chat"}
ACTIVITIES = {"code": ("coding", "debugging", "refactoring"),
              "terminal": ("running-tests", "debugging", "terminal"),
              "browser": ("reading-docs", "research", "browsing"),
              "chat": ("communicating", "code-review", "meeting")}
PEOPLE = ("Alice Chen", "Ravi Patel", "Jonas Weber", "Maria Garcia", "Kenji Sato",
          "Fatima Okafor", "Liam Murphy", "Sofia Rossi")
CHANNELS = ("#backend", "#frontend", "#incidents", "#releases", "#random", "#design")
SWITCH_P, RETURN_P, MAX_SCENES = 0.06, 0.5, 4


def _code_feed(rng: random.Random, corpus: TextCorpus) -> tuple[str, Iterator[str]]:
    f = rng.choice(corpus.files)
    pos = rng.randrange(len(f.lines))

    def lines():
        for k in itertools.count(pos):
            yield f"{k % len(f.lines) + 1:>5}  {f.lines[k % len(f.lines)]}"
    return f.path, lines()


def _terminal_feed(rng: random.Random, corpus: TextCorpus) -> tuple[str, Iterator[str]]:
    f = rng.choice(corpus.files)
    return "~/src/" + f.path.rsplit("/", 1)[-1][:-3], _terminal_lines(rng, corpus, f)


def _terminal_lines(rng: random.Random, corpus: TextCorpus, f) -> Iterator[str]:
    pos = rng.randrange(len(f.lines))
    while True:
        r = rng.random()
        word = rng.choice(corpus.words)
        if r < 0.05:
            yield f"dev@workstation:~/src$ grep -rn {word} {f.path}"
        elif r < 0.12:
            pct = rng.randrange(1, 101)
            yield f"tests/test_{word}.py::test_{rng.choice(corpus.words)} PASSED  [{pct:>3}%]"
        else:
            pos = (pos + 1) % len(f.lines)
            yield f"{f.path}:{pos + 1}:{f.lines[pos].strip()}"


def _browser_feed(rng: random.Random, corpus: TextCorpus) -> tuple[str, Iterator[str]]:
    title = f"{rng.choice(corpus.classes)} - Python 3 documentation"
    docs, pos = corpus.doc_lines, rng.randrange(len(corpus.doc_lines))
    return title, (docs[k % len(docs)] for k in itertools.count(pos))


def _chat_feed(rng: random.Random, corpus: TextCorpus) -> tuple[str, Iterator[str]]:
    return rng.choice(CHANNELS), _chat_lines(rng, corpus)


def _chat_lines(rng: random.Random, corpus: TextCorpus) -> Iterator[str]:
    minute = rng.randrange(8 * 60, 17 * 60)
    while True:
        minute += rng.randrange(0, 4)
        yield f"{rng.choice(PEOPLE)}  {minute // 60 % 24}:{minute % 60:02d}"
        for _ in range(rng.randint(1, 3)):
            yield "  " + rng.choice(corpus.sentences)


FEEDS = {"code": _code_feed, "terminal": _terminal_feed,
         "browser": _browser_feed, "chat": _chat_feed}


def _chrome(kind: str, title: str, rng: random.Random, corpus: TextCorpus) -> list[str]:
    """Menu bars, tabs, side panels: the lines around the main content."""
    files = [f.path for f in rng.sample(corpus.files, 12)]
    if kind == "code":
        return (["File  Edit  Selection  View  Go  Run  Terminal  Help",
                 "  ".join(p.rsplit("/", 1)[-1] for p in files[:5]), title, "EXPLORER"]
                + files + ["OUTLINE"] + rng.sample(corpus.words, 8))
    if kind == "terminal":
        return [f"dev@workstation: {title}", "Shell  Edit  View  Window  Help"]
    if kind == "browser":
        module = files[0].rsplit("/", 1)[-1][:-3]
        return [title, f"https://docs.python.org/3/library/{module}.html",
                "Bookmarks  Python docs  GitHub  Issues  CI dashboard",
                "Contents"] + rng.sample(corpus.classes, 10)
    return ["Slack  " + title, "Threads  Mentions  Drafts"] + list(CHANNELS) + list(PEOPLE[:5])


class Scene:
    """One window: chrome lines plus a scrolling body of lines."""

    def __init__(self, rng: random.Random, corpus: TextCorpus, n_lines: int):
        self.kind = rng.choice(KINDS)
        self.app, self.theme = APPS[self.kind], THEMES[self.kind]
        self.noise_seed = rng.getrandbits(32)
        self.title, self.feed = FEEDS[self.kind](rng, corpus)
        self.chrome = _chrome(self.kind, self.title, rng, corpus)
        self.body = [next(self.feed) for _ in range(max(1, n_lines - len(self.chrome) - 2))]
        self.cursor = (rng.randrange(1, 400), rng.randrange(1, 60))

    def drift(self, rng: random.Random) -> None:
        """Scroll and edit a little, as between two screenshots."""
        body, feed = self.body, self.feed
        if rng.random() < 0.55:
            k = min(len(body), rng.choice((1, 2, 3, 3, 5, 8, 12)))
            del body[:k]
            body.extend(next(feed) for _ in range(k))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            i = rng.randrange(len(body))
            if self.kind == "code" and rng.random() < 0.5:
                body.insert(i, body[i][:7] + "    " + next(feed)[7:].strip())
                body.pop()
            else:
                body[i] = next(feed)
        self.cursor = (rng.randrange(1, 400), rng.randrange(1, 60))

    def lines(self, clock: str) -> list[str]:
        """The screen's OCR text: clock bar, chrome, body, status bar."""
        ln, col = self.cursor
        status = f"Ln {ln}, Col {col}  Spaces: 4  UTF-8  LF  {self.app}"
        return [clock, *self.chrome, *self.body, status]


class Desktop:
    """The sequence of scenes a user looks at during a session."""

    def __init__(self, rng: random.Random, corpus: TextCorpus, n_lines: int):
        self.rng, self.corpus, self.n_lines = rng, corpus, n_lines
        self.scenes = [Scene(rng, corpus, n_lines)]
        self.current = self.scenes[0]

    def step(self) -> Scene:
        """Advance one screenshot interval and return the visible scene."""
        rng = self.rng
        if rng.random() < SWITCH_P:
            others = [s for s in self.scenes if s is not self.current]
            if others and rng.random() < RETURN_P:
                self.current = rng.choice(others)
            else:
                self.current = Scene(rng, self.corpus, self.n_lines)
                self.scenes = [*self.scenes, self.current][-MAX_SCENES:]
        self.current.drift(rng)
        return self.current


def layout(lines: list[str], n_chrome: int, rows: int, cols: int) -> list[str]:
    """Text rows of the screen image: clock on top, a chrome side panel left of
    the body, status bar at the bottom."""
    chrome, body = lines[1:1 + n_chrome], lines[1 + n_chrome:-1]
    side = cols // 4
    middle = [f"{chrome[r] if r < len(chrome) else '':<{side}.{side}}| {body[r] if r < len(body) else ''}"
              for r in range(rows - 2)]
    return [lines[0], *middle, lines[-1]]


def perceptual_hash(lines: list[str]) -> str:
    """A 64-bit hash with one bit per horizontal band of the screen."""
    n = len(lines)
    bits = 0
    for i in range(64):
        bits = bits << 1 | (zlib.crc32(lines[i * n // 64].encode()) & 1)
    return f"{bits:016x}"
