"""The describer section of a leaderboard: which MLLM's descriptions regenerate best, per model.

An evaluation with several named describers (``--mllm a=SPEC --mllm b=SPEC``; see
:mod:`~imagerepainter.bench.describer_specs`) has one case per (reference, model, mode,
describer). :func:`build_describer_board` aggregates them over every reference into a
:class:`DescriberBoard`, the ``describers`` field of the
:class:`~imagerepainter.bench.leaderboard.Leaderboard` (``None`` with one describer, so a
one-MLLM leaderboard is as it always was):

* **rows**, one per (describer, model, mode): n, mean, standard deviation and interval of the
  primary metric, exactly as the main rows count them (the finished cases with a finite primary
  value; several seeds of a reference averaged first); ``rank`` is the describer's rank among
  the describers of that model and mode, ``model_rank`` the model's among the models that
  describer's descriptions drew, both by their means over the references every ranked entry
  counts (``shared_n``, ``shared_mean``);
* **comparisons**: every pair of describers per (model, mode), paired on the references both
  finished: the Wilcoxon signed-rank test, the rank-biserial effect size, the win rate and the
  interval of the mean difference (:mod:`~imagerepainter.bench.stats`, as for models). Each
  (model, mode) is one family of tests, ``describers:<mode>:<model>``, adjusted by
  Benjamini-Hochberg (``p_adjusted``);
* **interactions**, one per mode: each describer's best model and its order of the models, and
  whether they change between describers (does the best T2I model depend on the describer?).

The main rows of the leaderboard, over all describers, count a reference once per model and
mode: its value is the mean over the describers' cases (as over seeds).

Example:
    >>> from imagerepainter.bench.records import CaseResult
    >>> def case(describer, ref, value):
    ...     return CaseResult(case_id=f"{describer}-{ref}", dataset="d", reference_id=ref, reference_sha256=ref * 64,
    ...         model="m", model_spec="sandbox", describer=describer, mode="single", seed=0, status="ok",
    ...         metrics={"paper": value}, higher_is_better={"paper": True})
    >>> cases = [case("sharp", r, 0.8 + i / 100) for i, r in enumerate("123456")]
    >>> cases += [case("dull", r, 0.5 + i / 50) for i, r in enumerate("123456")]
    >>> board = build_describer_board(cases, primary="paper", higher=True)
    >>> board.ranking("m", "single"), board.comparisons[0].wins, round(board.comparisons[0].p_value, 3)
    (['sharp', 'dull'], 6, 0.031)
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from . import stats
from .records import CaseResult
from .section_records import PairedDifference, Record

__all__ = [
    "DescriberBoard",
    "DescriberComparison",
    "DescriberInteraction",
    "DescriberPair",
    "DescriberRow",
    "InteractionContrast",
    "build_describer_board",
]

Key = tuple[str, str, str]
"""(describer, model, mode)."""
Ref = tuple[str, str]
"""A reference: its id and sha256."""


class DescriberRow(Record):
    """One describer with one model in one mode, over every reference."""

    describer: str
    model: str
    mode: str
    n: int
    """References counted: finished cases with a finite primary value (seeds of a reference averaged)."""
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: stats.IntervalMethod | None = None
    rank: int | None = None
    """1 = the best describer for this model and mode, by :attr:`shared_mean`; None without a mean."""
    shared_n: int = 0
    """References every ranked describer of this model and mode counts: what :attr:`rank` compares on."""
    shared_mean: float | None = None
    model_rank: int | None = None
    """The model's rank among the models this describer's descriptions drew, in this mode."""
    failed: int = 0
    small_n: bool = False
    caution: str | None = None


class DescriberPair(Record):
    """Which two describers a :class:`DescriberComparison` compares, for which model and mode."""

    model: str
    mode: str
    describer_a: str
    """The better-ranked describer."""
    describer_b: str


class DescriberComparison(PairedDifference, DescriberPair):
    """Describer A against describer B for one model and mode, on the references both finished; A ranks better."""

    win_rate: float | None
    statistic: float | None
    p_value: float | None
    """Two-sided Wilcoxon signed-rank p-value."""
    p_adjusted: float | None = None
    """Benjamini-Hochberg adjusted within :attr:`family`."""
    family: str
    """``describers:<mode>:<model>``: the tests adjusted together."""
    effect_size: float | None
    small_n: bool = False
    caution: str | None = None


class InteractionContrast(Record):
    """Does the gap between two models change with the describer? Model A's lead over B with describer X
    against the same lead with describer Y, paired on the references all four finished."""

    model_a: str
    model_b: str
    describer_x: str
    describer_y: str
    n: int
    gap_x: float | None
    """Mean of ``A - B`` over the references, with describer X."""
    gap_y: float | None
    """The same with describer Y."""
    difference: float | None
    """``gap_x - gap_y``: how much more A leads with X than with Y (0: the describer does not matter)."""
    p_value: float | None
    """Two-sided Wilcoxon signed-rank test of the per-reference ``(A - B with X) - (A - B with Y)``."""
    p_adjusted: float | None = None
    """Benjamini-Hochberg adjusted within :attr:`family`."""
    family: str
    """``interaction:<mode>``: every contrast of the mode."""


class DescriberInteraction(Record):
    """Does the best model depend on the describer? One mode's answer."""

    mode: str
    best_model: dict[str, str | None]
    """Each describer's best-ranked model (None: none ranked)."""
    model_order: dict[str, list[str]]
    """Each describer's models, best first (ranked models only)."""
    same_best: bool
    """Every describer ranks the same model first."""
    same_order: bool
    """Every describer ranks the models in the same order."""
    contrasts: list[InteractionContrast] = Field(default_factory=list)
    """Each pair of models against each pair of describers (none with one model)."""


class DescriberBoard(Record):
    """The describer section of a leaderboard (see the module docstring)."""

    describers: list[str]
    rows: list[DescriberRow]
    comparisons: list[DescriberComparison]
    interactions: list[DescriberInteraction] = Field(default_factory=list)
    families: dict[str, int] = Field(default_factory=dict)

    def row(self, describer: str, model: str, mode: str) -> DescriberRow | None:
        """The row of ``describer`` with ``model`` in ``mode``, if any."""
        return next((r for r in self.rows if (r.describer, r.model, r.mode) == (describer, model, mode)), None)

    def ranking(self, model: str, mode: str) -> list[str]:
        """The describers of ``model`` in ``mode``, best first (unranked last)."""
        rows = [r for r in self.rows if (r.model, r.mode) == (model, mode)]
        return [r.describer for r in sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.describer))]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mean(values: Iterable[float]) -> float:
    return float(np.mean(np.sort(np.fromiter(values, dtype=np.float64))))


def _tally(cases: Sequence[CaseResult], primary: str) -> tuple[dict[Key, dict[Ref, float]], Counter[Key]]:
    """Each (describer, model, mode)'s value per reference (its cases' mean), and its failed cases."""
    found: defaultdict[Key, defaultdict[Ref, list[float]]] = defaultdict(lambda: defaultdict(list))
    failed: Counter[Key] = Counter()
    for case in cases:
        key = (case.describer, case.model, str(case.mode))
        found[key]
        value = case.metrics.get(primary)
        if case.status != "ok":
            failed[key] += 1
        elif _finite(value):
            found[key][(case.reference_id, case.reference_sha256)].append(float(value))  # type: ignore[arg-type]
    values = {key: {ref: _mean(v) for ref, v in sorted(refs.items())} for key, refs in found.items()}
    return values, failed


def _ranks(entries: dict[str, dict[Ref, float]], higher: bool) -> dict[str, tuple[int, int, float]]:
    """Rank, shared n and shared mean of each entry with values, over the references all of them count."""
    scored = {name: v for name, v in entries.items() if v}
    shared = set.intersection(*(set(v) for v in scored.values())) if scored else set()
    if not shared:
        return {}
    means = {name: _mean(v[ref] for ref in shared) for name, v in scored.items()}
    order = sorted(means, key=lambda name: ((-1.0 if higher else 1.0) * means[name], name))
    return {name: (i, len(shared), means[name]) for i, name in enumerate(order, start=1)}


def _row(key: Key, refs: dict[Ref, float], failed: int, options: dict[str, Any]) -> DescriberRow:
    summary = stats.summarize(list(refs.values()), interval=False, **options)
    return DescriberRow(
        describer=key[0], model=key[1], mode=key[2], n=summary.n, mean=summary.mean, std=summary.std,
        ci_low=None, ci_high=None, failed=failed, small_n=0 < summary.n < stats.SMALL_N,
        caution=stats.small_sample_note(summary.n),
    )  # fmt: skip


def build_describer_board(
    cases: Iterable[CaseResult],
    *,
    primary: str,
    higher: bool,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> DescriberBoard | None:
    """The describer section of ``cases`` (see the module docstring); ``None`` with fewer than two describers."""
    unique = sorted({c.case_id: c for c in cases}.values(), key=lambda c: c.case_id)
    describers = list(dict.fromkeys(sorted(c.describer for c in unique)))
    if len(describers) < 2:
        return None
    options: dict[str, Any] = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    values, failed = _tally(unique, primary)
    rows = [_row(key, values[key], failed[key], options) for key in sorted(values)]
    rows = _ranked(rows, values, higher)
    comparisons = _comparisons(rows, values, higher, options)
    rows, comparisons = _with_intervals(rows, comparisons, values, options)
    interactions = _interactions(rows, values, higher, options)
    return DescriberBoard(
        describers=describers,
        rows=rows,
        comparisons=comparisons,
        interactions=interactions,
        families=dict(
            Counter([*(c.family for c in comparisons), *(t.family for i in interactions for t in i.contrasts)])
        ),
    )


def _ranked(rows: list[DescriberRow], values: dict[Key, dict[Ref, float]], higher: bool) -> list[DescriberRow]:
    """Each row's describer rank (within its model and mode) and model rank (within its describer and mode)."""
    by_model: defaultdict[tuple[str, str], dict[str, dict[Ref, float]]] = defaultdict(dict)
    by_describer: defaultdict[tuple[str, str], dict[str, dict[Ref, float]]] = defaultdict(dict)
    for describer, model, mode in values:
        by_model[(model, mode)][describer] = values[(describer, model, mode)]
        by_describer[(describer, mode)][model] = values[(describer, model, mode)]
    describer_ranks = {key: _ranks(entries, higher) for key, entries in by_model.items()}
    model_ranks = {key: _ranks(entries, higher) for key, entries in by_describer.items()}
    out = []
    for row in rows:
        rank = describer_ranks[(row.model, row.mode)].get(row.describer)
        model_rank = model_ranks[(row.describer, row.mode)].get(row.model)
        update: dict[str, Any] = {"model_rank": model_rank[0] if model_rank else None}
        if rank is not None:
            update |= {"rank": rank[0], "shared_n": rank[1], "shared_mean": rank[2]}
        out.append(row.model_copy(update=update))
    order = {mode: i for i, mode in enumerate(("single", "repaint"))}
    return sorted(out, key=lambda r: (order.get(r.mode, 2), r.mode, r.model, r.rank is None, r.rank or 0, r.describer))


def _pair(a: dict[Ref, float], b: dict[Ref, float]) -> tuple[list[float], list[float]]:
    refs = sorted(set(a) & set(b))
    return [a[r] for r in refs], [b[r] for r in refs]


def _comparisons(
    rows: Sequence[DescriberRow], values: dict[Key, dict[Ref, float]], higher: bool, options: dict[str, Any]
) -> list[DescriberComparison]:
    """Every pair of ranked describers per (model, mode), the better first: one family each."""
    out: list[DescriberComparison] = []
    for (model, mode), block in itertools.groupby(rows, key=lambda r: (r.model, r.mode)):
        ranked = [r.describer for r in block if r.rank is not None]
        found = []
        for a, b in itertools.combinations(ranked, 2):
            pair = _pair(values[(a, model, mode)], values[(b, model, mode)])
            found.append((a, b, stats.paired_comparison(*pair, higher_is_better=higher, interval=False, **options)))
        adjusted = stats.adjust_p_values([c.p_value for _, _, c in found])
        for (a, b, c), q in zip(found, adjusted, strict=True):
            out.append(
                DescriberComparison(
                    model=model, mode=mode, describer_a=a, describer_b=b, **PairedDifference.fields_of(c),
                    win_rate=c.win_rate, statistic=c.statistic, p_value=c.p_value, p_adjusted=q,
                    family=f"describers:{mode}:{model}", effect_size=c.effect_size,
                    small_n=0 < c.n < stats.SMALL_N, caution=stats.small_sample_note(c.n),
                )
            )  # fmt: skip
    return out


def _with_intervals(
    rows: list[DescriberRow],
    comparisons: list[DescriberComparison],
    values: dict[Key, dict[Ref, float]],
    options: dict[str, Any],
) -> tuple[list[DescriberRow], list[DescriberComparison]]:
    """Every interval in one :func:`~imagerepainter.bench.stats.mean_intervals` call (shared resample draws)."""
    samples: list[Sequence[float] | np.ndarray] = [list(values[(r.describer, r.model, r.mode)].values()) for r in rows]
    samples += [
        stats.paired_differences(
            *_pair(values[(c.describer_a, c.model, c.mode)], values[(c.describer_b, c.model, c.mode)])
        )
        for c in comparisons
    ]
    found = iter(stats.mean_intervals(samples, **options))

    def update(record: Any) -> Any:
        low, high, method = next(found) or (None, None, None)
        return record.model_copy(update={"ci_low": low, "ci_high": high, "ci_method": method})

    return [update(r) for r in rows], [update(c) for c in comparisons]


def _interactions(
    rows: Sequence[DescriberRow], values: dict[Key, dict[Ref, float]], higher: bool, options: dict[str, Any]
) -> list[DescriberInteraction]:
    """Per mode: each describer's order of the models, whether it is the same for all, and the contrasts."""
    out = []
    for mode in dict.fromkeys(r.mode for r in rows):
        orders: dict[str, list[str]] = {}
        for describer in sorted({r.describer for r in rows if r.mode == mode}):
            ranked = [r for r in rows if (r.mode, r.describer) == (mode, describer) and r.model_rank is not None]
            orders[describer] = [r.model for r in sorted(ranked, key=lambda r: r.model_rank or 0)]
        best = {d: (order[0] if order else None) for d, order in orders.items()}
        out.append(
            DescriberInteraction(
                mode=mode,
                best_model=best,
                model_order=orders,
                same_best=len(set(best.values())) == 1,
                same_order=len({tuple(o) for o in orders.values()}) == 1,
                contrasts=_contrasts(
                    mode, sorted({r.model for r in rows if r.mode == mode}), list(orders), values, higher, options
                ),
            )
        )
    return out


def _contrasts(
    mode: str,
    models: Sequence[str],
    describers: Sequence[str],
    values: dict[Key, dict[Ref, float]],
    higher: bool,
    options: dict[str, Any],
) -> list[InteractionContrast]:
    """Every (pair of models, pair of describers) of a mode: does A's lead over B change with the describer?"""
    found = []
    for (a, b), (x, y) in itertools.product(itertools.combinations(models, 2), itertools.combinations(describers, 2)):
        cells = [values.get((d, m, mode), {}) for d, m in ((x, a), (x, b), (y, a), (y, b))]
        refs = sorted(set.intersection(*(set(c) for c in cells)))
        if not refs:
            continue
        with_x = [cells[0][r] - cells[1][r] for r in refs]
        with_y = [cells[2][r] - cells[3][r] for r in refs]
        test = stats.paired_comparison(with_x, with_y, higher_is_better=higher, interval=False, **options)
        found.append(((a, b, x, y), test))
    adjusted = stats.adjust_p_values([t.p_value for _, t in found])
    return [
        InteractionContrast(model_a=a, model_b=b, describer_x=x, describer_y=y, n=t.n, gap_x=t.mean_a, gap_y=t.mean_b,
                            difference=t.mean_diff, p_value=t.p_value, p_adjusted=q, family=f"interaction:{mode}")
        for ((a, b, x, y), t), q in zip(found, adjusted, strict=True)
    ]  # fmt: skip
