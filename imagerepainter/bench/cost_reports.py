"""The reports' cost section (Markdown, HTML, terminal) from a :class:`~imagerepainter.bench.costs.CostSection`.

One table of what each model used per reference in each mode (MLLM calls and tokens, images,
seconds, and dollars when priced), one of what ``repaint`` bought over ``single`` per extra
minute (and per extra dollar when priced), and the describing counted once. Without prices no
dollar column, figure or currency is written.

Example:
    >>> from imagerepainter.bench.costs import CostSection, MLLMUsage
    >>> section = CostSection(priced=False, rows=[], gains=[], descriptions=MLLMUsage(), description_count=0)
    >>> cost_markdown(section)[0]
    '## Cost per reference'
"""

from __future__ import annotations

from collections.abc import Sequence

from ..report import escape_text
from .costs import CostSection
from .tables import markdown_cell, markdown_table

__all__ = ["cost_html", "cost_markdown", "cost_summary"]


def _note(section: CostSection) -> str:
    return (
        "Means per reference (one case each) of every finished or failed case. The shared description's calls, "
        f"tokens, seconds{' and dollars' if section.priced else ''} are split evenly over the cases that used it "
        "and included, so the rows add up to the total. T2I seconds are the wall time of the render steps; case "
        "seconds, of the case."
    )


def _n(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _usage_table(section: CostSection) -> tuple[list[str], list[list[str]]]:
    header = ["model", "mode", "cases", "MLLM calls", "input tokens", "output tokens", "images", "MLLM s", "T2I s",
              "case s"]  # fmt: skip
    if section.priced:
        header += [f"{section.currency} / reference", "of which description", f"{section.currency} total"]
    rows = []
    for r in section.rows:
        row = [r.model, r.mode, str(r.cases), _n(r.mllm_calls), _n(r.input_tokens, 0),
               _n(r.output_tokens, 0), _n(r.images), _n(r.mllm_seconds), _n(r.t2i_seconds), _n(r.seconds)]  # fmt: skip
        if section.priced:
            row += [_money(r.dollars), _money(r.description_dollars), _money(r.total_dollars)]
        rows.append(row)
    return header, rows


def _gain_table(section: CostSection) -> tuple[list[str], list[list[str]]]:
    header = ["model", "gain", "extra minutes / reference", "gain per minute"]
    if section.priced:
        header += [f"extra {section.currency} / reference", f"gain per {section.currency}"]
    rows = []
    for g in section.gains:
        row = [g.model, _n(g.gain, 4), _n(g.extra_minutes, 3), _n(g.gain_per_minute, 4)]
        if section.priced:
            row += [_money(g.extra_dollars), _n(g.gain_per_dollar, 4)]
        rows.append(row)
    return header, rows


def _facts(section: CostSection) -> list[str]:
    d = section.descriptions
    facts = [
        f"Descriptions: {section.description_count}, {d.calls} MLLM calls, {d.input_tokens:,} input and "
        f"{d.output_tokens:,} output tokens, {d.seconds:.1f} s, each counted once"
        + (f" ({_money(section.description_dollars)} {section.currency})." if section.priced else ".")
    ]
    if section.priced:
        facts.append(f"Total: {_money(section.total_dollars)} {section.currency} (the cases' and the descriptions').")
    if section.unknown:
        facts.append(f"{section.unknown} cases were recorded before the cost ledger existed and are not counted.")
    if section.budget_note:
        facts.append(section.budget_note)
    return facts


def cost_markdown(section: CostSection | None) -> list[str]:
    """The cost section as Markdown lines (none without a section)."""
    if section is None:
        return []
    lines = ["## Cost per reference", "", _note(section), "", *markdown_table(*_usage_table(section)), ""]
    if section.gains:
        lines += ["### What repaint buys over single", "", *markdown_table(*_gain_table(section)), ""]
    return lines + [f"- {markdown_cell(fact)}" for fact in _facts(section)] + [""]


_CELL_CLASS = (' class="t model"', ' class="t"')
"""The first columns' classes (model, then mode): text, the model's name kept on one line."""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    def cls(i: int) -> str:
        return _CELL_CLASS[i] if i < len(_CELL_CLASS) else ""

    head = "".join(f"<th{cls(i)}>{escape_text(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{escape_text(c)}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def cost_html(section: CostSection | None) -> str:
    """The cost section as an HTML ``<section>`` (empty without a section)."""
    if section is None:
        return ""
    gains = (
        "<h3>What repaint buys over single</h3>" + _html_table(*_gain_table(section), "cost-gains")
        if section.gains
        else ""
    )
    facts = "".join(f"<li>{escape_text(fact)}</li>" for fact in _facts(section))
    return (
        f'<section><h2>Cost per reference</h2><p class="muted">{escape_text(_note(section))}</p>'
        f"{_html_table(*_usage_table(section), 'costs')}{gains}<ul>{facts}</ul></section>"
    )


def cost_summary(section: CostSection | None) -> str:
    """A few lines for the terminal: the total and the budget's note when priced, else the usage only."""
    if section is None:
        return ""
    calls = sum(r.cases * r.mllm_calls for r in section.rows)
    images = sum(r.cases * r.images for r in section.rows)
    lines = [f"used: {calls:,.0f} MLLM calls, {images:,.0f} images"]
    if section.priced:
        lines[0] += f"; cost {_money(section.total_dollars)} {section.currency}"
    if section.budget_note:
        lines.append(section.budget_note)
    return "\n".join(lines)
