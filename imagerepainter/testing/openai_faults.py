"""Faults that depend on what is asked, not on when: a flaky API that can be replayed.

:class:`ContentFaults` wraps a responder of
:class:`~imagerepainter.testing.openai_server.OpenAICompatibleServer` and makes a share of the
requests fail with transient faults (429 with ``retry-after``, 500, 502, 503, a dropped
connection, a truncated body). Whether a request fails is decided from a hash of its body and
of how often that same body has been asked before, never from a global counter, so:

* the same run against the same plan meets the same faults, whatever else runs beside it
  (concurrent runs do not shift each other's faults);
* a retried request is a new attempt with its own draw, so a client that retries gets through;
* a faulty run can be compared with a fault-free one: the answers that do arrive are exactly
  the answers the fault-free server gives.

Example:
    >>> import json, urllib.error, urllib.request
    >>> from imagerepainter.testing.openai_server import OpenAICompatibleServer
    >>> faults = ContentFaults(lambda request: "hi", rate=0.5, seed=1)
    >>> def ask(url):
    ...     body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    ...     req = urllib.request.Request(url + "/chat/completions", data=body,
    ...                                  headers={"Content-Type": "application/json"})
    ...     for attempt in range(1, 20):
    ...         try:
    ...             return json.load(urllib.request.urlopen(req))["choices"][0]["message"]["content"], attempt
    ...         except (urllib.error.URLError, ConnectionError, ValueError):
    ...             continue
    >>> with OpenAICompatibleServer(responder=faults) as srv:
    ...     answer, attempts = ask(srv.base_url)
    >>> answer, attempts == faults.attempts_of_first_success()[0], attempts == faults.injected_total + 1
    ('hi', True, True)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .._openai_wire.faults import Fault
from .._openai_wire.protocol import ChatRequest, ImageRequest
from .._openai_wire.replies import ImageResponder, Responder, default_images

__all__ = ["ContentFaults", "transient_faults"]


def transient_faults(*, retry_after: float = 0.01) -> tuple[Fault, ...]:
    """The transient faults of a flaky API: 429 (asking to wait ``retry_after`` s), 500, 502,
    503, a dropped connection and a truncated body.

    Example:
        >>> [f.kind if f.kind != "status" else f.code for f in transient_faults()]
        [429, 500, 502, 503, 'disconnect', 'malformed']
    """
    return (
        Fault.status(429, retry_after=retry_after),
        Fault.status(500),
        Fault.status(502),
        Fault.status(503),
        Fault.disconnect(),
        Fault.malformed(),
    )


def _unit(*parts: object) -> tuple[float, int]:
    """A uniform number in [0, 1) and an int, both drawn from a hash of ``parts``."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big")


class ContentFaults:
    """A responder that fails a seeded share of requests, chosen by their content.

    Args:
        responder: What answers the requests that do not fail (any server responder).
        rate: Chance that one attempt of a request fails, in [0, 1).
        seed: Changes which attempts fail; the same seed replays the same faults.
        faults: The faults to draw from (default: :func:`transient_faults`).
        image_responder: Answers image requests that do not fail (default: the server's solid
            colours); use :attr:`images` as the server's ``image_responder`` to fault those too.

    Attributes:
        injected: How many faults of each kind were sent (``"429"``, ``"disconnect"``, ...).
    """

    def __init__(
        self,
        responder: Responder,
        *,
        rate: float = 0.3,
        seed: int = 0,
        faults: Sequence[Fault] | None = None,
        image_responder: ImageResponder | None = None,
    ) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), not {rate!r}")
        self.responder = responder
        self.image_responder: ImageResponder = image_responder or default_images
        self.rate = float(rate)
        self.seed = seed
        self.faults: tuple[Fault, ...] = tuple(faults) if faults is not None else transient_faults()
        if not self.faults:
            raise ValueError("faults must not be empty")
        self.injected: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self._first_success: list[int] = []
        self._answered: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ContentFaults(rate={self.rate}, seed={self.seed}, injected={self.injected_total})"

    @property
    def injected_total(self) -> int:
        """How many faults were sent in all."""
        with self._lock:
            return sum(self.injected.values())

    def attempts_of_first_success(self) -> list[int]:
        """For each distinct body answered, on which attempt it first got through (1 = no fault)."""
        with self._lock:
            return list(self._first_success)

    def decide(self, body: Any) -> Fault | None:
        """The fault for this attempt of ``body`` (None: answer it), counting the attempt."""
        key = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            attempt = self._attempts[key]
            self._attempts[key] += 1
            draw, pick = _unit(self.seed, key, attempt)
            if draw < self.rate:
                fault = self.faults[pick % len(self.faults)]
                self.injected[str(fault.code) if fault.kind == "status" else fault.kind] += 1
                return fault
            if key not in self._answered:
                self._answered.add(key)
                self._first_success.append(attempt + 1)
            return None

    def __call__(self, request: ChatRequest) -> Any:
        """Answer a chat request, or fail it."""
        fault = self.decide(request.body)
        return fault if fault is not None else self.responder(request)

    def images(self, request: ImageRequest) -> Any:
        """Answer an image request, or fail it (pass this as the server's ``image_responder``)."""
        fault = self.decide(request.body)
        return fault if fault is not None else self.image_responder(request)
