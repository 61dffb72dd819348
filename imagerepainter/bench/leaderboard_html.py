"""The leaderboard as one self-contained HTML page: tables, a chart with intervals, an image grid.

Like the run report (:mod:`imagerepainter.report`) the page loads nothing: CSS is inline, the
chart is inline SVG, images are small base64 thumbnails, there is no JavaScript, and a
Content-Security-Policy forbids scripts and remote resources. Every text (model names,
categories, errors, anything a model or a manifest wrote) is HTML-escaped.

Example:
    >>> from imagerepainter.bench.leaderboard import build_leaderboard
    >>> page = render_leaderboard_html(build_leaderboard([]), [], Path("."))
    >>> page.startswith("<!doctype html>"), 'id="leaderboard-chart"' in page
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RepainterError
from ..html import PAGE_CSP, escape_text, image_data_url, nice_ticks
from ..images import load_image
from .cost_reports import cost_html
from .describer_report import html_section
from .element_views import ELEMENT_CSS, case_checklist_html, element_html
from .records import GROUP_ALL, CaseResult

if TYPE_CHECKING:  # a view of the leaderboard, which imports this module to write its page
    from .leaderboard import Comparison, Gain, Leaderboard, LeaderboardRow

__all__ = ["render_leaderboard_html"]

_CSS = (
    """
:root{--bg:#f7f7f5;--card:#fff;--fg:#1d1d1f;--muted:#6b6b70;--line:#e2e2e0;--accent:#2563eb;--good:#16a34a;
--warn:#b45309;--bad:#b91c1c}
@media (prefers-color-scheme:dark){:root{--bg:#111214;--card:#1b1c1f;--fg:#e8e8ea;--muted:#9a9aa2;--line:#2c2d31;
--accent:#60a5fa;--good:#4ade80;--warn:#fbbf24;--bad:#f87171}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1280px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:1.7rem;margin:0 0 4px}h2{font-size:1.25rem;margin:0 0 12px}h3{font-size:1rem;margin:14px 0 6px}
section,header{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;margin:0 0 18px}
.muted{color:var(--muted)}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:14px 0 0;padding:0}
.facts div{border:1px solid var(--line);border-radius:8px;padding:8px 10px;min-width:0}
.facts dt{font-size:.75rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.facts dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600}
td.t,th.t{text-align:left;white-space:normal;overflow-wrap:normal;min-width:6em}
td.model{white-space:nowrap}.board td.model{position:sticky;left:0;background:var(--card)}
tr.group th{text-align:left;color:var(--fg);background:var(--bg)}
.sig{color:var(--good);font-weight:700}.err{color:var(--bad);white-space:normal;min-width:14em}
.chart svg{width:100%;display:block;overflow:visible}
.axis{stroke:var(--muted);stroke-width:1}.gridline{stroke:var(--line);stroke-width:1}
svg text{fill:var(--muted);font-size:13px}svg .tick{text-anchor:middle}svg .label{fill:var(--fg)}
svg .numbers{fill:var(--muted);font-variant-numeric:tabular-nums}svg .mode{fill:var(--fg);font-weight:700}
.ci{stroke:var(--accent);stroke-width:2.5}.ci-cap{stroke:var(--accent);stroke-width:2}.pt-mean{fill:var(--accent)}
.grid td,.grid th{vertical-align:top;text-align:center;white-space:normal}
.grid th.model{white-space:nowrap}
.grid figure{margin:0;width:var(--thumb)}.grid img{display:block;width:100%;height:auto;border-radius:6px}
.grid figcaption{font-size:.78rem;color:var(--muted);overflow-wrap:break-word}
.missing{width:var(--thumb);aspect-ratio:1;display:grid;place-items:center;color:var(--muted);font-size:.8rem;
background:var(--line);border-radius:6px;padding:4px;overflow-wrap:break-word}
.failed{color:var(--bad)}.small-n{color:var(--warn);font-size:.8rem}td.t.small-n{min-width:16em}
footer{font-size:.8rem;color:var(--muted)}
@media (max-width:640px){main{padding:12px 8px}section,header{padding:14px 12px}}
"""
    + ELEMENT_CSS
)


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    text = "&lt;1e-4" if value < 1e-4 else f"{value:.4f}"
    return f'<span class="sig">{text}</span>' if value < 0.05 else text


def _interval(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{_num(low)}, {_num(high)}]"


class _Thumbs:
    """Small embedded thumbnails, encoded once per file."""

    def __init__(self, side: int) -> None:
        self.side = side
        self._cache: dict[Path, tuple[str, int, int] | None] = {}

    def tag(self, path: Path | None, alt: str) -> str:
        found = self._load(path) if path is not None else None
        if found is None:
            return f'<div class="missing">{escape_text("image unavailable")}</div>'
        src, w, h = found
        return f'<img src="{escape_text(src)}" alt="{escape_text(alt)}" width="{w}" height="{h}">'

    def _load(self, path: Path) -> tuple[str, int, int] | None:
        if path not in self._cache:
            try:
                image = load_image(path)
            except (RepainterError, OSError):
                self._cache[path] = None
            else:
                scale = min(1.0, self.side / max(image.size))
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                self._cache[path] = (image_data_url(image, self.side), *size)
        return self._cache[path]


def _facts(board: Leaderboard) -> str:
    items: list[tuple[str, object]] = [
        ("primary metric", board.primary_metric),
        ("direction", "higher is better" if board.higher_is_better else "lower is better"),
        ("cases", f"{board.ok} finished / {board.cases}"),
        ("failed", len(board.failed)),
        ("models", len(board.models)),
        ("modes", ", ".join(board.modes) or "—"),
        ("missing values", len(board.missing)),
        ("intervals", f"{round(board.confidence * 100)}% {board.interval_method}"),
        ("test families (BH)", ", ".join(f"{k} ({v})" for k, v in board.families.items()) or "—"),
    ]
    return (
        '<dl class="facts">'
        + "".join(f"<div><dt>{escape_text(k)}</dt><dd>{escape_text(v)}</dd></div>" for k, v in items)
        + "</dl>"
    )


_CHART_PAD = 4.0
"""Percent of the chart's width kept free at each side, so the outer tick labels fit."""
_ROW_H, _HEAD_H, _AXIS_H = 40, 26, 46
"""Pixels: a model's row (its label line above its whisker), a mode's heading, the axis below."""


def _chart(board: Leaderboard) -> str:
    """Each model's mean (dot) and interval (whisker) over all references, one block per mode, as inline SVG.

    The chart is drawn in the page's own pixels, not scaled: across it is in percent of its
    width (no ``viewBox``), down in pixels, so its text keeps the page's font size on a phone
    as on a desktop. Each model's name and numbers sit on a line of their own above its
    whisker, so a long name never squeezes the plot.
    """
    rows = [r for r in board.rows if r.group == GROUP_ALL and r.mean is not None]
    attrs = f'id="leaderboard-chart" role="img" aria-label="mean and interval per model" data-rows="{len(rows)}"'
    if not rows:
        return f'<svg {attrs} width="100%" height="60"><text x="50%" y="35">no finished cases to plot</text></svg>'
    values = [v for r in rows for v in (r.mean, r.ci_low, r.ci_high) if v is not None and math.isfinite(v)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 0.05)
    lo, hi = lo - pad, hi + pad
    modes = [m for m in board.modes if any(r.mode == m for r in rows)]
    height = len(modes) * _HEAD_H + len(rows) * _ROW_H + _AXIS_H + 8
    base = height - _AXIS_H

    def x(v: float) -> str:
        return f"{_CHART_PAD + (v - lo) / (hi - lo) * (100 - 2 * _CHART_PAD):.2f}%"

    out = [f'<svg {attrs} width="100%" height="{height}">']
    for t in nice_ticks(lo, hi):
        out.append(f'<line class="gridline" x1="{x(t)}" x2="{x(t)}" y1="4" y2="{base}"/>')
        out.append(f'<text class="tick" x="{x(t)}" y="{base + 18}">{t:.4g}</text>')
    direction = "higher is better" if board.higher_is_better else "lower is better"
    out.append(f'<line class="axis" x1="{x(lo)}" x2="{x(hi)}" y1="{base}" y2="{base}"/>')
    out.append(
        f'<text class="tick" x="50%" y="{height - 6}">{escape_text(board.primary_metric)} ({direction}), mean and '
        f"{round(board.confidence * 100)}% interval</text>"
    )
    y = 4.0
    for mode in modes:
        out.append(f'<text class="mode" x="0" y="{y + _HEAD_H - 8:.1f}">{escape_text(mode)}</text>')
        y += _HEAD_H
        for row in (r for r in rows if r.mode == mode):
            out.append(_chart_row(row, mode, y, x))
            y += _ROW_H
    return "".join(out) + "</svg>"


def _chart_row(row: LeaderboardRow, mode: str, y: float, x: Callable[[float], str]) -> str:
    """One model of the chart: its name and numbers on a line, then its whisker and mean below."""
    assert row.mean is not None
    name = row.model if len(row.model) <= 24 else row.model[:23] + "…"  # the whole name is in the tables
    numbers = f"{_num(row.mean)} {_interval(row.ci_low, row.ci_high)}, n={row.n}"
    cy = y + 27
    out = [
        f'<text class="label" x="0" y="{y + 13:.1f}">{escape_text(name)}'
        f'<tspan class="numbers" dx="8">{escape_text(numbers)}</tspan></text>'
    ]
    if row.ci_low is not None and row.ci_high is not None:
        x1, x2 = x(row.ci_low), x(row.ci_high)
        out.append(f'<line class="ci" x1="{x1}" x2="{x2}" y1="{cy:.1f}" y2="{cy:.1f}"/>')
        out += [f'<line class="ci-cap" x1="{xc}" x2="{xc}" y1="{cy - 6:.1f}" y2="{cy + 6:.1f}"/>' for xc in (x1, x2)]
    out.append(
        f'<circle class="pt-mean" cx="{x(row.mean)}" cy="{cy:.1f}" r="5"><title>{escape_text(row.model)} '
        f"({escape_text(mode)}): {escape_text(numbers)}</title></circle>"
    )
    return "".join(out)


def _board_table(board: Leaderboard, mode: str) -> str:
    pct = round(board.confidence * 100)
    metrics = [m for m in board.metrics if m != board.primary_metric]  # the primary is the mean column
    head = (
        '<tr><th>rank</th><th class="t">model</th><th>failed</th><th>missing</th><th>n</th><th>mean</th>'
        f"<th>{pct}% interval</th><th>std</th><th>shared n</th><th>shared mean</th>"
        + "".join(f"<th>{escape_text(m)} {'↑' if board.directions.get(m, True) else '↓'}</th>" for m in metrics)
        + '<th class="t">note</th></tr>'
    )
    body: list[str] = []
    group = None
    for row in (r for r in board.rows if r.mode == mode):
        if row.group != group:
            group = row.group
            body.append(f'<tr class="group"><th colspan="{11 + len(metrics)}">{escape_text(str(group))}</th></tr>')
        body.append(_board_row(row, metrics))
    return f'<div class="scroll"><table class="board"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'


def _board_row(row: LeaderboardRow, metrics: Sequence[str]) -> str:
    failed = f'<span class="failed">{row.failed}</span>' if row.failed else "0"
    missing = f'<span class="failed">{row.missing}</span>' if row.missing else "0"
    shared = str(row.shared_n) if row.rank is not None else "—"
    note = f'<td class="t small-n">{escape_text(row.caution)}</td>' if row.caution else '<td class="t"></td>'
    return (
        f'<tr><td>{row.rank or "—"}</td><td class="t model">{escape_text(row.model)}</td>'
        f"<td>{failed}</td><td>{missing}</td>"
        f"<td>{row.n}</td><td><b>{_num(row.mean)}</b></td><td>{_interval(row.ci_low, row.ci_high)}</td>"
        f"<td>{_num(row.std)}</td><td>{shared}</td><td>{_num(row.shared_mean)}</td>"
        + "".join(f"<td>{_num(row.metrics.get(m))}</td>" for m in metrics)
        + f"{note}</tr>"
    )


def _gains(board: Leaderboard) -> str:
    lead = '<th class="t">model</th><th class="t">group</th><th>n</th><th>single</th><th>repaint</th><th>gain</th>'
    rows = [
        f'<tr><td class="t model">{escape_text(g.model)}</td><td class="t">{escape_text(str(g.group))}</td>'
        f"<td>{g.n}</td><td>{_num(g.single)}</td><td>{_num(g.repaint)}</td>{_paired_cells(g, g.gain)}</tr>"
        for g in board.gains
    ]
    about = (
        "Per model, paired on the same references: the loop's mean improvement of the primary metric, how often it "
        "helped (win rate, ties counted half), a two-sided Wilcoxon signed-rank p-value, its Benjamini-Hochberg "
        "adjustment within the family <code>gains</code> (every gain of this table) and the rank-biserial effect size."
    )
    head = _paired_head(board, lead, "wins / losses / ties")
    return _paired_section("Gain of repaint over single", about, head, rows)


def _comparisons(board: Leaderboard) -> str:
    lead = '<th class="t">mode</th><th class="t">A</th><th class="t">B</th><th>n</th><th>A − B</th>'
    rows = [
        f'<tr><td class="t">{escape_text(c.mode)}</td><td class="t model">{escape_text(c.model_a)}</td>'
        f'<td class="t model">{escape_text(c.model_b)}</td><td>{c.n}</td>'
        f"{_paired_cells(c, c.mean_diff, family=f'<td>{escape_text(c.family)}</td>')}</tr>"
        for c in board.comparisons
    ]
    about = (
        "Every pair of models in each mode, on the references both finished; A is the better-ranked. p: two-sided "
        "Wilcoxon signed-rank test; p (BH): Benjamini-Hochberg adjusted within the family named "
        "(<code>pairs:&lt;mode&gt;</code>: the mode's comparisons; read this one when scanning the whole table); "
        "effect: matched-pairs rank-biserial correlation, +1 when A is better on every reference. Values below "
        "0.05 are in green."
    )
    head = _paired_head(board, lead, "A wins / B wins / ties", family="<th>family</th>")
    return _paired_section("Pairwise comparisons", about, head, rows)


def _paired_head(board: Leaderboard, lead: str, tally: str, *, family: str = "") -> str:
    """The heading row of a table of paired tests: ``lead`` (the headings up to the difference's), then
    those of :func:`_paired_cells`: the interval, ``tally`` (how the wins, losses and ties are named), the win
    rate, both p-values, ``family`` (the family's heading, where the table shows it), the effect and the note."""
    pct = round(board.confidence * 100)
    return (
        f"<tr>{lead}<th>{pct}% interval</th><th>{tally}</th><th>win rate</th><th>p</th><th>p (BH)</th>{family}"
        '<th>effect</th><th class="t">note</th></tr>'
    )


def _paired_cells(paired: Gain | Comparison, difference: float | None, *, family: str = "") -> str:
    """The cells every paired test shows, from its difference of means (in bold) to its note; ``family``
    (the family's cell, where the table shows it) stands after the adjusted p-value."""
    return (
        f"<td><b>{_num(difference)}</b></td><td>{_interval(paired.ci_low, paired.ci_high)}</td>"
        f"<td>{paired.wins} / {paired.losses} / {paired.ties}</td><td>{_num(paired.win_rate, 3)}</td>"
        f"<td>{_p(paired.p_value)}</td><td>{_p(paired.p_adjusted)}</td>{family}"
        f'<td>{_num(paired.effect_size, 3)}</td><td class="t">{escape_text(paired.caution or "")}</td>'
    )


def _paired_section(title: str, about: str, head: str, rows: Sequence[str]) -> str:
    """A titled section with a muted explanation and a scrolling table of paired tests; none without rows."""
    if not rows:
        return ""
    return (
        f'<section><h2>{title}</h2><p class="muted">{about}</p>'
        f'<div class="scroll"><table><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div></section>'
    )


def _grid(board: Leaderboard, cases: Sequence[CaseResult], out_dir: Path, thumbs: _Thumbs, max_references: int) -> str:
    """Reference | every (mode, model)'s best image (and describer's, with several), one row per reference."""
    describers = board.describers.describers if board.describers else [None]
    columns = [(mode, model, d) for mode in board.modes for model in board.ranking(mode) if model for d in describers]
    by_ref: dict[tuple[str, str], dict[tuple[str, str, str | None], CaseResult]] = {}
    reference_paths: dict[tuple[str, str], Path | None] = {}
    for case in cases:
        key = (case.reference_id, case.reference_sha256)
        by_ref.setdefault(key, {})[(case.mode, case.model, case.describer if board.describers else None)] = case
        path = case.extra.get("reference_path")
        if isinstance(path, str) and path and reference_paths.get(key) is None:
            reference_paths[key] = Path(path)
        reference_paths.setdefault(key, None)
    if not by_ref:
        return ""
    refs = sorted(by_ref)
    shown = refs[:max_references]
    head = '<tr><th class="t">reference</th>' + "".join(
        f'<th class="model">{escape_text(model)}<br><span class="muted">{escape_text(mode)}'
        f"{escape_text(f' · {d}') if d else ''}</span></th>"
        for mode, model, d in columns
    )
    body: list[str] = []
    for key in shown:
        reference_id = key[0]
        cells = [
            f"<td><figure>{thumbs.tag(reference_paths.get(key), f'reference {reference_id}')}"
            f"<figcaption>{escape_text(reference_id)}</figcaption></figure></td>"
        ]
        for mode, model, d in columns:
            found = by_ref[key].get((mode, model, d))
            if found is None:
                cells.append('<td><div class="missing">not run</div></td>')
            elif found.status != "ok":
                cells.append(
                    f'<td><div class="missing err">failed: {escape_text(found.error or "unknown error")}</div></td>'
                )
            else:
                image = (out_dir / found.best_image) if found.best_image else None
                value = found.metrics.get(board.primary_metric)
                judged = _ratings(found)
                title = f' title="{escape_text(judged)}"' if judged else ""
                cells.append(
                    f"<td><figure{title}>{thumbs.tag(image, f'{model} ({mode}) best for {reference_id}')}"
                    f"<figcaption>{escape_text(board.primary_metric)} {_num(value)}</figcaption></figure>"
                    f"{case_checklist_html(found)}</td>"
                )
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        f'<p class="muted">Showing the first {len(shown)} of {len(refs)} references.</p>'
        if len(shown) < len(refs)
        else ""
    )
    return (
        '<section><h2>Images</h2><p class="muted">Each reference beside every model\'s best image (small '
        f"thumbnails; the full images are in the output folder).</p>{note}"
        f'<div class="scroll"><table class="grid" style="--thumb:{thumbs.side}px"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></section>"
    )


def _ratings(case: CaseResult) -> str:
    """A judge's first rating and rationale of a case (from ``extra["metric_details"]``), for a tooltip."""
    details = case.extra.get("metric_details")
    lines = []
    for name, record in details.items() if isinstance(details, dict) else ():
        ratings = record.get("ratings") if isinstance(record, dict) else None
        if isinstance(ratings, list) and ratings and isinstance(ratings[0], dict):
            first = ratings[0]
            lines.append(
                f"{name}: aesthetic {first.get('aesthetic')}, semantic {first.get('semantic')} — "
                f"{first.get('rationale', '')}"
            )
    return "\n".join(lines)


def _listing(title: str, note: str, table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A section listing records: a heading with their count, a note (HTML), and a table of escaped cells.

    A header starting with ``#`` is a numeric column; one starting with ``!`` holds errors (shown in red).
    """

    def cls(name: str, cell: bool = True) -> str:
        if name.startswith("#"):
            return ""
        if name == "model":
            return ' class="t model"'
        return ' class="t err"' if cell and name.startswith("!") else ' class="t"'

    head = "".join(f"<th{cls(h, cell=False)}>{escape_text(h.lstrip('#!'))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{cls(h)}>{escape_text(cell)}</td>" for h, cell in zip(header, row, strict=True)) + "</tr>"
        for row in rows
    )
    return (
        f'<section><h2>{escape_text(title)} ({len(rows)})</h2><p class="muted">{note}</p><div class="scroll">'
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>'
    )


def _failed(board: Leaderboard) -> str:
    if not board.failed:
        return ""
    return _listing(
        "Failed cases",
        "Counted in the tables' <i>failed</i> column, never averaged. Retry them with <code>--retry-failed</code>.",
        "failed-cases",
        ["model", "mode", "reference", "category", "!error"],
        [[f.model, f.mode, f.reference_id, f.category or "", f.error or ""] for f in board.failed],
    )


def _missing(board: Leaderboard) -> str:
    if not board.missing:
        return ""
    return _listing(
        "Missing values",
        "Finished cases whose metric is missing or not a finite number. Without a primary value a case is counted "
        "in the <i>missing</i> column, not in n; another metric missing empties that metric's column in the rows "
        "counting the case.",
        "missing-values",
        ["model", "mode", "reference", "metric", "!value", "#counted"],
        [[m.model, m.mode, m.reference_id, m.metric, m.reason, "yes" if m.counted else "no"] for m in board.missing],
    )


def _environment(board: Leaderboard) -> str:
    """What computed the numbers (see :mod:`~imagerepainter.bench.environment`), as compact groups of facts
    that wrap at any width, and the changes between evaluation calls."""
    from .environment import manifest_groups

    section = board.environment
    if section is None:
        return ""
    when = f" on {escape_text(section.recorded_at)}" if section.recorded_at else ""
    groups = "".join(
        f'<h3>{escape_text(group)}</h3><dl class="facts">'
        + "".join(f"<div><dt>{escape_text(k)}</dt><dd>{escape_text(v or '-')}</dd></div>" for k, v in facts.items())
        + "</dl>"
        for group, facts in manifest_groups(section.manifest).items()
    )
    changes = "".join(
        f"<li>call {c.run or '?'}: <b>{escape_text(c.field)}</b> {escape_text(c.old or '-')} → "
        f"{escape_text(c.new or '-')}</li>"
        for c in section.changes
    )
    if changes:
        changes = (
            f'<h3>Changes between calls ({len(section.changes)})</h3><p class="muted">The cases computed after a '
            f'change may differ because of it.</p><ul id="environment-changes">{changes}</ul>'
        )
    return (
        f'<section id="environment"><h2>Environment</h2><p class="muted">What computed these numbers: the latest '
        f"of {section.runs} recorded evaluation call(s){when}. <code>imagerepainter verify</code> scores stored "
        f"images again in today's environment.</p>{groups}{changes}</section>"
    )


def render_leaderboard_html(
    board: Leaderboard,
    cases: Sequence[CaseResult],
    out_dir: Path,
    *,
    title: str = "Image Regeneration leaderboard",
    thumb_side: int = 160,
    max_grid_references: int = 100,
) -> str:
    """Render ``board`` (built from ``cases``) as one self-contained HTML document.

    Args:
        board: The leaderboard.
        cases: Its case records, for the image grid: a case's best image is ``out_dir /
            case.best_image``, its reference ``case.extra["reference_path"]``. Images that cannot
            be read are shown as "image unavailable".
        out_dir: The evaluation's output folder.
        title: The page heading.
        thumb_side: Longest side of the embedded thumbnails, in pixels.
        max_grid_references: Most references in the image grid (the first, by id).
    """
    if thumb_side < 16:
        raise ValueError(f"thumb_side must be at least 16 pixels, got {thumb_side}.")
    thumbs = _Thumbs(thumb_side)
    tables = (
        "".join(f"<h3>Mode {escape_text(mode)}</h3>{_board_table(board, mode)}" for mode in board.modes)
        or '<p class="muted">No cases yet.</p>'
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">'
        f"<title>{escape_text(title)}</title><style>{_CSS}</style></head>\n<body><main>"
        f"<header><h1>{escape_text(title)}</h1>{_facts(board)}</header>"
        f'<section><h2>Means and intervals (all references)</h2><div class="chart">{_chart(board)}</div></section>'
        '<section><h2>Leaderboard</h2><p class="muted">Per mode and group (all references, each category, each '
        "style): failed cases and finished cases without a primary value (missing) beside the rank; n "
        "references counted, the mean of the primary metric with its interval and standard deviation; the "
        "references every ranked model counts (shared n) and the mean over them, which the rank orders; the "
        "mean of every metric over the same references (↑ higher is better, ↓ lower is better); and, for rows "
        "of few references, what they can support.</p>"
        f"{tables}</section>"
        f"{_gains(board)}{_comparisons(board)}"
        f"{html_section(board.describers, board.confidence) if board.describers else ''}"
        f"{element_html(board.elements)}{cost_html(board.costs)}"
        f"{_grid(board, cases, out_dir, thumbs, max_grid_references)}"
        f"{_failed(board)}{_missing(board)}{_environment(board)}"
        "<footer>Automatic similarity only partly agrees with people; see the metrics guide for each metric's "
        "caveats. Intervals and tests use a fixed random seed: the same records give the same report.</footer>"
        "</main></body></html>\n"
    )
