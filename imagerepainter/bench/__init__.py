"""The Image Regeneration benchmark: rank text-to-image models by how closely they regenerate references.

Example:
    >>> from imagerepainter.bench import evaluate, load_dataset  # doctest: +SKIP
    >>> report = evaluate("evalref-100", mllm="openai:gpt-4o", models={"sdxl": "diffusers:stabilityai/sdxl-turbo"},
    ...                   out="eval-out")  # doctest: +SKIP

Rebuild a leaderboard from your own records (any order gives the same report):

    >>> from imagerepainter.bench import CaseResult, build_leaderboard
    >>> cases = [CaseResult(case_id=f"{m}{r}", dataset="d", reference_id=str(r), reference_sha256=str(r) * 64,
    ...     model=m, model_spec="sandbox", mode="single", seed=0, status="ok", metrics={"paper": v})
    ...     for m, base in (("a", 0.8), ("b", 0.6)) for r, v in enumerate((base, base + 0.05, base - 0.02))]
    >>> build_leaderboard(cases).ranking("single")
    ['a', 'b']

Names are imported on first use, so ``import imagerepainter.bench`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CaseCost",
    "CaseResult",
    "CostSection",
    "Dataset",
    "EvaluationReport",
    "Group",
    "Leaderboard",
    "LeaderboardRow",
    "Metric",
    "Prices",
    "ProgressEvent",
    "Reference",
    "ResultsStore",
    "VerifyReport",
    "build_leaderboard",
    "evaluate",
    "load_dataset",
    "load_prices",
    "verify",
    "write_reports",
]

_WHERE = {
    "CaseResult": "records",
    "Metric": "records",
    "Group": "records",
    "Dataset": "datasets",
    "Reference": "datasets",
    "load_dataset": "datasets",
    "EvaluationReport": "runner",
    "ProgressEvent": "runner",
    "evaluate": "runner",
    "ResultsStore": "store",
    "Leaderboard": "leaderboard",
    "LeaderboardRow": "leaderboard",
    "build_leaderboard": "leaderboard",
    "write_reports": "leaderboard",
    "CaseCost": "costs",
    "CostSection": "costs",
    "Prices": "prices",
    "load_prices": "prices",
    "VerifyReport": "verification",
    "verify": "verification",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
