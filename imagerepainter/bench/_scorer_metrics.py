"""Scorers as benchmark metrics (a stand-in until :mod:`imagerepainter.bench.metrics` lands)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from ..backends.registry import resolve_scorer
from .records import Metric

__all__ = ["resolve_metric_list"]


class _ScorerMetric:
    def __init__(self, name: str, scorer: Any) -> None:
        self.name, self.scorer, self.higher_is_better = name, scorer, bool(scorer.higher_is_better)

    def compute(self, reference: Image.Image, images: Sequence[Image.Image]) -> list[float]:
        return [float(v) for v in self.scorer.score(self.scorer.prepare(reference), list(images))]


def resolve_metric_list(names: Sequence[str], *, mllm: Any = None) -> list[Metric]:
    """One metric per scorer spec in ``names``."""
    return [_ScorerMetric(name, resolve_scorer(name)) for name in names]
