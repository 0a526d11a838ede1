"""The code's shape, as DESIGN.md and issue 11 fix it: no import circles between the
suite's modules (imports inside functions included), short modules, the worker side free
of the harness side's libraries, and each shared name of the run directory defined once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("suite", "backends")
# a module the others count on to stay short (backends/standalone/ repeat each other on
# purpose: each is one framework's loop by hand)
MAX_LINES = 420
HARNESS_ONLY = ("pandas", "matplotlib", "jinja2", "rich", "typer", "pytest", "sklearn")
WORKERS = ("suite.compare.worker", "suite.kit.worker", "suite.bench.worker")


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the suite and its backends."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "standalone" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: dict[str, Path], top_level_only: bool = False) -> set[str]:
    """The modules of ``known`` (and third-party top-level names) that ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found


def internal_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports(path, known) if m in known and m != name}
            for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(internal_graph()) == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_short(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


@pytest.mark.parametrize("worker", WORKERS)
def test_the_worker_side_imports_no_harness_library(worker):
    """What a worker process imports at module level (transitively) runs in environments
    with NumPy alone."""
    known = modules()
    seen, todo = set(), [worker]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in imports(known[name], known, top_level_only=True):
            if imported in known:
                todo.append(imported)
            # a package's __init__ runs first
            todo += [p for p in _parents(imported) if p in known]
            assert imported.split(".")[0] not in HARNESS_ONLY, f"{name} imports {imported}"
    assert "suite.compare.results" not in seen and "suite.rundir" in seen


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@pytest.mark.parametrize("shared", ["REFERENCE", "CHECKS", "VERDICTS", "SEVERITY",
                                    "ProgressFn", "THREAD_VARIABLES", "FIXED_TOLERANCES",
                                    "NOISE_FACTOR", "FLOORS"])
def test_shared_names_are_defined_once(shared):
    homes = []
    for name, path in modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == shared for t in targets):
                homes.append(name)
    assert len(homes) == 1, f"{shared} is defined in {homes}"


def test_variant_names_are_made_and_read_by_the_contract_alone():
    """``numpy~keras`` is suite.rundir.variant_name's; no other module spells the '~'."""
    spelled = []
    for name, path in modules().items():
        if name in ("suite.rundir", "suite.envs"):  # envs: '~=' in a pip requirement
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and "~" in node.value and id(node) not in docstrings:
                spelled.append(f"{name}:{node.lineno}")
    assert spelled == []
