"""Import a script of ``benchmarks/`` or ``examples/`` (not packages) as a module, for the tests of that script."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (its sibling imports, e.g. ``perf_kit``, resolve too)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def example_module(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module, registered in ``sys.modules`` (LangGraph reads a state
    class's annotations through its module)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
