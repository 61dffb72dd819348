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

The review nodes (the ``review`` setting) are entered only when a run asks for review, so a run
without review takes the same steps as before they existed.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "clean_variants",
    "round_prompts",
    "route_after_critique",
    "route_after_critique_review",
    "route_after_prompt_review",
    "route_after_propose",
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


def route_to_round(
    variants: list[str] | None, wanted: int, *, review: bool = False
) -> Literal["propose", "generate", "review_prompts"]:
    """Ask for variants first when the round needs more than were proposed, else render at once
    (after a person reviewed the round's prompts, with ``review``).

    Example:
        >>> route_to_round(["a kitten"], 1), route_to_round([], 2), route_to_round(None, 0)
        ('generate', 'propose', 'generate')
        >>> route_to_round(["a kitten"], 1, review=True)
        'review_prompts'
    """
    if len(clean_variants(variants)) < wanted:
        return "propose"
    return route_after_propose(review=review)


def route_after_propose(*, review: bool) -> Literal["generate", "review_prompts"]:
    """Render the round, or first show its prompts to a person (``review`` includes ``"prompt"``)."""
    return "review_prompts" if review else "generate"


def route_after_prompt_review(state: dict[str, Any]) -> Literal["finish", "generate"]:
    """After a person reviewed a round's prompts: render them, or finish when they stopped the run.

    Example:
        >>> route_after_prompt_review({}), route_after_prompt_review({"stop_reason": "reviewer_stopped"})
        ('generate', 'finish')
    """
    return "finish" if state.get("stop_reason") else "generate"


def route_after_score(state: dict[str, Any]) -> Literal["finish", "critique"]:
    """After a round closed: finish once the convergence policy gave a stop reason, else critique."""
    return "finish" if state.get("stop_reason") else "critique"


def route_after_critique(
    state: dict[str, Any], *, combined: bool, review: bool = False
) -> Literal["finish", "review_critique", "revise", "round"]:
    """After a critique: stop on a judged match, show the critique to a person (``review``), revise in a
    separate call, or start the next round.

    Example:
        >>> route_after_critique({}, combined=True), route_after_critique({}, combined=False)
        ('round', 'revise')
        >>> route_after_critique({}, combined=True, review=True)
        'review_critique'
    """
    if state.get("stop_reason"):
        return "finish"
    if review:
        return "review_critique"
    return "round" if combined else "revise"


def route_after_critique_review(state: dict[str, Any]) -> Literal["finish", "revise", "round"]:
    """After a person reviewed a critique: finish when they stopped the run, revise the prompt when it
    still needs revising (separate calls, or edits they wrote), else start the next round.

    Example:
        >>> route_after_critique_review({"needs_revision": True}), route_after_critique_review({})
        ('revise', 'round')
    """
    if state.get("stop_reason"):
        return "finish"
    return "revise" if state.get("needs_revision") else "round"


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
