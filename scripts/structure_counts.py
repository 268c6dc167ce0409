"""Counts of the package's structure (docs/architecture.md quotes them): top-level modules, import arrows
between folders, imports that point up the layer order, import circles, functions over 60 lines, test files.

    python scripts/structure_counts.py        (from the repository root)

An import is any `import`/`from ... import` of a streamlearn module, at the top or inside a function. A
folder is a subpackage of streamlearn; a top-level module counts as its own folder. The layer of a module is
the one tests/test_architecture.py checks (modules it does not know, e.g. before the folders, count as
unranked and are never "upward")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "streamlearn"
sys.path.insert(0, str(ROOT / "tests"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, known: set[str]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("streamlearn"):
            for a in node.names:  # `from streamlearn.core import console` names a module
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("streamlearn")}
    return {t for t in out if t in known}


def folder(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "streamlearn"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    try:
        from test_architecture import layer_of
    except ImportError:
        layer_of = None
    paths = sorted(SRC.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imports(p, known) - {module_name(p)} for p in paths}
    top = [p for p in paths if p.parent == SRC]
    arrows = {(folder(a), folder(b)) for a, bs in graph.items() for b in bs if folder(a) != folder(b)}
    upward = []
    if layer_of:
        for a, bs in graph.items():
            for b in bs:
                la, lb = layer_of(a), layer_of(b)
                if la is not None and lb is not None and lb > la:
                    upward.append(f"{a} -> {b}")
    fgraph: dict[str, set[str]] = {}
    for a, b in arrows:
        fgraph.setdefault(a, set()).add(b)
    long_functions = 0
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long_functions += 1
    print(f"top-level modules            {len(top)}")
    print(f"import arrows between folders {len(arrows)}")
    print(f"upward imports               {len(upward)}" + "".join(f"\n  {u}" for u in upward))
    print(f"module circles               {len(cycles(graph))}" + "".join(f"\n  {c}" for c in cycles(graph)))
    print(f"folder circles               {len(cycles(fgraph))}" + "".join(f"\n  {c}" for c in cycles(fgraph)))
    print(f"functions over 60 lines      {long_functions}")
    print(f"test files                   {len(list((ROOT / 'tests').glob('test_*.py')))}")


if __name__ == "__main__":
    main()
