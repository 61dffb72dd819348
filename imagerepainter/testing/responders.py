"""Serve any in-process answering logic over the OpenAI-compatible test server.

:class:`SchemaResponder` turns a function ``answer(schema_name, text, images) -> dict`` into a
responder for :class:`~imagerepainter.testing.openai_server.OpenAICompatibleServer` (it finds
the requested schema from the wire, or from the instruction's text for text-only servers); by
default it answers every loop schema procedurally with :func:`fake_schema_answer`.

Example:
    >>> from imagerepainter.testing.openai_server import ChatRequest
    >>> req = ChatRequest.from_body({"messages": [{"role": "user", "content": "Prompt: a cat\\nCount: 1"}],
    ...     "response_format": {"type": "json_schema", "json_schema": {"name": "PromptVariants", "schema": {}}}})
    >>> SchemaResponder()(req)
    {'prompts': ['a cat, variant 1']}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image
from pydantic import BaseModel

from .._openai_wire.schema_responder import SCHEMA_NAMES, Answer
from .._openai_wire.schema_responder import SchemaResponder as _SchemaResponder
from ..loop import schemas

__all__ = ["SCHEMA_NAMES", "SchemaResponder", "fake_schema_answer"]


def fake_schema_answer(schema_name: str, text: str, images: Sequence[Image.Image]) -> dict[str, Any]:
    """Answer any loop schema procedurally (see :func:`imagerepainter.testing.fakes.fake_answer`)."""
    from .fakes import fake_answer

    schema: type[BaseModel] = getattr(schemas, schema_name)
    return fake_answer(schema, text).model_dump()


class SchemaResponder(_SchemaResponder):
    """A responder answering the loop's schemas with ``answer``; counts requests per schema.

    Args:
        answer: ``(schema_name, text, images) -> dict`` valid for that schema (default:
            :func:`fake_schema_answer`).
        text: Answer to a request that names no schema (plain chat).
    """

    def __init__(self, answer: Answer = fake_schema_answer, *, text: str = "OK") -> None:
        super().__init__(answer, text=text)
