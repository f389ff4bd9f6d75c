"""The package layers hold: import-linter's contracts (pyproject.toml) pass, and no module of
store or fusefs is part of an import cycle, imports inside functions included."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def lint_imports() -> str:
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed (pip install -e '.[test]')"
    return found


def test_import_contracts_are_kept():
    r = subprocess.run([lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or a
    knot of them; a module importing itself counts too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.find_modules_directly_imported_by(node):
                    found.append(sorted(component))
    return found


def describe(graph, component: list[str]) -> str:
    """One cycle through the component, with the lines that import, for the failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(m for m in graph.find_modules_directly_imported_by(path[-1]) if m in members)
        back = [m for m in nxt if m == start]
        if back and len(path) > 1 or not nxt:
            break
        fresh = [m for m in nxt if m not in seen]
        if not fresh:
            path.append(nxt[0])
            break
        path.append(fresh[0])
        seen.add(fresh[0])
    if path[-1] != start and start in graph.find_modules_directly_imported_by(path[-1]):
        path.append(start)
    lines = []
    for a, b in zip(path, path[1:]):
        details = graph.get_import_details(importer=a, imported=b)
        where = ", ".join(f"l.{d['line_number']}: {d['line_contents']}" for d in details)
        lines.append(f"  {a} -> {b} ({where})")
    return f"cycle among {len(component)} modules {component}:\n" + "\n".join(lines)


def test_no_import_cycles():
    graph = grimp.build_graph("store", "fusefs", cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "\n".join(describe(graph, c) for c in cycles)


SQL_PACKAGE = "store.backends.catalog.sqlite"


def test_only_the_sqlite_catalog_imports_sqlite3():
    """SQL lives in the SQLite catalog implementation: nothing else in store or fusefs imports
    sqlite3 (a second catalog implementation replaces that package, nothing more)."""
    graph = grimp.build_graph("store", "fusefs", include_external_packages=True, cache_dir=None)
    importers = graph.find_modules_that_directly_import("sqlite3")
    outside = sorted(m for m in importers if m != SQL_PACKAGE and not m.startswith(SQL_PACKAGE + "."))
    assert not outside, f"sqlite3 imported outside {SQL_PACKAGE}: {outside}"


def test_no_sql_is_executed_outside_the_sqlite_catalog():
    """No module of store or fusefs outside the catalog implementations (SQLite, PostgreSQL) calls
    execute/executemany/executescript: they reach the catalog through its typed operations."""
    sql_dirs = [ROOT / "store" / "backends" / "catalog" / name for name in ("sqlite", "postgres")]
    calls = re.compile(r"\.execute(many|script)?\(")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for top in ("store", "fusefs") for path in sorted((ROOT / top).rglob("*.py"))
             if not any(d in path.parents for d in sql_dirs)
             for n, line in enumerate(path.read_text().splitlines(), 1) if calls.search(line)]
    assert not found, "\n".join(found)
