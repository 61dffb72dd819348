"""Collection rules for the doctests of ``imagerepainter/`` (``testpaths`` includes the package).

A module that moved leaves its old path behind as an alias (``sys.modules[__name__] = moved``);
collecting the alias as a doctest module would import the same module under two file names, so
aliases are skipped: their module is collected where it lives now.
"""

from __future__ import annotations

from pathlib import Path

ALIAS = "sys.modules[__name__] = _moved"


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if collection_path.suffix == ".py" and collection_path.parent.name == "imagerepainter":
        return ALIAS in collection_path.read_text(encoding="utf-8") or None
    return None
