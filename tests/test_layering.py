"""The package's structure, drawn from its imports: every module imports only modules on lower floors (or its own
floor's neighbours below it), and no chain of imports comes back to where it started.

The floors are FLOORS below, top to bottom. Imports under ``if TYPE_CHECKING:`` count too: a
type that needs a module above is a sign that something sits on the wrong floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# Top to bottom. A module may import its own floor's later entries and any lower floor, never upward.
FLOORS: list[tuple[str, ...]] = [
    ("__main__", "cli"),
    ("analysis",),
    ("replay",),
    ("sweeps",),
    ("runner",),
    ("trainer",),
    ("diagnostics",),
    ("tracking",),
    ("tasks",),
    ("rollout",),
    ("models",),
    ("topk", "ranks", "staging", "batches", "trl_private"),
    ("config",),
    ("verdicts",),
    ("objectives",),
    ("__init__",),
]


def room(module: str) -> str:
    """The top-level room of a dotted module name inside the package: 'sweeps.spec' → 'sweeps'."""
    return module.split(".")[0]


def floor_of(module: str) -> int:
    name = room(module)
    for i, rooms in enumerate(FLOORS):
        if name in rooms:
            return i
    raise AssertionError(f"workbench.{module} sits on no floor: add its room to FLOORS in {__file__}")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path) -> set[str]:
    """Dotted names (relative to the package) that ``module`` imports from inside the package."""
    package_parts = module.split(".")[:-1]  # 'sweeps.spec' and 'sweeps.__init__' → package 'sweeps'
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import a, b: modules, or names of the package's __init__
                    for alias in node.names:
                        name = ".".join(base + [alias.name])
                        is_module = name in KNOWN or f"{name}.__init__" in KNOWN
                        found.add(name if is_module else ".".join(base) or "__init__")
                    continue
            elif node.module and node.module.split(".")[0] == "workbench":
                target = node.module.removeprefix("workbench").lstrip(".")
            else:
                continue
            found.add(target or "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("workbench").lstrip(".") or "__init__"
                      for a in node.names if a.name.split(".")[0] == "workbench"}
    return {f for f in found if f}


KNOWN = set(modules())
GRAPH = {m: imports(m, p) for m, p in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_one_above_it(module):
    if room(module) == "__init__":
        return
    upward = [t for t in GRAPH[module] if room(t) != room(module) and floor_of(t) < floor_of(module)]
    assert not upward, f"workbench.{module} imports {upward}, which sit above it"


def _file_graph() -> dict[str, set[str]]:
    """Module → the modules it imports, resolved to files (a package import means its __init__)."""
    names = set(GRAPH)
    resolved = {}
    for module, targets in GRAPH.items():
        edges = set()
        for target in targets:
            if target in names:
                edges.add(target)
            elif f"{target}.__init__" in names:
                edges.add(f"{target}.__init__")
            elif target.rsplit(".", 1)[0] in names:  # from .module import name
                edges.add(target.rsplit(".", 1)[0])
        resolved[module] = edges - {module}
    return resolved


def test_no_circle_of_files():
    graph = _file_graph()
    # A package's __init__ re-exporting its own modules is not a circle: drop the edges __init__ → own modules.
    for module in graph:
        if module.endswith("__init__"):
            package = module.removesuffix("__init__")
            graph[module] = {t for t in graph[module] if not (package and t.startswith(package))}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: a lower module importing a higher one is found."""
    path = tmp_path / "config.py"
    path.write_text("from .runner import train\nfrom .objectives import get_objective\n")
    found = imports("config", path)
    assert found == {"runner", "objectives"}
    assert [t for t in found if floor_of(t) < floor_of("config")] == ["runner"]
