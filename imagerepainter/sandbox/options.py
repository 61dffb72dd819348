"""Checks of the sandbox backends' numeric spec options (``sandbox?acuity=0.5``, ``sandbox?fidelity=0.8``).

Each knob is a share between 0 and 1; :func:`check_share` turns the option into a float or says,
in a :class:`~imagerepainter.errors.ConfigurationError`, which interval it takes and what the
ends mean, so every knob answers bad input the same way.

Example:
    >>> check_share(1, what="MLLM's acuity", hint="1 sees every detail", open_low=True)
    1.0
    >>> try:
    ...     check_share(0, what="MLLM's acuity", hint="1 sees every detail", open_low=True)
    ... except ConfigurationError as exc:
    ...     print(exc)
    The sandbox MLLM's acuity must be in (0, 1] (1 sees every detail), got 0.
"""

from __future__ import annotations

from ..errors import ConfigurationError

__all__ = ["check_share"]


def check_share(value: float, *, what: str, hint: str, open_low: bool = False) -> float:
    """``value`` as a float in [0, 1] (in (0, 1] with ``open_low``), or a :class:`ConfigurationError`
    naming ``what`` (after "The sandbox"), the interval, ``hint`` and the value given. NaN is refused."""
    share = float(value)
    inside = (share > 0.0 if open_low else share >= 0.0) and share <= 1.0  # False for NaN
    if not inside:
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ConfigurationError(f"The sandbox {what} must be in {interval} ({hint}), got {value!r}.")
    return share
