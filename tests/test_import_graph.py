"""The package's import graph: no cycles, and no layer reaching into the one it must not know."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imagerepainter"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, *, lazy: bool) -> Iterator[str]:
    """Modules of the package that ``name`` imports: at module level (``TYPE_CHECKING`` blocks
    included), and with ``lazy`` also inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if lazy else _module_level(tree.body)
    for node in nodes:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _module_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
        elif isinstance(stmt, (ast.If, ast.Try)):
            yield from _module_level(stmt.body + getattr(stmt, "orelse", []) + getattr(stmt, "finalbody", []))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("prefix", ["imagerepainter.testing", "imagerepainter._openai_wire", "imagerepainter.sandbox"])
def test_no_import_cycle_inside(prefix: str) -> None:
    inside = [m for m in MODULES if m == prefix or m.startswith(prefix + ".")]
    graph = {m: {t for t in _imports(m, lazy=False) if t in inside and t != prefix} for m in inside}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_graph_finds_cycles() -> None:  # the check above can fail
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("imagerepainter.sandbox", "imagerepainter.testing"),  # serve-sandbox is a product command
        ("imagerepainter._openai_wire", "imagerepainter.testing"),
        ("imagerepainter.backends", "imagerepainter.sandbox"),  # the registry names it by import path
    ],
)
def test_a_layer_never_imports_what_it_must_not_know(layer: str, forbidden: str) -> None:
    offenders = sorted(
        f"{m} imports {t}"
        for m in MODULES
        if m == layer or m.startswith(layer + ".")
        for t in _imports(m, lazy=True)
        if t == forbidden or t.startswith(forbidden + ".")
    )
    assert not offenders
    assert any(m.startswith(layer) for m in MODULES)
