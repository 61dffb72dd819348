"""Bounded retries of transient backend failures (tenacity).

Transient means: rate limits (429, honouring ``retry-after-ms`` / ``retry-after``), server
errors (5xx), timeouts, dropped connections and malformed response bodies. Anything else
(a 400, a bad key) fails at once, because asking again cannot help.

Example:
    >>> policy = RetryPolicy(max_attempts=3, initial_wait=0.0)
    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise TimeoutError("slow")
    ...     return "ok"
    >>> policy.call(flaky), len(calls)
    ('ok', 3)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

__all__ = ["RetryPolicy", "is_transient", "retry_after_seconds", "status_code"]

T = TypeVar("T")

_TRANSIENT_NAMES = {
    "RateLimitError",
    "InternalServerError",
    "APITimeoutError",
    "APIConnectionError",
    "APIResponseValidationError",
    "ServiceUnavailableError",
    "ReadTimeout",
    "ConnectTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "ReadError",
    "RemoteProtocolError",
    "ConnectError",
}
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an error from an HTTP client, when it has one."""
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    """Tell whether asking again may succeed."""
    if isinstance(exc, (TimeoutError, ConnectionError, json.JSONDecodeError)):
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__):
        return True
    code = status_code(exc)
    return code in _TRANSIENT_STATUS


def retry_after_seconds(exc: BaseException) -> float | None:
    """The wait a server asked for in ``retry-after-ms`` or ``retry-after`` headers, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000.0
        if (s := headers.get("retry-after")) is not None:
            return float(s)
    except (TypeError, ValueError):
        return None
    return None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    max_attempts: int = 4
    """Total attempts, the first included."""
    initial_wait: float = 0.5
    """First backoff in seconds (doubled each time, with jitter)."""
    max_wait: float = 20.0
    """Longest single wait in seconds, also the cap on a server's retry-after."""

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc) if exc else None
        if asked is not None:
            return min(max(asked, 0.0), self.max_wait)
        backoff = self.initial_wait * 2 ** (state.attempt_number - 1) + random.uniform(0, self.initial_wait)
        return min(backoff, self.max_wait)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` and retry it on transient failures; re-raise the last error when attempts run out."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)
