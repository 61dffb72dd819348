"""What the leaderboard's sections share as records: frozen JSON-able rows and the fields of a paired test.

The ``elements`` and ``describers`` sections of ``leaderboard.json`` each compare two entries (two
models, two describers) on the references both finished, with
:func:`~imagerepainter.bench.stats.paired_comparison`. Their records name the pair their own way and
then hold the same numbers: :class:`PairedDifference` declares those once.

Pydantic orders a model's fields by its bases, the last base first. A section record lists
:class:`PairedDifference` *before* the record that names its pair, so the JSON still starts with
the pair and then gives the numbers, followed by the section's own fields.

Example:
    >>> from imagerepainter.bench import stats
    >>> class Pair(Record):
    ...     first: str
    ...     second: str
    >>> class PairTest(PairedDifference, Pair):
    ...     p_value: float | None
    >>> c = stats.paired_comparison([0.9, 0.8, 0.7], [0.5, 0.6, 0.4], interval=False)
    >>> test = PairTest(first="a", second="b", p_value=c.p_value, **PairedDifference.fields_of(c))
    >>> list(PairTest.model_fields)[:6], test.wins
    (['first', 'second', 'n', 'mean_a', 'mean_b', 'mean_diff'], 3)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from . import stats

__all__ = ["PairedDifference", "Record"]


class Record(BaseModel):
    """A frozen record that refuses unknown fields: a row of a section, as data."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PairedDifference(Record):
    """A against B on the references both have: their means, the mean difference with its interval, and the tally.

    The interval comes later than the test (one :func:`~imagerepainter.bench.stats.mean_intervals`
    call for a whole section shares its resample draws), so it defaults to None.
    """

    n: int
    """References compared (pairs)."""
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    """Mean of ``A - B`` in the metric's units."""
    ci_low: float | None = None
    """Interval of :attr:`mean_diff`; None with fewer than two pairs (or before it is computed)."""
    ci_high: float | None = None
    ci_method: stats.IntervalMethod | None = None
    wins: int
    """References where A is better."""
    losses: int
    ties: int

    @staticmethod
    def fields_of(test: stats.PairedComparison) -> dict[str, Any]:
        """The fields of this record that ``test`` gives (not the interval: see the class docstring)."""
        return {name: getattr(test, name) for name in ("n", "mean_a", "mean_b", "mean_diff", "wins", "losses", "ties")}
