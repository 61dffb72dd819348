"""The leaderboard's ``elements`` section in HTML and Markdown, and each case's checklist.

:func:`element_html` and :func:`element_markdown` render an
:class:`~imagerepainter.bench.element_board.ElementBoard`: per mode, a table of fidelity per
element kind (rows) and model (columns) with intervals, the significant paired tests, and the
elements each model loses most. :func:`case_checklist_html` is one case's checklist, folded
under its image in the leaderboard's image grid (a native ``<details>``: no script).
"""

from __future__ import annotations

from ..report import escape_text
from .element_board import ElementBoard, ElementComparison, element_details
from .records import CaseResult
from .tables import markdown_table

__all__ = ["ELEMENT_CSS", "case_checklist_html", "element_html", "element_markdown"]

ELEMENT_CSS = (
    ".checklist{text-align:left;font-size:.75rem;width:var(--thumb)}"
    ".checklist summary{cursor:pointer;color:var(--muted)}"
    ".checklist ul{margin:4px 0 0;padding:0 0 0 1em}.checklist li{overflow-wrap:anywhere}"
    ".v-no{color:var(--bad)}.v-partly{color:var(--warn)}.v-yes{color:var(--good)}"
    "#elements td.prose{min-width:16em}#elements .scroll+.scroll{margin-top:14px}"
)
"""Styles of the checklists and the section (added to the leaderboard page's CSS)."""

_MARK = {"yes": "✓", "partly": "~", "no": "✗", None: "?"}


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "—" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def _models(board: ElementBoard, mode: str) -> list[str]:
    return sorted({r.model for r in board.rows if r.mode == mode})


def _modes(board: ElementBoard) -> list[str]:
    return list(dict.fromkeys(r.mode for r in sorted(board.rows, key=lambda r: r.mode != "single")))


def _cell(board: ElementBoard, model: str, mode: str, kind: str) -> tuple[str, str]:
    row = board.row(model, mode, kind)
    if row is None:
        return "—", ""
    interval = f"{_num(row.ci_low)}–{_num(row.ci_high)}" if row.ci_low is not None else ""
    return _num(row.fidelity), interval


def _significant(board: ElementBoard, mode: str) -> list[ElementComparison]:
    return [c for c in board.comparisons if c.mode == mode and c.p_value is not None and c.p_value < 0.05]


def _html_mode(board: ElementBoard, mode: str) -> str:
    models = _models(board, mode)
    head = '<tr><th class="t">kind</th>' + "".join(f'<th class="model">{escape_text(m)}</th>' for m in models)
    body = ""
    for kind in board.kinds:
        cells = [_cell(board, m, mode, kind) for m in models]
        body += f'<tr><td class="t">{escape_text(kind)}</td>' + "".join(
            f'<td><b>{v}</b><br><span class="muted">{i}</span></td>' for v, i in cells
        )
        body += "</tr>"
    tests = "".join(
        f'<tr><td class="t">{escape_text(c.kind)}</td><td class="t model">{escape_text(c.model_a)}</td>'
        f'<td class="t model">{escape_text(c.model_b)}</td><td>{c.n}</td><td><b>{_num(c.mean_diff)}</b></td>'
        f"<td>{_p(c.p_value)}</td><td>{_p(c.p_adjusted)}</td></tr>"
        for c in _significant(board, mode)
    )
    lost = "".join(
        f'<tr><td class="t model">{escape_text(x.model)}</td><td class="t">{escape_text(x.reference_id)}</td>'
        f'<td class="t">{escape_text(x.kind)}</td><td class="t prose">{escape_text(x.text)}</td>'
        f'<td class="t prose v-{escape_text(x.verdict)}">{escape_text(x.verdict)}: {escape_text(x.reason)}</td>'
        f"<td>{_num(x.others_best)}</td></tr>"
        for x in board.lost
        if x.mode == mode
    )
    return (
        f'<h3>Mode {escape_text(mode)}</h3><div class="scroll"><table class="elements-table"><thead>{head}</thead>'
        f"<tbody>{body}</tbody></table></div>"
        + (
            '<div class="scroll"><table><thead><tr><th class="t">kind</th><th class="t">A</th><th class="t">B</th>'
            f"<th>n</th><th>A − B</th><th>p</th><th>p (BH)</th></tr></thead><tbody>{tests}</tbody></table></div>"
            if tests
            else '<p class="muted">No model differs from another on any kind (p &lt; 0.05).</p>'
        )
        + (
            '<div class="scroll"><table><thead><tr><th class="t">model</th><th class="t">reference</th>'
            '<th class="t">kind</th><th class="t">element</th><th class="t">verdict</th><th>best other</th>'
            f"</tr></thead><tbody>{lost}</tbody></table></div>"
            if lost
            else ""
        )
    )


def element_html(board: ElementBoard | None) -> str:
    """The ``elements`` section of the leaderboard page ("" without element verdicts)."""
    if board is None:
        return ""
    modes = "".join(_html_mode(board, mode) for mode in _modes(board))
    return (
        '<section id="elements"><h2>Elements</h2><p class="muted">How faithfully each model keeps each kind of '
        "element of the reference's description: every element of its Image Understanding Tree checked on the "
        "best image (yes 1, partly 0.5, no 0), the mean per kind over the references with its interval below. "
        "Then the kinds on which two models differ (Wilcoxon signed-rank p, and Benjamini-Hochberg adjusted over "
        "the mode's kinds and pairs), and the elements each model loses most, where another model did better. "
        f"Each case's checklist is under its image in the image grid.</p>{modes}</section>"
    )


def case_checklist_html(case: CaseResult) -> str:
    """One case's checklist, folded (``<details>``), for its cell of the image grid ("" without verdicts)."""
    found = element_details(case)
    checks = list(found.get("checks") or []) if found is not None else []
    if not checks:
        return ""
    passed = sum(c.get("verdict") == "yes" for c in checks)
    items = "".join(
        f'<li class="v-{escape_text(c.get("verdict") or "none")}">{_MARK.get(c.get("verdict"), "?")} '
        f"[{escape_text(c.get('kind', ''))}] {escape_text(c.get('text', ''))}"
        + (f' <span class="muted">({escape_text(c["reason"])})</span>' if c.get("reason") else "")
        + "</li>"
        for c in checks
    )
    return (
        f'<details class="checklist"><summary>elements: {passed}/{len(checks)} yes</summary><ul>{items}</ul></details>'
    )


def _md_kind_row(board: ElementBoard, models: list[str], mode: str, kind: str) -> list[object]:
    """One kind's Markdown row: each model's fidelity, its interval in brackets."""
    cells = (_cell(board, m, mode, kind) for m in models)
    return [kind, *(f"{v} ({i})" if i else v for v, i in cells)]


def _md_mode(board: ElementBoard, mode: str) -> list[str]:
    models = _models(board, mode)
    rows: list[list[object]] = [_md_kind_row(board, models, mode, kind) for kind in board.kinds]
    lines = [f"### Elements, mode {mode}", "", *markdown_table(["kind", *models], rows, text=1)]
    tests = _significant(board, mode)
    if tests:
        rows = [[c.kind, c.model_a, c.model_b, c.n, _num(c.mean_diff), _p(c.p_value), _p(c.p_adjusted)] for c in tests]
        lines += ["", *markdown_table(["kind", "A", "B", "n", "A − B", "p", "p (BH)"], rows, text=3)]
    lost = [x for x in board.lost if x.mode == mode]
    if lost:
        header = ["model", "reference", "kind", "element", "verdict", "best other"]
        rows = [[x.model, x.reference_id, x.kind, x.text, f"{x.verdict}: {x.reason}", _num(x.others_best)]
                for x in lost]  # fmt: skip
        lines += ["", *markdown_table(header, rows, text=5)]
    return [*lines, ""]


def element_markdown(board: ElementBoard | None) -> list[str]:
    """The ``elements`` section as Markdown lines ([] without element verdicts)."""
    if board is None:
        return []
    lines = [
        "## Elements",
        "",
        "Fidelity per element kind of the reference's description (yes 1, partly 0.5, no 0; interval in "
        "brackets), the kinds on which two models differ (p < 0.05), and the elements each model loses most.",
        "",
    ]
    for mode in _modes(board):
        lines += _md_mode(board, mode)
    return lines
