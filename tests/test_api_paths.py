"""Every import path that ``docs/api.md`` documents keeps working: the ``:::`` reference lines,
the names its examples import (``from imagerepainter.x import a, b``) and the dotted paths it
names in backticks. A module that moves leaves a re-export behind, or this test names the path."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented_paths(text: str) -> list[str]:
    """The dotted ``imagerepainter`` paths that ``text`` (Markdown) documents, in order, once each."""
    paths = re.findall(r"^:::\s*(imagerepainter[\w.]*)", text, flags=re.M)
    for module, names in re.findall(r"^from (imagerepainter[\w.]*) import ([\w, ]+)$", text, flags=re.M):
        paths += [f"{module}.{name.strip()}" for name in names.split(",") if name.strip()]
    paths += re.findall(r"`(imagerepainter(?:\.\w+)+)`", text)
    return list(dict.fromkeys(paths))


def resolve(path: str) -> Any:
    """The object at ``path``: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is None or not ".".join(parts[:cut]).startswith(exc.name):
                raise  # a dependency of the module is missing: that is a real failure
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(path)


PATHS = documented_paths(API.read_text(encoding="utf-8"))


def test_the_guide_documents_paths() -> None:
    assert "imagerepainter.repainter.Repainter" in PATHS and "imagerepainter.bench.evaluate" in PATHS
    assert len(PATHS) > 30


@pytest.mark.parametrize("path", PATHS)
def test_a_documented_path_imports(path: str) -> None:
    assert resolve(path) is not None


def test_a_missing_path_is_reported() -> None:  # the check above can fail
    text = "::: imagerepainter.results.NoSuchThing\nfrom imagerepainter.nowhere import thing\n"
    assert documented_paths(text) == ["imagerepainter.results.NoSuchThing", "imagerepainter.nowhere.thing"]
    with pytest.raises(AttributeError):
        resolve("imagerepainter.results.NoSuchThing")
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        resolve("imagerepainter.nowhere.thing")


# Modules that moved into a folder keep their old import path: it is the same module object, so
# code that imports or patches the old path sees exactly what the new one holds.
MOVED = {
    "imagerepainter.graph": "imagerepainter.loop.graph",
    "imagerepainter.state": "imagerepainter.loop.state",
    "imagerepainter.review": "imagerepainter.loop.review",
    "imagerepainter.history": "imagerepainter.loop.history",
    "imagerepainter.convergence": "imagerepainter.loop.convergence",
    "imagerepainter.run_folder": "imagerepainter.runs.folder",
    "imagerepainter.run_record": "imagerepainter.runs.record",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_a_moved_module_keeps_its_old_path_as_the_same_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_patching_the_old_path_patches_the_module_the_loop_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagerepainter.loop import convergence

    monkeypatch.setattr("imagerepainter.convergence.decide_stop", "patched")
    assert convergence.decide_stop == "patched"
