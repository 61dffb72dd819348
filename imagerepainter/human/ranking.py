"""Ranking models from people's judgments (Bradley–Terry), and how each metric's ranking agrees (Kendall's tau).

Every judgment whose two images were made by different systems (a system is a model in a
mode, ``"sdxl · single"``) is a game between them: the chosen image's system wins; "can't
tell" is half a win each. :func:`bradley_terry` fits the strengths ``p_i`` of
``P(i beats j) = p_i / (p_i + p_j)`` by the MM algorithm (Hunter 2004), with half a virtual
win each way between systems that met, so a system that won every game still gets a finite
strength. Strengths are reported as ``log p``, centred on 0.

:func:`ranking_agreement` compares the people's order of the systems with a metric's (each
system's mean metric on the judged references, its direction respected) by Kendall's tau-b
(SciPy), with a percentile-bootstrap interval that resamples references.

Example:
    >>> s = bradley_terry([("x", "y", 1.0), ("x", "y", 1.0), ("x", "y", 0.0), ("y", "z", 1.0)])
    >>> sorted(s, key=s.get, reverse=True)
    ['x', 'y', 'z']
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._imports import require
from .agreement import DEFAULT_RESAMPLES, ScoredJudgment

__all__ = ["RankingAgreement", "bradley_terry", "human_games", "metric_means", "ranking_agreement"]

_PRIOR = 0.5


def bradley_terry(
    games: Sequence[tuple[str, str, float]], *, iterations: int = 1000, tolerance: float = 1e-10
) -> dict[str, float]:
    """Bradley–Terry log-strengths (mean 0) from games ``(i, j, score of i)``, score 1, 0 or 0.5."""
    wins: dict[str, float] = defaultdict(float)
    meetings: dict[tuple[str, str], float] = defaultdict(float)
    for i, j, score in games:
        if i == j:
            continue
        wins[i] += score
        wins[j] += 1.0 - score
        meetings[min(i, j), max(i, j)] += 1.0
    names = sorted(wins)
    if not names:
        return {}
    index = {n: k for k, n in enumerate(names)}
    n = np.zeros((len(names), len(names)))
    for (i, j), count in meetings.items():
        n[index[i], index[j]] = n[index[j], index[i]] = count + 2 * _PRIOR
    w = np.array([wins[name] for name in names]) + _PRIOR * (n > 0).sum(axis=1)
    p = np.ones(len(names))
    for _ in range(iterations):
        denominator = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denominator > 0, w / np.where(denominator > 0, denominator, 1.0), p)
        new = new / math.exp(float(np.mean(np.log(new))))
        if float(np.max(np.abs(new - p))) < tolerance:
            p = new
            break
        p = new
    logs = np.log(p)
    return {name: float(v) for name, v in zip(names, logs - logs.mean(), strict=True)}


def human_games(rows: Sequence[ScoredJudgment]) -> list[tuple[str, str, float]]:
    """The games of ``rows`` between different systems (rows without systems left out)."""
    games = []
    for row in rows:
        if row.systems is None or row.systems[0] == row.systems[1]:
            continue
        choice = row.judgment.choice
        games.append((row.systems[0], row.systems[1], 1.0 if choice == "a" else 0.0 if choice == "b" else 0.5))
    return games


def metric_means(rows: Sequence[ScoredJudgment], metric: str) -> dict[str, float]:
    """Each system's mean value of ``metric`` over the distinct images of it in ``rows``, signed so higher is better."""
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.systems is None or metric not in row.scores:
            continue
        sign = 1.0 if row.higher_is_better[metric] else -1.0
        for system, image, value in zip(
            row.systems, (row.judgment.image_a, row.judgment.image_b), row.scores[metric], strict=True
        ):
            values[system][image] = sign * value
    return {system: math.fsum(v.values()) / len(v) for system, v in sorted(values.items())}


@dataclass(frozen=True)
class RankingAgreement:
    """Kendall's tau-b between the people's ranking of systems and a metric's, with a 95% bootstrap interval."""

    tau: float | None
    low: float | None
    high: float | None
    systems: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-able."""
        return {"tau": self.tau, "low": self.low, "high": self.high, "systems": self.systems}


def _tau(rows: Sequence[ScoredJudgment], metric: str) -> float | None:
    people = bradley_terry(human_games(rows))
    means = metric_means(rows, metric)
    common = sorted(set(people) & set(means))
    if len(common) < 2:
        return None
    stats = require("scipy.stats", extra="bench", purpose="Kendall's tau in the agreement report")
    tau = stats.kendalltau([people[s] for s in common], [means[s] for s in common]).statistic
    return None if not math.isfinite(float(tau)) else float(tau)


def ranking_agreement(
    rows: Sequence[ScoredJudgment], metric: str, *, resamples: int = DEFAULT_RESAMPLES // 4, seed: int = 0
) -> RankingAgreement:
    """Kendall's tau between the Bradley–Terry order of the systems and ``metric``'s order, resampling references."""
    tau = _tau(rows, metric)
    systems = len(set(metric_means(rows, metric)) & set(bradley_terry(human_games(rows))))
    if tau is None:
        return RankingAgreement(None, None, None, systems)
    by_reference: dict[str, list[ScoredJudgment]] = defaultdict(list)
    for row in rows:
        by_reference[row.judgment.reference_id].append(row)
    names = sorted(by_reference)
    rng = np.random.default_rng(seed)
    taus = []
    for draw in rng.integers(0, len(names), size=(resamples, len(names))):
        value = _tau([row for k in draw for row in by_reference[names[k]]], metric)
        if value is not None:
            taus.append(value)
    low, high = np.percentile(taus, [2.5, 97.5]) if taus else (tau, tau)
    return RankingAgreement(tau, min(float(low), tau), max(float(high), tau), systems)
