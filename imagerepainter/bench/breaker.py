"""A circuit breaker per model: a model that keeps failing stops taking the evaluation's time.

Without it, a text-to-image API answering 500 forever costs every one of its cases the full
retry budget (about 77 s each, holding the model's render slot), one after another. The
breaker watches each model's finished cases (in the process that schedules them, so it works
alike for the local and the Ray executor) and *opens* for a model

* after :data:`BREAKER_THRESHOLD` consecutive failed cases (a success in between resets the
  count), or
* at once after a failure that asking again cannot fix (:func:`is_permanent`): HTTP 401, 403
  or 404, a model that could not be loaded, a missing package.

Once open, the model's remaining cases are recorded at once as ``skipped`` with the reason
(no retry, no render slot held) and the other models go on. Skipped cases are not finished:
the next evaluation of the same folder computes them (it tries the model again), and the
leaderboard lists them with the failures meanwhile.

Example:
    >>> breaker = CircuitBreaker(threshold=2)
    >>> breaker.record("m", error="RuntimeError: boom"), breaker.record("m", error=None)  # reset
    (False, False)
    >>> breaker.record("m", error="RuntimeError: boom"), breaker.record("m", error="RuntimeError: boom")
    (False, True)
    >>> print(breaker.reason("m"))
    model 'm' stopped after 2 consecutive failed cases (last: RuntimeError: boom)
    >>> breaker.record("n", error="GenerationError: HTTP 401", permanent=True), breaker.is_open("n")
    (True, True)
"""

from __future__ import annotations

import threading

from ..backends.retry import status_code
from ..errors import MissingDependencyError, ModelLoadError

__all__ = ["BREAKER_THRESHOLD", "PERMANENT_STATUS", "CircuitBreaker", "is_permanent"]

BREAKER_THRESHOLD = 3
"""Consecutive failed cases of one model after which its remaining cases are skipped."""

PERMANENT_STATUS = frozenset({401, 403, 404})
"""HTTP statuses that retrying cannot fix: a bad key, no access to the model, no such model."""


def is_permanent(exc: BaseException) -> bool:
    """Whether asking the model again in this evaluation cannot succeed: a load failure, a missing
    package, or an HTTP 401 / 403 / 404 (on the error or anything it was raised from).

    Example:
        >>> is_permanent(ModelLoadError("no weights")), is_permanent(TimeoutError())
        (True, False)
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ModelLoadError, MissingDependencyError)):
            return True
        if status_code(current) in PERMANENT_STATUS:
            return True
        current = current.__cause__ or current.__context__
    return False


class CircuitBreaker:
    """Counts each model's consecutive failed cases and opens for a model that keeps failing.

    Thread-safe: the scheduler's threads record finished cases concurrently.

    Args:
        threshold: Consecutive failed cases that open a model's breaker
            (default :data:`BREAKER_THRESHOLD`).
    """

    def __init__(self, threshold: int = BREAKER_THRESHOLD) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {threshold!r}")
        self.threshold = threshold
        self._streak: dict[str, int] = {}
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, model: str, *, error: str | None, permanent: bool = False) -> bool:
        """Record a finished case of ``model`` (``error`` is ``None`` for a success); return
        True when this case opened the model's breaker."""
        with self._lock:
            if model in self._reasons:
                return False
            if error is None:
                self._streak[model] = 0
                return False
            streak = self._streak[model] = self._streak.get(model, 0) + 1
            if permanent:
                self._reasons[model] = f"model {model!r} failed in a way retrying cannot fix ({error})"
            elif streak >= self.threshold:
                self._reasons[model] = (
                    f"model {model!r} stopped after {streak} consecutive failed cases (last: {error})"
                )
            else:
                return False
            return True

    def is_open(self, model: str) -> bool:
        """Whether ``model``'s remaining cases are to be skipped."""
        with self._lock:
            return model in self._reasons

    def reason(self, model: str) -> str:
        """Why ``model``'s breaker opened (empty while it is closed)."""
        with self._lock:
            return self._reasons.get(model, "")

    @property
    def opened(self) -> dict[str, str]:
        """Every model whose breaker opened, with the reason."""
        with self._lock:
            return dict(self._reasons)
