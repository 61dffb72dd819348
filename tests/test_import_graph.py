"""The package's import graph: no cycles, no private reach between subsystems, and no layer reaching
into the one it must not know.

Rules, checked over the whole package by reading its source (nothing is imported):

* **No import cycle** between the package's modules, counting module-level and function-level
  imports; imports under ``if TYPE_CHECKING:`` are for annotations only and do not count.
* **No private reach across subsystems.** A *subsystem* is a subpackage (``bench``, ``backends``,
  ``human``...) or a top-level module. Nothing imports an ``_underscore`` name from another
  subsystem, nor reaches one as an attribute (``self._nodes._pool``, ``nodes._config``): what two
  subsystems share has a public name.
* **Private modules** (``_files.py``, ``_loading.py``, ``_secrets.py``, ``_openai_wire/``...) are the
  package's shared foundation: any subsystem may import their *public* names
  (``from .._files import atomic_write``); their ``_underscore`` names stay theirs like anyone
  else's, and so does the module object itself (``from .. import _loading`` binds a private name
  in another subsystem: import the names it needs instead).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imagerepainter"


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` except what ``if TYPE_CHECKING:`` guards (its ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        if _type_checking(child):
            for stmt in getattr(child, "orelse", []):
                yield stmt
                yield from _runtime_nodes(stmt)
            continue
        yield child
        yield from _runtime_nodes(child)


def _module_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
        elif isinstance(stmt, (ast.If, ast.Try)):
            yield from _module_level(stmt.body + getattr(stmt, "orelse", []) + getattr(stmt, "finalbody", []))


def _imported(name: str, modules: dict[str, Path], *, lazy: bool) -> Iterator[tuple[str, str | None]]:
    """``(module, name)`` for each package module that ``name`` imports, where ``name`` is what a
    ``from`` import binds (a submodule's own name when it imports one) and ``None`` for ``import x``:
    at module level (``TYPE_CHECKING`` blocks included), and with ``lazy`` also inside functions,
    ``TYPE_CHECKING`` blocks aside."""
    path = modules[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _runtime_nodes(tree) if lazy else _module_level(tree.body):
        pairs: list[tuple[str, str | None]] = []
        if isinstance(node, ast.Import):
            pairs = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            pairs = [(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base, a.name) for a in node.names]
        for target, imported in pairs:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, imported


def _imports(name: str, *, lazy: bool) -> Iterator[str]:
    return (target for target, _ in _imported(name, MODULES, lazy=lazy))


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Who imports whom at run time, lazily or not (``TYPE_CHECKING`` aside)."""
    return {m: {t for t, _ in _imported(m, modules, lazy=True)} for m in modules}


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


def test_no_import_cycle_in_the_package() -> None:
    found = _cycle(_graph(MODULES))
    assert found is None, " -> ".join(found or [])


def _planted(root: Path, files: dict[str, str]) -> Path:
    """A package ``planted`` under ``root`` holding ``files`` (relative path -> source), with every
    folder's ``__init__.py``."""
    pkg = root / "planted"
    for name, source in {"__init__.py": "", **files}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(source)
    return pkg


def test_the_scan_finds_a_planted_cycle(tmp_path: Path) -> None:  # the check above can fail
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n"
    pkg = _planted(tmp_path, {"a.py": typing_only, "c.py": "from . import a\n"})  # a -> c for typing: no cycle
    assert _cycle(_graph(_modules(pkg))) is None
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import thing\n")
    (pkg / "a.py").write_text("from .sub.b import f\n")
    assert _cycle(_graph(_modules(pkg))) == ["planted.a", "planted.sub.b", "planted.a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("prefix", ["imagerepainter.testing", "imagerepainter._openai_wire", "imagerepainter.sandbox"])
def test_no_import_cycle_inside_even_for_typing(prefix: str) -> None:
    inside = [m for m in MODULES if m == prefix or m.startswith(prefix + ".")]
    graph = {m: {t for t in _imports(m, lazy=False) if t in inside and t != prefix} for m in inside}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


# ---------------------------------------------------------------------------- private reach


def _subsystem(module: str, modules: dict[str, Path]) -> str:
    """``pkg.bench.runner`` -> ``pkg.bench``; a top-level module is its own subsystem."""
    parts = module.split(".")
    root = modules[parts[0]].parent
    return ".".join(parts[:2]) if len(parts) > 1 and (root / parts[1]).is_dir() else module


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("_")  # dunders and _repr_html_-style hooks are protocols


def _private_names(path: Path) -> set[str]:
    """The ``_underscore`` names a module defines: functions, classes, globals and attributes it sets."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _private(n)}


def _private_reaches(modules: dict[str, Path]) -> list[str]:
    """Imports of another subsystem's ``_underscore`` names, and attribute reaches (``x._name``) to a
    private name that only another subsystem defines (third-party private names are not ours to judge)."""
    defined: dict[str, set[str]] = {}
    for m, path in modules.items():
        defined.setdefault(_subsystem(m, modules), set()).update(_private_names(path))
    offenders = []
    for m, path in modules.items():
        home = _subsystem(m, modules)
        for target, name in _imported(m, modules, lazy=True):
            if name and _private(name) and _subsystem(target, modules) != home:
                offenders.append(
                    f"{m} imports {target}" if target.endswith(f".{name}") else f"{m} imports {target}.{name}"
                )
        elsewhere = set().union(*(names for sub, names in defined.items() if sub != home)) - defined[home]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in elsewhere:
                offenders.append(f"{m}:{node.lineno} reaches .{node.attr}")
    return offenders


def test_no_private_name_crosses_a_subsystem() -> None:
    assert _private_reaches(MODULES) == []


def test_the_scan_finds_planted_private_reaches(tmp_path: Path) -> None:  # the check above can fail
    files = {
        "_base.py": "def shared(): ...\ndef _inner(): ...\n",
        "room/one.py": "class A:\n    def __init__(self):\n        self._pool = 1\n",
        "room/two.py": "from .one import A\nA()._pool\n",  # the same subsystem: fine
        "top.py": "from ._base import shared\nfrom ._base import _inner\n\n\ndef f(x):\n    return x._pool, shared\n",
        "room/three.py": "from .. import _base\nfrom . import one\n",  # a private module bound by name
    }
    pkg = _planted(tmp_path, files)
    assert _private_reaches(_modules(pkg)) == [
        "planted.room.three imports planted._base",
        "planted.top imports planted._base._inner",
        "planted.top:6 reaches ._pool",
    ]


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


# ---------------------------------------------------------------------------- the folders' layers

# The package's rooms from the ground up, as docs/concepts.md draws them: a room imports only rooms
# below it (or itself), counting imports inside functions. Top-level modules are the foundation,
# except the front door's; a module left behind at an old path (``sys.modules[__name__] = ...``)
# belongs to the room it points to.
LAYERS = [
    "foundation",
    "backends",
    "scorers",
    "loop",
    "front",
    "runs",
    "_openai_wire",
    "sandbox",
    "bench",
    "human",
    "testing",
    "cli",
]
FRONT = {"repainter", "results", "events", "threads", "progress", "report", "tool", "serve"}
ALIAS = "sys.modules[__name__] = _moved"


def _room(module: str, modules: dict[str, Path]) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "front"  # the package's face
    if (modules[parts[0]].parent / parts[1]).is_dir():
        return parts[1]
    path = modules[module]
    if ALIAS in path.read_text(encoding="utf-8"):
        (target,) = {t for t, _ in _imported(module, modules, lazy=False)}  # the one package module it aliases
        return _room(target, modules)
    return "front" if parts[1] in FRONT else "foundation"


def _upward(modules: dict[str, Path]) -> list[str]:
    offenders = []
    for m in modules:
        here = LAYERS.index(_room(m, modules))
        for target in {t for t, _ in _imported(m, modules, lazy=True)}:
            there = _room(target, modules)
            if LAYERS.index(there) > here:
                offenders.append(f"{m} ({_room(m, modules)}) imports {target} ({there})")
    return sorted(offenders)


def test_every_room_is_a_known_layer() -> None:
    rooms = {_room(m, MODULES) for m in MODULES}
    assert rooms == set(LAYERS)


def test_the_folders_stand_in_layers() -> None:
    assert _upward(MODULES) == []


def test_the_scan_finds_a_planted_upward_import(tmp_path: Path) -> None:  # the check above can fail
    upward = "def f():\n    from ..bench.runner import evaluate\n"  # inside a function: it counts
    alias = f"import sys\nfrom .loop import nodes as _moved\n{ALIAS}\n"
    modules = _modules(
        _planted(
            tmp_path, {"loop/nodes.py": upward, "bench/runner.py": "from ..loop.nodes import f\n", "graph.py": alias}
        )
    )
    assert _room("planted.graph", modules) == "loop"
    assert _upward(modules) == ["planted.loop.nodes (loop) imports planted.bench.runner (bench)"]
