"""How the agreement report writes its numbers, in Markdown and in HTML alike."""

from __future__ import annotations

from typing import Any

__all__ = ["percent", "tau_text"]


def percent(value: float | None) -> str:
    """``0.873`` as ``"87"``; None as ``"n/a"``."""
    return "n/a" if value is None else f"{100 * value:.0f}"


def tau_text(tau: dict[str, Any] | None) -> str:
    """A Kendall's tau record as ``"0.87 [0.60, 1.00]"`` (empty when there is none)."""
    return "" if not tau or tau["tau"] is None else f"{tau['tau']:.2f} [{tau['low']:.2f}, {tau['high']:.2f}]"
