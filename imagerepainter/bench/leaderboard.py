"""Leaderboards of a benchmark run, and the reports written from them.

:func:`build_leaderboard` turns the case records (:class:`~imagerepainter.bench.records.CaseResult`)
into a typed :class:`Leaderboard`:

* **rows**, one per model, mode and group (a :class:`~imagerepainter.bench.records.Group`:
  ``all``, one per category, one per style; the files write it ``all``, ``category:<c>``,
  ``style:<s>``): n, mean, sample standard deviation and 95% interval of the
  primary metric (:func:`~imagerepainter.bench.stats.mean_interval`), the rank within the mode
  and group, the failed and missing cases beside it, and the mean of every metric;
* **gains**: ``repaint`` minus ``single`` per model and group, paired on the same references;
* **comparisons**: every pair of models in each mode, on the references both finished:
  a Wilcoxon signed-rank test, the rank-biserial effect size and a win rate
  (:mod:`imagerepainter.bench.stats`);
* **failed**: every failed case with its error; **missing**: every finished case's metric
  value that is missing or not finite (NaN, ±inf);
* **describers**: with several describers (``--mllm NAME=SPEC``), their rows per model, their
  ranking per model with paired tests, and whether the best model depends on the describer
  (:mod:`~imagerepainter.bench.describer_board`); the main rows then count each reference once,
  its value the mean over the describers.

Which cases a row counts, for every column alike: the finished cases whose **primary** value is
a finite number. Their references are the row's ``n``; every metric column is the mean over
exactly those references, and is left empty (None) when one of them lacks a finite value of
that metric, rather than averaged over fewer. Failed cases are counted in ``failed``, finished
cases without a finite primary value in ``missing``; neither is averaged, both are listed.

**Ranks** compare models on the same references: within a mode and group, each model with a
mean is ranked by its mean over the references *every* such model counts (``shared_n``,
``shared_mean``), so a model that fails the hard references gains nothing by it. Models that
share no reference are not ranked.

**Families of tests**: the comparisons of one mode are one family (``pairs:<mode>``), all the
gains another (``gains``); each family's p-values are adjusted by Benjamini-Hochberg
(``p_adjusted``).

Pairs are matched on the reference (its id and sha256); when one model has several cases of a
reference in a mode (several seeds), their mean is that reference's value. The records are
sorted (by ``case_id``, values before summing) and intervals use a fixed seed: the same records
give the same report, in any order.

:func:`write_reports` writes ``leaderboard.csv``, ``leaderboard.md``, ``leaderboard.html``
(self-contained: the tables, an inline-SVG chart of the means with their intervals, and an
image grid of each reference beside every model's best image, as small embedded thumbnails)
and ``leaderboard.json`` (the :class:`Leaderboard` itself) into the output folder. The
reference image of a case is read from ``case.extra["reference_path"]`` (an absolute path) and
its best image from ``case.best_image`` (relative to the output folder).

Example:
    >>> from imagerepainter.bench.records import CaseResult
    >>> def case(model, ref, value, mode="single"):
    ...     return CaseResult(case_id=f"{model}-{ref}-{mode}", dataset="d", reference_id=ref,
    ...         reference_sha256=ref * 64, model=model, model_spec="sandbox", mode=mode, seed=0,
    ...         status="ok", metrics={"paper": value}, higher_is_better={"paper": True})
    >>> cases = [case("a", r, v) for r, v in zip("123", (0.8, 0.7, 0.9))]
    >>> cases += [case("b", r, v) for r, v in zip("123", (0.6, 0.5, 0.7))]
    >>> board = build_leaderboard(cases)
    >>> [(row.rank, row.model, round(row.mean, 2)) for row in board.rows]
    [(1, 'a', 0.8), (2, 'b', 0.6)]
    >>> pair = board.comparisons[0]
    >>> (pair.model_a, pair.model_b, pair.wins, pair.win_rate, pair.family)
    ('a', 'b', 3, 1.0, 'pairs:single')
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._files import atomic_write
from ..errors import ConfigurationError
from . import stats
from .costs import CostSection, cost_section
from .describer_board import DescriberBoard, build_describer_board
from .element_board import ElementBoard, build_element_board
from .environment import EnvironmentSection
from .prices import Prices
from .records import GROUP_ALL, CaseResult, Group, GroupText, as_group

__all__ = [
    "Comparison",
    "FailedCase",
    "Gain",
    "Leaderboard",
    "LeaderboardRow",
    "MissingValue",
    "build_leaderboard",
    "render_html",
    "render_markdown",
    "write_csv",
    "write_reports",
]

MODE_ORDER = ("single", "repaint")
REPORT_FILES = {
    "csv": "leaderboard.csv",
    "md": "leaderboard.md",
    "html": "leaderboard.html",
    "json": "leaderboard.json",
}
"""The files :func:`write_reports` writes, by key of its returned dict."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LeaderboardRow(_Record):
    """One model in one mode over one group of references."""

    model: str
    mode: str
    group: GroupText
    """The references the row counts; written ``"all"``, ``"category:<name>"`` or ``"style:<name>"``."""
    n: int
    """References the row counts: those with a finished case whose primary value is finite; several
    seeds of one reference are averaged first, so with one seed per reference this is the number of cases."""
    mean: float | None
    std: float | None
    """Sample standard deviation; None with fewer than two references."""
    ci_low: float | None
    """Interval of the mean (:attr:`ci_method`, fixed seed); None with fewer than two references."""
    ci_high: float | None
    rank: int | None
    """1 = best in its mode and group by :attr:`shared_mean`, in the metric's direction; None without one."""
    failed: int = 0
    """Failed cases of this model, mode and group: counted, listed, never averaged."""
    metrics: dict[str, float | None] = Field(default_factory=dict)
    """The mean of every metric over the row's ``n`` references; None when one of them lacks a finite value."""
    missing: int = 0
    """Finished cases without a finite primary value (NaN, ±inf, not computed): listed, never averaged."""
    shared_n: int = 0
    """References every ranked model of this mode and group counts: the ones the rank compares on."""
    shared_mean: float | None = None
    """The mean over those shared references: what :attr:`rank` orders."""
    ci_method: stats.IntervalMethod | None = None
    """``"bootstrap-t"``, ``"student-t"`` (2 or 3 references) or ``"constant"`` (identical values)."""
    small_n: bool = False
    """Fewer than :data:`~imagerepainter.bench.stats.SMALL_N` references: read :attr:`caution`."""
    caution: str | None = None
    """What a row this small can and cannot support; None from ``SMALL_N`` references on."""


def _paired_fields(c: stats.PairedComparison) -> dict[str, Any]:
    """The fields a gain and a comparison share, from one paired comparison."""
    return {
        "n": c.n,
        "ci_low": c.diff_ci_low,
        "ci_high": c.diff_ci_high,
        "wins": c.wins,
        "losses": c.losses,
        "ties": c.ties,
        "win_rate": c.win_rate,
        "p_value": c.p_value,
        "effect_size": c.effect_size,
        "ci_method": c.method,
        "small_n": 0 < c.n < stats.SMALL_N,
        "caution": stats.small_sample_note(c.n),
    }


class _Paired(_Record):
    """The fields of a paired test: the interval of the mean difference, wins, the test and its family."""

    n: int
    ci_low: float | None
    ci_high: float | None
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    """``(wins + ties / 2) / n``."""
    p_value: float | None
    """Two-sided Wilcoxon signed-rank p-value."""
    p_adjusted: float | None = None
    """Benjamini-Hochberg adjusted within :attr:`family`."""
    family: str = ""
    """The family of tests adjusted together: ``pairs:<mode>`` or ``gains``."""
    effect_size: float | None
    """Matched-pairs rank-biserial correlation (+1: the first better on every reference)."""
    ci_method: stats.IntervalMethod | None = None
    small_n: bool = False
    caution: str | None = None


class Gain(_Paired):
    """``repaint`` minus ``single`` for one model over one group, paired on the same references."""

    model: str
    group: GroupText
    single: float | None
    repaint: float | None
    gain: float | None
    """Mean of ``repaint - single`` in the metric's units (for a lower-is-better metric, negative is a gain)."""


class Comparison(_Paired):
    """Model A against model B in one mode, on the references both finished. A is the better-ranked."""

    mode: str
    group: GroupText
    model_a: str
    model_b: str
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    """Mean of ``A - B`` in the metric's units."""
    statistic: float | None


class FailedCase(_Record):
    """A case that failed, as listed in the reports."""

    case_id: str
    model: str
    mode: str
    reference_id: str
    category: str | None = None
    style: str | None = None
    error: str | None = None


class MissingValue(_Record):
    """A finished case's metric value that is missing or not a finite number: listed, never averaged."""

    case_id: str
    model: str
    mode: str
    reference_id: str
    metric: str
    reason: str
    """``"NaN"``, ``"inf"``, ``"-inf"`` or ``"not computed"``."""
    counted: bool
    """Whether the case still counts in its rows (it does when only another metric than the primary is missing)."""


class Leaderboard(_Record):
    """Everything the reports show, as data (``model_dump()`` is JSON-able)."""

    primary_metric: str
    higher_is_better: bool
    metrics: list[str]
    """Every metric seen, the primary first."""
    directions: dict[str, bool]
    """``higher_is_better`` of each metric."""
    models: list[str]
    modes: list[str]
    cases: int
    """Case records given (after de-duplication by ``case_id``)."""
    ok: int
    rows: list[LeaderboardRow]
    gains: list[Gain]
    comparisons: list[Comparison]
    failed: list[FailedCase]
    missing: list[MissingValue] = Field(default_factory=list)
    families: dict[str, int] = Field(default_factory=dict)
    """Each family of tests adjusted together, and how many tests it holds."""
    describers: DescriberBoard | None = None
    """With several describers (``--mllm NAME=SPEC``): their rows, rankings per model and the interaction
    (:mod:`~imagerepainter.bench.describer_board`); None with one."""
    confidence: float = stats.DEFAULT_CONFIDENCE
    n_resamples: int = stats.DEFAULT_RESAMPLES
    seed: int = stats.DEFAULT_SEED
    interval_method: str = "bootstrap-t (Student-t with 2 or 3 references)"
    elements: ElementBoard | None = None
    """Fidelity per element kind, with paired tests and lost elements, when the cases checked elements
    (the ``elements`` metric; :mod:`~imagerepainter.bench.element_board`); None otherwise."""
    costs: CostSection | None = None
    """What the cases used and, with prices, cost (:mod:`~imagerepainter.bench.costs`); None without a ledger."""
    environment: EnvironmentSection | None = None
    """What computed the numbers and what changed between evaluation calls (see :mod:`.environment`);
    ``None`` when the evaluation recorded no manifest."""

    def row(self, model: str, mode: str, group: Group | str = GROUP_ALL) -> LeaderboardRow | None:
        """The row of ``model`` in ``mode`` over ``group`` (a :class:`Group` or its text), if any."""
        key = (model, mode, as_group(group))
        return next((r for r in self.rows if (r.model, r.mode, r.group) == key), None)

    def ranking(self, mode: str, group: Group | str = GROUP_ALL) -> list[str]:
        """Models of ``mode`` over ``group`` (a :class:`Group` or its text), best first (models without a rank last)."""
        wanted = as_group(group)
        rows = [r for r in self.rows if r.mode == mode and r.group == wanted]
        return [r.model for r in sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.model))]


# ----------------------------------------------------------------------------- building

RefKey = tuple[str, str]
RowKey = tuple[str, str, Group]


def _groups(case: CaseResult) -> list[Group]:
    groups = [GROUP_ALL]
    if case.category:
        groups.append(Group.category(case.category))
    if case.style:
        groups.append(Group.style(case.style))
    return groups


def _mode_order(mode: str) -> tuple[int, str]:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _why_missing(value: Any) -> str | None:
    """Why ``value`` cannot be averaged, or None when it can."""
    if value is None:
        return "not computed"
    if _finite(value):
        return None
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _mean(values: Iterable[float]) -> float:
    """The mean of ``values`` sorted ascending: the same digits in any order."""
    return float(np.mean(np.sort(np.fromiter(values, dtype=np.float64))))


def _primary(cases: Sequence[CaseResult], primary_metric: str | None) -> str:
    if primary_metric:
        return primary_metric
    named = Counter(c.primary_metric for c in cases)
    if len(named) > 1:
        listing = ", ".join(f"{name!r} ({count} cases)" for name, count in named.most_common())
        raise ConfigurationError(
            f"The cases name different primary metrics: {listing}. Pass primary_metric= to choose one."
        )
    return next(iter(named)) if named else "paper"


def _directions(cases: Sequence[CaseResult]) -> dict[str, bool]:
    directions: dict[str, bool] = {}
    for case in cases:
        for name, higher in case.higher_is_better.items():
            if directions.setdefault(name, bool(higher)) != bool(higher):
                raise ConfigurationError(
                    f"The cases disagree on whether a higher {name!r} is better; they were computed with different "
                    "metrics under one name. Re-run them with one definition of the metric."
                )
    return directions


def _pair_key(case: CaseResult) -> RefKey:
    return (case.reference_id, case.reference_sha256)


def _paired(left: dict[RefKey, float], right: dict[RefKey, float]) -> tuple[list[float], list[float]]:
    keys = sorted(set(left) & set(right))
    return [left[k] for k in keys], [right[k] for k in keys]


@dataclass
class _Tally:
    """What the cases of one evaluation hold, per row: the counted cases' metrics by reference, the
    failed and missing counts, and the listings."""

    primary: str
    refs: defaultdict[RowKey, dict[RefKey, list[dict[str, float]]]] = field(default_factory=lambda: defaultdict(dict))
    failures: Counter[RowKey] = field(default_factory=Counter)
    missing_counts: Counter[RowKey] = field(default_factory=Counter)
    missing: list[MissingValue] = field(default_factory=list)
    keys: set[RowKey] = field(default_factory=set)
    cache: dict[tuple[RowKey, str], dict[RefKey, float | None]] = field(default_factory=dict)

    def add(self, case: CaseResult, metric_names: Sequence[str]) -> None:
        keys = [(case.model, str(case.mode), group) for group in _groups(case)]
        self.keys.update(keys)
        if case.status != "ok":
            self.failures.update(keys)
            return
        counted = _why_missing(case.metrics.get(self.primary)) is None
        for name in metric_names:
            reason = _why_missing(case.metrics.get(name))
            if reason is not None and (name in case.metrics or name == self.primary):
                self.missing.append(
                    MissingValue(case_id=case.case_id, model=case.model, mode=case.mode,
                                 reference_id=case.reference_id, metric=name, reason=reason, counted=counted)
                )  # fmt: skip
        if not counted:
            self.missing_counts.update(keys)
            return
        for key in keys:
            self.refs[key].setdefault(_pair_key(case), []).append(case.metrics)

    def values(self, key: RowKey, name: str) -> dict[RefKey, float | None]:
        """Each counted reference's value of ``name``: the mean over its cases, None when one lacks it."""
        found = self.cache.get((key, name))
        if found is None:
            found = self.cache[(key, name)] = {
                ref: _reference_value([c.get(name) for c in cases]) for ref, cases in sorted(self.refs[key].items())
            }
        return found

    def primary_values(self, key: RowKey) -> dict[RefKey, float]:
        return {ref: v for ref, v in self.values(key, self.primary).items() if v is not None}


def _reference_value(values: list[float | None]) -> float | None:
    """The mean of one reference's cases (sorted), or None when one of them lacks a finite value."""
    if not all(_finite(v) for v in values):
        return None
    return float(values[0]) if len(values) == 1 else _mean(v for v in values if v is not None)  # type: ignore[arg-type]


def _column_mean(values: dict[RefKey, float | None]) -> float | None:
    """The mean over every reference, or None when there is none or one lacks the value."""
    if not values or any(v is None for v in values.values()):
        return None
    return _mean(v for v in values.values() if v is not None)


def _row(key: RowKey, tally: _Tally, metric_names: Sequence[str], options: dict[str, Any]) -> LeaderboardRow:
    model, mode, group = key
    summary = stats.summarize(list(tally.primary_values(key).values()), interval=False, **options)
    return LeaderboardRow(
        model=model,
        mode=mode,
        group=group,
        n=summary.n,
        mean=summary.mean,
        std=summary.std,
        ci_low=summary.ci_low,
        ci_high=summary.ci_high,
        rank=None,
        failed=tally.failures[key],
        missing=tally.missing_counts[key],
        metrics={name: _column_mean(tally.values(key, name)) for name in metric_names},
        small_n=0 < summary.n < stats.SMALL_N,
        caution=stats.small_sample_note(summary.n),
    )


def build_leaderboard(
    cases: Iterable[CaseResult],
    *,
    primary_metric: str | None = None,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> Leaderboard:
    """Aggregate case records into a :class:`Leaderboard` (see the module docstring).

    Args:
        cases: The case records (any order, with the same report; a repeated ``case_id`` counts
            once, the last given wins).
        primary_metric: The metric to rank by; default: the cases' ``primary_metric``.
        confidence, n_resamples, seed: Of the intervals (:func:`~imagerepainter.bench.stats.mean_interval`).

    Raises:
        ConfigurationError: The cases name different primary metrics and none is given, or
            disagree on a metric's direction.
    """
    unique = sorted({c.case_id: c for c in cases}.values(), key=lambda c: c.case_id)
    primary = _primary(unique, primary_metric)
    directions = _directions(unique)
    higher = directions.setdefault(primary, True)
    ok = [c for c in unique if c.status == "ok"]
    metric_names = list(dict.fromkeys([primary, *sorted({name for c in ok for name in c.metrics} - {primary})]))
    options: dict[str, Any] = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    tally = _Tally(primary)
    for case in unique:
        tally.add(case, metric_names)
    order = sorted(tally.keys, key=lambda k: (_mode_order(k[1]), k[2].sort_key, k[0]))
    rows = _ranked([_row(key, tally, metric_names, options) for key in order], tally, higher)
    modes = sorted({str(c.mode) for c in unique}, key=_mode_order)
    gains = _gains(tally, modes, higher, options)
    comparisons = _comparisons(rows, tally, modes, higher, options)
    rows, gains, comparisons = _with_intervals(tally, rows, gains, comparisons, options)
    return Leaderboard(
        primary_metric=primary,
        higher_is_better=higher,
        metrics=metric_names,
        directions={name: directions.get(name, True) for name in metric_names},
        models=sorted({c.model for c in unique}),
        modes=modes,
        cases=len(unique),
        ok=len(ok),
        rows=rows,
        gains=gains,
        comparisons=comparisons,
        failed=[
            FailedCase.model_validate(c, from_attributes=True)  # the case's own fields, under the same names
            for c in sorted(unique, key=lambda c: (c.model, _mode_order(c.mode), c.reference_id, c.case_id))
            if c.status != "ok"
        ],
        missing=sorted(tally.missing, key=lambda m: (m.model, _mode_order(m.mode), m.reference_id, m.case_id)),
        families=dict(Counter(t.family for t in [*comparisons, *gains])),
        elements=build_element_board(unique, **options),
        describers=build_describer_board(unique, primary=primary, higher=higher, **options),
        **options,
    )


def _adjusted(found: list[tuple[dict[str, Any], stats.PairedComparison]], family: str) -> list[dict[str, Any]]:
    """The fields of each test of one family, with its Benjamini-Hochberg adjusted p-value."""
    adjusted = stats.adjust_p_values([c.p_value for _, c in found])
    return [
        {**fields, **_paired_fields(c), "p_adjusted": q, "family": family}
        for (fields, c), q in zip(found, adjusted, strict=True)
    ]


def _gains(tally: _Tally, modes: Sequence[str], higher: bool, options: dict[str, Any]) -> list[Gain]:
    """``repaint`` against ``single`` per model and group, on the references both count: one family."""
    if "single" not in modes or "repaint" not in modes:
        return []
    found = []
    for model, group in sorted({(k[0], k[2]) for k in tally.keys}, key=lambda mg: (mg[0], mg[1].sort_key)):
        single, repaint = (
            tally.primary_values((model, "single", group)),
            tally.primary_values((model, "repaint", group)),
        )
        if single and repaint:
            c = stats.paired_comparison(*_paired(repaint, single), higher_is_better=higher, interval=False, **options)
            found.append(({"model": model, "group": group, "single": c.mean_b, "repaint": c.mean_a,
                           "gain": c.mean_diff}, c))  # fmt: skip
    return [Gain(**fields) for fields in _adjusted(found, "gains")]


def _comparisons(
    rows: Sequence[LeaderboardRow], tally: _Tally, modes: Sequence[str], higher: bool, options: dict[str, Any]
) -> list[Comparison]:
    """Every pair of models per mode over all references, the better-ranked first: one family per mode."""
    out: list[Comparison] = []
    for mode in modes:
        ranked = [r.model for r in rows if r.mode == mode and r.group == GROUP_ALL and r.mean is not None]
        found = []
        for i, model_a in enumerate(ranked):
            for model_b in ranked[i + 1 :]:
                a = tally.primary_values((model_a, mode, GROUP_ALL))
                c = stats.paired_comparison(
                    *_paired(a, tally.primary_values((model_b, mode, GROUP_ALL))),
                    higher_is_better=higher,
                    interval=False,
                    **options,
                )
                found.append(({"mode": mode, "group": GROUP_ALL, "model_a": model_a, "model_b": model_b,
                               "mean_a": c.mean_a, "mean_b": c.mean_b, "mean_diff": c.mean_diff,
                               "statistic": c.statistic}, c))  # fmt: skip
        out += [Comparison(**fields) for fields in _adjusted(found, f"pairs:{mode}")]
    return out


def _with_intervals(
    tally: _Tally, rows: list[LeaderboardRow], gains: list[Gain], comparisons: list[Comparison], options: dict[str, Any]
) -> tuple[list[LeaderboardRow], list[Gain], list[Comparison]]:
    """Every interval of the board in one :func:`~imagerepainter.bench.stats.mean_intervals` call: samples
    of one size share their resample draws (the same digits as one by one, for a fraction of the work)."""
    values = tally.primary_values
    samples: list[Sequence[float] | np.ndarray] = [list(values((r.model, r.mode, r.group)).values()) for r in rows]
    samples += [
        stats.paired_differences(*_paired(values((g.model, "repaint", g.group)), values((g.model, "single", g.group))))
        for g in gains
    ]
    samples += [
        stats.paired_differences(*_paired(values((c.model_a, c.mode, c.group)), values((c.model_b, c.mode, c.group))))
        for c in comparisons
    ]
    found = iter(stats.mean_intervals(samples, **options))

    def update(record: Any) -> Any:
        low, high, method = next(found) or (None, None, None)
        return record.model_copy(update={"ci_low": low, "ci_high": high, "ci_method": method})

    return [update(r) for r in rows], [update(g) for g in gains], [update(c) for c in comparisons]


def _ranked(rows: list[LeaderboardRow], tally: _Tally, higher: bool) -> list[LeaderboardRow]:
    """Rank rows within their mode and group by their mean over the references all of them count.

    Best first; rows without a mean, or in a block whose models share no reference, go last, unranked.
    """
    out: list[LeaderboardRow] = []
    blocks: dict[tuple[str, Group], list[LeaderboardRow]] = defaultdict(list)
    for row in rows:
        blocks[(row.mode, row.group)].append(row)
    for (mode, group), block in blocks.items():
        scored = [r for r in block if r.mean is not None]
        values = {r.model: tally.primary_values((r.model, mode, group)) for r in scored}
        shared = set.intersection(*(set(v) for v in values.values())) if values else set()
        if shared:
            scored = [
                r.model_copy(update={"shared_n": len(shared), "shared_mean": _mean(values[r.model][k] for k in shared)})
                for r in scored
            ]
            scored.sort(key=lambda r: ((-1.0 if higher else 1.0) * (r.shared_mean or 0.0), r.model))
            out += [r.model_copy(update={"rank": i}) for i, r in enumerate(scored, start=1)]
        out += sorted((r for r in block if r.mean is None or not shared), key=lambda r: r.model)
    return out


# ----------------------------------------------------------------------------- html


def render_html(board: Leaderboard, cases: Sequence[CaseResult], out_dir: Path, **options: Any) -> str:
    """The leaderboard as one self-contained HTML page.

    See :func:`~imagerepainter.bench.leaderboard_html.render_leaderboard_html` for the options; it is
    imported on use, since that module builds on this one.
    """
    from .leaderboard_html import render_leaderboard_html

    return render_leaderboard_html(board, cases, out_dir, **options)


def write_csv(board: Leaderboard) -> str:
    """The rows as CSV (:func:`imagerepainter.bench.leaderboard_text.write_csv`)."""
    from .leaderboard_text import write_csv as csv_text

    return csv_text(board)


def render_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown (:func:`imagerepainter.bench.leaderboard_text.render_markdown`)."""
    from .leaderboard_text import render_markdown as markdown

    return markdown(board)


def write_reports(
    cases: Sequence[CaseResult],
    out_dir: Path | str,
    *,
    primary_metric: str | None = None,
    title: str = "Image Regeneration leaderboard",
    prices: Prices | None = None,
    budget_stop: Mapping[str, float] | None = None,
    environment: EnvironmentSection | None = None,
) -> dict[str, Path]:
    """Build the leaderboard of ``cases`` and write every report into ``out_dir``; return their paths.

    With ``prices`` the cost section shows dollars; ``budget_stop`` says a budget stopped the
    evaluation (see :func:`~imagerepainter.bench.costs.cost_section`).

    Writes ``leaderboard.csv``, ``leaderboard.md``, ``leaderboard.html`` and ``leaderboard.json``
    (keys ``"csv"``, ``"md"``, ``"html"``, ``"json"``), each atomically: a reader never sees half
    a file, and the reports can be rebuilt at any time from the same records. ``environment``
    (:func:`~imagerepainter.bench.environment.environment_section` of the results database) adds
    the environment section to every report but the CSV.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    board = build_leaderboard(cases, primary_metric=primary_metric)
    costs = cost_section(cases, gains=board.gains, prices=prices, budget_stop=budget_stop)
    board = board.model_copy(update={"costs": costs} | ({"environment": environment} if environment else {}))
    return {
        "csv": atomic_write(folder / REPORT_FILES["csv"], write_csv(board)),
        "md": atomic_write(folder / REPORT_FILES["md"], render_markdown(board)),
        "html": atomic_write(folder / REPORT_FILES["html"], render_html(board, cases, folder, title=title)),
        "json": atomic_write(folder / REPORT_FILES["json"], board.model_dump_json(indent=2) + "\n"),
    }
