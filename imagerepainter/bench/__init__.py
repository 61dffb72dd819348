"""The Image Regeneration benchmark: rank text-to-image models by how closely they regenerate references.

Example:
    >>> from imagerepainter.bench import evaluate, load_dataset  # doctest: +SKIP
    >>> report = evaluate("evalref-100", mllm="openai:gpt-4o", models={"sdxl": "diffusers:stabilityai/sdxl-turbo"},
    ...                   out="eval-out")  # doctest: +SKIP

Names are imported on first use, so ``import imagerepainter.bench`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CaseResult",
    "Dataset",
    "EvaluationReport",
    "Metric",
    "ProgressEvent",
    "Reference",
    "ResultsStore",
    "evaluate",
    "load_dataset",
]

_WHERE = {
    "CaseResult": "records",
    "Metric": "records",
    "Dataset": "datasets",
    "Reference": "datasets",
    "load_dataset": "datasets",
    "EvaluationReport": "runner",
    "ProgressEvent": "runner",
    "evaluate": "runner",
    "ResultsStore": "store",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
