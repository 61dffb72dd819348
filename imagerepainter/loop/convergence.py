"""When to stop: a pure function of the scores so far, the budgets and the config.

Stopping is a result, never an error. The reason is one of :data:`StopReason`, checked in
this order after every round:

1. ``"target_reached"`` — the best score reached ``target_score``;
2. ``"judged_match"`` — the model judged the round's best a match (``stop_on_match``);
3. ``"plateau"`` — the best score improved by less than ``min_delta`` over the last
   ``patience`` rounds;
4. ``"max_rounds"`` — ``max_rounds`` rounds are done;
5. ``"budget_images"``, ``"budget_mllm_calls"``, ``"budget_seconds"`` — another round
   would exceed a budget (its images, or the model calls it needs: :func:`mllm_calls_per_round`),
   or the seconds are spent.

A person can also end a run under review (the ``review`` setting): its reason is then
``"reviewer_stopped"``.

The first round always runs: a budget it cannot fit is refused before the run starts
(:func:`check_budgets`), so budgets are caps.

Example:
    >>> from imagerepainter.config import RepainterConfig
    >>> cfg = RepainterConfig(patience=2, min_delta=0.01)
    >>> progress = Progress(best_scores=[0.50, 0.60, 0.605, 0.606])
    >>> decide_stop(progress, cfg, higher_is_better=True)
    'plateau'
    >>> decide_stop(Progress(best_scores=[0.5, 0.6]), cfg, higher_is_better=True) is None
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..config import RepainterConfig
from ..errors import ConfigurationError

__all__ = ["Progress", "StopReason", "check_budgets", "decide_stop", "improvement", "mllm_calls_per_round"]

StopReason = Literal[
    "target_reached",
    "judged_match",
    "plateau",
    "max_rounds",
    "budget_images",
    "budget_mllm_calls",
    "budget_seconds",
    "reviewer_stopped",
]


@dataclass(frozen=True)
class Progress:
    """What the policy looks at after a round."""

    best_scores: Sequence[float | None]
    """The best score over all rounds so far, after each round (``None`` while no candidate
    was scorable, e.g. every image was blocked)."""
    images_used: int = 0
    mllm_calls_used: int = 0
    seconds_used: float = 0.0
    images_per_round: int = field(default=0)
    """Images the next round would render (for the image budget)."""
    mllm_calls_per_round: int = field(default=0)
    """Model calls the next round would make (for the call budget)."""


def round_size(config: RepainterConfig, best_scores: Sequence[float | None], *, higher_is_better: bool) -> int:
    """How many candidates the next round renders, given the best score after each round so far.

    Without ``adaptive_variants``: always ``variants``. With it: one candidate (the revised
    prompt) to start and while the last round improved the best score by ``min_delta`` or
    more; ``variants`` after a round without improvement, to look wider before the plateau
    rule stops the run.

    Example:
        >>> cfg = RepainterConfig(variants=3, min_delta=0.01)
        >>> sizes = [round_size(cfg, s, higher_is_better=True) for s in ([], [0.5], [0.5, 0.6], [0.5, 0.6, 0.605])]
        >>> sizes
        [1, 1, 1, 3]
        >>> round_size(cfg.with_overrides(adaptive_variants=False), [], higher_is_better=True)
        3
    """
    if not config.adaptive_variants:
        return config.variants
    if len(best_scores) < 2:
        return 1
    new, old = best_scores[-1], best_scores[-2]
    if new is None:
        return config.variants
    if old is None or improvement(new, old, higher_is_better=higher_is_better) >= config.min_delta:
        return 1
    return config.variants


def stop_after_critique(is_match: bool, config: RepainterConfig) -> StopReason | None:
    """Stop after a critique that judged the image a match, when ``stop_on_match`` asks for it.

    Example:
        >>> stop_after_critique(True, RepainterConfig(stop_on_match=True)), stop_after_critique(True, RepainterConfig())
        ('judged_match', None)
    """
    return "judged_match" if config.stop_on_match and is_match else None


def improvement(new: float, old: float, *, higher_is_better: bool) -> float:
    """How much better ``new`` is than ``old``, positive when it is better."""
    return new - old if higher_is_better else old - new


def decide_stop(progress: Progress, config: RepainterConfig, *, higher_is_better: bool) -> StopReason | None:
    """Return why the loop should stop now, or ``None`` to run another round."""
    scores = list(progress.best_scores)
    rounds_done = len(scores)
    best = scores[-1] if scores else None

    target = config.target_score
    if best is not None and target is not None and improvement(best, target, higher_is_better=higher_is_better) >= 0:
        return "target_reached"
    if config.patience is not None and rounds_done > config.patience and best is not None:
        earlier = scores[-1 - config.patience]
        if earlier is not None and improvement(best, earlier, higher_is_better=higher_is_better) < config.min_delta:
            return "plateau"
    if rounds_done >= config.max_rounds:
        return "max_rounds"
    if config.max_images is not None and progress.images_used + progress.images_per_round > config.max_images:
        return "budget_images"
    if (
        config.max_mllm_calls is not None
        and progress.mllm_calls_used + progress.mllm_calls_per_round > config.max_mllm_calls
    ):
        return "budget_mllm_calls"
    if config.max_seconds is not None and progress.seconds_used >= config.max_seconds:
        return "budget_seconds"
    return None


def mllm_calls_per_round(config: RepainterConfig) -> int:
    """Model calls a round after the first makes: the critique, the revision and the variants
    before it (one combined call with ``combined_critique``, else three).

    Example:
        >>> mllm_calls_per_round(RepainterConfig()), mllm_calls_per_round(RepainterConfig.from_preset("paper"))
        (1, 3)
    """
    if config.combined_critique:
        return 1
    _, variants = config.candidates_in_round(2)
    return 2 + (variants > 0)


def check_budgets(config: RepainterConfig, *, describe: bool) -> None:
    """Refuse budgets that cannot fit the first round, which always runs.

    Args:
        config: The run's settings.
        describe: The run describes the reference first (no prompt was given). Describing
            takes up to ``5 + max_objects`` calls (description, features, object list, one
            detail call per object, relationships, rewrite), so that is what is reserved.

    Raises:
        ConfigurationError: ``max_images`` or ``max_mllm_calls`` is below what round 1 needs.

    Example:
        >>> check_budgets(RepainterConfig(max_mllm_calls=3), describe=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        imagerepainter.errors.ConfigurationError: max_mllm_calls=3 cannot cover ...
    """
    images = round_size(config, [], higher_is_better=True)
    _, variants = config.candidates_in_round(1, images)
    if config.max_images is not None and config.max_images < images:
        raise ConfigurationError(
            f"max_images={config.max_images} cannot cover the first round, which renders {images} images. "
            f"Raise max_images to at least {images}, or lower variants."
        )
    objects = config.max_objects
    describing = 3 + (objects > 0) + objects + (objects > 1) if describe else 0
    calls = describing + (variants > 0)
    if config.max_mllm_calls is not None and config.max_mllm_calls < calls:
        fix = f" or lower max_objects (now {objects})" if describe and objects else ""
        raise ConfigurationError(
            f"max_mllm_calls={config.max_mllm_calls} cannot cover {'describing the reference and ' * describe}"
            f"the first round, which take up to {calls} calls. Raise it to at least {calls}{fix}."
        )
