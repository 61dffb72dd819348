"""A circuit breaker per model: a model that keeps failing stops taking the evaluation's time.

Without it, a text-to-image API answering 500 forever costs every one of its cases the full
retry budget (about 77 s each, holding the model's render slot and a case's thread), one
after another, and the threads its cases hold are threads the other models' cases could use.
The breaker watches each model's finished cases (in the process that schedules them, so it
works alike for the local and the Ray executor) and *opens* for a model

* after :data:`BREAKER_THRESHOLD` consecutive failed cases (a success in between resets the
  count), or
* at once after a failure that asking again cannot fix (:func:`is_permanent`): HTTP 401, 403
  or 404, a model that could not be loaded, a missing package, or
* at once after a failed case whose failure is one its backend retries
  (:func:`outlasted_retries`: a server error, a rate limit, a timeout, a dropped connection)
  while no case of the model has succeeded yet: the backend already asked again for its
  whole retry budget (10 attempts within 180 s for the OpenAI images API) and the service
  never answered. Once a case of the model has succeeded, such failures count towards the
  threshold like any other (a model that worked may have a passing outage).

While a model's last finished case failed and its breaker is still closed (*half-open*), the
scheduler runs at most one case of it at a time (:meth:`CircuitBreaker.probing`): a probe
whose success closes the breaker again, so a failing model's retries hold one thread, not
its whole share.

Once open, the model's remaining cases are recorded at once as ``skipped`` with the reason
(no retry, no render slot held) and the other models go on. Skipped cases are not finished:
a later evaluation of the same folder (or ``--retry-failed``) tries the model again and
computes them, and the leaderboard lists them with the failures meanwhile.

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
    >>> breaker.record("o", error="GenerationError: HTTP 500 (10 attempts over 77.0 s)", outlasted_retries=True)
    True
    >>> breaker.record("p", error=None), breaker.record("p", error="GenerationError: HTTP 500", outlasted_retries=True)
    (False, False)
    >>> breaker.probing("p")  # half-open: one case of p at a time until one succeeds
    True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ..backends.retry import is_transient, status_code
from ..errors import MissingDependencyError, ModelLoadError

__all__ = ["BREAKER_THRESHOLD", "PERMANENT_STATUS", "CircuitBreaker", "is_permanent", "outlasted_retries"]

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
    return any(
        isinstance(error, (ModelLoadError, MissingDependencyError)) or status_code(error) in PERMANENT_STATUS
        for error in _chain(exc)
    )


def outlasted_retries(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it was raised from) is a failure that backends retry
    (:func:`~imagerepainter.backends.retry.is_transient`: HTTP 5xx or 429, a timeout, a dropped
    connection), so that reaching the case means the backend's retries never got past it; and
    not one that retrying cannot fix (:func:`is_permanent` wins).

    Example:
        >>> outlasted_retries(TimeoutError("read timed out")), outlasted_retries(ValueError("HTTP 400"))
        (True, False)
    """
    return not is_permanent(exc) and any(is_transient(error) for error in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


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
        self._succeeded: set[str] = set()
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(
        self, model: str, *, error: str | None, permanent: bool = False, outlasted_retries: bool = False
    ) -> bool:
        """Record a finished case of ``model`` (``error`` is ``None`` for a success); return
        True when this case opened the model's breaker.

        Args:
            permanent: The failure is one retrying cannot fix (:func:`is_permanent`): opens at once.
            outlasted_retries: The failure is one the backend retried in vain
                (:func:`outlasted_retries`): opens at once while no case of the model has succeeded.
        """
        with self._lock:
            if model in self._reasons:
                return False
            if error is None:
                self._streak[model] = 0
                self._succeeded.add(model)
                return False
            streak = self._streak[model] = self._streak.get(model, 0) + 1
            if permanent:
                self._reasons[model] = f"model {model!r} failed in a way retrying cannot fix ({error})"
            elif outlasted_retries and model not in self._succeeded:
                self._reasons[model] = (
                    f"model {model!r} kept failing through its retries before any of its cases succeeded ({error})"
                )
            elif streak >= self.threshold:
                self._reasons[model] = (
                    f"model {model!r} stopped after {streak} consecutive failed cases (last: {error})"
                )
            else:
                return False
            return True

    def probing(self, model: str) -> bool:
        """Whether ``model`` is half-open: its last finished case failed and its breaker is still
        closed, so the scheduler runs one case of it at a time until one succeeds."""
        with self._lock:
            return model not in self._reasons and self._streak.get(model, 0) > 0

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
