"""Dependencies point one way: each module imports only from its own layer or the layers below,
no two modules (or packages) import each other, round about or directly, and only the
orchestration layer imports Prefect. Read from the source with `ast` (lazy imports inside
functions count too), so the test needs no import of the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module belongs to the layer of the longest entry that is its dotted name or a prefix of it.
LAYERS: list[tuple[str, ...]] = [
    ("catalog_intel", "catalog_intel.errors", "catalog_intel.schemas", "catalog_intel.progress", "catalog_intel.text"),  # ground
    ("catalog_intel.io",),  # files, object stores, the stores, images; where each file lives (io/layout.py)
    ("catalog_intel.settings",),  # the run's settings
    ("catalog_intel.inference", "catalog_intel.copywriting"),  # the models
    ("catalog_intel.search", "catalog_intel.quality", "catalog_intel.training", "catalog_intel.report"),
    ("catalog_intel.exports",),  # shop files (product pages come from report)
    ("catalog_intel.pipeline",),  # the steps of a run, joined
    ("catalog_intel.orchestration", "flows"),  # Prefect: flow, tasks, runners, API
    ("catalog_intel.cli",),
]
ORCHESTRATION = {"catalog_intel.orchestration", "flows", "catalog_intel.cli"}
ORCHESTRATORS = ("prefect", "prefect_dask")


def module_imports(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """dotted module name -> the dotted names it imports (absolute and relative imports, anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            base = name.split(".") if rel.name == "__init__" else name.split(".")[:-1]
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                        if node.level else node.module
                    found.add(module)
                    found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
            graph[name] = found
    return graph


def internal_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Imports between the modules of `graph` only (`from pkg import name` counts as importing pkg,
    except from inside pkg: a module's own packages are always loaded before it)."""
    return {m: {i for i in imports if i in graph and i != m and not m.startswith(i + ".")}
            for m, imports in graph.items()}


def layer_of(module: str, layers: list[tuple[str, ...]]) -> int:
    matches = [(len(p), level) for level, prefixes in enumerate(layers) for p in prefixes
               if module == p or module.startswith(p + ".")]
    if matches:
        return max(matches)[1]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")


def upward_imports(graph: dict[str, set[str]], layers: list[tuple[str, ...]]) -> list[str]:
    return sorted(f"{m} (layer {layer_of(m, layers)}) imports {i} (layer {layer_of(i, layers)})"
                  for m, imports in internal_edges(graph).items() for i in imports
                  if layer_of(i, layers) > layer_of(m, layers))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Imports between packages (catalog_intel.quality -> catalog_intel.copywriting, ...)."""
    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "catalog_intel" and len(parts) > 2 else module

    edges: dict[str, set[str]] = {}
    for m, imports in internal_edges(graph).items():
        edges.setdefault(package(m), set()).update(package(i) for i in imports if package(i) != package(m))
    return edges


def orchestrator_imports(graph: dict[str, set[str]], allowed: set[str]) -> list[str]:
    return sorted(f"{m} imports {i}" for m, imports in graph.items() for i in imports
                  if i.split(".")[0] in ORCHESTRATORS
                  and not any(m == a or m.startswith(a + ".") for a in allowed))


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_imports(ROOT, ("catalog_intel", "flows"))


def test_every_module_is_in_a_layer(graph):
    assert len(graph) > 60
    for module in graph:
        layer_of(module, LAYERS)


def test_no_upward_import(graph):
    assert upward_imports(graph, LAYERS) == []


def test_no_import_cycle_between_modules_or_packages(graph):
    assert cycles(internal_edges(graph)) == []
    assert cycles(package_edges(graph)) == []


def test_only_orchestration_imports_prefect(graph):
    assert orchestrator_imports(graph, ORCHESTRATION) == []
    assert any(i.startswith("prefect") for i in graph["catalog_intel.orchestration.flow"])  # the check sees it


def test_the_checker_finds_upward_imports_cycles_and_prefect(tmp_path):
    """A tiny package with each fault once: the checks must name them."""
    pkg = tmp_path / "shop"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for init in (pkg, pkg / "low", pkg / "high"):
        (init / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from shop.high import b  # lazy, still upward\n")
    (pkg / "low" / "c.py").write_text("from . import d\n")
    (pkg / "low" / "d.py").write_text("from shop.low.c import x\nimport prefect\n")
    (pkg / "high" / "b.py").write_text("from shop.low import a\nfrom prefect import flow\n")
    layers = [("shop.low",), ("shop.high", "shop")]
    g = module_imports(tmp_path, ("shop",))
    assert upward_imports(g, layers) == ["shop.low.a (layer 0) imports shop.high (layer 1)",
                                         "shop.low.a (layer 0) imports shop.high.b (layer 1)"]
    assert cycles(internal_edges(g)) == [["shop.high.b", "shop.low.a"], ["shop.low.c", "shop.low.d"]]
    assert orchestrator_imports(g, {"shop.high"}) == ["shop.low.d imports prefect"]
    with pytest.raises(AssertionError, match="shop.low.a is in no layer"):
        layer_of("shop.low.a", [("shop.high",)])
