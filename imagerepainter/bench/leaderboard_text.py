"""The leaderboard as text: CSV rows and a Markdown report.

Every cell that comes from a record (model names, groups, errors) is made inert: CSV cells
cannot start a spreadsheet formula, Markdown cells are escaped and stay on one line.

Example:
    >>> from imagerepainter.bench.leaderboard import build_leaderboard
    >>> write_csv(build_leaderboard([])).splitlines()[0].split(",")[:6]
    ['model', 'mode', 'group', 'n', 'mean', 'std']
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .cost_reports import cost_markdown
from .describer_report import ALL_DESCRIBERS, csv_rows, markdown_section
from .element_views import element_markdown
from .records import GROUP_ALL
from .stats import SMALL_N
from .tables import markdown_cell, markdown_table

if TYPE_CHECKING:  # a view of the leaderboard, which imports this module to write its files
    from .leaderboard import Leaderboard

__all__ = ["CSV_COLUMNS", "CSV_COST_FIELDS", "CSV_DOLLAR_FIELDS", "render_markdown", "write_csv"]

CSV_COLUMNS = (
    "model",
    "mode",
    "group",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "rank",
    "failed",
    "missing",
    "shared_n",
    "shared_mean",
    "ci_method",
    "small_n",
    "caution",
)
"""The CSV's first columns, in order; ``mean_<metric>`` for every metric follow."""

CSV_COST_FIELDS = (
    "cases",
    "mllm_calls",
    "input_tokens",
    "output_tokens",
    "images",
    "mllm_seconds",
    "t2i_seconds",
    "seconds",
)
"""The cost section's per-reference figures (:class:`~imagerepainter.bench.costs.CostRow`) the CSV
appends as ``cost_<field>`` after the metrics, when the board has a cost section."""
CSV_DOLLAR_FIELDS = ("dollars", "description_dollars", "total_dollars")
"""Appended as ``cost_<field>`` after :data:`CSV_COST_FIELDS` only when the board is priced."""


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


def _float(value: float | None) -> str:
    """A float exactly as in the JSON report (``repr``), or an empty cell."""
    return "" if value is None else repr(value)


def write_csv(board: Leaderboard) -> str:
    """The rows as CSV: :data:`CSV_COLUMNS`, then ``mean_<metric>`` for each metric, then the cost columns.

    With a cost section, ``cost_<field>`` for each of :data:`CSV_COST_FIELDS` (and, priced, of
    :data:`CSV_DOLLAR_FIELDS`) follow: what the row's model and mode used per reference, over all
    references, so they are filled on the ``all`` rows and empty on a category's or style's.
    """
    costs = board.costs
    fields = [*CSV_COST_FIELDS, *(CSV_DOLLAR_FIELDS if costs is not None and costs.priced else ())]
    fields = fields if costs is not None else []
    by_key = {(r.model, r.mode): r for r in costs.rows} if costs is not None else {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [*CSV_COLUMNS, *(f"mean_{name}" for name in board.metrics), *(f"cost_{f}" for f in fields)]
    describer = [ALL_DESCRIBERS] if board.describers else []  # several describers: a last column names each
    writer.writerow(header + (["describer"] if describer else []))
    for r in board.rows:
        used = by_key.get((r.model, r.mode)) if r.group == GROUP_ALL else None
        writer.writerow(
            [_csv_text(r.model), r.mode, _csv_text(str(r.group)), r.n]
            + [_float(v) for v in (r.mean, r.std, r.ci_low, r.ci_high)]
            + [r.rank if r.rank is not None else "", r.failed, r.missing, r.shared_n, _float(r.shared_mean)]
            + [r.ci_method or "", int(r.small_n), r.caution or ""]
            + [_float(r.metrics.get(name)) for name in board.metrics]
            + [_float(getattr(used, f)) if used is not None else "" for f in fields]
            + describer
        )
    if board.describers:
        writer.writerows(csv_rows(board.describers, board.metrics, len(header) + 1))
    return buffer.getvalue()


def _md_section(title: str, about: str | None, header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A ``##`` section: the title, what the table says (when ``about`` is given), the table, a blank line."""
    return [f"## {title}", "", *([about, ""] if about else []), *markdown_table(header, rows), ""]


def _direction(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


def _ci(low: float | None, high: float | None) -> str:
    return f"[{_num(low)}, {_num(high)}]" if low is not None and high is not None else ""


def _header(board: Leaderboard) -> list[str]:
    pct = round(board.confidence * 100)
    return [
        "# Image Regeneration leaderboard",
        "",
        f"Primary metric: **{markdown_cell(board.primary_metric)}** ({_direction(board.higher_is_better)}). "
        f"{board.ok} of {board.cases} cases finished; {len(board.failed)} failed (counted, not averaged); "
        f"{sum(r.missing for r in board.rows if r.group == GROUP_ALL)} finished without a finite primary value "
        "(listed, not averaged).",
        "",
        f"Intervals: {pct}% {board.interval_method}, {board.n_resamples} resamples, seed {board.seed}. "
        f"Ranks: by the mean over the references every ranked model of the mode and group finished "
        f"(*shared*), so failing a hard reference never helps. Rows with n < {SMALL_N} carry a note on "
        "what they can support.",
        "",
    ]


def _board_tables(board: Leaderboard) -> list[str]:
    pct = round(board.confidence * 100)
    others = [m for m in board.metrics if m != board.primary_metric]  # the primary is the mean column
    lines: list[str] = []
    for mode in board.modes:
        lines += [f"## Mode `{markdown_cell(mode)}`", ""]
        lines += markdown_table(
            ["rank", "model", "group", "failed", "missing", "n", "mean", f"{pct}% CI", "std", "shared n", "shared mean"]
            + [f"{m} ({'↑' if board.directions.get(m, True) else '↓'})" for m in others]
            + ["note"],
            (
                [r.rank or "", r.model, str(r.group), r.failed, r.missing, r.n, _num(r.mean), _ci(r.ci_low, r.ci_high)]
                + [_num(r.std), r.shared_n if r.rank is not None else "", _num(r.shared_mean)]
                + [_num(r.metrics.get(m)) for m in others]
                + [r.caution or ""]
                for r in board.rows
                if r.mode == mode
            ),
        )
        lines.append("")
    return lines


def _gain_table(board: Leaderboard) -> list[str]:
    if not board.gains:
        return []
    pct = round(board.confidence * 100)
    about = (
        "Paired on the same references; a win rate above 0.5 means the loop helped more often than not. "
        "p (BH): adjusted within the family `gains` (every gain below)."
    )
    return _md_section(
        "Gain of `repaint` over `single`",
        about,
        [
            "model",
            "group",
            "n",
            "single",
            "repaint",
            "gain",
            f"{pct}% CI",
            "win rate",
            "p (Wilcoxon)",
            "p (BH)",
            "effect",
            "note",
        ],
        (
            [
                g.model,
                str(g.group),
                g.n,
                _num(g.single),
                _num(g.repaint),
                _num(g.gain),
                _ci(g.ci_low, g.ci_high),
                _num(g.win_rate, 3),
                _p(g.p_value),
                _p(g.p_adjusted),
                _num(g.effect_size, 3),
                g.caution or "",
            ]
            for g in board.gains
        ),
    )


def _comparison_table(board: Leaderboard) -> list[str]:
    if not board.comparisons:
        return []
    pct = round(board.confidence * 100)
    about = (
        "A is the better-ranked model. p: two-sided Wilcoxon signed-rank; p (BH): Benjamini–Hochberg adjusted "
        "within the family named (`pairs:<mode>`: the mode's comparisons); effect: rank-biserial (+1: A better "
        "on every reference)."
    )
    return _md_section(
        "Pairwise comparisons (all references)",
        about,
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
            "family",
            "effect",
            "note",
        ],
        (
            [
                c.mode,
                c.model_a,
                c.model_b,
                c.n,
                _num(c.mean_diff),
                _ci(c.ci_low, c.ci_high),
                c.wins,
                c.losses,
                c.ties,
                _num(c.win_rate, 3),
                _p(c.p_value),
                _p(c.p_adjusted),
                c.family,
                _num(c.effect_size, 3),
                c.caution or "",
            ]
            for c in board.comparisons
        ),
    )


def _problem_tables(board: Leaderboard) -> list[str]:
    lines: list[str] = []
    if board.failed:
        lines += _md_section(
            f"Failed cases ({len(board.failed)})",
            None,
            ["model", "mode", "reference", "error"],
            ([f.model, f.mode, f.reference_id, f.error or ""] for f in board.failed),
        )
    if board.missing:
        about = (
            "Finished cases whose metric is missing or not a finite number. Without a primary value a case is not "
            "counted in its rows; a missing value of another metric empties that metric's column in the rows "
            "counting the case (a column is never averaged over fewer references than `n`)."
        )
        lines += _md_section(
            f"Missing values ({len(board.missing)})",
            about,
            ["model", "mode", "reference", "metric", "value", "counted"],
            (
                [m.model, m.mode, m.reference_id, m.metric, m.reason, "yes" if m.counted else "no"]
                for m in board.missing
            ),
        )
    return lines


def _environment_tables(board: Leaderboard) -> list[str]:
    """The environment manifest and its changes between evaluation calls (none when not recorded)."""
    from .environment import flatten_manifest

    section = board.environment
    if section is None:
        return []
    lines = ["## Environment", "", f"The latest of {section.runs} recorded evaluation call(s).", ""]
    lines += markdown_table(
        ["field", "value"], ([k, "-" if v is None else v] for k, v in flatten_manifest(section.manifest).items())
    )
    if section.changes:
        lines += ["", f"### Changes between calls ({len(section.changes)})", ""]
        lines += markdown_table(
            ["call", "field", "old", "new"], ([c.run, c.field, c.old or "-", c.new or "-"] for c in section.changes)
        )
    return [*lines, ""]


def render_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the ranking per mode and group, gains, pairwise tests, element fidelity,
    costs, failures, missing values, and the environment."""
    lines = _header(board) + _board_tables(board) + _gain_table(board) + _comparison_table(board)
    if board.describers:
        lines += markdown_section(board.describers, board.confidence)
    lines += element_markdown(board.elements) + cost_markdown(board.costs)
    return "\n".join(lines + _problem_tables(board) + _environment_tables(board))
