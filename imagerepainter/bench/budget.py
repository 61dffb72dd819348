"""``budget``: stop starting an evaluation's cases once it has spent so many dollars.

The budget counts what **this call** of :func:`~imagerepainter.bench.evaluate` spends, in the
dollars of its prices (:mod:`~imagerepainter.bench.prices`): each case it finishes (finished or
failed: both were paid for; the case's own tokens and images) and each description it computes
(whole, when it is computed). Cases recorded by earlier calls do not count, so running the same
command again with the same budget goes on where the last call stopped, one budget further.

Once the spent dollars reach the budget, no case starts any more (see
:func:`~imagerepainter.bench.scheduler.schedule`); the cases in flight finish and are kept, so
a call can end a little over its budget (by at most what the cases in flight cost). The rest
stay uncomputed: the next call computes them.

Example:
    >>> from imagerepainter.bench.prices import load_prices
    >>> prices = load_prices({"mllm": {"m": {"input_per_million": 1, "output_per_million": 1}},
    ...                       "t2i": {"a": {"per_image": 0.5}}})
    >>> budget = Budget(1.0, prices)
    >>> budget.spent, budget.reached
    (0.0, False)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .costs import case_dollars, description_cost, mllm_dollars
from .prices import mllm_key

if TYPE_CHECKING:
    from .prices import Prices
    from .records import CaseResult

__all__ = ["Budget", "check_budget"]


def check_budget(budget: float | None, prices: Any) -> None:
    """Refuse a budget without prices, or one that is not a positive number.

    Raises:
        ConfigurationError: says what to give instead.
    """
    if budget is None:
        return
    if prices is None:
        raise ConfigurationError(
            "A budget is in dollars and needs prices: give a prices file too (--prices prices.toml, "
            "evaluate(prices=...); see examples/prices.toml)."
        )
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0 or budget == float("inf"):
        raise ConfigurationError(f"The budget must be a positive number of dollars, not {budget!r}.")


class Budget:
    """The dollars one evaluation call may spend, and what it spent so far (thread-safe).

    Args:
        limit: Dollars.
        prices: The evaluation's prices.
        describer: The evaluation's describer, or its describers by name
            (:class:`~imagerepainter.bench.describer.Describers`): the descriptions they compute count.
        mllm: The describing MLLM's key in ``prices`` (one describer; several name their own).
    """

    def __init__(self, limit: float, prices: Prices, *, describer: Any = None, mllm: str = "") -> None:
        self.limit, self.prices, self.describer, self.mllm = float(limit), prices, describer, mllm
        self._cases = 0.0
        self._lock = threading.Lock()

    def add(self, case: CaseResult) -> None:
        """Count a finished case's own dollars (its description is counted when computed)."""
        own, _ = case_dollars(case, self.prices, {})
        with self._lock:
            self._cases += own

    @property
    def spent(self) -> float:
        """Dollars spent by this call: its cases' and the descriptions it computed."""
        descriptions = sum(mllm_dollars(self.prices, {key: description_cost(d, key)}) for key, d in self._described())
        with self._lock:
            return self._cases + descriptions

    def _described(self) -> list[tuple[str, Any]]:
        """(prices key, description) of each description this call computed."""
        panel = getattr(self.describer, "describers", None)
        if panel is None:
            return [(self.mllm, d) for d in list(getattr(self.describer, "described", None) or [])]
        return [(mllm_key(each.mllm), d) for each in panel.values() for d in list(each.described)]

    @property
    def reached(self) -> bool:
        """Whether no case may start any more."""
        return self.spent >= self.limit
