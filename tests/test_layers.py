"""The package's layers, read from its imports: no upward import and no import circle.

Every ``import`` and ``from ... import`` of ``tahoe_governor`` counts, at module
level, under ``if TYPE_CHECKING:`` and inside functions alike: a lazy import
is still a dependency. The floors are docs/architecture.md's; a package may
import its own modules and the packages on lower floors, never a package on
its own floor or above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "tahoe_governor"

FLOORS = {
    "throttle": 0,
    "policy": 1,
    "status": 2,
    "backup": 3,
    "maintenance": 3,
    "node": 4,
    "web": 4,
    "app": 5,
    "demo": 6,
    "cli": 7,
}
"""Each top-level part of the package and its floor (0 is the bottom)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import in ``importer`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    is_package = path.name == "__init__.py"
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path | None = None) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import of the package's own modules in
    module ``name`` (read from ``path``, by default its file in the package)."""
    path = path or MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tahoe_governor"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, path, node)
            if not target.startswith("tahoe_governor"):
                continue
            for alias in node.names:  # ``from pkg import submodule`` names the submodule
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


GRAPH = {name: sorted({target for target, _ in imports_of(name)}) for name in MODULES}


def part(name: str) -> str:
    """The top-level part a module belongs to (``tahoe_governor.backup.walker`` -> backup)."""
    pieces = name.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def test_every_part_has_a_floor() -> None:
    """A new top-level module or package must be placed on a floor here and in the docs."""
    parts = {part(name) for name in MODULES} - {""}
    assert parts == set(FLOORS), f"place {sorted(parts - set(FLOORS))} on a floor"


def test_no_import_goes_up_or_sideways() -> None:
    """A module imports its own part or parts on lower floors only."""
    wrong = []
    for name in sorted(MODULES):
        if part(name) == "":
            continue
        for target, line in imports_of(name):
            there = part(target)
            if there == part(name):
                continue
            if there == "" or FLOORS[there] >= FLOORS[part(name)]:
                wrong.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports "
                             f"{target} ({part(name)} is on floor {FLOORS[part(name)]}, "
                             f"{there or 'the package root'} on {FLOORS.get(there, '-')})")
    assert wrong == []


def circles() -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in MODULES:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    return found


def test_no_import_circle() -> None:
    """No set of modules imports itself round, however lazily."""
    assert circles() == []


@pytest.mark.parametrize("source, expected", [
    ("from tahoe_governor.throttle import shaper\n", ["tahoe_governor.throttle.shaper"]),
    ("from tahoe_governor.throttle import Shaper\n", ["tahoe_governor.throttle"]),
    ("def f():\n    import tahoe_governor.web.metrics\n", ["tahoe_governor.web.metrics"]),
])
def test_the_reader_sees_every_kind_of_import(source: str, expected: list[str],
                                              tmp_path: Path) -> None:
    """Submodules named in a from-import, names from a package and lazy imports all count."""
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert [target for target, _ in imports_of("tahoe_governor.probe", probe)] == expected
