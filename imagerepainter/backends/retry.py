"""Bounded retries of transient backend failures (tenacity).

Transient means: rate limits (429, honouring ``retry-after-ms`` / ``retry-after``), server
errors (5xx), timeouts, dropped connections and malformed response bodies. Anything else
(a 400, a bad key) fails at once, because asking again cannot help.

Only one retry budget should govern a failure. HTTP clients built on OpenAI's SDK (ChatOpenAI,
``openai.OpenAI``, Anthropic's SDK) already retry some of these failures themselves, ``max_retries``
times (2 by default): :func:`retried_by_http_client` tells which. A caller that wraps such a
client either calls it with its retries off (``client.with_options(max_retries=0)``; what the chat
adapter does for ChatOpenAI), or passes ``cost=`` to :meth:`RetryPolicy.call` so that the
client's own attempts are counted in the policy's ``max_attempts`` instead of multiplying them.

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

from tenacity import RetryCallState, Retrying, retry_if_exception

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "RetryPolicy",
    "is_timeout",
    "is_transient",
    "retried_by_http_client",
    "retry_after_seconds",
    "status_code",
]

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
DEFAULT_REQUEST_TIMEOUT = 120.0
"""Seconds one HTTP request of an ``openai:`` MLLM spec or of the OpenAI images backend may take before it
counts as a (transient) timeout. With :class:`RetryPolicy`'s defaults a server that never answers is
given up on after two attempts, about four minutes."""

_TIMEOUT_NAMES = {"APITimeoutError", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"}
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_CLIENT_RETRIED_NAMES = {"APIConnectionError", "APITimeoutError"}
"""Errors the OpenAI SDK raises only after its own retries (APITimeoutError is an APIConnectionError)."""
_CLIENT_RETRIED_STATUS = {408, 409, 429}
"""Statuses the OpenAI SDK retries by itself, besides every 5xx (``_base_client._should_retry``)."""


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an error from an HTTP client, when it has one."""
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def is_timeout(exc: BaseException) -> bool:
    """Tell whether ``exc`` says a request ran out of time.

    Example:
        >>> is_timeout(TimeoutError()), is_timeout(ConnectionResetError())
        (True, False)
    """
    return isinstance(exc, TimeoutError) or any(cls.__name__ in _TIMEOUT_NAMES for cls in type(exc).__mro__)


def is_transient(exc: BaseException) -> bool:
    """Tell whether asking again may succeed: 408, 409, 425, 429, 500, 502, 503, 504, timeouts,
    dropped connections and bodies that are not JSON (see the module docstring).

    Example:
        >>> is_transient(ConnectionResetError()), is_transient(ValueError("HTTP 400"))
        (True, False)
    """
    if isinstance(exc, (TimeoutError, ConnectionError, json.JSONDecodeError)):
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__):
        return True
    code = status_code(exc)
    return code in _TRANSIENT_STATUS


def retried_by_http_client(exc: BaseException) -> bool:
    """Tell whether an OpenAI-SDK-style client already retried ``exc`` before raising it.

    Mirrors ``openai._base_client.SyncAPIClient._should_retry`` and its request loop: the
    client retries HTTP 408, 409, 429 and every 5xx, connection errors and timeouts. It does
    *not* retry a 200 answer whose body is not JSON, nor HTTP 425, so those stay for
    :class:`RetryPolicy`.

    Example:
        >>> retried_by_http_client(TimeoutError()), retried_by_http_client(ValueError("bad json"))
        (False, False)
    """
    if any(cls.__name__ in _CLIENT_RETRIED_NAMES for cls in type(exc).__mro__):
        return True
    code = status_code(exc)
    return code is not None and (code in _CLIENT_RETRIED_STATUS or code >= 500)


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
    """How often and how patiently to retry a transient failure.

    The defaults absorb long bursts of faults (at 30% of requests failing, 10 attempts leave
    one call in 170,000 failing) and still end: after ``max_attempts`` attempts, or when the
    next wait would end more than ``max_elapsed`` seconds after the first attempt began,
    the last error is raised. Waits double from ``initial_wait`` (plus up to
    ``initial_wait`` of jitter) up to ``max_wait``; a server's ``retry-after-ms`` /
    ``retry-after`` replaces the computed wait (capped at ``max_wait``).

    Example:
        >>> p = RetryPolicy()
        >>> p.max_attempts, p.max_elapsed, p.backoff(1, jitter=False), p.backoff(10, jitter=False)
        (10, 180.0, 0.5, 15.0)
    """

    max_attempts: int = 10
    """Total attempts, the first included."""
    initial_wait: float = 0.5
    """First backoff in seconds (doubled each time, with jitter)."""
    max_wait: float = 15.0
    """Longest single wait in seconds, also the cap on a server's retry-after."""
    max_elapsed: float = 180.0
    """No retry starts later than this many seconds after the first attempt began."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {self.max_attempts!r}")
        if min(self.initial_wait, self.max_wait, self.max_elapsed) < 0:
            raise ValueError("initial_wait, max_wait and max_elapsed must be >= 0 seconds")

    def backoff(self, attempt: int, *, jitter: bool = True) -> float:
        """The wait after failed attempt number ``attempt`` (1-based) when the server asked for none."""
        wait = self.initial_wait * 2 ** (attempt - 1) + (random.uniform(0, self.initial_wait) if jitter else 0.0)
        return min(wait, self.max_wait)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc) if exc else None
        if asked is not None:
            return min(max(asked, 0.0), self.max_wait)
        return self.backoff(state.attempt_number)

    def _stopper(self, cost: Callable[[BaseException], int] | None) -> Callable[[RetryCallState], bool]:
        """Tenacity's ``stop`` for one call: the attempts spent (each failure's ``cost``) or the time is up."""
        spent = [0]

        def stop(state: RetryCallState) -> bool:
            failure = state.outcome.exception() if state.outcome else None
            spent[0] += max(cost(failure), 1) if cost is not None and failure is not None else 1
            if spent[0] >= self.max_attempts:
                return True
            elapsed = state.seconds_since_start or 0.0
            return elapsed + (state.upcoming_sleep or 0.0) > self.max_elapsed

        return stop

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        retry_on: Callable[[BaseException], bool] = is_transient,
        cost: Callable[[BaseException], int] | None = None,
        **kwargs: Any,
    ) -> T:
        """Call ``fn`` and retry it on failures ``retry_on`` accepts; re-raise the last error when attempts run out.

        Args:
            fn: What to call, with ``*args`` and ``**kwargs``.
            retry_on: Which errors are worth another attempt; :func:`is_transient` by default.
            cost: How many of the ``max_attempts`` a failure used up (1 when not given). A client
                that retried a failure by itself before raising it made ``1 + its retries``
                attempts: counting them keeps the two layers within one budget.

        Example:
            >>> calls = []
            >>> def failing():
            ...     calls.append(1)
            ...     raise TimeoutError("slow")
            >>> try:
            ...     RetryPolicy(max_attempts=9, initial_wait=0.0).call(failing, cost=lambda exc: 3)
            ... except TimeoutError:
            ...     len(calls)  # each failure spent 3 of the 9 attempts
            3
        """
        retrying = Retrying(
            stop=self._stopper(cost),
            wait=self._wait,
            retry=retry_if_exception(retry_on),
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)
