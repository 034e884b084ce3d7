"""The package's shape: few entries in ``jfv/``, no import cycle, dependencies pointing one way,
no ``jax._src`` import (BUILD.md, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jfv"
TOP = {"__init__.py", "__main__.py", "main.py"}
# Each part may import only parts of a lower rank (and itself); the entry point imports recipes.
RANK = {"runtime": 0, "imageops": 0, "models": 1, "optvis": 2, "attribution": 2, "training": 2,
        "evaluation": 3, "analysis": 4, "recipes": 5, "main": 6, "__main__": 7, "jfv": 6}


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def imports() -> dict[str, set[str]]:
    """module -> the jfv modules it imports anywhere in its body (lazy imports count)."""
    mods = modules()

    def owner(name: str) -> str:
        while name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("jfv"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    graph[m].add(full if full in mods else owner(node.module))
            elif isinstance(node, ast.Import):
                graph[m].update(owner(a.name) for a in node.names if a.name.startswith("jfv"))
        graph[m].discard(m)
    return graph


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1].removesuffix(".py") if len(parts) > 1 else "jfv"


def test_at_most_ten_entries_beside_the_entry_points():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"} - TOP
    assert len(entries) <= 10, sorted(entries)
    assert {e.removesuffix(".py") for e in entries} <= set(RANK) | {"data"}, sorted(entries)


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if m.startswith(d + "."):  # a module importing its own package's __init__ is no cycle
                continue
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_dependencies_point_down():
    wrong = sorted(f"{m} -> {d}" for m, ds in imports().items() for d in ds
                   if part(m) != part(d) and RANK[part(d)] >= RANK[part(m)])
    assert not wrong, wrong


# The layer job's barrier waits for the slowest process, hours apart: the coordination service's
# barrier (with its 7-day timeout) is the only one that can; the public
# multihost_utils.sync_global_devices is a collective whose CPU (gloo) context gives up after 30 s
# (measured: DEADLINE_EXCEEDED with one process 400 s late). BUILD.md, Design decisions.
PRIVATE_JAX_ALLOWED = {"jfv/runtime/distributed.py"}  # the coordination-service barrier (its docstring says why)


def test_no_private_jax_imports():
    found = [f"{p.relative_to(PACKAGE.parent)}: {name}" for p in modules().values()
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, (ast.Import, ast.ImportFrom))
             for name in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
             if name.startswith("jax._src") and str(p.relative_to(PACKAGE.parent)) not in PRIVATE_JAX_ALLOWED]
    assert not found, found
