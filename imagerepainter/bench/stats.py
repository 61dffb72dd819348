"""The benchmark's statistics: summaries with bootstrap intervals, and paired comparisons (SciPy).

Pure functions of plain numbers; SciPy is imported when they are first called
(``pip install "imagerepainter[bench]"``).

* :func:`summarize` — n, mean, sample standard deviation and a bootstrap confidence interval
  of the mean (:func:`bootstrap_interval`: ``scipy.stats.bootstrap``, BCa, 9,999 resamples,
  a fixed seed so the same numbers give the same interval every time).
* :func:`paired_comparison` — two models (or two modes) on the same cases: the mean
  difference with its bootstrap interval, wins / losses / ties and a win rate, the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``, two-sided) and the matched-pairs rank-biserial
  correlation as the effect size.
* :func:`adjust_p_values` — Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)
  for a family of comparisons.

Edge cases, by design: no values give no mean (``None``); one value has a mean but no standard
deviation or interval (``None``); identical values have a zero-width interval. In a paired
comparison, differences are rounded to 12 decimals and those within ``1e-12`` (relative) of
zero are ties: float noise is neither a win nor a different rank. Ties count half a win in the
win rate and are dropped by the Wilcoxon test (its ``zero_method="wilcox"``); with no non-zero
difference the test is not run and ``p_value`` is 1.0 (nothing suggests a difference). With
fewer than about six non-tied pairs no two-sided p-value can fall below 0.05.

Example:
    >>> s = summarize([0.61, 0.64, 0.58, 0.70, 0.66])
    >>> s.n, round(s.mean, 3), round(s.std, 4), s.ci_low < s.mean < s.ci_high
    (5, 0.638, 0.046, True)
    >>> c = paired_comparison([0.7, 0.8, 0.6, 0.9, 0.75, 0.85], [0.5, 0.6, 0.65, 0.7, 0.55, 0.6])
    >>> c.wins, c.losses, c.ties, round(c.win_rate, 3), round(c.effect_size, 3), round(c.p_value, 4)
    (5, 1, 0, 0.833, 0.905, 0.0625)
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._imports import require
from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "PairedComparison",
    "Summary",
    "adjust_p_values",
    "bootstrap_interval",
    "paired_comparison",
    "summarize",
]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 9999
DEFAULT_SEED = 0
_TIE = 1e-12


@dataclass(frozen=True)
class Summary:
    """n, mean, sample standard deviation and a bootstrap interval of the mean."""

    n: int
    mean: float | None
    """None when there are no values."""
    std: float | None
    """Sample standard deviation (``ddof=1``); None with fewer than two values."""
    ci_low: float | None
    """Lower end of the bootstrap interval of the mean; None with fewer than two values."""
    ci_high: float | None


@dataclass(frozen=True)
class PairedComparison:
    """A against B on the same cases. Positive differences and effect sizes mean A is better."""

    n: int
    """Pairs compared."""
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    """Mean of ``a - b`` in the metric's units (its sign is the metric's: for a lower-is-better
    metric a negative difference means A is better)."""
    diff_ci_low: float | None
    """Bootstrap interval of :attr:`mean_diff` (None with fewer than two pairs)."""
    diff_ci_high: float | None
    wins: int
    """Pairs where A is better."""
    losses: int
    ties: int
    """Pairs whose difference is zero (within ``1e-12`` relative)."""
    win_rate: float | None
    """``(wins + ties / 2) / n``: the chance A beats B on a case, ties shared."""
    statistic: float | None
    """Wilcoxon's W (the smaller of the signed-rank sums); None when the test was not run."""
    p_value: float | None
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every pair ties; None with no pairs."""
    effect_size: float | None
    """Matched-pairs rank-biserial correlation in [-1, 1]: ``(R+ - R-) / (R+ + R-)`` over the
    ranks of the non-zero differences' sizes (+1: A better on every case); 0.0 when all tie."""
    higher_is_better: bool = True

    @property
    def significant(self) -> bool:
        """True when ``p_value < 0.05``."""
        return self.p_value is not None and self.p_value < 0.05


def _values(values: Sequence[float] | np.ndarray, what: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ConfigurationError(f"The {what} must be finite numbers; drop missing (NaN) or infinite values first.")
    return array


def _stats() -> Any:
    return require("scipy.stats", extra="bench", purpose="benchmark statistics")


def _rng_kwargs(stats: Any, seed: int) -> dict[str, Any]:
    """``rng=`` on SciPy >= 1.15, ``random_state=`` before."""
    generator = np.random.default_rng(seed)
    params = inspect.signature(stats.bootstrap).parameters
    return {"rng": generator} if "rng" in params else {"random_state": generator}


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float] | None:
    """A bootstrap confidence interval of the mean of ``values`` (``scipy.stats.bootstrap``).

    BCa (bias-corrected and accelerated), falling back to the percentile method when BCa is
    undefined for the sample; the random generator is seeded with ``seed``, so the interval is
    reproducible. None with fewer than two values; ``(v, v)`` when every value is ``v``.

    Example:
        >>> bootstrap_interval([1.0]) is None, bootstrap_interval([2.0, 2.0, 2.0])
        (True, (2.0, 2.0))
    """
    array = _values(values)
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be between 0 and 1, got {confidence!r}.")
    if array.size < 2:
        return None
    if np.all(array == array[0]):
        return float(array[0]), float(array[0])
    stats = _stats()
    low = high = math.nan
    for method in ("BCa", "percentile"):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning: BCa undefined -> we fall back
            result = stats.bootstrap(
                (array,),
                np.mean,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                vectorized=True,
                **_rng_kwargs(stats, seed),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
    return low, high


def summarize(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Summary:
    """n, mean, sample standard deviation and bootstrap interval of ``values`` (see the module docstring).

    Example:
        >>> summarize([])
        Summary(n=0, mean=None, std=None, ci_low=None, ci_high=None)
        >>> summarize([0.5])
        Summary(n=1, mean=0.5, std=None, ci_low=None, ci_high=None)
    """
    array = _values(values)
    if array.size == 0:
        return Summary(0, None, None, None, None)
    mean = float(np.mean(array))
    if array.size < 2:
        return Summary(1, mean, None, None, None)
    interval = bootstrap_interval(array, confidence=confidence, n_resamples=n_resamples, seed=seed)
    low, high = interval if interval is not None else (None, None)
    return Summary(int(array.size), mean, float(np.std(array, ddof=1)), low, high)


def paired_comparison(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedComparison:
    """Compare A with B on the same cases (``a[i]`` and ``b[i]`` are the same case).

    Args:
        a, b: The metric's values, paired by position.
        higher_is_better: The metric's direction; wins, the win rate and the effect size
            follow it (a lower LPIPS is a win).

    Raises:
        ConfigurationError: ``a`` and ``b`` differ in length, or hold non-finite values.

    Example:
        >>> c = paired_comparison([0.2, 0.3, 0.3], [0.4, 0.5, 0.3], higher_is_better=False)
        >>> c.wins, c.ties, c.effect_size, round(c.mean_diff, 4)
        (2, 1, 1.0, -0.1333)
    """
    x, y = _values(a, "values of A"), _values(b, "values of B")
    if x.shape != y.shape:
        raise ConfigurationError(f"A paired comparison needs as many values of A as of B, got {x.size} and {y.size}.")
    n = int(x.size)
    if n == 0:
        return PairedComparison(0, None, None, None, None, None, 0, 0, 0, None, None, None, None, higher_is_better)
    diff = x - y
    scale = np.maximum(1.0, np.maximum(np.abs(x), np.abs(y)))
    # Float noise is neither a win nor a rank: 0.7 - 0.5 and 0.8 - 0.6 are the same difference.
    diff = np.where(np.abs(diff) <= _TIE * scale, 0.0, np.round(diff, 12))
    better = diff if higher_is_better else -diff  # > 0: A better
    wins, losses = int(np.sum(better > 0)), int(np.sum(better < 0))
    ties = n - wins - losses
    interval = bootstrap_interval(diff, confidence=confidence, n_resamples=n_resamples, seed=seed)
    low, high = interval if interval is not None else (None, None)
    statistic: float | None = None
    p_value: float | None = 1.0
    effect = 0.0
    nonzero = better[better != 0]
    if nonzero.size:
        stats = _stats()
        ranks = stats.rankdata(np.abs(nonzero))
        r_plus, r_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
        effect = (r_plus - r_minus) / (r_plus + r_minus)
        result = stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return PairedComparison(
        n=n,
        mean_a=float(np.mean(x)),
        mean_b=float(np.mean(y)),
        mean_diff=float(np.mean(diff)),
        diff_ci_low=low,
        diff_ci_high=high,
        wins=wins,
        losses=losses,
        ties=ties,
        win_rate=(wins + ties / 2) / n,
        statistic=statistic,
        p_value=p_value,
        effect_size=effect,
        higher_is_better=higher_is_better,
    )


def adjust_p_values(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``); None stays None.

    Use them when many comparisons are read together (every pair of models): a comparison
    whose adjusted value is below 0.05 keeps the expected share of false discoveries under 5%.

    Example:
        >>> [round(p, 3) for p in adjust_p_values([0.01, 0.04, 0.03])]
        [0.03, 0.04, 0.04]
    """
    present = [(i, p) for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if present:
        adjusted = _stats().false_discovery_control([p for _, p in present], method="bh")
        for (i, _), q in zip(present, np.atleast_1d(adjusted), strict=True):
            out[i] = float(q)
    return out
