"""The layout the architecture doc promises: no import circles, no strategy/API code naming a space, the
shared search machinery in nasforge.engine and one module per method in nasforge.strategies."""
from __future__ import annotations

import ast
import importlib
import importlib.util
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


def test_registry_imports_no_component():
    """The registries are a leaf: components register themselves, the packages list their modules (no
    registry <-> executors circle, not even through importlib)."""
    text = (PKG / "registry.py").read_text()
    assert "importlib" not in text and "import_module" not in text
    assert _module_imports()["nasforge.registry"] <= {"nasforge.errors"}


def test_old_table_package_name_is_gone():
    """The deprecated alias nasforge.benchmarks was removed (nasforge.tables is the package)."""
    assert not (PKG / "benchmarks.py").exists()
    assert importlib.util.find_spec("nasforge.benchmarks") is None


def test_engine_holds_the_shared_machinery_and_strategies_one_module_per_method():
    from nasforge.building import import_components
    from nasforge.registry import STRATEGIES

    import_components()
    modules = {STRATEGIES.get(n).__module__.rsplit(".", 1)[1] for n in STRATEGIES.names()}
    files = {f.stem for f in PKG.joinpath("strategies").glob("*.py")} - {"__init__"}
    assert files == modules  # every module in strategies/ is a method's (darts/single-darts and manas/manas-ls share)
    for name in ("base", "oneshot", "paths", "selection", "scoring", "multitrial", "evolution"):
        assert PKG.joinpath("engine", f"{name}.py").exists(), name
