"""A metric blend fitted to people: logistic regression on metric differences, saved as a scorer.

:func:`fit_blend` models a rater's choice between images A and B of a reference as
``P(A) = sigmoid(sum_m w_m * (z_m(A) - z_m(B)))`` where ``z_m = s_m * value_m / scale_m``:
each metric's value turned so that higher is better (``s_m = -1`` for a distance) and divided
by its standard deviation over the judged images. The weights are fitted by Newton's method with
a small L2 penalty and no intercept (swapping A and B flips the sign). "Can't tell" judgments are
left out. Held-out agreement comes from cross-validation **grouped by reference**: every
judgment of a reference is predicted by weights fitted without that reference; it is
reported with the same bootstrap interval as each single metric, on the same judgments.

The fitted blend is a scorer: ``blend.json`` holds the weights, the scales and what they were
fitted on, and the spec ``blend:PATH`` (the registry's ``blend`` scorer) loads it for
``imagerepainter eval --metrics`` (name it: ``people=blend:blend.json``), ``--scorer`` and
``Repainter(scorer=...)``. Its value for an image is ``sum_m w_m * z_m`` (higher is more
similar); the metrics it needs are computed through the benchmark's metrics
(:func:`~imagerepainter.bench.metrics.resolve_metrics`).

Example:
    >>> from imagerepainter.human.judgments import Judgment
    >>> from imagerepainter.human.agreement import ScoredJudgment
    >>> rows = [ScoredJudgment(Judgment(reference_id=f"r{i}", image_a="a", image_b="b", choice="a"),
    ...     {"ssim": (0.5 + i / 100, 0.4)}, {"ssim": True}) for i in range(10)]
    >>> fit = fit_blend(rows)
    >>> fit.metrics, fit.weights[0] > 0
    (['ssim'], True)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigurationError
from .agreement import DEFAULT_RESAMPLES, Estimate, ScoredJudgment, cluster_bootstrap

__all__ = ["BLEND_KIND", "BlendFit", "BlendScorer", "blend_metrics", "fit_blend", "load_blend"]

BLEND_KIND = "imagerepainter.blend"
"""The ``kind`` field of a ``blend.json``."""
_L2 = 1e-2
_FOLDS = 5


def blend_metrics(rows: Sequence[ScoredJudgment]) -> list[str]:
    """The metrics a blend can use: in every row, not the MLLM judge (it needs an MLLM), not constant."""
    if not rows:
        return []
    common = set.intersection(*(set(r.scores) for r in rows))
    usable = []
    for metric in sorted(common):
        if metric == "judge" or metric.startswith("judge."):
            continue
        values = np.array([v for r in rows for v in r.scores[metric]], dtype=np.float64)
        if np.all(np.isfinite(values)) and float(values.std()) > 0:
            usable.append(metric)
    return usable


def _design(
    rows: Sequence[ScoredJudgment], metrics: Sequence[str], scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.array(
        [[(1.0 if r.higher_is_better[m] else -1.0) * (r.scores[m][0] - r.scores[m][1]) for m in metrics] for r in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(metrics))
    y = np.array([1.0 if r.judgment.choice == "a" else 0.0 for r in rows])
    return x / scales, y


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = _L2, iterations: int = 100) -> np.ndarray:
    """L2-penalised logistic regression without intercept, by Newton's method."""
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return w


@dataclass(frozen=True)
class BlendFit:
    """A fitted blend, its held-out agreement, and what it was fitted on."""

    metrics: list[str]
    weights: list[float]
    """Per metric, the weight of its standardised value."""
    scales: list[float]
    """Per metric, the standard deviation its value is divided by."""
    higher_is_better: list[bool]
    held_out: Estimate
    """Agreement of the cross-validated predictions with the raters (grouped by reference)."""
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def to_json(self, specs: dict[str, str] | None = None) -> dict[str, Any]:
        """The ``blend.json`` record; ``specs`` maps a metric name to the spec that computes it (default: the name)."""
        specs = specs or {}
        return {
            "kind": BLEND_KIND,
            "version": 1,
            "score": "sum over metrics of weight * (value if higher_is_better else -value) / scale",
            "metrics": [
                {"name": m, "spec": specs.get(m, m), "weight": w, "scale": s, "higher_is_better": h}
                for m, w, s, h in zip(self.metrics, self.weights, self.scales, self.higher_is_better, strict=True)
            ],
            "held_out_agreement": self.held_out.as_dict(),
            "fitted_on": self.fitted_on,
        }

    def save(self, path: str | os.PathLike[str], specs: dict[str, str] | None = None) -> Path:
        """Write ``blend.json`` to ``path``; returns it."""
        path = Path(path)
        path.write_text(json.dumps(self.to_json(specs), indent=2) + "\n", encoding="utf-8")
        return path


def fit_blend(
    rows: Sequence[ScoredJudgment],
    metrics: Sequence[str] | None = None,
    *,
    folds: int = _FOLDS,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> BlendFit:
    """Fit a blend of ``metrics`` (default: :func:`blend_metrics`) to the raters' choices in ``rows``.

    Raises:
        ConfigurationError: no usable metric, or fewer than two references with a clear choice.
    """
    chosen = list(metrics) if metrics is not None else blend_metrics(rows)
    if not chosen:
        raise ConfigurationError("No metric to blend: the judgments need metrics that vary (the judge is left out).")
    usable = [r for r in rows if r.judgment.choice != "tie" and all(m in r.scores for m in chosen)]
    references = sorted({r.judgment.reference_id for r in usable})
    if len(references) < 2:
        raise ConfigurationError("Fitting a blend needs clear choices on at least two references.")
    hib = [usable[0].higher_is_better[m] for m in chosen]
    values = np.array([[v for r in usable for v in r.scores[m]] for m in chosen], dtype=np.float64)
    scales = np.where(values.std(axis=1) > 0, values.std(axis=1), 1.0)
    x, y = _design(usable, chosen, scales)
    order = np.random.default_rng(seed).permutation(len(references))
    fold_of = {references[k]: i % min(folds, len(references)) for i, k in enumerate(order)}
    fold = np.array([fold_of[r.judgment.reference_id] for r in usable])
    predictions = np.zeros(len(usable))
    for f in sorted(set(fold_of.values())):
        train = fold != f
        predictions[~train] = x[~train] @ _logistic(x[train], y[train])
    units = [
        (r.judgment.reference_id, 0.5 if abs(p) < 1e-12 else float((p > 0) == (t == 1.0)), 1.0)
        for r, p, t in zip(usable, predictions, y, strict=True)
    ]
    held_out = cluster_bootstrap(units, resamples=resamples, seed=seed, excluded=len(rows) - len(usable))
    weights = _logistic(x, y)
    digest = hashlib.sha256("\n".join(sorted(r.judgment.model_dump_json() for r in usable)).encode()).hexdigest()
    fitted_on = {
        "judgments": len(usable),
        "references": len(references),
        "raters": sorted({r.judgment.rater for r in usable}),
        "folds": len(set(fold_of.values())),
        "l2": _L2,
        "seed": seed,
        "judgments_sha256": digest,
    }
    return BlendFit(chosen, [float(w) for w in weights], [float(s) for s in scales], hib, held_out, fitted_on)


class BlendScorer:
    """A fitted blend as a :class:`~imagerepainter.backends.base.Scorer` (higher is more similar).

    Build it with :func:`load_blend` (the spec ``blend:PATH``). ``prepare`` keeps the reference;
    ``score`` computes every metric of the blend for the candidates in one pass each.
    """

    higher_is_better = True
    bounds = (-math.inf, math.inf)

    def __init__(self, record: dict[str, Any], *, path: str | None = None) -> None:
        from ..bench.metrics import resolve_metrics

        items = record.get("metrics")
        if record.get("kind") != BLEND_KIND or not isinstance(items, list) or not items:
            raise ConfigurationError(f"{path or 'The record'} is not a blend.json (fit one with 'agreement --fit').")
        try:
            self.terms = [
                (str(i["name"]), str(i["spec"]), float(i["weight"]), float(i["scale"]), bool(i["higher_is_better"]))
                for i in items
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{path or 'The blend'}: a metric entry lacks {exc}.") from None
        if any(scale <= 0 or not math.isfinite(w) for _, _, w, scale, _ in self.terms):
            raise ConfigurationError(f"{path or 'The blend'}: weights must be finite and scales positive.")
        self.record, self.path = record, path
        self.metrics = resolve_metrics([spec if name == spec else f"{name}={spec}" for name, spec, *_ in self.terms])
        self.name = "blend"

    @property
    def spec(self) -> str:
        """``blend:PATH``."""
        return f"blend:{self.path}"

    def describe(self) -> dict[str, Any]:
        """The weights and what they were fitted on."""
        return {"name": self.name, "spec": self.spec, "blend": self.record}

    def prepare(self, reference: Image.Image) -> Image.Image:
        """The reference itself (each metric keeps its own prepared reference)."""
        return reference

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """``sum_m w_m * z_m`` for each candidate."""
        from ..bench.metrics import compute_metrics

        values = compute_metrics(self.metrics, prepared, list(candidates))
        return [
            math.fsum(
                w * (v if hib else -v) / scale
                for (name, _, w, scale, hib), v in zip(self.terms, [values[t[0]][i] for t in self.terms], strict=True)
            )
            for i in range(len(candidates))
        ]


def load_blend(path: str) -> BlendScorer:
    """The scorer of a ``blend.json`` (the registry's ``blend:PATH``)."""
    file = Path(path)
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"No blend file {path!r}: fit one with 'imagerepainter agreement ... --fit'."
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path!r} is not JSON ({exc.msg}).") from None
    return BlendScorer(record if isinstance(record, dict) else {}, path=path)
