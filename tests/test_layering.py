"""No import circle anywhere in xpnet.

The modules form floors (CONTRIBUTING.md, "Layering"): a module imports only from floors below it. A circle, even
through an import inside a function, means two modules cannot be understood, tested or moved one without the other,
and a late import hides it from the reader. This test reads the source with ``ast`` (nothing is imported, so it needs
no backend and takes milliseconds), follows every import (module level, inside functions and under ``if``), and
fails naming each circle with the file and line of every import on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xpnet"

# module -> {imported module: line of the first such import}
Graph = dict[str, dict[str, int]]


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package folder ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_package(modules: dict[str, Path], name: str) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def _resolve(modules: dict[str, Path], importer: str, node: ast.ImportFrom) -> str:
    """The absolute module ``from <node.module> import ...`` names, relative levels resolved against ``importer``."""
    if not node.level:
        return node.module or ""
    # A package's own __init__ is its own base for "from . import"; a plain module's base is its package.
    base = importer.split(".")
    if not _is_package(modules, importer):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = PACKAGE) -> Graph:
    """Which xpnet module imports which, read from the source under ``root``.

    ``from pkg import name`` is an edge to ``pkg.name`` where that is a module, else to ``pkg``. Importing
    ``a.b`` runs ``a/__init__.py`` first, but that implicit edge to every parent package is left out: every
    module would otherwise sit on a circle through ``xpnet/__init__.py``, which re-exports the public API.
    """
    modules = _modules(root)
    top = root.name
    graph: Graph = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(modules, name, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if (target == top or target.startswith(top + ".")) and target in modules and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan), as a closed path a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # the package has ~40 modules: recursion depth is no concern
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle_in(graph, set(c)) for c in sorted(components)]


def _circle_in(graph: Graph, component: set[str]) -> list[str]:
    """A shortest circle through the first module of ``component`` (breadth-first within the component)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return [*paths[v], start]
                if w in component and w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start} in its component {sorted(component)}")


def describe(graph: Graph, circle: list[str]) -> str:
    """``a -> b (imported by a at line 12) -> a (imported by b at line 40)``."""
    steps = [circle[0]]
    for a, b in zip(circle[:-1], circle[1:], strict=True):
        steps.append(f"{b} (imported by {a} at line {graph[a][b]})")
    return " -> ".join(steps)


def test_xpnet_has_no_import_circle():
    graph = import_graph()
    circles = find_cycles(graph)
    assert not circles, "import circles in xpnet:\n" + "\n".join(describe(graph, c) for c in circles)


def test_the_backend_is_the_ground_floor():
    # _backend is the one door to the array libraries: it imports nothing of xpnet, so anything may import it.
    assert import_graph()["xpnet._backend"] == {}


# CONTRIBUTING.md, "Layering": the floor of each module or package (a package's modules share its floor). A module
# imports only from its own floor and the floors below; a new module gets a line here and in that table.
FLOORS = {
    "xpnet._backend": 0,
    "xpnet._validation": 0,
    "xpnet._atomic": 0,
    "xpnet._progress": 0,
    "xpnet._random": 1,
    "xpnet._npz": 1,
    "xpnet._metadata": 1,
    "xpnet._model_file": 1,
    "xpnet._checkpoint": 1,
    "xpnet.layers": 2,
    "xpnet.optim": 2,
    "xpnet.gradient_check": 2,
    "xpnet.vis_utils": 2,
    "xpnet.datasets": 2,
    "xpnet.fast_layers": 3,
    "xpnet.layer_utils": 3,
    "xpnet.classifiers": 4,
    "xpnet.solver": 5,
    "xpnet._compiled": 5,
    "xpnet.sweep": 6,
    "xpnet.data_utils": 6,
    "xpnet": 6,
}


def floor_of(module: str) -> int | None:
    """The floor of ``module``: its own entry in :data:`FLOORS`, else that of the nearest package above it (not
    ``xpnet`` itself, whose entry is its ``__init__`` only); None if it has none."""
    if module in FLOORS:
        return FLOORS[module]
    parts = module.split(".")
    for n in range(len(parts) - 1, 1, -1):
        if ".".join(parts[:n]) in FLOORS:
            return FLOORS[".".join(parts[:n])]
    return None


def upward_imports(graph: Graph) -> list[str]:
    """Each import from a module to one on a higher floor, as ``a (floor 0) imports b (floor 1) at line 12``."""
    return [
        f"{a} (floor {floor_of(a)}) imports {b} (floor {floor_of(b)}) at line {line}"
        for a, edges in sorted(graph.items())
        for b, line in sorted(edges.items())
        if (floor_of(b) or 0) > (floor_of(a) or 0)
    ]


def test_every_module_has_a_floor_and_imports_only_down_or_sideways():
    graph = import_graph()
    unplaced = [m for m in graph if floor_of(m) is None]
    assert not unplaced, f"modules with no floor: {unplaced}; add them to FLOORS here and to CONTRIBUTING.md"
    upward = upward_imports(graph)
    assert not upward, "imports going up a floor (CONTRIBUTING.md, 'Layering'):\n" + "\n".join(upward)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_a_circle_through_a_function_level_relative_import_is_found(tmp_path):
    # The shape of the _backend <-> _files circle that save_npz/load_npz made: a late import inside a function.
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "def save():\n    from .high import write\n    write()\n",
            "pkg/high.py": "from .low import save\n",
            "pkg/sub/__init__.py": "from ..low import save\n",
            "pkg/sub/leaf.py": "from . import other\nfrom .. import high\n",
            "pkg/sub/other.py": "import pkg.sub.leaf\n",
        },
    )
    graph = import_graph(root)
    assert graph["pkg.low"] == {"pkg.high": 2}
    assert graph["pkg.sub"] == {"pkg.low": 1}
    assert graph["pkg.sub.leaf"] == {"pkg.sub.other": 1, "pkg.high": 2}
    circles = find_cycles(graph)
    assert circles == [["pkg.high", "pkg.low", "pkg.high"], ["pkg.sub.leaf", "pkg.sub.other", "pkg.sub.leaf"]]
    assert describe(graph, circles[0]) == (
        "pkg.high -> pkg.low (imported by pkg.high at line 1) -> pkg.high (imported by pkg.low at line 2)"
    )


@pytest.mark.parametrize("source", ["import pkg.a\n", "from pkg import a\n", "from . import a\n", "from .a import f\n"])
def test_every_spelling_of_an_import_is_an_edge(tmp_path, source):
    root = _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "def f(): pass\n", "pkg/b.py": source})
    assert import_graph(root)["pkg.b"] == {"pkg.a": 1}
