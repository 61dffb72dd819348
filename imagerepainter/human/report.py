"""The agreement report: every metric's agreement with people, the human ceiling, rankings; as JSON, Markdown, HTML.

:func:`build_report` turns scored judgments (:mod:`~imagerepainter.human.sources`) into one
JSON-able record; :func:`write_report` writes ``agreement.json``, ``agreement.md`` and
``agreement.html`` (:mod:`~imagerepainter.human.report_html`) from it. The record's schema
(``"schema": "imagerepainter.agreement/1"``):

=====================  ==================================================================
key                    what it holds
=====================  ==================================================================
``source``             ``{"kind": "evaluation" | "triplets", "path": ...}``
``judgments``          judgments read; ``cant_tell`` of them were "can't tell"
``pairs``              distinct pairs (reference, two images) judged
``references``         references judged; ``raters``: their names
``ceiling``            ``inter_rater`` and ``intra_rater`` (each an *estimate*),
                       ``krippendorff_alpha``, ``raters``
``metrics``            per metric: ``name``, ``higher_is_better``, ``agreement`` (each
                       judgment), ``majority`` (each pair's majority), ``kendall_tau``
                       (``tau``, ``low``, ``high``, ``systems``; evaluations only) and
                       ``sentence`` (quotable)
``groups``             ``{"category" | "style": {value: {"judgments": n, "metrics":
                       {name: estimate}}}}``, when the references have them
``bradley_terry``      ``[{"system", "strength", "games"}]`` best first (evaluations)
``blend``              with ``--fit``: the fitted blend (as in ``blend.json``), its
                       ``held_out_agreement`` comparable to each metric's ``agreement``
``settings``           ``resamples`` and ``seed`` of the bootstrap
=====================  ==================================================================

An *estimate* is ``{"value", "low", "high", "n", "excluded", "references"}``: a share in
[0, 1] with its 95% bootstrap interval over references, the units counted, the units left
out ("can't tell", or pairs whose majority split evenly) and the references.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .agreement import (
    DEFAULT_RESAMPLES,
    ScoredJudgment,
    grouped,
    human_ceiling,
    metric_agreement,
    pair_key,
)
from .figures import interval_text, metric_rows, percent, tau_text
from .ranking import bradley_terry, human_games, ranking_agreement

__all__ = ["SCHEMA", "build_report", "percent", "sentence", "tau_text", "write_report"]

SCHEMA = "imagerepainter.agreement/1"


def sentence(metric: str, record: dict[str, Any], report: dict[str, Any]) -> str:
    """The quotable sentence about one metric of ``report``."""
    ceiling = report["ceiling"]
    raters = len(report["raters"])
    if raters >= 2:
        inter = ceiling["inter_rater"]["value"]
        tail = (
            f"raters agree with each other on {percent(inter)}%." if inter is not None else "no pair was judged twice."
        )
        return (
            f"On {record['majority']['n']} judged pairs from {raters} raters, {metric} agrees with the raters' "
            f"majority on {interval_text(record['majority'])} of pairs; {tail}"
        )
    intra = ceiling["intra_rater"]["value"]
    tail = (
        f"; the rater agrees with their own earlier answer on {percent(intra)}% of repeated pairs."
        if intra is not None
        else "."
    )
    share = interval_text(record["agreement"])
    return f"On {record['agreement']['n']} judgments by one rater, {metric} agrees with the rater on {share}{tail}"


def _metric_names(rows: Sequence[ScoredJudgment]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.scores))
    return list(names)


def build_report(
    rows: Sequence[ScoredJudgment],
    *,
    source: dict[str, str],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    blend: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's record (see the module docstring for its schema)."""
    kw: dict[str, Any] = {"resamples": resamples, "seed": seed}
    with_systems = any(r.systems is not None for r in rows)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "source": source,
        "judgments": len(rows),
        "cant_tell": sum(r.judgment.choice == "tie" for r in rows),
        "pairs": len({pair_key(r.judgment) for r in rows}),
        "references": len({r.judgment.reference_id for r in rows}),
        "raters": sorted({r.judgment.rater for r in rows}),
        "ceiling": human_ceiling(rows, **kw).as_dict(),
        "settings": {"resamples": resamples, "seed": seed},
    }
    metrics = []
    for name in _metric_names(rows):
        hib = next(r.higher_is_better[name] for r in rows if name in r.scores)
        record: dict[str, Any] = {
            "name": name,
            "higher_is_better": hib,
            "agreement": metric_agreement(rows, name, **kw).as_dict(),
            "majority": metric_agreement(rows, name, majority=True, **kw).as_dict(),
            "kendall_tau": ranking_agreement(rows, name, resamples=max(1, resamples // 4), seed=seed).as_dict()
            if with_systems
            else None,
        }
        record["sentence"] = sentence(name, record, report)
        metrics.append(record)
    report["metrics"] = metrics
    report["groups"] = {
        key: {
            value: {
                "judgments": len(members),
                "metrics": {m["name"]: metric_agreement(members, m["name"], **kw).as_dict() for m in metrics},
            }
            for value, members in grouped(rows, key).items()
        }
        for key in ("category", "style")
        if grouped(rows, key)
    }
    games = human_games(rows)
    strengths = bradley_terry(games)
    report["bradley_terry"] = [
        {"system": s, "strength": v, "games": sum(s in (i, j) for i, j, _ in games)}
        for s, v in sorted(strengths.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    report["blend"] = blend
    return report


def render_markdown(report: dict[str, Any]) -> str:
    """``agreement.md``: the sentences, the metric table, the ceiling, the rankings and the groups."""
    ceiling = report["ceiling"]
    lines = [
        "# Agreement with people",
        "",
        f'{report["judgments"]} judgments ({report["cant_tell"]} "can\'t tell") of {report["pairs"]} pairs on '
        f"{report['references']} references by {len(report['raters'])} raters; source: "
        f"{report['source']['kind']} `{report['source']['path']}`. Intervals: 95% bootstrap over references.",
        "",
        *[f"- {m['sentence']}" for m in report["metrics"]],
        "",
        "## Metrics",
        "",
        "| metric | agreement (judgments) | n | majority (pairs) | n | Kendall's tau |",
        "|---|---|---|---|---|---|",
    ]
    for name, agreement, majority, tau in metric_rows(report):
        by_pair = f"{interval_text(majority)} | {majority['n']}" if majority else " | "
        lines.append(f"| {name} | {interval_text(agreement)} | {agreement['n']} | {by_pair} | {tau} |")
    alpha = ceiling["krippendorff_alpha"]
    lines += [
        "",
        "## Human ceiling",
        "",
        f"- raters agree with each other: {interval_text(ceiling['inter_rater'])} "
        f"({ceiling['inter_rater']['n']} rater pairs on shared pairs)",
        f"- raters agree with themselves on repeated pairs: {interval_text(ceiling['intra_rater'])} "
        f"({ceiling['intra_rater']['n']} repeats)",
        f"- Krippendorff's alpha (nominal): {'n/a' if alpha is None else f'{alpha:.3f}'}",
    ]
    if report["bradley_terry"]:
        lines += ["", "## Bradley–Terry strengths (people)", "", "| system | strength (log) | games |", "|---|---|---|"]
        lines += [f"| {b['system']} | {b['strength']:+.3f} | {b['games']} |" for b in report["bradley_terry"]]
    for key, groups in report["groups"].items():
        names = [m["name"] for m in report["metrics"]]
        lines += ["", f"## By {key}", "", f"| {key} | judgments | " + " | ".join(names) + " |"]
        lines.append("|---" * (len(names) + 2) + "|")
        for value, group in groups.items():
            cells = " | ".join(interval_text(group["metrics"][n]) for n in names)
            lines.append(f"| {value} | {group['judgments']} | {cells} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``agreement.json``, ``agreement.md`` and ``agreement.html`` into ``out``; returns their paths."""
    from .report_html import render_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "json": json.dumps(report, indent=2) + "\n",
        "md": render_markdown(report),
        "html": render_html(report),
    }
    paths = {}
    for kind, text in texts.items():
        path = out / f"agreement.{kind}"
        partial = path.with_suffix(f".{kind}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        paths[kind] = path
    return paths
