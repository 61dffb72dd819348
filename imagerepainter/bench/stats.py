"""The benchmark's statistics: summaries with intervals of the mean, and paired comparisons (SciPy).

Pure functions of plain numbers; SciPy is imported when they are first called
(``pip install "imagerepainter[bench]"``). Every method is stated in ``docs/metrics.md``
precisely enough to recompute it with NumPy and SciPy.

* :func:`summarize` — n, mean, sample standard deviation and a confidence interval of the mean
  (:func:`mean_interval`).
* :func:`mean_interval` — a **studentized bootstrap** (bootstrap-t) interval from 4 values on,
  a Student-t interval for 2 or 3 values (or when a bootstrap-t bound is infinite). The values
  are sorted first, so the interval depends on the values, never on their order; the
  resamples come from ``numpy.random.default_rng(seed)`` and are drawn in chunks of at most
  :data:`CHUNK_ELEMENTS` values, so memory stays bounded at any n while the result equals
  drawing every resample at once.
* :func:`paired_comparison` — two models (or two modes) on the same cases: the mean
  difference with its interval, wins / losses / ties and a win rate, the Wilcoxon signed-rank
  test (``scipy.stats.wilcoxon``, two-sided) and the matched-pairs rank-biserial correlation
  as the effect size.
* :func:`adjust_p_values` — Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)
  for a family of comparisons.
* :func:`small_sample_note` — what a summary of n values can and cannot support.

Why bootstrap-t: the percentile and BCa bootstraps cover the true mean far less often than
their nominal 95% at small n on skewed scores (about 71% at n = 3, 88% at n = 8); the
studentized bootstrap corrects for skewness and for the extra spread of a small sample
(``benchmarks/interval_coverage.py`` measures it: 0.94 at n = 4 and at n = 8 on exponential
data, 0.91 on lognormal data).

Edge cases, by design: no values give no mean (``None``); one value has a mean but no standard
deviation or interval (``None``); identical values have a zero-width interval. In a paired
comparison, differences are rounded to 12 decimals and those within ``1e-12`` (relative) of
zero are ties: float noise is neither a win nor a different rank. Ties count half a win in the
win rate and are dropped before the Wilcoxon test (``zero_method="wilcox"``); with no non-zero
difference the test is not run and ``p_value`` is 1.0 (nothing suggests a difference). With
fewer than six non-tied pairs no two-sided p-value can fall below 0.05.

Example:
    >>> s = summarize([0.61, 0.64, 0.58, 0.70, 0.66])
    >>> s.n, round(s.mean, 3), round(s.std, 4), s.ci_low < s.mean < s.ci_high, s.method
    (5, 0.638, 0.046, True, 'bootstrap-t')
    >>> c = paired_comparison([0.7, 0.8, 0.6, 0.9, 0.75, 0.85], [0.5, 0.6, 0.65, 0.7, 0.55, 0.6])
    >>> c.wins, c.losses, c.ties, round(c.win_rate, 3), round(c.effect_size, 3), round(c.p_value, 4)
    (5, 1, 0, 0.833, 0.905, 0.0625)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._imports import require
from ..errors import ConfigurationError

__all__ = [
    "CHUNK_ELEMENTS",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "MIN_BOOTSTRAP_N",
    "SMALL_N",
    "IntervalMethod",
    "PairedComparison",
    "Summary",
    "adjust_p_values",
    "bootstrap_interval",
    "bootstrap_t_interval",
    "mean_interval",
    "mean_intervals",
    "paired_differences",
    "paired_comparison",
    "small_sample_note",
    "student_t_interval",
    "summarize",
]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 9999
DEFAULT_SEED = 0
MIN_BOOTSTRAP_N = 4
"""From this many values on, intervals are bootstrap-t; below, Student-t (a bootstrap of 2 or 3
values has too few distinct resamples to studentize)."""
SMALL_N = 10
"""Summaries of fewer values are marked in the reports (see :func:`small_sample_note`)."""
CHUNK_ELEMENTS = 1 << 19
"""Resampled values held at once (about 4 MB of float64), whatever n and the resample count."""
_TIE = 1e-12

IntervalMethod = Literal["bootstrap-t", "student-t", "constant"]
"""How an interval was made: studentized bootstrap, Student-t, or zero width (identical values)."""


@dataclass(frozen=True)
class Summary:
    """n, mean, sample standard deviation and an interval of the mean."""

    n: int
    mean: float | None
    """None when there are no values."""
    std: float | None
    """Sample standard deviation (``ddof=1``); None with fewer than two values."""
    ci_low: float | None
    """Lower end of the interval of the mean (:func:`mean_interval`); None with fewer than two values."""
    ci_high: float | None
    method: IntervalMethod | None = None
    """How the interval was made; None without an interval."""


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
    """Interval of :attr:`mean_diff` (:func:`mean_interval` of the differences; None with fewer than two pairs)."""
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
    method: IntervalMethod | None = None
    """How the interval of the difference was made."""

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


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be between 0 and 1, got {confidence!r}.")
    return float(confidence)


def student_t_interval(
    values: Sequence[float] | np.ndarray, *, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """``mean ± t(n - 1, (1 + confidence) / 2) · s / √n`` (``s``: sample standard deviation); None below 2 values.

    Example:
        >>> [round(v, 4) for v in student_t_interval([1.0, 2.0, 3.0])]
        [-0.4841, 4.4841]
    """
    x = np.sort(_values(values))
    level = _check_confidence(confidence)
    if x.size < 2:
        return None
    mean, se = float(np.mean(x)), float(np.std(x, ddof=1)) / math.sqrt(x.size)
    half = float(_stats().t.ppf((1 + level) / 2, x.size - 1)) * se
    return mean - half, mean + half


def _resample_rows(n: int, n_resamples: int, seed: int, *, per_row: int) -> Iterator[np.ndarray]:
    """``default_rng(seed).integers(0, n, size=(n_resamples, n))``, yielded in row blocks whose
    ``per_row``-value rows hold at most :data:`CHUNK_ELEMENTS` values together: the same draws in the
    same order as one call, in bounded memory."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_ELEMENTS // per_row)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n))


def _order_index(n_resamples: int, confidence: float) -> int:
    """k = floor((B + 1) · (1 - confidence) / 2): the bootstrap-t quantiles are the k-th smallest and
    k-th largest studentized resample."""
    k = math.floor((n_resamples + 1) * (1 - confidence) / 2)
    if k < 1:
        raise ConfigurationError(
            f"{n_resamples} resamples cannot give a {confidence:.0%} interval; use at least "
            f"{math.ceil(2 / (1 - confidence)) - 1} (the default is {DEFAULT_RESAMPLES})."
        )
    return k


def bootstrap_t_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float] | None:
    """The studentized bootstrap (bootstrap-t) interval of the mean; None below 2 values.

    With ``x`` the values sorted ascending, ``m`` their mean and ``se = std(x, ddof=1) / √n``:
    resample indices ``idx = default_rng(seed).integers(0, n, size=(B, n))``; per resample
    ``t* = (mean(x[idx]) - m) / (std(x[idx], ddof=1) / √n)`` (``±inf`` when a resample has no
    spread, by the sign of its mean's difference; 0 when that difference is 0). With ``t*`` sorted
    and ``k = floor((B + 1)(1 - confidence) / 2)``, the interval is
    ``(m - t*[B - k] · se, m - t*[k - 1] · se)`` (0-based). A bound may be infinite: then
    :func:`mean_interval` uses Student-t instead.

    Example:
        >>> low, high = bootstrap_t_interval([0.2, 0.4, 0.5, 0.9], n_resamples=999)
        >>> round(low, 3) < 0.5 < round(high, 3)
        True
    """
    x = np.sort(_values(values))
    level = _check_confidence(confidence)
    if x.size < 2:
        return None
    (found,) = _bootstrap_t_rows([x], level, n_resamples, seed)
    return found


def _bootstrap_t_rows(
    samples: Sequence[np.ndarray], confidence: float, n_resamples: int, seed: int
) -> list[tuple[float, float]]:
    """:func:`bootstrap_t_interval` of each of ``samples`` (sorted, all of one size n), sharing the
    resample indices: every sample gets exactly the interval it would get alone, for one draw of them."""
    k = _order_index(n_resamples, confidence)
    n = int(samples[0].size)
    root_n = math.sqrt(n)
    means = [float(np.mean(x)) for x in samples]
    t_star = np.empty((len(samples), n_resamples))
    done = 0
    for idx in _resample_rows(n, n_resamples, seed, per_row=n):
        for row, (x, mean) in enumerate(zip(samples, means, strict=True)):
            drawn = x[idx]
            centred = np.mean(drawn, axis=1) - mean
            with np.errstate(divide="ignore", invalid="ignore"):
                t = centred / (np.std(drawn, axis=1, ddof=1) / root_n)
            t_star[row, done : done + len(t)] = np.where(np.isnan(t), 0.0, t)  # 0 / 0: no spread, no difference
        done += idx.shape[0]
    t_star.sort(axis=1)
    out = []
    for row, (x, mean) in enumerate(zip(samples, means, strict=True)):
        se = float(np.std(x, ddof=1)) / root_n
        out.append((mean - float(t_star[row, n_resamples - k]) * se, mean - float(t_star[row, k - 1]) * se))
    return out


def mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, IntervalMethod] | None:
    """The interval of the mean the reports use, and how it was made; None below 2 values.

    Identical values: ``(v, v, "constant")``. 2 or 3 values: Student-t. From
    :data:`MIN_BOOTSTRAP_N` values on: bootstrap-t, or Student-t when a bootstrap-t bound is not
    finite (values with so many ties that a share of resamples has no spread).

    Example:
        >>> mean_interval([1.0]) is None, mean_interval([2.0, 2.0, 2.0])
        (True, (2.0, 2.0, 'constant'))
        >>> mean_interval([0.1, 0.3])[2], mean_interval([0.1, 0.3, 0.2, 0.6])[2]
        ('student-t', 'bootstrap-t')
    """
    (found,) = mean_intervals([values], confidence=confidence, n_resamples=n_resamples, seed=seed, bounds=bounds)
    return found


def mean_intervals(
    samples: Sequence[Sequence[float] | np.ndarray],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    bounds: tuple[float, float] | None = None,
) -> list[tuple[float, float, IntervalMethod] | None]:
    """:func:`mean_interval` of each sample, with one draw of the resample indices per sample size.

    ``bounds``: where every value lies (a fidelity in [0, 1]); the mean lies there too, so each
    interval is clipped to it (with few values bootstrap-t and Student-t can reach past it).

    The same seed gives samples of one size the same indices, so drawing them once for all of
    those samples (as a leaderboard's rows over one group of references) changes no digit and
    saves most of the work. Memory stays bounded by :data:`CHUNK_ELEMENTS`.

    Example:
        >>> a, b = [0.1, 0.4, 0.35, 0.8], [0.5, 0.5]
        >>> mean_intervals([a, b]) == [mean_interval(a), mean_interval(b)]
        True
        >>> mean_intervals([[0.0, 1.0, 1.0]])[0][1] > 1, mean_intervals([[0.0, 1.0, 1.0]], bounds=(0, 1))[0][1]
        (True, 1.0)
    """
    level = _check_confidence(confidence)
    xs = [np.sort(_values(sample)) for sample in samples]
    out: list[tuple[float, float, IntervalMethod] | None] = [None] * len(xs)
    by_size: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        if x.size >= 2 and np.all(x == x[0]):
            out[i] = (float(x[0]), float(x[0]), "constant")
        elif x.size >= MIN_BOOTSTRAP_N:
            by_size.setdefault(int(x.size), []).append(i)
    for members in by_size.values():
        found = _bootstrap_t_rows([xs[i] for i in members], level, n_resamples, seed)
        for i, (low, high) in zip(members, found, strict=True):
            if math.isfinite(low) and math.isfinite(high):
                out[i] = (low, high, "bootstrap-t")
    for i, x in enumerate(xs):
        if out[i] is None and x.size >= 2:
            low, high = student_t_interval(x, confidence=level) or (math.nan, math.nan)
            out[i] = (low, high, "student-t")
    return out if bounds is None else [_clipped(found, bounds) for found in out]


def _clipped(
    found: tuple[float, float, IntervalMethod] | None, bounds: tuple[float, float]
) -> tuple[float, float, IntervalMethod] | None:
    if found is None:
        return None
    low, high, method = found
    return max(low, float(bounds[0])), min(high, float(bounds[1])), method


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float] | None:
    """:func:`mean_interval` without the method's name (kept for callers of earlier versions).

    Example:
        >>> bootstrap_interval([1.0]) is None, bootstrap_interval([2.0, 2.0, 2.0])
        (True, (2.0, 2.0))
    """
    found = mean_interval(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return None if found is None else (found[0], found[1])


def small_sample_note(n: int) -> str | None:
    """What a mean over ``n`` references can and cannot support, for the reports; None from :data:`SMALL_N` on.

    The text holds no comma, so even a naive split of the CSV keeps its columns.

    Example:
        >>> small_sample_note(30) is None, small_sample_note(1)
        (True, 'n = 1: a single value; no interval; no test or ranking can rest on it')
    """
    if n >= SMALL_N or n <= 0:
        return None
    if n == 1:
        return "n = 1: a single value; no interval; no test or ranking can rest on it"
    if n < MIN_BOOTSTRAP_N:
        return (
            f"n = {n}: Student-t interval; wide and below 95% coverage on skewed scores; "
            "a rough size only; no test can reach p < 0.05"
        )
    tests = "no paired test can reach p < 0.05" if n < 6 else "paired tests have little power"
    return f"n = {n} < {SMALL_N}: interval coverage may fall short of 95% on skewed scores; {tests}"


def summarize(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    interval: bool = True,
) -> Summary:
    """n, mean, sample standard deviation and interval of ``values`` (see the module docstring).

    The values are sorted before anything is summed, so their order never changes a digit.
    ``interval=False`` leaves the interval out (to compute many at once with :func:`mean_intervals`).

    Example:
        >>> summarize([])
        Summary(n=0, mean=None, std=None, ci_low=None, ci_high=None, method=None)
        >>> summarize([0.5])
        Summary(n=1, mean=0.5, std=None, ci_low=None, ci_high=None, method=None)
    """
    array = np.sort(_values(values))
    if array.size == 0:
        return Summary(0, None, None, None, None)
    mean = float(np.mean(array))
    if array.size < 2:
        return Summary(1, mean, None, None, None)
    found = mean_interval(array, confidence=confidence, n_resamples=n_resamples, seed=seed) if interval else None
    low, high, method = found if found is not None else (None, None, None)
    return Summary(int(array.size), mean, float(np.std(array, ddof=1)), low, high, method)


def paired_comparison(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    interval: bool = True,
) -> PairedComparison:
    """Compare A with B on the same cases (``a[i]`` and ``b[i]`` are the same case).

    Args:
        a, b: The metric's values, paired by position.
        higher_is_better: The metric's direction; wins, the win rate and the effect size
            follow it (a lower LPIPS is a win).
        interval: False leaves the interval of the difference out (see :func:`mean_intervals`
            of :func:`paired_differences`).

    Raises:
        ConfigurationError: ``a`` and ``b`` differ in length, or hold non-finite values.

    Example:
        >>> c = paired_comparison([0.2, 0.3, 0.3], [0.4, 0.5, 0.3], higher_is_better=False)
        >>> c.wins, c.ties, c.effect_size, round(c.mean_diff, 4)
        (2, 1, 1.0, -0.1333)
    """
    x, y = _values(a, "values of A"), _values(b, "values of B")
    diff = paired_differences(x, y)
    n = int(x.size)
    if n == 0:
        return PairedComparison(0, None, None, None, None, None, 0, 0, 0, None, None, None, None, higher_is_better)
    better = diff if higher_is_better else -diff  # > 0: A better
    wins, losses = int(np.sum(better > 0)), int(np.sum(better < 0))
    ties = n - wins - losses
    found = mean_interval(diff, confidence=confidence, n_resamples=n_resamples, seed=seed) if interval else None
    low, high, method = found if found is not None else (None, None, None)
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
        mean_a=float(np.mean(np.sort(x))),
        mean_b=float(np.mean(np.sort(y))),
        mean_diff=float(np.mean(np.sort(diff))),
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
        method=method,
    )


def paired_differences(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> np.ndarray:
    """``a - b``, rounded to 12 decimals, with differences within ``1e-12 · max(1, |a|, |b|)`` set to 0.

    Float noise is neither a win nor a rank: 0.7 - 0.5 and 0.8 - 0.6 are the same difference.

    Raises:
        ConfigurationError: ``a`` and ``b`` differ in length, or hold non-finite values.

    Example:
        >>> paired_differences([0.7, 0.8, 0.1 + 0.2], [0.5, 0.6, 0.3]).tolist()
        [0.2, 0.2, 0.0]
    """
    x, y = _values(a, "values of A"), _values(b, "values of B")
    if x.shape != y.shape:
        raise ConfigurationError(f"A paired comparison needs as many values of A as of B, got {x.size} and {y.size}.")
    diff = x - y
    scale = np.maximum(1.0, np.maximum(np.abs(x), np.abs(y)))
    return np.where(np.abs(diff) <= _TIE * scale, 0.0, np.round(diff, 12))


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
