"""Weighted sums of scorers, and the paper's 0.5 CLIP + 0.5 DINOv2 selection score.

Example:
    >>> from PIL import Image
    >>> from imagerepainter.scorers import PSNRScorer, SSIMScorer
    >>> combo = WeightedScorer([(SSIMScorer(), 0.75), (PSNRScorer(max_db=40.0), 0.25)])
    >>> combo.name, combo.bounds
    ('0.75*ssim+0.25*psnr', (-0.75, 10.75))
    >>> ref = combo.prepare(Image.new("RGB", (16, 16), "gray"))
    >>> combo.score(ref, [Image.new("RGB", (16, 16), "gray")])
    [10.75]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from ..backends.base import ScoreGroup, Scorer, describe_scorer, score_groups
from ..errors import ConfigurationError
from .embedding import CLIPScorer, DINOv2Scorer

__all__ = ["WeightedScorer", "paper_scorer"]


class WeightedScorer:
    """A scorer whose value is ``sum(weight_i * score_i)`` over its children.

    Args:
        scorers: ``{scorer: weight}`` or a sequence of ``(scorer, weight)`` pairs. Weights
            must be positive and finite; they are used as given (not normalised).

    Raises:
        ConfigurationError: No children, a bad weight, or children that disagree on
            ``higher_is_better`` (a sum of a similarity and a distance means nothing).

    :meth:`prepare` returns the tuple of the children's prepared values, so each child's
    once-per-reference work (e.g. a reference embedding) is still done once.
    :meth:`score_components` gives each child's scores too, for recording.
    """

    def __init__(self, scorers: Mapping[Scorer, float] | Sequence[tuple[Scorer, float]]) -> None:
        pairs = list(scorers.items()) if isinstance(scorers, Mapping) else list(scorers)
        if not pairs:
            raise ConfigurationError("WeightedScorer needs at least one (scorer, weight) pair.")
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ConfigurationError(f"WeightedScorer takes (scorer, weight) pairs, got {pair!r}.")
            scorer, weight = pair
            if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
                raise ConfigurationError(
                    f"The weight of scorer {getattr(scorer, 'name', scorer)!r} must be a positive finite number, "
                    f"got {weight!r}."
                )
        directions = {bool(s.higher_is_better) for s, _ in pairs}
        if len(directions) > 1:
            listing = ", ".join(f"{s.name} (higher_is_better={s.higher_is_better})" for s, _ in pairs)
            raise ConfigurationError(
                f"Cannot add scores that point in different directions: {listing}. Combine only "
                "similarities (higher is better) or only distances (lower is better)."
            )
        self.scorers: tuple[Scorer, ...] = tuple(s for s, _ in pairs)
        """The children, in order."""
        self.weights: tuple[float, ...] = tuple(float(w) for _, w in pairs)
        """Their weights, in the same order."""
        self.higher_is_better: bool = directions.pop()
        self.name: str = "+".join(f"{w:g}*{s.name}" for s, w in zip(self.scorers, self.weights, strict=True))
        self.bounds: tuple[float, float] = (
            math.fsum(w * s.bounds[0] for s, w in zip(self.scorers, self.weights, strict=True)),
            math.fsum(w * s.bounds[1] for s, w in zip(self.scorers, self.weights, strict=True)),
        )
        self.component_names: tuple[str, ...] = _unique_names([s.name for s in self.scorers])
        """Keys of :meth:`score_components`: the children's names, made unique with ``#2``, ``#3``..."""

    @property
    def spec(self) -> str:
        """Like :attr:`name`, with each child's full spec (e.g. its model id)."""
        return "+".join(f"{w:g}*{getattr(s, 'spec', s.name)}" for s, w in zip(self.scorers, self.weights, strict=True))

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the weights and of every child (their own ``describe()`` when they have one)."""
        return {
            **describe_scorer(self),
            "components": [
                {
                    "key": key,
                    "weight": weight,
                    **(s.describe() if callable(getattr(s, "describe", None)) else {"name": s.name}),  # type: ignore[attr-defined]
                }
                for key, s, weight in zip(self.component_names, self.scorers, self.weights, strict=True)
            ],
        }

    def load(self) -> WeightedScorer:
        """Load every child that has a ``load()`` method; return ``self``."""
        for scorer in self.scorers:
            load = getattr(scorer, "load", None)
            if callable(load):
                load()
        return self

    def prepare(self, reference: Image.Image) -> tuple[Any, ...]:
        """Prepare ``reference`` for every child; returns their prepared values, in order."""
        return tuple(scorer.prepare(reference) for scorer in self.scorers)

    def score_components(self, prepared: Any, candidates: Sequence[Image.Image]) -> dict[str, list[float]]:
        """Each child's scores (unweighted), keyed by :attr:`component_names`."""
        return self.score_components_groups([(prepared, candidates)])[0]

    def score_components_groups(self, groups: Sequence[ScoreGroup]) -> list[dict[str, list[float]]]:
        """:meth:`score_components` for several prepared references: each child scores all groups in
        one :func:`~imagerepainter.backends.base.score_groups` call (one embedding pass for CLIP/DINOv2)."""
        for prepared, _ in groups:
            self._check_prepared(prepared)
        result: list[dict[str, list[float]]] = [{} for _ in groups]
        for index, (key, scorer) in enumerate(zip(self.component_names, self.scorers, strict=True)):
            child_groups = [(prepared[index], candidates) for prepared, candidates in groups]
            for row, values, (_, candidates) in zip(result, score_groups(scorer, child_groups), groups, strict=True):
                if len(values) != len(candidates):
                    raise ConfigurationError(
                        f"Scorer {scorer.name!r} returned {len(values)} scores for {len(candidates)} candidates."
                    )
                row[key] = values
        return result

    def score_groups(self, groups: Sequence[ScoreGroup]) -> list[list[float]]:
        """:meth:`score` for several prepared references at once (children batched as in
        :meth:`score_components_groups`)."""
        return [self.combine(components) for components in self.score_components_groups(groups)]

    def _check_prepared(self, prepared: Any) -> None:
        if not isinstance(prepared, tuple) or len(prepared) != len(self.scorers):
            raise ConfigurationError(
                f"WeightedScorer.score expects the tuple returned by its prepare() ({len(self.scorers)} values), "
                f"got {type(prepared).__name__}."
            )

    def combine(self, components: Mapping[str, Sequence[float]]) -> list[float]:
        """The weighted sums of per-child scores as returned by :meth:`score_components`."""
        columns = [components[key] for key in self.component_names]
        return [math.fsum(w * v for w, v in zip(self.weights, row, strict=True)) for row in zip(*columns, strict=True)]

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """Weighted sum of the children's scores for each candidate, in order."""
        return self.combine(self.score_components(prepared, candidates))

    def __repr__(self) -> str:
        inner = ", ".join(f"({s!r}, {w:g})" for s, w in zip(self.scorers, self.weights, strict=True))
        return f"WeightedScorer([{inner}])"


def paper_scorer(
    clip_model: str = CLIPScorer.default_model,
    dinov2_model: str = DINOv2Scorer.default_model,
    *,
    device: str = "cpu",
    torch_dtype: Any = None,
    batch_size: int = 16,
    local_files_only: bool | None = None,
) -> WeightedScorer:
    """The ImageRepainter paper's selection score: ``0.5 * CLIP + 0.5 * DINOv2``.

    CLIP ViT-B/32 image-embedding cosine plus DINOv2-base mean-pooled cosine, as in the
    authors' code. Pass local folders for offline use.

    Example:
        >>> paper_scorer().spec
        '0.5*clip:openai/clip-vit-base-patch32+0.5*dinov2:facebook/dinov2-base'
    """
    options: dict[str, Any] = {
        "device": device,
        "torch_dtype": torch_dtype,
        "batch_size": batch_size,
        "local_files_only": local_files_only,
    }
    return WeightedScorer([(CLIPScorer(clip_model, **options), 0.5), (DINOv2Scorer(dinov2_model, **options), 0.5)])


def _unique_names(names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return tuple(unique)
