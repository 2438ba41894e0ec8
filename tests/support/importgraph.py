"""The project's import graph, read from the source (ast): every import statement,
at module level or inside a function, under ``if TYPE_CHECKING`` or not, relative
ones resolved. An import inside a function is still a dependency; a type-only
import is still a design dependency, so both count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("academy", "scaling", "video", "devstack", "bench")

Graph = dict[str, set[str]]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    return {
        module_name(p, root): p
        for package in packages
        for p in sorted((root / package).rglob("*.py"))
        if "migrations" not in p.parts
    }


def _raw_imports(path: Path, module: str) -> set[str]:
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                # "from . import x" in a package's __init__ is the package itself.
                keep = len(base) - node.level + (1 if is_package else 0)
                prefix = ".".join(base[:keep])
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            names.add(target)
            # "from pkg import mod" imports the module pkg.mod when there is one.
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The project module an imported name lands in (the longest prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def graph_build(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    modules = project_files(root, packages)
    graph: Graph = {}
    for module, path in modules.items():
        targets = {_resolve(n, modules) for n in _raw_imports(path, module)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def external_imports(path: Path, module: str) -> set[str]:
    """Top-level names of everything a file imports (django, boto3, scaling, ...)."""
    return {n.split(".")[0] for n in _raw_imports(path, module) if n}


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def package_of(module: str, modules: Iterable[str]) -> str:
    """A sub-package (scaling.publishing) for modules inside one; the module itself for
    the app's root modules (scaling.conf), which sit either below (conf, errors) or
    above (admin, views, tasks) the sub-packages and so are nodes of their own."""
    parts = module.split(".")
    names = set(modules)
    if len(parts) >= 3 or (len(parts) == 2 and any(m.startswith(module + ".") for m in names)):
        return ".".join(parts[:2])
    return module


def package_graph(graph: Mapping[str, set[str]]) -> Graph:
    out: Graph = {}
    for module, targets in graph.items():
        source = package_of(module, graph)
        out.setdefault(source, set())
        for target in targets:
            dest = package_of(target, graph)
            if dest != source:
                out[source].add(dest)
    return out
