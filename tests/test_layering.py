"""The package layering of src/surfbench, read from every module's imports with ``ast``: at the
top, inside functions and under ``if TYPE_CHECKING:`` alike (an import inside a function is a
dependency all the same, only a later one).

A package is a direct subfolder of src/surfbench (api/, cli/, models/, ...); a top-level module
(names.py, records.py, units.py, util.py) is one of its own. The root ``surfbench/__init__.py`` is the
distribution's version and a lazy facade for the API: ``import surfbench`` and
``from surfbench import __version__`` are no dependency on a layer (any other name imported from
it is, on the top one). Imports by name in strings (``importlib.import_module`` of a registry
entry) are not seen here.

Three rules, each failing with the import lines at fault (file:line):
- no cycle between packages;
- no private name (a leading underscore, not a dunder) imported from another package, nor a
  module of another package whose name is private;
- every import goes down :data:`ORDER` (a package imports only packages of lower tiers).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "surfbench"

#: the allowed order, lowest first: a package may import only packages of an earlier tier
ORDER: list[tuple[str, ...]] = [
    ("units",), ("util",), ("names",), ("records",),
    ("models",), ("data",), ("store",), ("evaluation",), ("execution",), ("analysis",),
    ("dynamics", "training"), ("report",), ("api",), ("cli",),
    (ROOT,),  # the facade (surfbench.evaluate ... -> api), imported by nothing for its code
]
TIER = {name: i for i, tier in enumerate(ORDER) for name in tier}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    """The package of a dotted module name: ``surfbench.data.geometry`` -> ``data``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


class Import:
    """One imported name: where (file:line), from which module, the name, and the package."""

    def __init__(self, where: str, source: str, target: str, name: str | None):
        self.where, self.source, self.target, self.name = where, source, target, name

    @property
    def line(self) -> str:
        what = f"from {self.target} import {self.name}" if self.name else f"import {self.target}"
        return f"{self.where}: {what}"


def _imports(path: Path) -> list[Import]:
    """Every import of a surfbench module in ``path`` (anywhere in the file), one per name."""
    module = _module_name(path)
    package_of_file = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    rel = path.relative_to(SRC.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    out.append(Import(f"{rel}:{node.lineno}", module, alias.name, None))
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # relative: from the file's own package
                base = package_of_file.rsplit(".", node.level - 1)[0] if node.level > 1 else package_of_file
                target = f"{base}.{target}" if target else base
            if not (target == ROOT or target.startswith(ROOT + ".")):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _is_module(sub):  # "from surfbench.data import geometry": the module itself
                    out.append(Import(f"{rel}:{node.lineno}", module, sub, None))
                else:
                    out.append(Import(f"{rel}:{node.lineno}", module, target, alias.name))
    return out


def _cross_package_imports() -> list[tuple[str, str, Import]]:
    """(importing package, imported package, import) for every import between two packages."""
    edges = []
    for path in sorted((SRC / ROOT).rglob("*.py")):
        for imp in sorted(_imports(path), key=lambda i: int(i.where.rpartition(":")[2])):
            src, dst = _package(imp.source), _package(imp.target)
            if dst == ROOT and imp.target == ROOT and (imp.name is None or imp.name.startswith("__")):
                continue  # the distribution's __version__ (or the package's __file__): no layer's code
            if src != dst:
                edges.append((src, dst, imp))
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_parser_sees_every_kind_of_import():
    edges = _cross_package_imports()
    assert len(edges) > 100
    seen = {(src, dst) for src, dst, _ in edges}
    assert ("execution", "models") in seen  # execution/tasks.py, at the top
    assert ("api", "store") in seen  # api/, inside functions only
    assert ("cli", "evaluation") in seen


def test_no_cycle_between_packages():
    edges = _cross_package_imports()
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, _ in edges:
        graph[src].add(dst)
    problems = []
    for component in _cycles(graph):
        problems.append(f"cycle between {', '.join(sorted(component))}:")
        problems += [f"  {src} -> {dst}  {imp.line}" for src, dst, imp in edges if src in component and dst in component]
    assert not problems, "\n".join(problems)


def test_no_private_name_imported_from_another_package():
    problems = [imp.line for _, _, imp in _cross_package_imports()
                if (imp.name is not None and _private(imp.name)) or any(_private(p) for p in imp.target.split("."))]
    assert not problems, "private names imported across packages:\n" + "\n".join(problems)


def test_packages_import_only_lower_layers():
    edges = _cross_package_imports()
    unknown = sorted({p for src, dst, _ in edges for p in (src, dst)} - set(TIER))
    assert not unknown, f"packages missing from ORDER: {unknown}"
    problems = [f"{src} -> {dst}  {imp.line}" for src, dst, imp in edges if TIER[dst] >= TIER[src]]
    order = " < ".join("/".join(tier) for tier in ORDER)
    assert not problems, f"imports against the order {order}:\n" + "\n".join(problems)
