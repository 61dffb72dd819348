"""``agreement.html``: the agreement report as one self-contained page.

Like the other reports it loads nothing: inline CSS, an inline SVG chart (each metric's
agreement with its interval, the raters' agreement with each other as a dashed line), no
script, and a Content-Security-Policy that forbids scripts and remote resources. Every text
(metric, system, category and rater names) is HTML-escaped. Tables scroll sideways on a
narrow screen; the chart scales to the width.

Example:
    >>> page = render_html({"source": {"kind": "triplets", "path": "t.csv"}, "judgments": 0, "cant_tell": 0,
    ...     "pairs": 0, "references": 0, "raters": [], "metrics": [], "groups": {}, "bradley_terry": [],
    ...     "blend": None, "ceiling": {"inter_rater": {"value": None}, "intra_rater": {"value": None},
    ...     "krippendorff_alpha": None}})
    >>> page.startswith("<!doctype html>"), "Content-Security-Policy" in page
    (True, True)
"""

from __future__ import annotations

from typing import Any

from ..html import escape_text
from .figures import interval_text, metric_rows

__all__ = ["CSP", "render_html"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
"""Stricter than :data:`imagerepainter.html.PAGE_CSP`: this page links no image files."""
"""The page's Content-Security-Policy: no script, nothing remote."""

_CSS = """
:root{--bg:#f7f7f5;--card:#fff;--fg:#1d1d1f;--muted:#6b6b70;--line:#e2e2e0;--accent:#2563eb;--human:#b45309}
@media (prefers-color-scheme:dark){:root{--bg:#111214;--card:#1b1c1f;--fg:#e8e8ea;--muted:#9a9aa2;--line:#2c2d31;
--accent:#60a5fa;--human:#fbbf24}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1100px;margin:0 auto;padding:20px 14px 40px}
h1{font-size:1.6rem;margin:0 0 6px}h2{font-size:1.2rem;margin:0 0 10px}
section,header{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:16px 18px;margin:0 0 16px}
.muted{color:var(--muted)}
blockquote{margin:8px 0;padding:6px 12px;border-left:4px solid var(--accent);overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600}
td.t,th.t{text-align:left;white-space:normal;overflow-wrap:anywhere;max-width:260px}
svg{width:100%;height:auto;display:block}
svg text{fill:var(--muted);font-size:12px}svg .label{text-anchor:end;fill:var(--fg)}
.ci{stroke:var(--accent);stroke-width:3}.pt{fill:var(--accent)}.grid{stroke:var(--line)}
.human{stroke:var(--human);stroke-width:2;stroke-dasharray:6 4}
"""


def _cell(estimate: dict[str, Any] | None) -> str:
    return f"<td>{interval_text(estimate)}</td>"


def _chart(report: dict[str, Any]) -> str:
    """Each metric's per-judgment agreement (0-100%) with its interval, and the raters' agreement."""
    rows = [(m["name"], m["agreement"]) for m in report["metrics"] if m["agreement"]["value"] is not None]
    if report.get("blend"):
        rows.append(("blend (held out)", report["blend"]["held_out_agreement"]))
    if not rows:
        return ""
    left, width, step = 170, 440, 26
    height = 30 + step * len(rows)

    def x(share: float) -> float:
        return left + width * share

    parts = [
        f'<line class="grid" x1="{x(t / 4):.1f}" y1="8" x2="{x(t / 4):.1f}" y2="{height - 18}"/>' for t in range(5)
    ]
    parts += [f'<text x="{x(t / 4):.1f}" y="{height - 4}" text-anchor="middle">{25 * t}%</text>' for t in range(5)]
    for k, (name, est) in enumerate(rows):
        y = 20 + step * k
        parts.append(f'<text class="label" x="{left - 8}" y="{y + 4}">{escape_text(name)}</text>')
        parts.append(f'<line class="ci" x1="{x(est["low"]):.1f}" y1="{y}" x2="{x(est["high"]):.1f}" y2="{y}"/>')
        parts.append(f'<circle class="pt" cx="{x(est["value"]):.1f}" cy="{y}" r="5"/>')
    inter = report["ceiling"]["inter_rater"].get("value")
    if inter is not None:
        parts.append(f'<line class="human" x1="{x(inter):.1f}" y1="8" x2="{x(inter):.1f}" y2="{height - 18}"/>')
    title = "Agreement of each metric with the raters; dashed: raters with each other"
    return (
        f'<svg id="agreement-chart" viewBox="0 0 {left + width + 20} {height}" role="img" '
        f'aria-label="{escape_text(title)}">' + "".join(parts) + "</svg>"
    )


def _metrics_table(report: dict[str, Any]) -> str:
    head = (
        "<tr><th class=t>metric</th><th>agreement</th><th>n</th><th>majority</th><th>n</th><th>Kendall's tau</th></tr>"
    )
    body = []
    for name, agreement, majority, tau in metric_rows(report):
        by_pair = f"{_cell(majority)}<td>{majority['n']}</td>" if majority else "<td></td><td></td>"
        body.append(
            f"<tr><td class=t>{escape_text(name)}</td>{_cell(agreement)}<td>{agreement['n']}</td>"
            f"{by_pair}<td>{tau}</td></tr>"
        )
    return f'<div class="scroll"><table id="metrics">{head}{"".join(body)}</table></div>'


def _ceiling(report: dict[str, Any]) -> str:
    c = report["ceiling"]
    alpha = c.get("krippendorff_alpha")
    return (
        '<section><h2>Human ceiling</h2><div class="scroll"><table id="ceiling">'
        f"<tr><th class=t>raters agree with each other</th>{_cell(c['inter_rater'])}</tr>"
        f"<tr><th class=t>raters agree with themselves (repeated pairs)</th>{_cell(c['intra_rater'])}</tr>"
        f"<tr><th class=t>Krippendorff's alpha (nominal)</th><td>{'n/a' if alpha is None else f'{alpha:.3f}'}</td></tr>"
        "</table></div></section>"
    )


def _bradley_terry(report: dict[str, Any]) -> str:
    if not report["bradley_terry"]:
        return ""
    rows = "".join(
        f"<tr><td class=t>{escape_text(b['system'])}</td><td>{b['strength']:+.3f}</td><td>{b['games']}</td></tr>"
        for b in report["bradley_terry"]
    )
    return (
        '<section><h2>Models ranked by people (Bradley–Terry)</h2><div class="scroll"><table id="bradley-terry">'
        f"<tr><th class=t>system</th><th>strength (log)</th><th>games</th></tr>{rows}</table></div></section>"
    )


def _groups(report: dict[str, Any]) -> str:
    names = [m["name"] for m in report["metrics"]]
    out = []
    for key, groups in report["groups"].items():
        head = (
            f"<tr><th class=t>{escape_text(key)}</th><th>judgments</th>"
            + "".join(f"<th>{escape_text(n)}</th>" for n in names)
            + "</tr>"
        )
        rows = "".join(
            f"<tr><td class=t>{escape_text(value)}</td><td>{g['judgments']}</td>"
            + "".join(_cell(g["metrics"].get(n)) for n in names)
            + "</tr>"
            for value, g in groups.items()
        )
        out.append(
            f'<section><h2>By {escape_text(key)}</h2><div class="scroll"><table>{head}{rows}</table></div></section>'
        )
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The page for a report record of :func:`~imagerepainter.human.report.build_report`."""
    facts = (
        f'{report["judgments"]} judgments ({report["cant_tell"]} "can\'t tell") of {report["pairs"]} pairs on '
        f"{report['references']} references by {len(report['raters'])} raters. Source: {report['source']['kind']} "
        f"{report['source']['path']}. Intervals: 95% bootstrap over references."
    )
    quotes = "".join(f"<blockquote>{escape_text(m['sentence'])}</blockquote>" for m in report["metrics"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>Agreement with people</title><style>{_CSS}</style></head><body><main>"
        f'<header><h1>Agreement with people</h1><p class="muted">{escape_text(facts)}</p>{quotes}</header>'
        f"<section><h2>Metrics</h2>{_chart(report)}{_metrics_table(report)}</section>"
        f"{_ceiling(report)}{_bradley_terry(report)}{_groups(report)}"
        "<footer class=muted>Written by imagerepainter agreement.</footer></main></body></html>\n"
    )
