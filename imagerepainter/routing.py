"""Pure routing decisions between the graph's nodes.

Each function reads the state and returns the name of the next node; none of them has
side effects, so the whole control flow is testable without a model.

Example:
    >>> route_start({"prompt": None})
    'describe'
    >>> route_start({"prompt": "a red cube"})
    'propose'
    >>> route_after_score({"stop_reason": "plateau"})
    'finish'
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["route_after_critique", "route_after_score", "route_start", "seed_for"]


def route_start(state: dict[str, Any]) -> Literal["describe", "propose"]:
    """Describe the reference, unless the caller already gave a starting prompt."""
    return "propose" if state.get("prompt") else "describe"


def route_after_score(state: dict[str, Any]) -> Literal["finish", "critique"]:
    """After a round closed: finish once the convergence policy gave a stop reason, else critique."""
    return "finish" if state.get("stop_reason") else "critique"


def route_after_critique(state: dict[str, Any], *, combined: bool) -> Literal["finish", "revise", "propose"]:
    """After a critique: stop on a judged match, revise in a separate call, or go straight on."""
    if state.get("stop_reason"):
        return "finish"
    return "propose" if combined else "revise"


def seed_for(base: int, round_index: int, candidate: int, *, vary: bool = True) -> int:
    """The seed of candidate ``candidate`` (0-based) in round ``round_index`` (1-based).

    Seeds are a pure function of the config, so a run is reproducible from what it records.

    Example:
        >>> seed_for(0, 1, 0), seed_for(0, 1, 1), seed_for(0, 2, 0), seed_for(7, 2, 0, vary=False)
        (0, 1, 1000, 7)
    """
    if not vary:
        return base
    return (base + (round_index - 1) * 1000 + candidate) % 2**32
