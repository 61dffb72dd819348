"""Scripted answers for the local server: per-schema queues of payloads, popped in order.

Users import :class:`ScriptedResponder` from :mod:`imagerepainter.testing.openai_server`, which
re-exports it; it is the server's default responder.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .protocol import ChatRequest

__all__ = ["ScriptExhaustedError", "ScriptedResponder"]


class ScriptExhaustedError(RuntimeError):
    """A :class:`ScriptedResponder` had no answer left for a request (the server answers HTTP 500)."""


class ScriptedResponder:
    """Answers structured requests from per-schema scripts, and text requests with a default.

    ``script`` maps a schema name (the ``response_format`` schema name or the forced
    tool's name, usually the pydantic class name) to a list of payloads popped in order,
    or to a callable ``(ChatRequest) -> payload``. ``script`` may also be a single callable
    that answers every structured request. Payloads are dicts, pydantic models (dumped to
    JSON), strings, :class:`ChatReply` s or :class:`Fault` s.

    Args:
        script: The per-schema answers, or one callable.
        text: The answer to requests without a schema: a string, a callable, or None to
            treat them as an error.
        infer_schema_from_text: For requests without a wire schema (a text-only server,
            a client that asks for JSON in the prompt), pick the script whose name is the
            only one that occurs as a whole word in the system and user text.

    Example:
        >>> responder = ScriptedResponder({"Caption": [{"caption": "a cat"}, {"caption": "a dog"}]}, text="hi")
        >>> req = ChatRequest.from_body({"messages": [{"role": "user", "content": "x"}],
        ...     "response_format": {"type": "json_schema", "json_schema": {"name": "Caption", "schema": {}}}})
        >>> responder(req), responder(req), responder.remaining("Caption")
        ({'caption': 'a cat'}, {'caption': 'a dog'}, 0)
        >>> responder(req)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        imagerepainter._openai_wire.scripted.ScriptExhaustedError: The script for 'Caption' ran out after 2 answers...
    """

    def __init__(
        self,
        script: Mapping[str, Iterable[Any] | Callable[[ChatRequest], Any]] | Callable[[ChatRequest], Any] | None = None,
        *,
        text: str | Callable[[ChatRequest], Any] | None = "OK",
        infer_schema_from_text: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._fallback: Callable[[ChatRequest], Any] | None = None
        self._queues: dict[str, deque[Any]] = {}
        self._callables: dict[str, Callable[[ChatRequest], Any]] = {}
        self._served: dict[str, int] = {}
        if callable(script):
            self._fallback = script
        else:
            for name, entry in (script or {}).items():
                if callable(entry):
                    self._callables[name] = entry
                else:
                    self._queues[name] = deque(entry)
        self.text = text
        self.infer_schema_from_text = infer_schema_from_text

    def add(self, schema_name: str, *payloads: Any) -> None:
        """Append ``payloads`` to the script of ``schema_name``."""
        with self._lock:
            self._queues.setdefault(schema_name, deque()).extend(payloads)

    def remaining(self, schema_name: str) -> int:
        """How many scripted payloads for ``schema_name`` have not been used yet."""
        with self._lock:
            return len(self._queues.get(schema_name, ()))

    def __call__(self, request: ChatRequest) -> Any:
        name = request.schema_name
        if name is None and self.infer_schema_from_text:
            name = self._infer_name(request)
        if name is None:
            if self.text is None:
                raise ScriptExhaustedError(f"No answer for a plain-text request (mode {request.mode!r}): text=None.")
            return self.text(request) if callable(self.text) else self.text
        if name in self._callables:
            return self._callables[name](request)
        with self._lock:
            queue = self._queues.get(name)
            if queue:
                self._served[name] = self._served.get(name, 0) + 1
                return queue.popleft()
            served = self._served.get(name, 0)
        if self._fallback is not None:
            return self._fallback(request)
        if queue is None:
            known = ", ".join(sorted([*self._queues, *self._callables])) or "none"
            raise ScriptExhaustedError(f"No script for schema {name!r} (scripted schemas: {known}).")
        raise ScriptExhaustedError(
            f"The script for {name!r} ran out after {served} answers; add more with responder.add({name!r}, ...)."
        )

    def _infer_name(self, request: ChatRequest) -> str | None:
        haystack = request.system + "\n" + request.text
        found = [n for n in [*self._queues, *self._callables] if re.search(rf"\b{re.escape(n)}\b", haystack)]
        return found[0] if len(found) == 1 else None
