"""How the agreement report writes its numbers, in Markdown and in HTML alike."""

from __future__ import annotations

from typing import Any

__all__ = ["interval_text", "metric_rows", "percent", "tau_text"]


def percent(value: float | None) -> str:
    """``0.873`` as ``"87"``; None as ``"n/a"``."""
    return "n/a" if value is None else f"{100 * value:.0f}"


def tau_text(tau: dict[str, Any] | None) -> str:
    """A Kendall's tau record as ``"0.87 [0.60, 1.00]"`` (empty when there is none)."""
    return "" if not tau or tau["tau"] is None else f"{tau['tau']:.2f} [{tau['low']:.2f}, {tau['high']:.2f}]"


def interval_text(estimate: dict[str, Any] | None) -> str:
    """An agreement estimate as ``"87% [80, 93]"``; ``"n/a"`` without one or without a value."""
    if not estimate or estimate.get("value") is None:
        return "n/a"
    return f"{percent(estimate['value'])}% [{percent(estimate['low'])}, {percent(estimate['high'])}]"


def metric_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None, str]]:
    """The rows of the report's metric table, in both formats: each metric's name, its agreement per
    judgment, its majority agreement per pair and its Kendall's tau as text; then, when a blend was
    fitted, its held-out agreement (no majority, no tau).

    Example:
        >>> est = {"value": 0.8, "low": 0.7, "high": 0.9, "n": 10}
        >>> metric_rows({"metrics": [{"name": "clip", "agreement": est, "majority": est, "kendall_tau": None}]})[0][3]
        ''
    """
    rows = [(m["name"], m["agreement"], m["majority"], tau_text(m.get("kendall_tau"))) for m in report["metrics"]]
    if report.get("blend"):
        rows.append(("blend (fitted, held out)", report["blend"]["held_out_agreement"], None, ""))
    return rows
