"""The layout the architecture doc promises: no import circles, no strategy/API code naming a space, and the
old package name of the table readers still importable."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import nasforge

PKG = Path(nasforge.__file__).parent


def _module_imports() -> dict[str, set[str]]:
    """module -> nasforge modules it imports (module level or inside functions; package __init__ excluded)."""
    mods = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        if f.name == "__init__.py":
            continue
        pkg = m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            edges[m] |= {n for n in names if n in mods and n != m}
    return edges


def test_no_import_circles():
    edges = _module_imports()
    # a module that can reach itself through its imports is on a circle
    on_circle = []
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            m = todo.pop()
            if m == start:
                on_circle.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(edges.get(m, ()))
    assert not on_circle, f"modules on an import circle: {sorted(on_circle)}"


def test_strategies_estimators_and_api_never_name_a_space():
    spaces = ("nb201", "darts", "pnas", "macro")
    files = [*PKG.joinpath("strategies").glob("*.py"), *PKG.joinpath("estimators").glob("*.py"),
             PKG / "api.py", PKG / "building.py"]
    offending = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            # comparisons with a space name, or a space name as a dict key / membership test
            if isinstance(node, ast.Compare):
                parts = [node.left, *node.comparators]
                if any(isinstance(p, ast.Constant) and p.value in spaces for p in parts) and any(
                        isinstance(p, ast.Attribute) and p.attr == "name" or isinstance(p, ast.Name) and "space" in p.id
                        for p in parts):
                    offending.append(f"{f.name}:{node.lineno}")
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value in spaces for k in node.keys) \
                    and sum(isinstance(k, ast.Constant) and k.value in spaces for k in node.keys) > 1:
                offending.append(f"{f.name}:{node.lineno} (dict keyed by space names)")
        assert "space_kind" not in f.read_text(), f
    assert not offending, offending


def test_old_table_package_name_still_imports():
    old = importlib.import_module("nasforge.benchmarks")
    new = importlib.import_module("nasforge.tables")
    assert old.NB201Table is new.NB201Table and old.parse_arch is new.parse_arch
    from nasforge.benchmarks.nb201 import NB201Table  # noqa: F401 - the submodule path of the old name
    assert importlib.import_module("nasforge.benchmarks.latency") is importlib.import_module("nasforge.tables.latency")
