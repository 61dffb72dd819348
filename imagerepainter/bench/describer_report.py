"""The describer section (:class:`~imagerepainter.bench.describer_board.DescriberBoard`) in every report.

The leaderboard's writers call these when the board has a describer section (several
``--mllm NAME=SPEC``); with one describer nothing here is called, and the reports are as they
always were:

* ``leaderboard.csv`` gains a last column, ``describer`` (``*`` on the main rows, which count every
  describer), and one row per (describer, model, mode) over all references (:func:`csv_rows`);
* ``leaderboard.md`` and ``leaderboard.html`` gain a *Describers* section: the rows ranked per
  model and mode, the paired tests between describers, and whether the best model depends on the
  describer (:func:`markdown_section`, :func:`html_section`);
* the terminal ranking gains the describers' table (:func:`ranking_lines`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..report import escape_text
from .describer_board import DescriberBoard, DescriberComparison, DescriberInteraction, DescriberRow
from .tables import markdown_table

__all__ = ["ALL_DESCRIBERS", "csv_rows", "html_section", "markdown_section", "ranking_lines"]

ALL_DESCRIBERS = "*"
"""The ``describer`` cell of the CSV's main rows (every describer's cases counted)."""


def _f(value: float | None, digits: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pv(value: float | None) -> str:
    return "" if value is None else ("<1e-4" if value < 1e-4 else f"{value:.4f}")


def _span(low: float | None, high: float | None) -> str:
    return f"[{_f(low)}, {_f(high)}]" if low is not None and high is not None else ""


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet would not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(section: DescriberBoard, metrics: Sequence[str], width: int) -> list[list[object]]:
    """One CSV row per (describer, model, mode) in the columns of the main rows (``width`` of them,
    ``describer`` last): ``rank`` is the describer's rank for that model and mode, ``mean_<primary>``
    its mean; the other metrics' columns are empty."""
    out: list[list[object]] = []
    for r in section.rows:
        numbers = [repr(v) if v is not None else "" for v in (r.mean, r.std, r.ci_low, r.ci_high)]
        row: list[object] = [_cell(r.model), r.mode, "all", r.n, *numbers, r.rank if r.rank is not None else ""]
        row += [r.failed, 0, r.shared_n, repr(r.shared_mean) if r.shared_mean is not None else ""]
        row += [r.ci_method or "", int(r.small_n), r.caution or ""]
        row += [repr(r.mean) if r.mean is not None else ""] + [""] * (len(metrics) - 1)
        out.append([*row, *[""] * (width - len(row) - 1), _cell(r.describer)])
    return out


def _says(item: DescriberInteraction) -> list[str]:
    """The mode's answer in words: its verdict, then one line per contrast (a pair of models, a pair of describers)."""
    best = ", ".join(f"{d} → {m or '-'}" for d, m in item.best_model.items())
    if item.same_order:
        verdict = "every describer orders the models the same way"
    elif item.same_best:
        verdict = "the best model is the same, the order below it depends on the describer"
    else:
        verdict = "the best model depends on the describer"
    contrasts = [
        f"{c.model_a} − {c.model_b}: {_f(c.gap_x)} with {c.describer_x}, {_f(c.gap_y)} with {c.describer_y} "
        f"(p (BH) {_pv(c.p_adjusted)})"
        for c in item.contrasts
    ]
    return [f"{item.mode}: best model per describer: {best}; {verdict}.", *contrasts]


_ROW_HEADER = (
    "mode",
    "model",
    "describer",
    "rank",
    "n",
    "mean",
    "{pct}% CI",
    "shared n",
    "model rank",
    "failed",
    "note",
)
_TEST_HEADER = (
    "mode",
    "model",
    "A",
    "B",
    "n",
    "A − B",
    "{pct}% CI",
    "A wins",
    "B wins",
    "ties",
    "p",
    "p (BH)",
    "effect",
)


def _row_cells(r: DescriberRow) -> list[object]:
    shared = r.shared_n if r.rank is not None else ""
    head = [r.mode, r.model, r.describer, r.rank or "-", r.n, _f(r.mean), _span(r.ci_low, r.ci_high), shared]
    return [*head, r.model_rank or "-", r.failed, r.caution or ""]


def _test_cells(c: DescriberComparison) -> list[object]:
    head = [c.mode, c.model, c.describer_a, c.describer_b, c.n, _f(c.mean_diff), _span(c.ci_low, c.ci_high)]
    return [*head, c.wins, c.losses, c.ties, _pv(c.p_value), _pv(c.p_adjusted), _f(c.effect_size, 3)]


def _header(names: Sequence[str], pct: int) -> list[str]:
    return [name.format(pct=pct) for name in names]


def markdown_section(section: DescriberBoard, confidence: float) -> list[str]:
    """The *Describers* section of ``leaderboard.md``."""
    pct = round(confidence * 100)
    lines = [
        "## Describers",
        "",
        f"{len(section.describers)} describers ({', '.join(section.describers)}); each described every reference "
        "once and critiqued its own `repaint` cases. Rank: the describer's rank for the model and mode (by the "
        "mean over the references every describer finished); model rank: the model's rank among that describer's.",
        "",
        *markdown_table(_header(_ROW_HEADER, pct), (_row_cells(r) for r in section.rows)),
        "",
        "Describer A against B (A ranks better), paired on the references both finished; p (BH): adjusted "
        "within the family named (`describers:<mode>:<model>`).",
        "",
        *markdown_table(_header(_TEST_HEADER, pct), (_test_cells(c) for c in section.comparisons)),
        "",
        "Does the best model depend on the describer?",
        "",
    ]
    for item in section.interactions:
        verdict, *contrasts = _says(item)
        lines += [f"- {verdict}", *(f"  - {c}" for c in contrasts)]
    return [*lines, ""]


def _html_table(header: Sequence[str], rows: Iterable[Sequence[object]], *, text: int) -> str:
    """A table whose first ``text`` columns are text (left-aligned), the rest numbers."""

    def cells(values: Iterable[object], tag: str) -> str:
        return "".join(
            f'<{tag} class="t">{escape_text(str(v))}</{tag}>' if i < text else f"<{tag}>{escape_text(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return (
        f'<div class="scroll"><table><thead><tr>{cells(header, "th")}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def html_section(section: DescriberBoard, confidence: float) -> str:
    """The *Describers* section of ``leaderboard.html``."""
    pct = round(confidence * 100)
    rows = _html_table(_header(_ROW_HEADER, pct), (_row_cells(r) for r in section.rows), text=3)
    tests = _html_table(_header(_TEST_HEADER, pct), (_test_cells(c) for c in section.comparisons), text=4)
    says = "".join(f"<li>{'<br>'.join(escape_text(line) for line in _says(i))}</li>" for i in section.interactions)
    return (
        '<section id="describers"><h2>Describers</h2><p class="muted">Each describer described every reference '
        "once and critiqued its own repaint cases. Rank: the describer's rank for the model and mode; model rank: "
        "the model's rank among that describer's. Tests: describer A (the better-ranked) against B, paired on the "
        f"references both finished; p (BH) adjusted per model and mode.</p>{rows}{tests}"
        f"<h3>Does the best model depend on the describer?</h3><ul>{says}</ul></section>"
    )


def ranking_lines(section: DescriberBoard) -> list[str]:
    """The describers' ranking for the terminal: one line per (mode, model, describer), then the interaction."""
    header = ("rank", "describer", "model", "mode", "mean", "n", "p vs best")
    firsts = {(r.model, r.mode): r.describer for r in section.rows if r.rank == 1}
    against_best = {
        (c.model, c.mode, c.describer_b): c.p_adjusted
        for c in section.comparisons
        if c.describer_a == firsts.get((c.model, c.mode))
    }
    lines = [header]
    for r in section.rows:
        p = against_best.get((r.model, r.mode, r.describer))
        lines.append(
            ("-" if r.rank is None else str(r.rank), r.describer, r.model, r.mode, _f(r.mean), str(r.n), _pv(p))
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            c.rjust(w) if i in (0, 5) else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    said = [line if k == 0 else f"  {line}" for i in section.interactions for k, line in enumerate(_says(i))]
    return ["Describers per model (p vs best: the paired test against the best describer, BH-adjusted):", *text, *said]
