"""The shape of the code: modules and lines per package, import cycles, the largest functions.

Reads the source statically (``ast``), so it can measure any checkout: ``--src`` points at a
``src/`` folder (default: this repository's). Import cycles are the strongly connected components
of the graph of ``reclaim`` modules importing each other, counted twice: with every import, and
with module-level imports only (those that make importing one module import the other at once;
imports inside functions are how a cycle is usually hidden, not removed).

Usage: python bench/code_shape.py [--src DIR] [--top 15] [--out bench/results/code_shape.json]
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def modules(src: Path) -> dict[str, Path]:
    out = {}
    for p in sorted((src / "reclaim").rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(mods: dict[str, Path], top_level_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        nodes = (
            [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
            + [
                n
                for t in tree.body
                if isinstance(t, ast.If | ast.Try)
                for n in ast.walk(t)
                if isinstance(n, ast.Import | ast.ImportFrom)
            ]
            if top_level_only
            else [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        )
        for node in nodes:
            if isinstance(node, ast.If) or _type_checking(node, tree):
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base]) if base else ".".join(up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                r = _resolve(t, mods)
                if r is not None and r != mod and not mod.startswith(r + "."):
                    graph[mod].add(r)
    return graph


def _type_checking(node: ast.AST, tree: ast.Module) -> bool:
    for t in tree.body:
        if (
            isinstance(t, ast.If)
            and "TYPE_CHECKING" in ast.unparse(t.test)
            and any(node is n for n in ast.walk(t))
        ):
            return True
    return False


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def functions(mods: dict[str, Path]) -> list[tuple[int, str]]:
    out = []
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                out.append((n, f"{mod}.{node.name}"))
    return sorted(out, reverse=True)


def packages(mods: dict[str, Path], src: Path) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for mod, path in mods.items():
        parts = mod.split(".")
        pkg = ".".join(parts[:2]) if path.name == "__init__.py" or len(parts) > 2 else "reclaim"
        r = rows.setdefault(pkg, {"package": pkg, "modules": 0, "lines": 0, "largest": ("", 0)})
        n = len(path.read_text().splitlines())
        r["modules"] += 1
        r["lines"] += n
        if n > r["largest"][1]:
            r["largest"] = (str(path.relative_to(src)), n)
    return sorted(rows.values(), key=lambda r: r["package"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    mods = modules(args.src)
    pk = packages(mods, args.src)
    print("| package | modules | lines | largest module |\n|---|---|---|---|")
    for r in pk:
        big, n = r["largest"]
        print(f"| {r['package']} | {r['modules']} | {r['lines']} | {big} ({n}) |")
    total = sum(r["lines"] for r in pk)
    print(f"| **total** | {len(mods)} | {total} | |")
    result: dict[str, Any] = {"packages": pk, "modules": len(mods), "lines": total}
    for label, top in (("every import", False), ("module-level imports", True)):
        cyc = cycles(import_graph(mods, top))
        result[f"cycles ({label})"] = cyc
        print(f"\nimport cycles ({label}): {len(cyc)}")
        for c in cyc:
            print("  " + " <-> ".join(c))
    fns = functions(mods)
    result["largest_functions"] = fns[: args.top]
    print("\nlargest functions (lines):")
    for n, name in fns[: args.top]:
        print(f"  {n:4d}  {name}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
