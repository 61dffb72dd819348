"""The leaderboard's ``elements`` section: fidelity per element kind, per model and mode.

When an evaluation asks for the ``elements`` metric (``--metrics paper,elements``), each case
keeps the verdict on every element of its reference's Image Understanding Tree
(``case.extra["metric_details"]["elements"]``; see :mod:`imagerepainter.loop.elements`).
:func:`build_element_board` aggregates them, over all references:

* **rows**: per model, mode and element kind, the mean fidelity (``yes`` = 1, ``partly`` = 0.5,
  ``no`` = 0; a case's fidelity of a kind is the mean over its elements of that kind; several
  seeds of one reference are averaged first) with its 95% interval
  (:func:`~imagerepainter.bench.stats.mean_intervals`, the leaderboard's method);
* **comparisons**: per mode and kind, every pair of models on the references both were checked
  on: a Wilcoxon signed-rank test, its Benjamini-Hochberg adjustment within the mode's family
  ``elements:<mode>`` (every kind and pair of that mode), the rank-biserial effect size and the
  interval of the mean difference; A is the model with the higher mean;
* **lost**: per model and mode, the elements it loses most: the checks it did not pass, ranked by
  how much better the best other model of the mode did on the same element of the same reference,
  then by how far the model lags the best other on that element's kind overall.

Its JSON is the ``elements`` field of ``leaderboard.json`` (null without element verdicts); the
schema is documented in ``docs/metrics.md``.

Example:
    >>> from imagerepainter.bench.records import CaseResult
    >>> def case(model, ref, color):
    ...     checks = [{"id": "e01", "kind": "color", "text": "circle — color: red", "verdict": color, "reason": ""}]
    ...     details = {"elements": {"kinds": {"color": {"yes": 1.0, "no": 0.0}[color]}, "checks": checks}}
    ...     return CaseResult(case_id=f"{model}{ref}", dataset="d", reference_id=ref, reference_sha256=ref * 64,
    ...         model=model, model_spec="sandbox", mode="single", seed=0, status="ok", metrics={"elements": 1.0},
    ...         extra={"metric_details": details})
    >>> refs = "12345678"
    >>> board = build_element_board([case("a", r, "yes") for r in refs] + [case("b", r, "no") for r in refs])
    >>> board.fidelity("b", "single"), board.comparison("single", "color", "a", "b").p_value < 0.05
    ({'color': 0.0}, True)
    >>> [(loss.model, loss.element_id, loss.others_best) for loss in board.lost][:1]
    [('b', 'e01', 1.0)]
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from ..loop.elements import ELEMENT_KINDS, VERDICT_SCORES
from . import stats
from .records import CaseResult
from .section_records import PairedDifference, Record

__all__ = [
    "LOST_PER_MODEL",
    "ElementBoard",
    "ElementComparison",
    "ElementKindRow",
    "ElementLoss",
    "ElementPair",
    "build_element_board",
    "element_details",
]

LOST_PER_MODEL = 5
"""How many lost elements :attr:`ElementBoard.lost` lists per model and mode."""

_MODES = ("single", "repaint")
_RefKey = tuple[str, str]


class ElementKindRow(Record):
    """One model's fidelity on one kind of element, in one mode, over every reference with such elements."""

    model: str
    mode: str
    kind: str
    """One of :data:`~imagerepainter.loop.elements.ELEMENT_KINDS`."""
    n: int
    """References counted (their cases had at least one element of this kind answered)."""
    elements: int
    """Elements of this kind checked, over those cases."""
    fidelity: float
    """Mean over the references of each case's mean verdict score on this kind (yes 1, partly 0.5, no 0)."""
    ci_low: float | None = None
    """95% interval of :attr:`fidelity` (None with fewer than two references)."""
    ci_high: float | None = None
    ci_method: stats.IntervalMethod | None = None
    small_n: bool = False
    """Fewer than :data:`~imagerepainter.bench.stats.SMALL_N` references."""


class ElementPair(Record):
    """Which two models an :class:`ElementComparison` compares, on which kind of element and in which mode."""

    mode: str
    kind: str
    model_a: str
    """The model with the higher mean fidelity on this kind (by name on a tie)."""
    model_b: str


class ElementComparison(PairedDifference, ElementPair):
    """Two models on one kind of element in one mode, paired on the references both were checked on
    (the mean difference is in fidelity points)."""

    p_value: float | None
    """Two-sided Wilcoxon signed-rank p-value."""
    p_adjusted: float | None = None
    """Benjamini-Hochberg adjusted within :attr:`family`."""
    family: str
    """``elements:<mode>``: every kind and pair of models of the mode."""
    effect_size: float | None
    """Matched-pairs rank-biserial correlation (+1: A better on every reference)."""


class ElementLoss(Record):
    """One element a model did not pass on one reference."""

    model: str
    mode: str
    reference_id: str
    element_id: str
    kind: str
    text: str
    verdict: str
    """``"no"`` or ``"partly"``."""
    reason: str
    others_best: float | None
    """The best score another model of the mode got on this element (None when no other was checked)."""


class ElementBoard(Record):
    """The ``elements`` section of a leaderboard (see the module docstring)."""

    scoring: dict[str, float] = Field(default_factory=lambda: dict(VERDICT_SCORES))
    """What each verdict scores."""
    kinds: list[str]
    """The element kinds seen, in report order."""
    cases: int
    """Finished cases with element verdicts."""
    rows: list[ElementKindRow]
    comparisons: list[ElementComparison]
    lost: list[ElementLoss]

    def row(self, model: str, mode: str, kind: str) -> ElementKindRow | None:
        """The row of ``model`` in ``mode`` on ``kind``, if any."""
        return next((r for r in self.rows if (r.model, r.mode, r.kind) == (model, mode, kind)), None)

    def fidelity(self, model: str, mode: str) -> dict[str, float]:
        """``{kind: fidelity}`` of ``model`` in ``mode``, in report order."""
        return {r.kind: r.fidelity for r in self.rows if (r.model, r.mode) == (model, mode)}

    def comparison(self, mode: str, kind: str, model: str, other: str) -> ElementComparison | None:
        """The comparison of two models on ``kind`` in ``mode`` (in either order), if any."""
        pair = {model, other}
        found = (c for c in self.comparisons if (c.mode, c.kind) == (mode, kind) and {c.model_a, c.model_b} == pair)
        return next(found, None)


def element_details(case: CaseResult) -> Mapping[str, Any] | None:
    """The element verdicts a finished case keeps (its ``elements`` metric's details), or None."""
    details = case.extra.get("metric_details") or {}
    return next((d for d in details.values() if isinstance(d, Mapping) and "checks" in d and "kinds" in d), None)


def _mode_key(mode: str) -> tuple[int, str]:
    return (_MODES.index(mode) if mode in _MODES else len(_MODES), mode)


class _Values:
    """Per (model, mode, kind): each reference's fidelity (seeds averaged), and elements checked."""

    def __init__(self, cases: Iterable[CaseResult]) -> None:
        per_seed: dict[tuple[str, str, str], dict[_RefKey, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.elements: dict[tuple[str, str, str], int] = defaultdict(int)
        self.checks: list[tuple[CaseResult, Mapping[str, Any]]] = []
        for case in cases:
            found = element_details(case) if case.status == "ok" else None
            if found is None:
                continue
            for kind, value in (found.get("kinds") or {}).items():
                per_seed[(case.model, case.mode, kind)][(case.reference_id, case.reference_sha256)].append(value)
            for check in found.get("checks") or []:
                if check.get("verdict") in VERDICT_SCORES:
                    self.elements[(case.model, case.mode, str(check.get("kind")))] += 1
                    self.checks.append((case, check))
        self.values = {key: {ref: statistics.fmean(v) for ref, v in refs.items()} for key, refs in per_seed.items()}
        self.cases = len({id(case) for case, _ in self.checks})


def _rows(values: _Values, options: Mapping[str, Any]) -> list[ElementKindRow]:
    order = sorted(values.values, key=lambda k: (k[0], _mode_key(k[1]), ELEMENT_KINDS.index(k[2])))
    samples = [sorted(values.values[key].values()) for key in order]
    intervals = stats.mean_intervals(samples, bounds=(0.0, 1.0), **options)  # a fidelity is in [0, 1]
    rows = []
    for (model, mode, kind), sample, found in zip(order, samples, intervals, strict=True):
        low, high, method = found or (None, None, None)
        rows.append(
            ElementKindRow(
                model=model,
                mode=mode,
                kind=kind,
                n=len(sample),
                elements=values.elements[(model, mode, kind)],
                fidelity=statistics.fmean(sample),
                ci_low=low,
                ci_high=high,
                ci_method=method,
                small_n=0 < len(sample) < stats.SMALL_N,
            )
        )
    return rows


def _pair(values: _Values, mode: str, kind: str, a: str, b: str) -> tuple[list[float], list[float]]:
    left, right = values.values[(a, mode, kind)], values.values[(b, mode, kind)]
    shared = sorted(set(left) & set(right))
    return [left[r] for r in shared], [right[r] for r in shared]


def _compare(
    values: _Values, mode: str, kind: str, first: str, second: str, options: Mapping[str, Any]
) -> tuple[dict[str, Any], stats.PairedComparison, Any] | None:
    """Two models on one kind, the one with the higher mean as A; None when they share no reference."""
    x, y = _pair(values, mode, kind, first, second)
    if not x:
        return None
    a, b = (first, second) if statistics.fmean(x) >= statistics.fmean(y) else (second, first)
    x, y = (x, y) if a == first else (y, x)
    c = stats.paired_comparison(x, y, interval=False, **options)
    fields: dict[str, Any] = {
        "mode": mode, "kind": kind, "model_a": a, "model_b": b, **PairedDifference.fields_of(c),
        "p_value": c.p_value, "effect_size": c.effect_size, "family": f"elements:{mode}",
    }  # fmt: skip
    return fields, c, stats.paired_differences(x, y)


def _comparisons(values: _Values, options: Mapping[str, Any]) -> list[ElementComparison]:
    out: list[ElementComparison] = []
    for mode in sorted({k[1] for k in values.values}, key=_mode_key):
        found = []
        for kind in [k for k in ELEMENT_KINDS if any(v[1:] == (mode, k) for v in values.values)]:
            models = sorted(m for m, md, k in values.values if (md, k) == (mode, kind))
            pairs = [(first, second) for i, first in enumerate(models) for second in models[i + 1 :]]
            found += [f for first, second in pairs if (f := _compare(values, mode, kind, first, second, options))]
        adjusted = stats.adjust_p_values([c.p_value for _, c, _ in found])
        intervals = stats.mean_intervals([d for _, _, d in found], bounds=(-1.0, 1.0), **options)
        for (fields, _, _), q, interval in zip(found, adjusted, intervals, strict=True):
            low, high, method = interval or (None, None, None)
            out.append(ElementComparison(**fields, p_adjusted=q, ci_low=low, ci_high=high, ci_method=method))
    return out


def _kind_lag(values: _Values, model: str, mode: str, kind: str) -> float:
    """How far ``model``'s mean fidelity on ``kind`` falls below the best other model's in ``mode`` (0 if none)."""
    means = {m: statistics.fmean(v.values()) for (m, md, k), v in values.values.items() if (md, k) == (mode, kind)}
    others = [v for m, v in means.items() if m != model]
    return max(others) - means[model] if others and model in means else 0.0


def _lost(values: _Values) -> list[ElementLoss]:
    best: dict[tuple[str, str, str, str], dict[str, float]] = defaultdict(dict)
    for case, check in values.checks:
        key = (case.mode, case.reference_id, case.reference_sha256, str(check.get("id")))
        score = VERDICT_SCORES[check["verdict"]]
        best[key][case.model] = max(score, best[key].get(case.model, 0.0))
    ranked: dict[tuple[str, str], list[tuple[float, float, float, str, str, ElementLoss]]] = defaultdict(list)
    for case, check in values.checks:
        if check["verdict"] == "yes":
            continue
        key = (case.mode, case.reference_id, case.reference_sha256, str(check.get("id")))
        others = [s for m, s in best[key].items() if m != case.model]
        own = VERDICT_SCORES[check["verdict"]]
        loss = ElementLoss(
            model=case.model,
            mode=case.mode,
            reference_id=case.reference_id,
            element_id=str(check.get("id")),
            kind=str(check.get("kind")),
            text=str(check.get("text", "")),
            verdict=str(check["verdict"]),
            reason=str(check.get("reason") or ""),
            others_best=max(others) if others else None,
        )
        gap = (max(others) if others else own) - own
        lag = _kind_lag(values, case.model, case.mode, loss.kind)
        ranked[(case.model, case.mode)].append((-gap, -lag, own, case.reference_id, loss.element_id, loss))
    out: list[ElementLoss] = []
    for model, mode in sorted(ranked, key=lambda mm: (mm[0], _mode_key(mm[1]))):
        seen: set[tuple[str, str]] = set()
        for *_, loss in sorted(ranked[(model, mode)], key=lambda r: r[:5]):
            if (loss.reference_id, loss.element_id) not in seen and len(seen) < LOST_PER_MODEL:
                seen.add((loss.reference_id, loss.element_id))
                out.append(loss)
    return out


def build_element_board(
    cases: Iterable[CaseResult],
    *,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> ElementBoard | None:
    """The ``elements`` section of the leaderboard of ``cases``; None when no case has element verdicts.

    The same cases give the same section in any order (cases are read sorted by ``case_id``).
    """
    values = _Values(sorted(cases, key=lambda c: c.case_id))
    if not values.values:
        return None
    options = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    return ElementBoard(
        kinds=[k for k in ELEMENT_KINDS if any(key[2] == k for key in values.values)],
        cases=values.cases,
        rows=_rows(values, options),
        comparisons=_comparisons(values, options),
        lost=_lost(values),
    )
