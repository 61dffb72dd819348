"""A self-contained HTML report of one run, to read in any browser, offline.

:func:`render_report` turns a :class:`~imagerepainter.results.RepaintResult` into ONE HTML
document: the run's facts, the reference beside the best image, an inline-SVG chart of the
scores per round, every round (its prompt with the words that changed since the previous
round marked, every candidate with its score and seed, the critique that followed) and the
Image Understanding Tree. It loads nothing from the network: CSS is inline, there is no
JavaScript, and a Content-Security-Policy forbids scripts and remote resources, so text a
model wrote can never run even if it slipped past escaping (it does not: all text is escaped).

Images are embedded as data URLs (JPEG for photos, PNG for flat images, downscaled to
``max_side``) so the file can be mailed around; ``embed_images=False`` links them instead,
by default to ``images/<sha256>.png`` -- the layout :meth:`RepaintResult.save` writes::

    result.save("run")
    write_report(result, "run/report.html", embed_images=False)

Example:
    >>> from imagerepainter import Repainter
    >>> from imagerepainter.testing.fakes import FakeMLLM, FakeT2I, ScriptedScorer
    >>> from PIL import Image
    >>> result = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.2, 0.7, 0.1] * 2),
    ...                    max_rounds=2, adaptive_variants=False).run(Image.new("RGB", (32, 32), "white"))
    >>> page = render_report(result, title="demo")
    >>> page.startswith("<!doctype html>"), 'id="score-chart"' in page, 'data-points="6"' in page
    (True, True, True)
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from PIL import Image

from ._files import atomic_write
from .errors import ConfigurationError, RepainterError
from .html import PAGE_CSP, escape_text, image_data_url, nice_ticks, tick_digits
from .images import ImageRef

if TYPE_CHECKING:  # a view of the results: it reads them, the results module never depends on it
    from .results import Candidate, RepaintResult, Round

__all__ = [
    "PAGE_CSP",
    "ImageHref",
    "diff_words",
    "escape_text",
    "image_data_url",
    "nice_ticks",
    "render_report",
    "render_summary",
    "write_report",
]

ImageHref = Callable[[ImageRef], str]
"""Maps an image ref to the (relative) URL the report links when images are not embedded."""

_CSS = """
:root{--bg:#f7f7f5;--card:#fff;--fg:#1d1d1f;--muted:#6b6b70;--line:#e2e2e0;--accent:#2563eb;--good:#16a34a;
--warn:#b45309;--ins:#bbf7d0;--del:#fecaca;--dot:#94a3b8}
@media (prefers-color-scheme:dark){:root{--bg:#111214;--card:#1b1c1f;--fg:#e8e8ea;--muted:#9a9aa2;--line:#2c2d31;
--accent:#60a5fa;--good:#4ade80;--warn:#fbbf24;--ins:#14532d;--del:#7f1d1d;--dot:#64748b}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:1.7rem;margin:0 0 4px}h2{font-size:1.25rem;margin:0 0 12px}h3{font-size:1rem;margin:16px 0 6px}
section,header,nav.toc{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;
margin:0 0 18px}
.muted{color:var(--muted)}
.notice{border-left:4px solid var(--warn);background:var(--card);padding:8px 12px;margin:8px 0}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:14px 0 0;padding:0}
.facts div{border:1px solid var(--line);border-radius:8px;padding:8px 10px;min-width:0}
.facts dt{font-size:.75rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.facts dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,400px));gap:22px;justify-content:center}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:14px}
figure{margin:0;min-width:0}
.frame{position:relative;border-radius:8px;overflow:hidden;background:var(--line);border:3px solid transparent}
.frame img{display:block;width:100%;height:auto;cursor:zoom-in}
.frame:focus{outline:none}
.frame:focus img{position:fixed;inset:0;margin:auto;width:96vw;height:96vh;object-fit:contain;z-index:20;
cursor:zoom-out;background:rgba(0,0,0,.85)}
nav.toc{overflow-x:auto}nav.toc table{border-collapse:collapse;font-size:.9em}
nav.toc td,nav.toc th{padding:2px 10px;text-align:right}
nav.toc td:first-child,nav.toc th:first-child{text-align:left}
.is-round-best .frame{border-color:var(--accent)}.is-best .frame{border-color:var(--good)}
.badge{position:absolute;top:6px;left:6px;background:var(--good);color:#fff;font-size:.72rem;font-weight:700;
padding:2px 7px;border-radius:99px}
.badge.round{background:var(--accent)}
.blocked .frame img{opacity:.35}
.blocked-label{position:absolute;inset:auto 0 0 0;background:var(--warn);
color:#fff;font-size:.78rem;font-weight:600;text-align:center;padding:3px}
.missing{aspect-ratio:1;display:grid;place-items:center;color:var(--muted);font-size:.85rem}
figcaption{font-size:.85rem;margin-top:6px}
.score{font-weight:700;font-variant-numeric:tabular-nums}
.prompt{font-size:.8rem;color:var(--muted);overflow-wrap:anywhere;margin:2px 0 0}
.big .prompt{font-size:.9rem;color:var(--fg)}
.diff{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:10px 12px;overflow-wrap:anywhere}
ins{background:var(--ins);text-decoration:none;border-radius:3px;padding:0 2px}
del{background:var(--del);border-radius:3px;padding:0 2px;margin-right:3px}
.critique dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
.critique dt{color:var(--muted)}.critique dd{margin:0;overflow-wrap:anywhere}
.critique ul{margin:0;padding-left:18px}
.chart svg{width:100%;display:block;overflow:visible}
.axis{stroke:var(--muted);stroke-width:1}.gridline{stroke:var(--line);stroke-width:1}
svg text{fill:var(--muted);font-size:13px;text-anchor:middle}svg .tick,svg .title{text-anchor:start}
@media (max-width:640px){main{padding:12px 8px}section,header{padding:14px}}
.pt-cand{fill:var(--dot)}.pt-round{fill:none;stroke:var(--accent);stroke-width:2}
.pt-best{fill:var(--good)}.line-best{fill:none;stroke:var(--good);stroke-width:2.5}
.legend{display:flex;flex-wrap:wrap;gap:16px;font-size:.85rem;color:var(--muted);margin-top:6px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:50%;margin-right:6px;vertical-align:-1px}
details summary{cursor:pointer;font-weight:600}
.tree dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px;margin:6px 0 2px;padding-left:10px;
border-left:2px solid var(--line)}
.tree dt{color:var(--muted)}.tree dd{margin:0;overflow-wrap:anywhere}
footer{font-size:.8rem;color:var(--muted);text-align:center}
"""


_TOKEN = re.compile(r"\w+|[^\w\s]+|\s+")


def _fmt(score: float | None) -> str:
    return "—" if score is None else f"{score:.4f}"


def diff_words(old: str, new: str) -> str:
    """Return ``new`` as escaped HTML with the words changed since ``old`` marked ``<ins>`` / ``<del>``.

    Words and punctuation are compared separately (so "cat," vs "cat" marks only the comma) and
    ``new``'s own spacing is kept.

    Example:
        >>> diff_words("a red cat", "a ginger cat, <b>")
        'a <del>red</del><ins>ginger</ins> cat<ins>, &lt;b&gt;</ins>'
    """
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(str.isspace, a, b, autojunk=False).get_opcodes():
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            parts.append(escape_text(added))
            continue
        if removed.strip():
            parts.append(f"<del>{escape_text(removed.strip())}</del>")
        if added.strip():
            lead, trail = added[: len(added) - len(added.lstrip())], added[len(added.rstrip()) :]
            parts.append(f"{lead}<ins>{escape_text(added.strip())}</ins>{trail}")
        else:
            parts.append(added)
    return "".join(parts)


class _Images:
    """Turns refs into ``<img>`` tags: data URLs (cached per image) or hrefs."""

    def __init__(self, embed: bool, href: ImageHref | None, max_side: int) -> None:
        self.embed, self.max_side = embed, max_side
        self.href: ImageHref = href or (lambda ref: f"images/{ref['sha256']}.png")
        self._cache: dict[str, str | None] = {}

    def tag(self, ref: ImageRef, load: Callable[[], Image.Image], alt: str) -> str:
        scale = min(1.0, self.max_side / max(ref["width"], ref["height"], 1))
        w, h = max(1, round(ref["width"] * scale)), max(1, round(ref["height"] * scale))
        src = self._data_url(ref, load) if self.embed else self.href(ref)
        if src is None:
            return '<div class="missing">image unavailable</div>'
        return f'<img src="{escape_text(src)}" alt="{escape_text(alt)}" width="{w}" height="{h}">'

    def _data_url(self, ref: ImageRef, load: Callable[[], Image.Image]) -> str | None:
        key = ref["sha256"]
        if key not in self._cache:
            try:
                image = load()
            except (RuntimeError, RepainterError, OSError):  # unbound result or image missing from the store
                self._cache[key] = None
            else:
                self._cache[key] = image_data_url(image, self.max_side)
        return self._cache[key]


# ----------------------------------------------------------------------------- chart


def _finite(v: float | None) -> TypeGuard[float]:
    return v is not None and math.isfinite(v)


_PLOT_LEFT, _PLOT_RIGHT = 9.0, 98.0
"""Where the plot starts and ends across the chart, in percent of its width (left of it: the score labels)."""
_CHART_H, _CHART_TOP, _CHART_BOTTOM = 300, 30, 46
"""The chart's height in pixels, and the room above the plot (its title) and below it (the rounds)."""


def _chart(result: RepaintResult, higher_is_better: bool) -> str:
    """The scores per round as inline SVG: every candidate (dots), each round's best (rings), best so far (line).

    The chart is drawn in the page's own pixels, not scaled: across it is in percent of its
    width (no ``viewBox``), down in pixels, so its text keeps the page's font size on a phone
    as on a desktop. Score labels sit at the left end of their grid lines, above them.
    """
    n = len(result.rounds)
    cands = [
        (r.index, c.index, len(r.candidates), c.score) for r in result.rounds for c in r.candidates if _finite(c.score)
    ]
    bests = [(r.index, r.best.score) for r in result.rounds if r.best is not None and _finite(r.best.score)]
    so_far = [(r.index, r.best_score_so_far) for r in result.rounds if _finite(r.best_score_so_far)]
    attrs = (
        f'id="score-chart" role="img" aria-label="scores per round" data-rounds="{n}" data-points="{len(cands)}" '
        f'data-round-best-points="{len(bests)}" data-best-so-far-points="{len(so_far)}"'
    )
    values = [p[3] for p in cands] + [s for _, s in bests + so_far]
    if not values:
        return f'<svg {attrs} width="100%" height="80"><text x="50%" y="45">no scored images to plot</text></svg>'
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 0.05)
    lo, hi = lo - pad, hi + pad
    pw, ph, base = _PLOT_RIGHT - _PLOT_LEFT, _CHART_H - _CHART_TOP - _CHART_BOTTOM, _CHART_H - _CHART_BOTTOM

    def x(rnd: float) -> float:
        return _PLOT_LEFT + (rnd - 0.5) / n * pw

    def y(v: float) -> float:
        return _CHART_TOP + (hi - v) / (hi - lo) * ph

    def dot(cls: str, cx: float, v: float, r: float, title: str) -> str:
        return f'<circle class="{cls}" cx="{cx:.2f}%" cy="{y(v):.1f}" r="{r}"><title>{title}: {v:.4f}</title></circle>'

    direction = "higher is better" if higher_is_better else "lower is better"
    out = [f'<svg {attrs} width="100%" height="{_CHART_H}">']
    ticks = nice_ticks(lo, hi)
    digits = tick_digits(ticks[1] - ticks[0]) if len(ticks) > 1 else 2  # every label with the same decimals
    for t in ticks:
        out.append(f'<line class="gridline" x1="0" x2="{_PLOT_RIGHT}%" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        out.append(f'<text class="tick" x="0" y="{y(t) - 4:.1f}">{t:.{digits}f}</text>')
    step = max(1, math.ceil(n / 12))
    out += [f'<text x="{x(r):.2f}%" y="{base + 18}">{r}</text>' for r in range(1, n + 1, step)]
    out += [
        f'<line class="axis" x1="{_PLOT_LEFT}%" x2="{_PLOT_LEFT}%" y1="{_CHART_TOP}" y2="{base}"/>',
        f'<line class="axis" x1="{_PLOT_LEFT}%" x2="{_PLOT_RIGHT}%" y1="{base}" y2="{base}"/>',
        f'<text x="{_PLOT_LEFT + pw / 2:.2f}%" y="{_CHART_H - 6}">round</text>',
        f'<text class="title" x="0" y="13">score ({direction})</text>',
    ]
    for rnd, i, k, s in cands:  # a round's candidates side by side around the round's x
        dx = (i - (k - 1) / 2) * min(0.7, 0.5 * pw / n / max(k, 1))
        out.append(dot("pt-cand", x(rnd) + dx, s, 3.5, f"round {rnd}, candidate {i}"))
    out += [  # the best so far, one segment from round to round (percent across, so no polyline)
        f'<line class="line-best" x1="{x(r1):.2f}%" y1="{y(s1):.1f}" x2="{x(r2):.2f}%" y2="{y(s2):.1f}"/>'
        for (r1, s1), (r2, s2) in itertools.pairwise(so_far)
    ]
    out += [dot("pt-round", x(r), s, 6.5, f"round {r} best") for r, s in bests]
    out += [dot("pt-best", x(r), s, 3.5, f"best after round {r}") for r, s in so_far]
    return "".join(out) + "</svg>"


# ----------------------------------------------------------------------------- sections


def _notice(result: RepaintResult, notice: str | None) -> str:
    if notice is None and not result.finished:
        notice = "This run has not finished: the best image is the best so far."
    return f'<p class="notice" role="status">{escape_text(notice)}</p>' if notice else ""


def _facts(result: RepaintResult) -> str:
    cfg, usage, best = result.config, result.usage, result.best
    items: list[tuple[str, object]] = [
        ("stop reason", result.stop_reason if result.finished else "not finished"),
        ("rounds", len(result.rounds)),
        ("best score", _fmt(best.score) if best else "—"),
    ]
    for role, info in result.backends.items():
        items.append((role, info.get("name", "?") if isinstance(info, Mapping) else info))
    seconds = sum(result.timings.values())
    items += [
        ("preset", cfg.preset),
        ("variants × rounds", f"{cfg.variants} × {cfg.max_rounds} max"),
        ("seed", cfg.seed),
        ("images", f"{usage.get('images', 0)} ({usage.get('blocked_images', 0)} blocked)"),
        ("MLLM calls", usage.get("mllm_calls", 0)),
        ("tokens in / out", f"{usage.get('input_tokens', 0):,} / {usage.get('output_tokens', 0):,}"),
        ("total time", f"{seconds:.2f} s" if seconds < 120 else f"{seconds / 60:.1f} min"),
    ]
    return (
        '<dl class="facts">'
        + "".join(f"<div><dt>{escape_text(k)}</dt><dd>{escape_text(v)}</dd></div>" for k, v in items)
        + "</dl>"
    )


def _candidate(c: Candidate, images: _Images, *, round_best: bool, best: bool, big: bool = False) -> str:
    classes = ["cand"] + ["is-round-best"] * round_best + ["is-best"] * best + ["blocked"] * c.blocked + ["big"] * big
    badge = '<span class="badge">best overall</span>' if best else ""
    badge = badge or ('<span class="badge round">round best</span>' if round_best else "")
    if c.blocked:
        badge += '<span class="blocked-label">blocked by safety checker</span>'
    img = images.tag(c.image_ref, lambda: c.image, f"round {c.round}, candidate {c.index}")
    where = f" · round {c.round}" if big else ""
    return (
        f'<figure class="{" ".join(classes)}">'
        f'<div class="frame" tabindex="0" title="click to enlarge">{img}{badge}</div>'
        f'<figcaption><span class="score">{_fmt(c.score)}</span> '
        f'<span class="muted">· candidate {c.index} · seed {c.seed}{where}</span>'
        f'<p class="prompt">{escape_text(c.prompt)}</p></figcaption></figure>'
    )


def _critique(rnd: Round, rounds: list[Round]) -> str:
    c = rnd.critique
    if c is None:
        return ""
    rows = [(k, getattr(c, k)) for k in ("style", "composition", "content") if getattr(c, k)]
    body = "".join(f"<dt>{k}</dt><dd>{escape_text(v)}</dd>" for k, v in rows)
    if c.edits:
        body += "<dt>edits</dt><dd><ul>" + "".join(f"<li>{escape_text(e)}</li>" for e in c.edits) + "</ul></dd>"
    if c.revised_prompt:
        body += f"<dt>revised prompt</dt><dd>{escape_text(c.revised_prompt)}</dd>"
    body += f"<dt>judged a match</dt><dd>{'yes' if c.is_match else 'no'}</dd>"
    heading = (
        f"Critique of round {c.critiqued_round}, candidate {c.candidate}"
        if c.critiqued_round == rnd.index
        else (
            f"Critique of round {c.critiqued_round}, candidate {c.candidate} (the best so far): "
            f"round {rnd.index} did no better"
        )
    )
    return f'<div class="critique"><h3>{escape_text(heading)}</h3><dl>{body}</dl></div>'


def _round_costs(result: RepaintResult) -> dict[int, dict[str, float]]:
    """Per round: images rendered, model calls, their tokens and seconds (the critique after a round
    and the variants for it count with it), and the seconds rendering and scoring took."""
    costs: dict[int, dict[str, float]] = {
        r.index: {"images": len(r.candidates), "calls": 0, "tokens": 0, "call_seconds": 0.0, "seconds": r.seconds or 0}
        for r in result.rounds
    }
    for call in result.calls:
        cost = costs.get(int(call.get("round", 0)))
        if cost is not None:
            cost["calls"] += 1
            cost["tokens"] += int(call.get("input_tokens", 0)) + int(call.get("output_tokens", 0))
            cost["call_seconds"] += float(call.get("seconds", 0.0))
    return costs


def _contents(result: RepaintResult) -> str:
    """A table of contents: a row per round, linked, with its best score so far, time and cost."""
    if not result.rounds:
        return ""
    costs = _round_costs(result)
    rows = "".join(
        f'<tr><td><a href="#round-{r.index}">Round {r.index}</a></td><td>{_fmt(r.best_score_so_far)}</td>'
        f"<td>{int(costs[r.index]['images'])}</td><td>{costs[r.index]['seconds']:.1f} s</td>"
        f"<td>{int(costs[r.index]['calls'])}</td><td>{costs[r.index]['call_seconds']:.1f} s</td>"
        f"<td>{int(costs[r.index]['tokens']):,}</td></tr>"
        for r in result.rounds
    )
    return (
        '<nav class="toc"><h2>Rounds</h2><table><tr><th>round</th><th>best so far</th><th>images</th>'
        "<th>rendering and scoring</th><th>model calls</th><th>model time</th><th>tokens</th></tr>"
        f"{rows}</table></nav>"
    )


def _round(rnd: Round, rounds: list[Round], best: Candidate | None, images: _Images) -> str:
    previous = next((r for r in reversed(rounds) if r.index < rnd.index), None)
    if previous is None:
        prompt, label = escape_text(rnd.prompt), "Prompt"
    elif previous.prompt == rnd.prompt:
        prompt, label = escape_text(rnd.prompt), f"Prompt (unchanged since round {previous.index})"
    else:
        prompt, label = diff_words(previous.prompt, rnd.prompt), f"Prompt (changes since round {previous.index})"
    cards = "".join(
        _candidate(
            c,
            images,
            round_best=i == rnd.best_index,
            best=best is not None and (best.round, best.index) == (rnd.index, c.index),
        )
        for i, c in enumerate(rnd.candidates)
    )
    return (
        f'<section class="round" id="round-{rnd.index}"><h2>Round {rnd.index} '
        f'<span class="muted">· best so far {_fmt(rnd.best_score_so_far)}</span></h2>'
        f'<h3>{label}</h3><div class="diff">{prompt}</div><h3>Candidates</h3><div class="grid">{cards}</div>'
        f"{_critique(rnd, rounds)}</section>"
    )


def _tree(value: Any) -> str:
    if isinstance(value, Mapping):
        return "<dl>" + "".join(f"<dt>{escape_text(k)}</dt><dd>{_tree(v)}</dd>" for k, v in value.items()) + "</dl>"
    if isinstance(value, list):
        if not value:
            return '<span class="muted">none</span>'
        return "<dl>" + "".join(f"<dt>{i + 1}</dt><dd>{_tree(v)}</dd>" for i, v in enumerate(value)) + "</dl>"
    return escape_text(value)


def render_report(
    result: RepaintResult,
    *,
    title: str | None = None,
    embed_images: bool = True,
    image_href: ImageHref | None = None,
    max_side: int = 512,
    notice: str | None = None,
) -> str:
    """Render ``result`` as one self-contained HTML document (no network, no JavaScript).

    Args:
        result: A finished (or partial) run, bound to the image store that holds its images.
            Images the store cannot provide are shown as "image unavailable".
        title: Page heading; defaults to "ImageRepainter report".
        embed_images: Embed images as base64 data URLs (default), or link them via ``image_href``.
        image_href: With ``embed_images=False``, maps an image ref to its URL relative to the
            report; defaults to ``images/<sha256>.png`` (the layout of :meth:`RepaintResult.save`).
        max_side: Embedded images are downscaled so their longest side is at most this.
        notice: A line shown under the heading, e.g. that the run was interrupted and how to
            resume it. An unfinished result without one says it is not finished.

    Returns:
        The HTML document as a string. Every piece of text is HTML-escaped.
    """
    if max_side < 1:
        raise ConfigurationError(f"max_side must be a positive number of pixels, got {max_side}.")
    images = _Images(embed_images, image_href, max_side)
    heading = title or "ImageRepainter report"
    best = result.best
    higher = result.higher_is_better
    reference = images.tag(result.reference, lambda: result.reference_image, "reference image")
    best_html = (
        _candidate(best, images, round_best=False, best=True, big=True)
        if best is not None
        else '<figure><div class="frame"><div class="missing">no image was scored</div></div></figure>'
    )
    rounds = "".join(_round(r, result.rounds, best, images) for r in result.rounds)
    understanding = (
        f'<section><details class="tree"><summary>Image Understanding Tree</summary>{_tree(result.understanding)}'
        "</details></section>"
        if result.understanding
        else ""
    )
    footer = " · ".join(
        escape_text(f"{k} {v}")
        for k, v in (
            ("imagerepainter", result.library_version),
            ("prompts", result.prompt_version),
            ("thread", result.thread_id),
        )
        if v
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">'
        f"<title>{escape_text(heading)}</title><style>{_CSS}</style></head>\n<body><main>"
        f"<header><h1>{escape_text(heading)}</h1>"
        f'<div class="muted">{escape_text(result.summary().splitlines()[0])}</div>'
        f"{_notice(result, notice)}{_facts(result)}</header>{_contents(result)}"
        f'<section><h2>Reference and best image</h2><div class="pair"><figure class="big"><div class="frame">'
        f'{reference}</div><figcaption><span class="score">reference</span></figcaption></figure>{best_html}</div>'
        "</section>"
        f'<section><h2>Score per round</h2><div class="chart">{_chart(result, higher)}</div><div class="legend">'
        '<span><i style="background:var(--dot)"></i>every candidate</span>'
        '<span><i style="border:2px solid var(--accent)"></i>round best</span>'
        '<span><i style="background:var(--good)"></i>best so far</span></div></section>'
        f"{rounds}{understanding}<footer>{footer}</footer></main></body></html>\n"
    )


def write_report(
    result: RepaintResult,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    embed_images: bool = True,
    image_href: ImageHref | None = None,
    max_side: int = 512,
    notice: str | None = None,
) -> Path:
    """Render ``result`` (see :func:`render_report`) and write it to ``path`` atomically; return the path."""
    page = render_report(
        result, title=title, embed_images=embed_images, image_href=image_href, max_side=max_side, notice=notice
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, page)


# ----------------------------------------------------------------------------- notebook view

_CELL = "margin:0;display:inline-block;vertical-align:top;text-align:center;font-size:.85em"


class _Budget:
    """Image tags accepted while their characters fit ``left``; the rest are left out (text stays whole)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, tag: str, fallback: str) -> str:
        if len(tag) - len(fallback) > self.left:
            return fallback
        self.left -= len(tag) - len(fallback)
        return tag


def _loader(candidate: Candidate) -> Callable[[], Image.Image]:
    return lambda: candidate.image


def _summary_html(
    result: RepaintResult, image: Callable[[ImageRef, Callable[[], Image.Image], str, bool], str], note: str = ""
) -> str:
    """The notebook view of ``result``; ``image(ref, load, alt, small)`` gives each image's HTML."""
    best, n = result.best, len(result.rounds)
    ended = f"stopped: {result.stop_reason}" if result.finished else "not finished (best so far)"
    where = f" (round {best.round}, candidate {best.index})" if best else ""
    head = f"RepaintResult: {n} round{'' if n == 1 else 's'}, {ended}, best score {_fmt(best.score if best else None)}"
    pair = [
        f'<figure style="{_CELL}">{image(result.reference, lambda: result.reference_image, "reference", False)}'
        "<figcaption>reference</figcaption></figure>"
    ]
    if best is not None:
        pair.append(
            f'<figure style="{_CELL}">{image(best.image_ref, _loader(best), "best image", False)}'
            f"<figcaption>best{escape_text(where)}: <b>{_fmt(best.score)}</b></figcaption></figure>"
        )
    strip = []
    for r in result.rounds:
        rb = r.best
        thumb = image(rb.image_ref, _loader(rb), f"round {r.index} best", True) if rb else "no image scored"
        strip.append(
            f'<figure style="{_CELL};min-width:72px">{thumb}<figcaption>round {r.index}<br>'
            f"{_fmt(rb.score if rb else None)}<br><small>best so far {_fmt(r.best_score_so_far)}</small>"
            "</figcaption></figure>"
        )
    prompts = "".join(f"<li value={r.index}>{escape_text(r.prompt)}</li>" for r in result.rounds)
    return (
        f'<div class="imagerepainter-result"><p><b>{escape_text(head)}</b></p>{note}'
        f'<div style="display:flex;gap:12px;flex-wrap:wrap">{"".join(pair)}</div>'
        f"<p><b>Best prompt:</b> {escape_text(best.prompt) if best else '—'}</p>"
        + (f'<div style="display:flex;gap:8px;overflow-x:auto">{"".join(strip)}</div>' if strip else "")
        + (f"<details><summary>Prompt of each round</summary><ol>{prompts}</ol></details>" if prompts else "")
        + "</div>"
    )


def render_summary(result: RepaintResult, *, max_side: int = 256, max_bytes: int = 400_000) -> str:
    """A compact, self-contained HTML view of ``result`` for notebooks (``RepaintResult._repr_html_``).

    The reference beside the best image (at most ``max_side`` pixels), a strip of each round's best
    image with its score and the best so far (half that size), the best prompt in full and every
    round's prompt. All text is escaped; images are data URLs, dropped (later rounds first) where
    they would take the HTML past ``max_bytes`` characters, so a long run stays light in a saved
    notebook. A result whose images are not at hand (loaded from JSON without its folder) shows
    its text alone.

    Example:
        >>> from imagerepainter import Repainter, RepaintResult
        >>> from imagerepainter.sandbox import random_scene, render_scene
        >>> result = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2).run(
        ...     render_scene(random_scene(1)), progress=False)
        >>> view = render_summary(result)
        >>> view.count("<img ") == 2 + len(result.rounds), len(view) <= 400_000
        (True, True)
        >>> "<img " in render_summary(RepaintResult.model_validate_json(result.model_dump_json()))
        False
    """
    if max_side < 1:
        raise ConfigurationError(f"max_side must be a positive number of pixels, got {max_side}.")
    if not result.is_bound:  # nothing to show but the text
        note = "<p><i>Images not at hand: load the result from its folder, or bind(store) it.</i></p>"
        return _summary_html(result, lambda ref, load, alt, small: "", note)
    left_out = "<small>(left out to keep this view small)</small>"
    text = _summary_html(result, lambda ref, load, alt, small: left_out)
    budget = _Budget(max_bytes - len(text))
    big, thumbs = _Images(True, None, max_side), _Images(True, None, max(1, max_side // 2))

    def image(ref: ImageRef, load: Callable[[], Image.Image], alt: str, small: bool) -> str:
        return budget.take((thumbs if small else big).tag(ref, load, alt), left_out)

    return _summary_html(result, image)
