"""Real text for the corpus: source lines and docstrings of stdlib modules.

The modules are read as files (never imported) in a fixed order, so the text
is the same on every run of the same Python version.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
import textwrap
from dataclasses import dataclass

MODULES = (
    "argparse", "ast", "asyncio.base_events", "asyncio.streams", "calendar",
    "collections", "configparser", "contextlib", "csv", "dataclasses",
    "difflib", "email.message", "enum", "fractions", "functools", "gettext",
    "gzip", "heapq", "http.client", "http.cookiejar", "http.server",
    "inspect", "ipaddress", "json.decoder", "logging", "logging.handlers",
    "mailbox", "pathlib", "pickle", "pprint", "shutil", "smtplib",
    "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "typing", "unittest.case", "urllib.parse", "urllib.request",
    "uuid", "zipfile",
)

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"^[a-z][a-z0-9]+(?:_[a-z0-9]+)*$")


@dataclass(frozen=True)
class SourceFile:
    """One module's readable lines: display path and its code lines."""

    path: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class TextCorpus:
    """Everything the generator draws text from."""

    files: tuple[SourceFile, ...]
    sentences: tuple[str, ...]
    doc_lines: tuple[str, ...]
    words: tuple[str, ...]
    classes: tuple[str, ...]


def module_path(name: str) -> str | None:
    """Return the .py file of a stdlib module without importing it."""
    top, _, rest = name.partition(".")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return None
    if not rest:
        return spec.origin if spec.origin.endswith(".py") else None
    for base in spec.submodule_search_locations or ():
        path = os.path.join(base, *rest.split(".")) + ".py"
        if os.path.exists(path):
            return path
    return None


def _ascii(text: str) -> bool:
    return text.isascii() and "\t" not in text


def _code_lines(source: str) -> tuple[str, ...]:
    out = []
    for line in source.splitlines():
        line = line.rstrip()
        if line and len(line) <= 100 and _ascii(line):
            out.append(line)
    return tuple(out)


def _docstrings(tree: ast.AST) -> list[str]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [d for n in ast.walk(tree) if isinstance(n, kinds)
            and (d := ast.get_docstring(n))]


def _sentences(doc: str) -> list[str]:
    flat = _SPACES.sub(" ", doc).strip()
    return [s for s in _SENTENCE_SPLIT.split(flat)
            if 25 <= len(s) <= 240 and s[0].isupper() and _ascii(s)
            and ">>>" not in s and s[-1] in ".!?"]


def _names(tree: ast.AST) -> tuple[list[str], list[str]]:
    funcs, classes = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs.append(node.name)
        elif isinstance(node, ast.ClassDef):
            classes.append(node.name)
    return funcs, classes


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


@functools.lru_cache(maxsize=1)
def load_corpus() -> TextCorpus:
    """Read and tokenize the stdlib modules of MODULES (cached per process)."""
    files, sentences, doc_lines, words, classes = [], [], [], [], []
    for name in MODULES:
        path = module_path(name)
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source)
        display = "lib/" + name.replace(".", "/") + ".py"
        files.append(SourceFile(display, _code_lines(source)))
        for doc in _docstrings(tree):
            sentences.extend(_sentences(doc))
            doc_lines.extend(line for line in textwrap.dedent(doc).splitlines()
                             if line.strip() and _ascii(line) and len(line) <= 100)
        funcs, klasses = _names(tree)
        words.extend(w for w in funcs if _WORD.match(w))
        classes.extend(c for c in klasses if c[0].isupper() and c.isascii())
    if not files or not sentences:
        raise RuntimeError("no stdlib source found to build the text corpus")
    return TextCorpus(tuple(files), _unique(sentences), tuple(doc_lines),
                      _unique(words), _unique(classes))
