"""Serve in-process answering logic over the local OpenAI-compatible server.

:class:`SchemaResponder` turns a function ``answer(schema_name, text, images) -> dict`` into a
responder for :class:`~imagerepainter._openai_wire.server.OpenAICompatibleServer`. It finds the
requested schema from the wire (``response_format`` name or the forced tool), or, for servers
that only see plain text, from the schema name the client wrote into the instruction.

Example:
    >>> from imagerepainter._openai_wire.protocol import ChatRequest
    >>> responder = SchemaResponder(lambda name, text, images: {"prompts": [text.upper()]})
    >>> req = ChatRequest.from_body({"messages": [{"role": "user", "content": "a cat"}],
    ...     "response_format": {"type": "json_schema", "json_schema": {"name": "PromptVariants", "schema": {}}}})
    >>> responder(req), responder.counts["PromptVariants"]
    ({'prompts': ['A CAT']}, 1)
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from ..loop import schemas
from .protocol import ChatRequest

__all__ = ["SCHEMA_NAMES", "Answer", "SchemaResponder"]

SCHEMA_NAMES: tuple[str, ...] = tuple(name for name in schemas.__all__ if isinstance(getattr(schemas, name), type))
"""Names of the loop's request schemas (:mod:`imagerepainter.loop.schemas`)."""

Answer = Callable[[str, str, Sequence[Image.Image]], dict[str, Any]]
"""``(schema_name, text, images) -> dict`` valid for that schema."""


class SchemaResponder:
    """A responder answering the loop's schemas with ``answer``; counts requests per schema.

    Args:
        answer: ``(schema_name, text, images) -> dict`` valid for that schema.
        text: Answer to a request that names no schema (plain chat).
    """

    def __init__(self, answer: Answer, *, text: str = "OK") -> None:
        self.answer = answer
        self.text = text
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def schema_name(self, request: ChatRequest) -> str | None:
        """The loop schema a request asks for, from the wire or, failing that, from its text."""
        if request.schema_name in SCHEMA_NAMES:
            return request.schema_name
        haystack = f"{request.system}\n{request.text}"
        found = [n for n in SCHEMA_NAMES if re.search(rf"\b{n}\b", haystack)]
        return found[0] if len(found) == 1 else None

    def __call__(self, request: ChatRequest) -> Any:
        name = self.schema_name(request)
        if name is None:
            return self.text
        with self._lock:
            self.counts[name] += 1
        return self.answer(name, request.text, request.images)
