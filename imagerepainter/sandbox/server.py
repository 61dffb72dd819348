"""The sandbox MLLM as an OpenAI-compatible HTTP server on 127.0.0.1.

So the real ``ChatOpenAI`` path can be driven end to end with no model: the server answers
chat-completions requests with :func:`~imagerepainter.sandbox.answer`, perceiving the images
the client sends. Over HTTP it gives the same answers as :class:`SandboxMLLM` in process.

Example:
    >>> from langchain_openai import ChatOpenAI
    >>> from imagerepainter import Repainter
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> with sandbox_server() as server:
    ...     chat = ChatOpenAI(model="sandbox", base_url=server.base_url, api_key="EMPTY", max_retries=0)
    ...     rp = Repainter(mllm=chat, t2i="sandbox", scorer="sandbox", max_rounds=2)
    ...     result = rp.run(render_scene(random_scene(5)))
    >>> len(result.rounds)
    2

From a shell: ``imagerepainter serve-sandbox --port 8765``, then
``imagerepainter run ref.png --mllm openai:sandbox --base-url http://127.0.0.1:8765/v1 --t2i sandbox --scorer sandbox``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from .._openai_wire.protocol import StructuredOutputSupport
from .._openai_wire.schema_responder import SchemaResponder
from .._openai_wire.server import OpenAICompatibleServer
from .mllm import answer

__all__ = ["sandbox_server"]


def _answer(schema_name: str, text: str, images: Sequence[Image.Image]) -> dict[str, Any]:
    return answer(schema_name, text, list(images))


def sandbox_server(
    *, port: int = 0, structured_output: StructuredOutputSupport = "json_schema"
) -> OpenAICompatibleServer:
    """An (unstarted) OpenAI-compatible server on 127.0.0.1 whose model is the sandbox MLLM.

    Args:
        port: Port to listen on; 0 picks a free one.
        structured_output: What the server supports (``"json_schema"``, ``"tools"`` or ``"text"``),
            to exercise the client's fallbacks.
    """
    return OpenAICompatibleServer(
        SchemaResponder(_answer), structured_output=structured_output, port=port, models=("sandbox",)
    )
