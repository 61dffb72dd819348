"""How often a metric agrees with people on 2AFC judgments, and how often people agree with each other.

Input is a list of :class:`ScoredJudgment`: a :class:`~imagerepainter.human.judgments.Judgment`
with every metric's value of both images. Pure numpy; deterministic for a seed, whatever the
order of the judgments.

* **2AFC agreement** (:func:`metric_agreement`): per judgment, the metric prefers the image with
  the better value (its direction from ``higher_is_better``); it scores 1 when that is the
  image the rater chose, 0 when not, 0.5 when the two values tie. "Can't tell" judgments
  (``choice == "tie"``) are left out and counted. With ``majority=True`` the unit is a pair
  (a reference and two images, whichever side they were shown on), the human answer the
  raters' strict majority (pairs whose votes split evenly are left out and counted).
* **Intervals** (:func:`cluster_bootstrap`): a percentile bootstrap that resamples
  *references* (clusters), since the judgments of one reference are not independent.
* **The human ceiling** (:func:`human_ceiling`): pairwise agreement between raters on pairs
  judged by two or more of them, each rater's consistency on pairs shown to them twice, and
  Krippendorff's alpha (nominal) over all pairs (:func:`krippendorff_alpha`).

Example:
    >>> from imagerepainter.human.judgments import Judgment
    >>> j = Judgment(reference_id="r", image_a="x.png", image_b="y.png", choice="a")
    >>> row = ScoredJudgment(j, {"ssim": (0.9, 0.7)}, {"ssim": True})
    >>> metric_agreement([row], "ssim").value
    1.0
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .judgments import Judgment

__all__ = [
    "DEFAULT_RESAMPLES",
    "Estimate",
    "HumanCeiling",
    "ScoredJudgment",
    "cluster_bootstrap",
    "grouped",
    "human_ceiling",
    "krippendorff_alpha",
    "metric_agreement",
    "metric_preference",
    "pair_key",
]

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples of the references."""
_TIE = 1e-12


@dataclass(frozen=True)
class ScoredJudgment:
    """A judgment with each metric's values of its two images, and what the images are."""

    judgment: Judgment
    scores: Mapping[str, tuple[float, float]]
    """``{metric: (value of image_a, value of image_b)}``."""
    higher_is_better: Mapping[str, bool]
    groups: Mapping[str, str] = field(default_factory=dict)
    """E.g. ``{"category": "portrait", "style": "photo"}``, when the reference has them."""
    systems: tuple[str, str] | None = None
    """What made image_a and image_b (``"model · mode"``), when known: for Bradley–Terry."""

    @property
    def winner(self) -> str | None:
        """The image path the rater chose, or ``None`` for "can't tell"."""
        j = self.judgment
        return None if j.choice == "tie" else (j.image_a if j.choice == "a" else j.image_b)


@dataclass(frozen=True)
class Estimate:
    """A share with its bootstrap 95% interval over references."""

    value: float | None
    """None when nothing could be counted."""
    low: float | None
    high: float | None
    n: int
    """Units counted (judgments, or pairs for the majority)."""
    excluded: int = 0
    """Units left out ("can't tell", or split majorities)."""
    references: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-able."""
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "excluded": self.excluded,
            "references": self.references,
        }


def pair_key(judgment: Judgment) -> tuple[str, str, str]:
    """The pair a judgment answers, whichever image was ``a``: (reference, first image, second image)."""
    first, second = sorted((judgment.image_a, judgment.image_b))
    return judgment.reference_id, first, second


def metric_preference(value_a: float, value_b: float, higher_is_better: bool) -> str | None:
    """``"a"``, ``"b"`` or ``None`` (a tie, within 1e-12 relative) for the better of two values.

    Example:
        >>> metric_preference(0.2, 0.5, False), metric_preference(1.0, 1.0, True)
        ('a', None)
    """
    if abs(value_a - value_b) <= _TIE * max(1.0, abs(value_a), abs(value_b)):
        return None
    return "a" if (value_a > value_b) == higher_is_better else "b"


def _credit(row: ScoredJudgment, metric: str, winner: str) -> float:
    va, vb = row.scores[metric]
    preferred = metric_preference(va, vb, row.higher_is_better[metric])
    if preferred is None:
        return 0.5
    return 1.0 if (row.judgment.image_a if preferred == "a" else row.judgment.image_b) == winner else 0.0


def cluster_bootstrap(
    units: Sequence[tuple[str, float, float]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    excluded: int = 0,
) -> Estimate:
    """The share ``sum(hits) / sum(counts)`` of ``(cluster, hits, count)`` units, with a 95% interval.

    The interval is the 2.5th and 97.5th percentiles of the share over ``resamples`` draws of the
    clusters with replacement; the clusters are sorted first, so the result does not depend on
    the order of ``units``.

    Example:
        >>> est = cluster_bootstrap([("r1", 1, 1), ("r2", 0, 1), ("r3", 1, 1), ("r4", 1, 1)])
        >>> est.value, est.low <= 0.75 <= est.high, est.references
        (0.75, True, 4)
    """
    hits: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for cluster, hit, count in units:
        hits[cluster] += hit
        counts[cluster] += count
    total = math.fsum(counts.values())
    if total <= 0:
        return Estimate(None, None, None, 0, excluded, len(counts))
    names = sorted(counts)
    h = np.array([hits[n] for n in names])
    c = np.array([counts[n] for n in names])
    value = float(math.fsum(h) / total)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(resamples, len(names)))
    weights = np.zeros((resamples, len(names)))
    np.add.at(weights, (np.repeat(np.arange(resamples), len(names)), draws.ravel()), 1.0)
    denominators = weights @ c
    shares = (weights @ h)[denominators > 0] / denominators[denominators > 0]
    low, high = np.percentile(shares, [2.5, 97.5])
    return Estimate(value, min(float(low), value), max(float(high), value), int(total), excluded, len(names))


def metric_agreement(
    rows: Sequence[ScoredJudgment],
    metric: str,
    *,
    majority: bool = False,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """2AFC agreement of ``metric`` with the raters (each judgment, or each pair's majority).

    Rows without the metric are skipped. See the module docstring for the rules.
    """
    scored = [r for r in rows if metric in r.scores]
    if not majority:
        units = [(r.judgment.reference_id, _credit(r, metric, w), 1.0) for r in scored if (w := r.winner) is not None]
        return cluster_bootstrap(units, resamples=resamples, seed=seed, excluded=len(scored) - len(units))
    units, split = [], 0
    for members in _by_pair(scored).values():
        winner = _majority(members)
        if winner is None:
            split += 1
            continue
        units.append((members[0].judgment.reference_id, _credit(members[0], metric, winner), 1.0))
    return cluster_bootstrap(units, resamples=resamples, seed=seed, excluded=split)


def _by_pair(rows: Sequence[ScoredJudgment]) -> dict[tuple[str, str, str], list[ScoredJudgment]]:
    pairs: dict[tuple[str, str, str], list[ScoredJudgment]] = defaultdict(list)
    for row in rows:
        pairs[pair_key(row.judgment)].append(row)
    return pairs


def _majority(members: Sequence[ScoredJudgment]) -> str | None:
    """The image a strict majority of the pair's first answers (one per rater, "can't tell" left out) chose."""
    votes: dict[str, int] = defaultdict(int)
    for answer in _first_answers(members).values():
        votes[answer] += 1
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
    return None if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else ranked[0][0]


def _first_answers(members: Sequence[ScoredJudgment]) -> dict[str, str]:
    """Each rater's first answer to a pair (not a repeat, not "can't tell"): ``{rater: chosen image}``."""
    answers: dict[str, str] = {}
    for row in sorted(members, key=lambda r: (r.judgment.repeat, r.judgment.created)):
        if row.winner is not None and not row.judgment.repeat:
            answers.setdefault(row.judgment.rater, row.winner)
    return answers


# ----------------------------------------------------------------------------- the human ceiling


@dataclass(frozen=True)
class HumanCeiling:
    """How much people agree: between raters, with themselves, and Krippendorff's alpha."""

    raters: int
    inter_rater: Estimate
    """Share of agreeing answers over every pair of raters on every pair both judged."""
    intra_rater: Estimate
    """Share of agreeing answers over every two answers of one rater to the same pair (repeats)."""
    alpha: float | None
    """Krippendorff's alpha (nominal) over the raters' first answers; None with no pair judged twice."""

    def as_dict(self) -> dict[str, object]:
        """JSON-able."""
        return {
            "raters": self.raters,
            "inter_rater": self.inter_rater.as_dict(),
            "intra_rater": self.intra_rater.as_dict(),
            "krippendorff_alpha": self.alpha,
        }


def _agreeing_pairs(answers: Sequence[str]) -> tuple[float, float]:
    pairs = list(combinations(answers, 2))
    return float(sum(a == b for a, b in pairs)), float(len(pairs))


def human_ceiling(rows: Sequence[ScoredJudgment], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> HumanCeiling:
    """The human ceiling of ``rows`` ("can't tell" answers left out everywhere)."""
    inter, intra, units = [], [], []
    for key, members in _by_pair(rows).items():
        first = _first_answers(members)
        units.append(list(first.values()))
        hit, count = _agreeing_pairs(list(first.values()))
        if count:
            inter.append((key[0], hit, count))
        by_rater: dict[str, list[str]] = defaultdict(list)
        for row in members:
            if row.winner is not None:
                by_rater[row.judgment.rater].append(row.winner)
        for answers in by_rater.values():
            hit, count = _agreeing_pairs(answers)
            if count:
                intra.append((key[0], hit, count))
    raters = len({r.judgment.rater for r in rows})
    return HumanCeiling(
        raters,
        cluster_bootstrap(inter, resamples=resamples, seed=seed),
        cluster_bootstrap(intra, resamples=resamples, seed=seed),
        krippendorff_alpha(units),
    )


def krippendorff_alpha(units: Sequence[Sequence[str]]) -> float | None:
    """Krippendorff's alpha for nominal data: ``1 - D_o / D_e``.

    ``units`` holds, per unit (a pair), the values the raters gave it; units with fewer than
    two values are not pairable and left out. From the coincidence matrix
    ``o_ck = sum_u (number of c-k value pairs in u) / (m_u - 1)``, with ``n_c`` its margins
    and ``n`` their sum: ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k``.
    None when there is nothing to pair; 1.0 when every rater gave the same value everywhere.

    Example:
        >>> round(krippendorff_alpha([["a", "a"], ["b", "b"], ["a", "b"], ["a", "a", "a"]]), 4)
        0.5556
    """
    coincidence: dict[tuple[str, str], float] = defaultdict(float)
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidence[c, k] += 1.0 / (m - 1)
    if not coincidence:
        return None
    margins: dict[str, float] = defaultdict(float)
    for (c, _), v in coincidence.items():
        margins[c] += v
    n = math.fsum(margins.values())
    observed = math.fsum(v for (c, k), v in coincidence.items() if c != k)
    expected = math.fsum(margins[c] * margins[k] for c in margins for k in margins if c != k)
    if expected == 0:
        return 1.0
    return 1.0 - (n - 1) * observed / expected


def grouped(rows: Sequence[ScoredJudgment], key: str) -> dict[str, list[ScoredJudgment]]:
    """``rows`` by the value of one of their groups (``category``, ``style``); rows without it left out."""
    out: dict[str, list[ScoredJudgment]] = defaultdict(list)
    for row in rows:
        if (value := row.groups.get(key)) is not None:
            out[value].append(row)
    return dict(sorted(out.items()))
