"""The package's shape: imports run downwards (docs/architecture.md), no private names cross modules,
object state is created in ``__init__``, and functions import nothing lazily but where allowed."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import import_graph as graph  # noqa: E402

LAZY_IMPORTS_ALLOWED = {
    # scipy.special costs a noticeable share of start-up; only the reference gelu needs it
    ("npespcn/functional/activation.py", "scipy.special"),
}


def test_every_node_has_a_layer():
    nodes = {graph.node_of(m) for m in graph.modules()}
    assert nodes <= set(graph.RANK), f"folders or modules missing from import_graph.LAYERS: {nodes - set(graph.RANK)}"


def test_imports_only_point_downwards():
    bad = [f"{a} -> {b}: {where[0]}" for (a, b), where in graph.edges().items() if graph.RANK[b] >= graph.RANK[a]]
    assert not bad, "imports that point upwards or sideways:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    mods = graph.modules()
    deps = {m: set() for m in mods}
    for name, path in mods.items():
        for target, names, _ in graph.imports(name, path):
            for t in ([f"{target}.{n}" for n in names if f"{target}.{n}" in mods] or [target]):
                if t in mods and t != name and not name.startswith(t + "."):   # a package's __init__ runs first
                    deps[name].add(t)
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(deps[m]):
            if state.get(d) == 1:
                cycle.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(deps):
        if m not in state:
            visit(m, [m])
    assert not cycle, "import cycles: " + "; ".join(" -> ".join(c) for c in cycle)


def test_the_drawing_is_current():
    text = graph.DOC.read_text()
    assert graph.mermaid() in text, "docs/architecture.md is stale: run python docs/import_graph.py --write"


def _sources():
    return sorted(graph.modules().items())


@pytest.mark.parametrize("name,path", _sources(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_private_name_is_imported_from_another_module(name, path):
    bad = [f"line {line}: from {target} import {n}" for target, names, line in graph.imports(name, path)
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, f"{path.relative_to(ROOT)} imports private names: {bad}"


def _attributes_set(func) -> set[str]:
    out = set()
    for node in ast.walk(func):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) and el.value.id == "self":
                    out.add(el.attr)
    return out


def _state_outside_init(paths) -> list[str]:
    classes = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = (node, path)
    bad = []
    for cname, (node, path) in classes.items():
        def init_attrs(cls_node):
            attrs = set()
            for item in cls_node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    attrs |= _attributes_set(item)
                if isinstance(item, (ast.AnnAssign, ast.Assign)):          # class-level declarations
                    attrs |= {t.id for t in getattr(item, "targets", [getattr(item, "target", None)])
                              if isinstance(t, ast.Name)}
            for base in cls_node.bases:
                if isinstance(base, ast.Name) and base.id in classes:
                    attrs |= init_attrs(classes[base.id][0])
            return attrs
        known = init_attrs(node)
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name != "__init__":
                for attr in sorted(_attributes_set(item) - known):
                    bad.append(f"{path.name}: {cname}.{item.name} creates self.{attr}")
    return bad


def test_object_state_is_created_in_init():
    bad = _state_outside_init([path for _, path in _sources()])
    assert not bad, "state created outside __init__:\n" + "\n".join(bad)


def test_functions_import_nothing_lazily():
    bad = []
    for _, path in _sources():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        mod = inner.module if isinstance(inner, ast.ImportFrom) else inner.names[0].name
                        if (rel, mod) not in LAZY_IMPORTS_ALLOWED:
                            bad.append(f"{rel}:{inner.lineno} {node.name}() imports {mod}")
    assert not bad, "imports inside functions:\n" + "\n".join(bad)


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """A module of a low layer importing a high one is reported (the checks above are not vacuous)."""
    pkg = tmp_path / "npespcn"
    (pkg / "fast").mkdir(parents=True)
    (pkg / "cli").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "fast" / "__init__.py").write_text("from ..cli import main\nfrom ..cli import _private\n")
    monkeypatch.setattr(graph, "ROOT", tmp_path)
    monkeypatch.setattr(graph, "PACKAGE", pkg)
    assert ("fast", "cli") in graph.edges()
    assert graph.RANK["cli"] > graph.RANK["fast"]
    names = [n for _, ns, _ in graph.imports("npespcn.fast", pkg / "fast" / "__init__.py") for n in ns]
    assert "_private" in names
    (pkg / "fast" / "layer.py").write_text("class A:\n    def __init__(self):\n        self.a = 1\n\n"
                                           "    def forward(self):\n        self.b = 2\n")
    assert _state_outside_init([pkg / "fast" / "layer.py"]) == ["layer.py: A.forward creates self.b"]
