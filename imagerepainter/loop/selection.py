"""Pure selection of the best candidate of a round and over all rounds.

Blocked candidates (a safety checker blanked them) and unscored ones never win.

Example:
    >>> best_index([0.2, 0.9, 0.5], higher_is_better=True)
    1
    >>> best_index([0.2, None, 0.5], higher_is_better=False)
    0
    >>> best_index([None, None], higher_is_better=True) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["best_index", "best_overall", "better"]


def better(a: float, b: float, *, higher_is_better: bool) -> bool:
    """Tell whether score ``a`` is strictly better than ``b``."""
    return a > b if higher_is_better else a < b


def best_index(scores: Sequence[float | None], *, higher_is_better: bool) -> int | None:
    """Index of the best score (the first on ties), or ``None`` when nothing is scored."""
    best: int | None = None
    for i, score in enumerate(scores):
        if score is None:
            continue
        if best is None or better(score, scores[best], higher_is_better=higher_is_better):  # type: ignore[arg-type]
            best = i
    return best


def best_overall(
    rounds: Sequence[Mapping[str, Any]], *, higher_is_better: bool
) -> tuple[int, Mapping[str, Any]] | None:
    """The best candidate over all rounds as ``(round index, candidate)``: the first on ties.

    ``rounds`` are round records (``{"index": ..., "candidates": [{"score": ...}, ...]}``).

    Example:
        >>> rounds = [{"index": 1, "candidates": [{"score": 0.4}]},
        ...           {"index": 2, "candidates": [{"score": 0.7}, {"score": 0.7}]}]
        >>> best_overall(rounds, higher_is_better=True)
        (2, {'score': 0.7})
        >>> best_overall([{"index": 1, "candidates": [{"score": None}]}], higher_is_better=True) is None
        True
    """
    flat = [(r["index"], c) for r in rounds for c in r["candidates"]]
    best = best_index([c["score"] for _, c in flat], higher_is_better=higher_is_better)
    return None if best is None else flat[best]
