"""Leaderboards of a benchmark run, and the reports written from them.

:func:`build_leaderboard` turns the case records (:class:`~imagerepainter.bench.records.CaseResult`)
into a typed :class:`Leaderboard`:

* **rows**, one per model, mode and group (``all``, ``category:<c>`` for each category,
  ``style:<s>`` for each style): n, mean, sample standard deviation and bootstrap 95%
  interval of the primary metric, the rank within the mode and group, the number of failed
  cases, and the mean of every metric;
* **gains**: ``repaint`` minus ``single`` per model and group, paired on the same references;
* **comparisons**: every pair of models in each mode, on the references both finished:
  a Wilcoxon signed-rank test, its Benjamini-Hochberg adjusted p-value within the mode, the
  rank-biserial effect size and a win rate (:mod:`imagerepainter.bench.stats`);
* **failed**: every failed case with its error. Failed cases are counted, listed and never
  averaged (nor is a case whose primary metric is missing or not finite).

Pairs are matched on the reference (its id and sha256); when one model has several cases of a
reference in a mode (several seeds), their mean is that reference's value. Intervals and tests
use a fixed seed: the same records give the same report.

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
    >>> (pair.model_a, pair.model_b, pair.wins, pair.win_rate)
    ('a', 'b', 3, 1.0)
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._files import atomic_write
from ..errors import ConfigurationError
from . import stats
from .records import CaseResult

__all__ = [
    "Comparison",
    "FailedCase",
    "Gain",
    "Leaderboard",
    "LeaderboardRow",
    "build_leaderboard",
    "render_html",
    "render_markdown",
    "write_csv",
    "write_reports",
]

GROUP_ALL = "all"
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
    group: str
    """``"all"``, ``"category:<name>"`` or ``"style:<name>"``."""
    n: int
    """References with a value of the primary metric (failed cases excluded); several seeds of one
    reference are averaged first, so with one seed per reference this is the number of cases."""
    mean: float | None
    std: float | None
    """Sample standard deviation; None with fewer than two cases."""
    ci_low: float | None
    """Bootstrap interval of the mean (BCa, fixed seed); None with fewer than two cases."""
    ci_high: float | None
    rank: int | None
    """1 = best in its mode and group (by mean, in the metric's direction); None without a mean."""
    failed: int = 0
    """Failed cases of this model, mode and group: counted, never averaged."""
    metrics: dict[str, float | None] = Field(default_factory=dict)
    """The mean of every metric over the group's references (finished cases only)."""


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
    }


class Gain(_Record):
    """``repaint`` minus ``single`` for one model over one group, paired on the same references."""

    model: str
    group: str
    n: int
    """References finished in both modes."""
    single: float | None
    repaint: float | None
    gain: float | None
    """Mean of ``repaint - single`` in the metric's units (for a lower-is-better metric, negative is a gain)."""
    ci_low: float | None
    ci_high: float | None
    wins: int
    """References where ``repaint`` is better."""
    losses: int
    ties: int
    win_rate: float | None
    p_value: float | None
    effect_size: float | None


class Comparison(_Record):
    """Model A against model B in one mode, on the references both finished. A is the better-ranked."""

    mode: str
    group: str
    model_a: str
    model_b: str
    n: int
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    """Mean of ``A - B`` in the metric's units."""
    ci_low: float | None
    ci_high: float | None
    wins: int
    """References where A is better."""
    losses: int
    ties: int
    win_rate: float | None
    """``(wins + ties / 2) / n``."""
    statistic: float | None
    p_value: float | None
    """Two-sided Wilcoxon signed-rank p-value."""
    p_adjusted: float | None
    """Benjamini-Hochberg adjusted over the mode's comparisons."""
    effect_size: float | None
    """Matched-pairs rank-biserial correlation (+1: A better on every reference)."""


class FailedCase(_Record):
    """A case that failed, as listed in the reports."""

    case_id: str
    model: str
    mode: str
    reference_id: str
    category: str | None = None
    style: str | None = None
    error: str | None = None


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
    confidence: float = stats.DEFAULT_CONFIDENCE
    n_resamples: int = stats.DEFAULT_RESAMPLES
    seed: int = stats.DEFAULT_SEED

    def row(self, model: str, mode: str, group: str = GROUP_ALL) -> LeaderboardRow | None:
        """The row of ``model`` in ``mode`` over ``group``, if any."""
        return next((r for r in self.rows if (r.model, r.mode, r.group) == (model, mode, group)), None)

    def ranking(self, mode: str, group: str = GROUP_ALL) -> list[str]:
        """Models of ``mode`` over ``group``, best first (models without a mean last)."""
        rows = [r for r in self.rows if r.mode == mode and r.group == group]
        return [r.model for r in sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.model))]


# ----------------------------------------------------------------------------- building


def _groups(case: CaseResult) -> list[str]:
    groups = [GROUP_ALL]
    if case.category:
        groups.append(f"category:{case.category}")
    if case.style:
        groups.append(f"style:{case.style}")
    return groups


def _group_order(group: str) -> tuple[int, str]:
    kind = group.split(":", 1)[0]
    return ({GROUP_ALL: 0, "category": 1, "style": 2}.get(kind, 3), group)


def _mode_order(mode: str) -> tuple[int, str]:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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


def _pair_key(case: CaseResult) -> tuple[str, str]:
    return (case.reference_id, case.reference_sha256)


def _paired(left: dict[tuple[str, str], float], right: dict[tuple[str, str], float]) -> tuple[list[float], list[float]]:
    keys = sorted(set(left) & set(right))
    return [left[k] for k in keys], [right[k] for k in keys]


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
        cases: The case records (any order; a repeated ``case_id`` counts once, the last wins).
        primary_metric: The metric to rank by; default: the cases' ``primary_metric``.
        confidence, n_resamples, seed: Of the bootstrap intervals.

    Raises:
        ConfigurationError: The cases name different primary metrics and none is given, or
            disagree on a metric's direction.
    """
    unique = list({c.case_id: c for c in cases}.values())
    primary = _primary(unique, primary_metric)
    directions = _directions(unique)
    higher = directions.get(primary, True)
    ok = [c for c in unique if c.status == "ok"]
    failed = [c for c in unique if c.status != "ok"]
    metric_names = list(dict.fromkeys([primary, *(name for c in ok for name in c.metrics)]))
    if primary not in directions:
        directions[primary] = higher
    models = sorted({c.model for c in unique})
    modes = sorted({str(c.mode) for c in unique}, key=_mode_order)
    summary_options: dict[str, Any] = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}

    # (model, mode, group) -> reference -> metric -> values (several when a reference has several seeds).
    per_reference: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    failures: Counter[tuple[str, str, str]] = Counter()
    keys: set[tuple[str, str, str]] = set()
    for case in unique:
        for group in _groups(case):
            key: tuple[str, str, str] = (case.model, str(case.mode), group)
            keys.add(key)
            if case.status != "ok":
                failures[key] += 1
                continue
            for name, value in case.metrics.items():
                if _finite(value):
                    per_reference[key][_pair_key(case)][name].append(float(value))
    # One value per reference and metric: the mean over its seeds.
    reference_means: dict[tuple[str, str, str], dict[str, dict[tuple[str, str], float]]] = defaultdict(dict)
    for key, refs in per_reference.items():
        for ref, values_by_metric in refs.items():
            for name, vals in values_by_metric.items():
                reference_means[key].setdefault(name, {})[ref] = float(np.mean(vals))
    means = {key: per_metric.get(primary, {}) for key, per_metric in reference_means.items()}

    rows: list[LeaderboardRow] = []
    for key in sorted(keys, key=lambda k: (_mode_order(k[1]), _group_order(k[2]), k[0])):
        model, mode, group = key
        by_metric = reference_means.get(key, {})
        summary = stats.summarize(list(by_metric.get(primary, {}).values()), **summary_options)
        rows.append(
            LeaderboardRow(
                model=model,
                mode=mode,
                group=group,
                n=summary.n,
                mean=summary.mean,
                std=summary.std,
                ci_low=summary.ci_low,
                ci_high=summary.ci_high,
                rank=None,
                failed=failures[key],
                metrics={
                    name: (float(np.mean(list(by_metric[name].values()))) if by_metric.get(name) else None)
                    for name in metric_names
                },
            )
        )
    rows = _ranked(rows, higher)

    gains: list[Gain] = []
    if "single" in modes and "repaint" in modes:
        groups = sorted({k[2] for k in keys}, key=_group_order)
        for model in models:
            for group in groups:
                single, repaint = means.get((model, "single", group)), means.get((model, "repaint", group))
                if not single or not repaint:
                    continue
                after, before = _paired(repaint, single)
                c = stats.paired_comparison(after, before, higher_is_better=higher, **summary_options)
                gains.append(
                    Gain(
                        model=model,
                        group=group,
                        single=c.mean_b,
                        repaint=c.mean_a,
                        gain=c.mean_diff,
                        **_paired_fields(c),
                    )
                )

    comparisons: list[Comparison] = []
    for mode in modes:
        ranked = [r.model for r in rows if r.mode == mode and r.group == GROUP_ALL and r.mean is not None]
        found = []
        for i, model_a in enumerate(ranked):
            for model_b in ranked[i + 1 :]:
                a, b = _paired(means[(model_a, mode, GROUP_ALL)], means[(model_b, mode, GROUP_ALL)])
                found.append(
                    (model_a, model_b, stats.paired_comparison(a, b, higher_is_better=higher, **summary_options))
                )
        adjusted = stats.adjust_p_values([c.p_value for _, _, c in found])
        for (model_a, model_b, c), q in zip(found, adjusted, strict=True):
            comparisons.append(
                Comparison(
                    mode=mode,
                    group=GROUP_ALL,
                    model_a=model_a,
                    model_b=model_b,
                    mean_a=c.mean_a,
                    mean_b=c.mean_b,
                    mean_diff=c.mean_diff,
                    statistic=c.statistic,
                    p_adjusted=q,
                    **_paired_fields(c),
                )
            )

    return Leaderboard(
        primary_metric=primary,
        higher_is_better=higher,
        metrics=metric_names,
        directions={name: directions.get(name, True) for name in metric_names},
        models=models,
        modes=modes,
        cases=len(unique),
        ok=len(ok),
        rows=rows,
        gains=gains,
        comparisons=comparisons,
        failed=[
            FailedCase(
                case_id=c.case_id,
                model=c.model,
                mode=c.mode,
                reference_id=c.reference_id,
                category=c.category,
                style=c.style,
                error=c.error,
            )
            for c in sorted(failed, key=lambda c: (c.model, _mode_order(c.mode), c.reference_id))
        ],
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def _ranked(rows: list[LeaderboardRow], higher: bool) -> list[LeaderboardRow]:
    """Rank rows within their mode and group, best first; rows without a mean go last, unranked."""
    out: list[LeaderboardRow] = []
    blocks: dict[tuple[str, str], list[LeaderboardRow]] = defaultdict(list)
    for row in rows:
        blocks[(row.mode, row.group)].append(row)
    for block in blocks.values():
        scored = sorted(
            (r for r in block if r.mean is not None),
            key=lambda r: ((-1.0 if higher else 1.0) * (r.mean or 0.0), r.model),
        )
        out += [r.model_copy(update={"rank": i}) for i, r in enumerate(scored, start=1)]
        out += sorted((r for r in block if r.mean is None), key=lambda r: r.model)
    return out


# ----------------------------------------------------------------------------- text formats


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def _csv_text(value: str) -> str:
    """Text a spreadsheet would not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv(board: Leaderboard) -> str:
    """The rows as CSV: model, mode, group, n, mean, std, ci_low, ci_high, rank, failed, then ``mean_<metric>`` each."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["model", "mode", "group", "n", "mean", "std", "ci_low", "ci_high", "rank", "failed"]
        + [f"mean_{name}" for name in board.metrics]
    )
    for r in board.rows:
        writer.writerow(
            [_csv_text(r.model), r.mode, _csv_text(r.group), r.n]
            + [repr(v) if v is not None else "" for v in (r.mean, r.std, r.ci_low, r.ci_high)]
            + [r.rank if r.rank is not None else "", r.failed]
            + [repr(r.metrics.get(name)) if r.metrics.get(name) is not None else "" for name in board.metrics]
        )
    return buffer.getvalue()


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_|"})


def _md(value: object) -> str:
    """A Markdown table cell: HTML escaped, emphasis, code and pipes backslashed, no link syntax, one line."""
    text = html.escape(str(value), quote=False).translate(_MD_SPECIAL).replace("](", "]\\(")
    text = re.sub(r"&lt;(?=[\d\s.])", "<", text)  # "<1e-4" starts no tag: keep it readable
    return " ".join(text.split())


def _md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _direction(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


def render_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the ranking per mode and group, gains, pairwise tests, failures."""
    pct = round(board.confidence * 100)
    lines = [
        "# Image Regeneration leaderboard",
        "",
        f"Primary metric: **{_md(board.primary_metric)}** ({_direction(board.higher_is_better)}). "
        f"{board.ok} of {board.cases} cases finished; {len(board.failed)} failed (counted, not averaged). "
        f"Intervals: bootstrap {pct}% (BCa, {board.n_resamples} resamples, seed {board.seed}).",
        "",
    ]
    others = [m for m in board.metrics if m != board.primary_metric]  # the primary is the mean column
    for mode in board.modes:
        lines += [f"## Mode `{_md(mode)}`", ""]
        lines += _md_table(
            ["rank", "model", "group", "n", "mean", f"{pct}% CI", "std", "failed"]
            + [f"{m} ({'↑' if board.directions.get(m, True) else '↓'})" for m in others],
            (
                [
                    r.rank or "",
                    r.model,
                    r.group,
                    r.n,
                    _num(r.mean),
                    f"[{_num(r.ci_low)}, {_num(r.ci_high)}]" if r.ci_low is not None else "",
                    _num(r.std),
                    r.failed,
                ]
                + [_num(r.metrics.get(m)) for m in others]
                for r in board.rows
                if r.mode == mode
            ),
        )
        lines.append("")
    if board.gains:
        lines += [
            "## Gain of `repaint` over `single`",
            "",
            "Paired on the same references; a win rate above 0.5 means the loop helped more often than not.",
            "",
        ]
        lines += _md_table(
            ["model", "group", "n", "single", "repaint", "gain", f"{pct}% CI", "win rate", "p (Wilcoxon)", "effect"],
            (
                [
                    g.model,
                    g.group,
                    g.n,
                    _num(g.single),
                    _num(g.repaint),
                    _num(g.gain),
                    f"[{_num(g.ci_low)}, {_num(g.ci_high)}]" if g.ci_low is not None else "",
                    _num(g.win_rate, 3),
                    _p(g.p_value),
                    _num(g.effect_size, 3),
                ]
                for g in board.gains
            ),
        )
        lines.append("")
    if board.comparisons:
        lines += [
            "## Pairwise comparisons (all references)",
            "",
            "A is the better-ranked model. p: two-sided Wilcoxon "
            "signed-rank; p (BH): adjusted over the mode's comparisons; effect: rank-biserial (+1: A better on "
            "every reference).",
            "",
        ]
        lines += _md_table(
            [
                "mode",
                "A",
                "B",
                "n",
                "A − B",
                f"{pct}% CI",
                "A wins",
                "B wins",
                "ties",
                "win rate",
                "p",
                "p (BH)",
                "effect",
            ],
            (
                [
                    c.mode,
                    c.model_a,
                    c.model_b,
                    c.n,
                    _num(c.mean_diff),
                    f"[{_num(c.ci_low)}, {_num(c.ci_high)}]" if c.ci_low is not None else "",
                    c.wins,
                    c.losses,
                    c.ties,
                    _num(c.win_rate, 3),
                    _p(c.p_value),
                    _p(c.p_adjusted),
                    _num(c.effect_size, 3),
                ]
                for c in board.comparisons
            ),
        )
        lines.append("")
    if board.failed:
        lines += [f"## Failed cases ({len(board.failed)})", ""]
        lines += _md_table(
            ["model", "mode", "reference", "error"],
            ([f.model, f.mode, f.reference_id, f.error or ""] for f in board.failed),
        )
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- html


def render_html(board: Leaderboard, cases: Sequence[CaseResult], out_dir: Path, **options: Any) -> str:
    """The leaderboard as one self-contained HTML page.

    See :func:`~imagerepainter.bench.leaderboard_html.render_leaderboard_html` for the options; it is
    imported on use, since that module builds on this one.
    """
    from .leaderboard_html import render_leaderboard_html

    return render_leaderboard_html(board, cases, out_dir, **options)


def write_reports(
    cases: Sequence[CaseResult],
    out_dir: Path | str,
    *,
    primary_metric: str | None = None,
    title: str = "Image Regeneration leaderboard",
) -> dict[str, Path]:
    """Build the leaderboard of ``cases`` and write every report into ``out_dir``; return their paths.

    Writes ``leaderboard.csv``, ``leaderboard.md``, ``leaderboard.html`` and ``leaderboard.json``
    (keys ``"csv"``, ``"md"``, ``"html"``, ``"json"``), each atomically: a reader never sees half
    a file, and the reports can be rebuilt at any time from the same records.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    board = build_leaderboard(cases, primary_metric=primary_metric)
    return {
        "csv": atomic_write(folder / REPORT_FILES["csv"], write_csv(board)),
        "md": atomic_write(folder / REPORT_FILES["md"], render_markdown(board)),
        "html": atomic_write(folder / REPORT_FILES["html"], render_html(board, cases, folder, title=title)),
        "json": atomic_write(folder / REPORT_FILES["json"], board.model_dump_json(indent=2) + "\n"),
    }
