"""Pure routing decisions between the graph's nodes.

Each function reads the state and returns the name of the next node; none of them has
side effects, so the whole control flow is testable without a model.

Example:
    >>> route_start({"prompt": None})
    'describe'
    >>> route_start({"prompt": "a red cube"})
    'round'
    >>> route_after_score({"stop_reason": "plateau"})
    'finish'
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "clean_variants",
    "round_prompts",
    "route_after_critique",
    "route_after_score",
    "route_start",
    "route_to_round",
    "seed_for",
]


def route_start(state: dict[str, Any]) -> Literal["describe", "round"]:
    """Describe the reference, unless the caller already gave a starting prompt (then start a round)."""
    return "round" if state.get("prompt") else "describe"


def clean_variants(variants: list[str] | None) -> list[str]:
    """The non-empty proposed variants, stripped.

    Example:
        >>> clean_variants([" a cat ", "", "a dog"])
        ['a cat', 'a dog']
    """
    return [v.strip() for v in variants or [] if v and v.strip()]


def round_prompts(prompt: str, variants: list[str], *, include: bool, wanted: int) -> list[str]:
    """The prompts a round renders: the current prompt (when included) and ``wanted`` variants,
    rendering the current prompt again (with a new seed) for each variant a model failed to give.

    Example:
        >>> round_prompts("a cat", ["a kitten"], include=True, wanted=2)
        ['a cat', 'a kitten', 'a cat']
    """
    chosen = clean_variants(variants)[:wanted]
    return ([prompt] if include else []) + chosen + [prompt] * (wanted - len(chosen))


def route_to_round(variants: list[str] | None, wanted: int) -> Literal["propose", "generate"]:
    """Ask for variants first when the round needs more than were proposed, else render at once.

    Example:
        >>> route_to_round(["a kitten"], 1), route_to_round([], 2), route_to_round(None, 0)
        ('generate', 'propose', 'generate')
    """
    return "propose" if len(clean_variants(variants)) < wanted else "generate"


def route_after_score(state: dict[str, Any]) -> Literal["finish", "critique"]:
    """After a round closed: finish once the convergence policy gave a stop reason, else critique."""
    return "finish" if state.get("stop_reason") else "critique"


def route_after_critique(state: dict[str, Any], *, combined: bool) -> Literal["finish", "revise", "round"]:
    """After a critique: stop on a judged match, revise in a separate call, or start the next round."""
    if state.get("stop_reason"):
        return "finish"
    return "round" if combined else "revise"


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
