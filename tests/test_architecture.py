"""Imports point one way: the library below, the gateway, the UI and the shells above.

Read from the source (every import statement, lazy ones inside functions included),
so a shortcut taken under a deadline shows here before it turns into a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llmops"
# What sits above the library: the serving layer and the shells over it.
UPPER = ("gateway", "ui", "commands", "cli", "pytest_plugin")


def _unit(module: str) -> str:
    """`llmops.governance.keys` -> `governance`; `llmops.tokens` -> `tokens`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """unit -> the llmops units its modules import."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = "llmops." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        unit = _unit(module.removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.startswith("llmops.") and _unit(name) != unit:
                    graph[unit].add(_unit(name))
    return graph


def test_the_library_never_imports_the_gateway_the_ui_or_the_shells():
    wrong = {
        f"{unit} -> {target}"
        for unit, targets in _imports().items()
        if unit not in UPPER
        for target in targets
        if target in UPPER
    }
    assert not wrong, f"library modules import upper layers: {sorted(wrong)}"


def test_the_gateway_never_imports_the_ui_or_the_shells():
    graph = _imports()
    assert not graph["gateway"] & {"ui", "commands", "cli", "pytest_plugin"}


def test_no_import_cycle_between_packages():
    graph = _imports()
    # Modules at the root (errors, db, settings...) are shared ground, not layers.
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    edges = {unit: {t for t in targets if t in packages} for unit, targets in graph.items() if unit in packages}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    return path + [start]
                if nxt not in path:
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [cycle for unit in sorted(edges) if (cycle := cycle_from(unit))]
    assert not cycles, f"import cycles: {[' -> '.join(c) for c in cycles]}"
