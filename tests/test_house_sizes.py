"""Size limits that keep the package walkable: no module over 800 lines, no function over 100
(``end_lineno - lineno + 1``, docstrings included). A module past the limit is split by idea; a
function past it gives its phases names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "imagerepainter"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100


def _too_long(root: Path) -> tuple[list[str], list[str]]:
    """``(modules, functions)`` over the limits under ``root``, as ``path (lines)`` and ``path:name (lines)``."""
    modules, functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        where = path.relative_to(root.parent).as_posix()
        if lines > MAX_MODULE_LINES:
            modules.append(f"{where} ({lines})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    functions.append(f"{where}:{node.name} ({length})")
    return modules, functions


def test_no_module_over_800_lines() -> None:
    assert _too_long(PACKAGE)[0] == []


def test_no_function_over_100_lines() -> None:
    assert _too_long(PACKAGE)[1] == []


def test_the_size_scan_finds_what_is_too_long(tmp_path: Path) -> None:  # the checks above can fail
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))  # def line + 100 = 101 lines
    (pkg / "sub" / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    (pkg / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (pkg / "fits.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    assert _too_long(pkg) == (["pkg/big.py (801)"], ["pkg/sub/long.py:long (101)"])
