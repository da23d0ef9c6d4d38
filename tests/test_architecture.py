"""The package's import graph follows the data path: no cycles, nothing points back up.

Every ``import`` counts, including those inside functions and under ``TYPE_CHECKING``:
a lazy import that points up the path is still a dependency that points up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "segmentkit"

# Lower ranks sit further down the data path; a module may import its own stage or a
# lower one. Stages of equal rank (report, exporters) do not import each other.
RANKS = {
    "errors": 0,
    "_version": 0,
    "_common": 1,
    "_frame": 2,
    "datasets": 3,
    "contracts": 3,
    "features": 4,
    "results": 5,
    "models": 6,
    "engines": 6,
    "timeline": 7,
    "report": 8,
    "exporters": 8,
    # The package root re-exports every stage; plots is the public home of report.plots.
    "__init__": 9,
    "plots": 9,
    # Consumers of the public API, as a user's script would be.
    "testing": 10,
    "cli": 10,
    "__main__": 11,
}
TOP_LEVEL = set(RANKS) | {"py.typed"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                qualified = f"{target}.{alias.name}"
                yield (qualified if qualified in MODULES else target), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(name, path):
            if target in MODULES and target != name:
                edges.setdefault(target, line)
    return graph


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_entry_has_a_rank() -> None:
    entries = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()}
    entries -= {"__pycache__"}
    assert entries <= TOP_LEVEL, f"unplaced top-level modules: {sorted(entries - TOP_LEVEL)}"


def test_no_import_points_up_the_path() -> None:
    upward = []
    for module, edges in _graph().items():
        here = _stage(module)
        for target, line in edges.items():
            there = _stage(target)
            if RANKS[there] > RANKS[here] or (RANKS[there] == RANKS[here] != 10 and there != here):
                upward.append(f"{MODULES[module].relative_to(PACKAGE)}:{line} imports {target}")
    assert not upward, "imports pointing up the data path:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in graph[node]:
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("stage", sorted(s for s, r in RANKS.items() if 0 < r < 9 or s == "cli"))
def test_stage_is_a_folder(stage: str) -> None:
    if stage == "models" and not (PACKAGE / stage).exists():
        pytest.skip("no predictive models yet")
    assert (PACKAGE / stage / "__init__.py").is_file()
